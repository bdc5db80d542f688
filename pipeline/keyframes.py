"""The colourist's round trip: keyframes out to paint, painted frames back in, by name.

Out (`filmcolor keyframes INPUT|RUN_DIR --out DIR`): per scene, the frame best suited to
painting — the scene's own exemplar frame where it has one, else the automatic keyframe
choice (sharp, well exposed, near the middle: guidance.pick_keyframe) — as a grey picture
at the source's full resolution and depth (16-bit PNG for 10-16-bit sources, 8-bit PNG
for 8-bit), plus a transparent hints template of the same size; from a run directory
also, with `--coloured`, the film's current colours of that frame (from the master) as
a starting point to correct. Only those frames are read: a run directory already knows
its scenes; a film is scanned for them first.

Names carry everything needed to bring a picture back:

    FILM_sSCENE_fFRAME_HH-MM-SS-FF[_hints|_coloured|anything].png

In (`--exemplars DIR`, `--hints DIR`): every picture in a folder or S3 prefix named like
that, placed at the frame in its name. RGBA pictures with transparency (or `_hints`) are
hints; pictures still grey (not painted yet) and untouched templates are skipped. A
picture whose size differs from the frame, whose frame is outside the film, or whose
luminance does not match the frame it names (the wrong frame was painted) is refused
with one line naming the file, before any work.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline import log, storage
from pipeline.errors import InputError

NAME_RE = re.compile(r"^(?P<film>[A-Za-z0-9._-]+?)_s(?P<scene>\d{4,})_f(?P<frame>\d{7,})_"
                     r"(?P<tc>\d{2}-\d{2}-\d{2}-\d{2})(?P<rest>[^/]*)\.(?P<ext>png|tif|tiff)$", re.IGNORECASE)
IMAGE_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
# What `export` wrote (name -> sha256): a picture still byte for byte as exported was not
# painted (a `_coloured` starting point left as it was must not replace its scene's exemplar).
EXPORTED = ".filmcolor-keyframes.json"
# The painted picture's luma against the frame's (64 x 36, each normalised): correlation
# below this means another frame was painted. Measured on the test films: the frame
# itself painted from its colour truth scores > 0.99, a neighbouring frame of a panning
# shot 0.93-0.98, another shot 0.1-0.5.
LUMA_MATCH = 0.9


@dataclass(frozen=True)
class Keyframe:
    film_id: str
    scene: int
    frame: int
    timecode: str
    source: str  # exemplar source of the scene (own, hints, matched, auto, none), or 'scan'


def name_of(film_id: str, scene: int, frame: int, timecode: str, kind: str = "") -> str:
    tc = timecode.replace(":", "-").replace(";", "-")
    return f"{film_id}_s{scene:04d}_f{frame:07d}_{tc}" + (f"_{kind}" if kind else "") + ".png"


def parse_name(name: str) -> tuple[str, int, int, str] | None:
    """(film id, scene, frame, the rest of the name) of a keyframe file name, or None."""
    m = NAME_RE.match(name)
    if not m:
        return None
    return m.group("film"), int(m.group("scene")), int(m.group("frame")), m.group("rest").lower()


# --- out ------------------------------------------------------------------------------

def grey_picture(luma: np.ndarray, info) -> np.ndarray:
    """Luma code values -> the grey picture to paint: full-range values of 16 bits (10-16-bit
    sources; a full-range 16-bit scan's samples as they are) or 8 bits."""
    from pipeline.io import luma_range

    lo, hi = luma_range(info)
    if info.bit_depth > 8:
        if info.full_range and info.bit_depth == 16:
            return luma.astype(np.uint16)
        return np.rint((luma.astype(np.float64) - lo) * (65535.0 / (hi - lo))).clip(0, 65535).astype(np.uint16)
    if info.full_range:
        return luma.astype(np.uint8)
    return np.rint((luma.astype(np.float64) - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _png(img: np.ndarray) -> bytes:
    # zlib level 1: a 2K 16-bit keyframe in a third of the default's time, a few % larger
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def keyframes_of_run(run_dir: str, scenes: list[int], film: str | None) -> list[tuple[dict, object, list[Keyframe]]]:
    """(film row, FilmInfo, keyframes) of a recorded run: the scene table says where the
    scenes are and which frame each exemplar shows."""
    from pipeline.guidance import GuidanceConfig, pick_keyframe
    from pipeline.plan import recorded_info
    from pipeline.record import read_table
    from pipeline.scenes.export import timecode_of
    from pipeline.scenes.scan import Scene

    films = [f for f in read_table(run_dir, "films") if film in (None, f["film_id"])]
    if not films:
        raise InputError(f"{run_dir}: no run record" + (f" for film {film!r}" if film else ""))
    rows = read_table(run_dir, "scenes")
    out = []
    for f in films:
        info = recorded_info(run_dir, f)
        picked = []
        for r in sorted((r for r in rows if r["film_id"] == f["film_id"]), key=lambda r: r["scene"]):
            if (scenes and r["scene"] not in scenes) or r["low_variability"]:
                continue  # black/flat spans are not coloured: nothing to paint
            frame = r["exemplar_frame"]
            if not r["start_frame"] <= frame < r["end_frame"]:  # matched/none: the scene's own keyframe
                sc = Scene(r["scene"], r["start_frame"], r["end_frame"], r["transition"], r["score"])
                frame = pick_keyframe(info, sc, GuidanceConfig())[0]
            picked.append(Keyframe(f["film_id"], r["scene"], frame, timecode_of(info, frame), r["exemplar_source"]))
        _missing(scenes, picked, run_dir)
        out.append((f, info, picked))
    return out


def keyframes_of_film(path: str, scenes: list[int], film_id: str, fps=None) -> tuple[object, list[Keyframe]]:
    """A film not run yet: its scenes are scanned first (the whole film is read once, at
    thumbnail size), then each scene's keyframe chosen."""
    from pipeline.guidance import GuidanceConfig, pick_keyframe
    from pipeline.io import probe
    from pipeline.scenes import scan_scenes
    from pipeline.scenes.export import timecode_of

    info = probe(path, fps)
    picked = []
    for sc in scan_scenes(path, info):
        if (scenes and sc.scene not in scenes) or sc.low_variability:
            continue
        frame = pick_keyframe(info, sc, GuidanceConfig())[0]
        picked.append(Keyframe(film_id, sc.scene, frame, timecode_of(info, frame), "scan"))
    _missing(scenes, picked, path)
    return info, picked


def _missing(asked: list[int], picked: list[Keyframe], where: str) -> None:
    gone = sorted(set(asked) - {k.scene for k in picked})
    if gone:
        raise InputError(f"{where}: no scene {gone[0]} to export (no such scene, or a black/flat span)")


def export(keys: list[Keyframe], info, out_dir: str, master: str | None = None) -> list[str]:
    """Write each keyframe (grey, full resolution and depth) and its transparent hints
    template into `out_dir` (local or S3); with `master`, also the film's current colours
    of that frame. Returns the URIs written."""
    from pipeline.io import iter_luma

    import hashlib
    import json

    _probe_cached.cache_clear()  # a master re-published since is probed afresh
    storage.makedirs(out_dir)
    template = _png(np.zeros((info.height, info.width, 4), np.uint8))  # RGBA, all transparent
    written, shas = [], {}
    for k in keys:
        for _, y in iter_luma(info, k.frame, k.frame + 1):
            grey = grey_picture(y, info)
        pictures = [("", _png(grey)), ("hints", template)]
        if master:
            pictures.append(("coloured", _png(coloured_frame(master, k.frame, info))))
        for kind, data in pictures:
            name = name_of(k.film_id, k.scene, k.frame, k.timecode, kind)
            storage.write_bytes(storage.join(out_dir, name), data)
            written.append(storage.join(out_dir, name))
            shas[name] = hashlib.sha256(data).hexdigest()
    shas = {**_exported(out_dir), **shas}
    storage.write_bytes(storage.join(out_dir, EXPORTED), json.dumps(shas, indent=1, sort_keys=True).encode())
    return written


def _exported(folder: str) -> dict:
    import json

    uri = storage.join(folder, EXPORTED)
    try:
        return json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    except (ValueError, OSError, storage.StorageError):
        return {}


def coloured_frame(master: str, frame: int, info) -> np.ndarray:
    """Frame `frame` of a coloured master film as an H x W x 3 BGR picture (16 bits for deep
    films), from its own Y'CbCr planes and tags: the colours a scene has now."""
    from pipeline.codecs import OutputSpec, code_to_chroma
    from pipeline.colour import ycbcr_to_rgb
    from pipeline.io import iter_frames, luma_to_float, plane_array

    out = _probe_cached(master)
    if out.is_sequence:  # a DPX/TIFF master is R'G'B' already
        from pipeline.io import image

        data = storage.read_bytes(out.frame_files[frame])
        rgb = image.decode(data, os.path.splitext(out.frame_files[frame])[1])
        top = (1 << out.bit_depth) - 1
        return (rgb[..., ::-1].astype(np.float64) * (65535.0 / top)).round().astype(np.uint16)
    for _, f in iter_frames(out, frame, frame + 1):
        dtype = np.uint8 if out.bit_depth == 8 else np.dtype("<u2")
        y = plane_array(f.planes[0], f.width, f.height, dtype)
        c = [plane_array(p, p.width, p.height, dtype) for p in f.planes[1:3]]
        spec = OutputSpec("", "", f.format.name, out.bit_depth, out.chroma, "", full_range=out.full_range,
                          colorspace=out.colorspace)
        chroma = code_to_chroma(np.stack(c), spec)
        chroma = np.stack([cv2.resize(ch, (f.width, f.height), interpolation=cv2.INTER_LINEAR) for ch in chroma])
        rgb = ycbcr_to_rgb(np.concatenate([luma_to_float(y, out)[None], chroma]), spec.matrix)
        deep = info.bit_depth > 8
        top = 65535.0 if deep else 255.0
        return np.rint(rgb[..., ::-1] * top).astype(np.uint16 if deep else np.uint8)
    raise InputError(f"{master}: frame {frame} cannot be decoded")


@functools.lru_cache(maxsize=4)
def _probe_cached(master: str):
    """The master's probe, once per export (it demuxes the whole film's packet table)."""
    from pipeline.io import probe

    return probe(master)


# --- in -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Painted:
    uri: str
    frame: int
    kind: str  # 'exemplar' | 'hints'


def is_folder_spec(text: str) -> bool:
    """`--exemplars`/`--hints` value naming a folder or S3 prefix (no @FRAME)."""
    if "@" in os.path.basename(text.rstrip("/")):
        return False
    return text.endswith("/") or (not storage.is_s3(text) and os.path.isdir(text))


def collect(folder: str, film_id: str, info, hints_only: bool = False) -> list[Painted]:
    """The painted pictures of film `film_id` in `folder`, checked against the film (size,
    frame, luminance). InputError naming the first bad file."""
    listing = storage.list_files(folder)
    if not listing and not storage.is_s3(folder) and not os.path.isdir(folder):
        raise InputError(f"{folder}: no such folder")
    import hashlib

    exported = _exported(folder)
    others, out, by_frame = set(), [], {}
    for name, _, _ in listing:
        if not name.lower().endswith(IMAGE_EXTS):
            continue
        uri = storage.join(folder, name)
        if name in exported and hashlib.sha256(storage.read_bytes(uri)).hexdigest() == exported[name]:
            continue  # as exported: not painted
        parsed = parse_name(name)
        if parsed is None:
            raise InputError(f"{uri}: the name carries no frame (expected FILM_sSCENE_fFRAME_HH-MM-SS-FF....png, "
                             "as `filmcolor keyframes` writes them)")
        fid, _, frame, rest = parsed
        if fid != film_id:
            others.add(fid)
            continue
        p = _check(uri, frame, rest, info, hints_only)
        if p is None:
            continue
        if (p.frame, p.kind) in by_frame:
            raise InputError(f"{uri}: frame {frame} is painted twice (also {by_frame[p.frame, p.kind]}); keep one")
        by_frame[p.frame, p.kind] = name
        out.append(p)
    if not out:
        extra = f" (pictures of film(s) {', '.join(sorted(others))} are there)" if others else ""
        log.warning("%s: no painted picture of film %s%s", folder, film_id, extra)
    return out


def _check(uri: str, frame: int, rest: str, info, hints_only: bool) -> Painted | None:
    from pipeline.exemplar import decode_image, has_colour, read_image_file

    if not 0 <= frame < info.frame_count:
        raise InputError(f"{uri}: frame {frame} is outside the film (frames 0..{info.frame_count - 1})")
    img = decode_image(read_image_file(uri), uri)
    h, w = img.shape[:2]
    if (w, h) != (info.width, info.height):
        raise InputError(f"{uri}: {w}x{h}, but frame {frame} is {info.width}x{info.height} (paint the keyframe "
                         "at its own size)")
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    alpha = img[..., 3].astype(np.float32) / peak if img.ndim == 3 and img.shape[2] == 4 else None
    hints = hints_only or rest.startswith("_hints") or (alpha is not None and float(alpha.min()) < 1.0)
    if hints:
        if alpha is None or not np.any(alpha >= 0.5):
            log.info("%s: no hint painted on it; skipped", uri)
            return None
        return Painted(uri, frame, "hints")
    bgr = img if img.ndim == 3 else np.stack([img] * 3, -1)
    rgb = cv2.cvtColor(bgr[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / peak
    if not has_colour(rgb):
        log.info("%s: still grey (not painted yet); skipped", uri)
        return None
    _check_luma(uri, rgb, frame, info)
    return Painted(uri, frame, "exemplar")


def _check_luma(uri: str, rgb: np.ndarray, frame: int, info) -> None:
    from pipeline.colour import rgb_to_ycbcr
    from pipeline.io import iter_luma, luma_to_float

    size = (64, 36)
    painted = rgb_to_ycbcr(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), "bt709")[0]
    for _, y in iter_luma(info, frame, frame + 1, size):
        score = _correlation(painted, luma_to_float(y, info))
        if score < LUMA_MATCH:
            raise InputError(f"{uri}: its luminance does not match frame {frame} (correlation {score:.2f}, "
                             f"needs {LUMA_MATCH}): was another frame painted?")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 1.0


def specs(painted: list[Painted]) -> tuple[list[str], list[str]]:
    """IMAGE@FRAME texts of painted exemplars and of hints."""
    ex = [f"{p.uri}@{p.frame}" for p in painted if p.kind == "exemplar"]
    hi = [f"{p.uri}@{p.frame}" for p in painted if p.kind == "hints"]
    return ex, hi
