"""The review page of a run: `filmcolor report RUN_DIR [--out DIR]`.

One self-contained HTML file (inline CSS and JS, thumbnails as base64 `data:` URIs, nothing
fetched from anywhere), so it works opened from disk and uploaded to a bucket alike; its
only links to files are relative download links (below).

It shows the run (films, status, frames, duration, wall time, throughput, model, warnings,
errors), and per film a scene timeline coloured by exemplar source and a table with one
row per scene: timecodes, transition, exemplar source, input | exemplar | output
thumbnails at the scene's first, middle and last frame, status and error, a "redo" box,
and download links to the scene's keyframe to paint, its hints template, its current
colours and its exemplar. Ticked boxes compose, at the top, the matching `filmcolor
reprocess` command (redo as is), the `filmcolor keyframes` command that exports their
keyframes into a folder to paint (the page's "paint-dir" field), and the `filmcolor
reprocess --exemplars` command that brings the painted frames back.

The keyframes are not embedded (they are full resolution): `write_report` makes them in
RUN_DIR/keyframes/FILM/ (only what is missing or stale; `.filmcolor-report.json` there
records each scene's frame and the master's sha256 the coloured pictures came from) and
the page links them by paths relative to its own folder, so the links work when the run
directory is opened from disk and when it is served from a bucket.

Thumbnails are written by the colorize actors while they colour, at `thumb_uri(...)` for
the frames `thumb_frames(start, end)`; keep this module's top-level imports light (the
actors import those two helpers).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import posixpath
import shlex
import urllib.parse

import cv2
import numpy as np

from pipeline import log, storage
from pipeline.record import read_table

THUMB_WIDTH = 192
JPEG_QUALITY = 82

SOURCES = {  # exemplar_source -> (label, colour)
    "own": ("own exemplar", "#4f86c6"),
    "hints": ("colour hints", "#3fa796"),
    "matched": ("matched", "#c9a23f"),
    "nearest": ("nearest (older runs)", "#b07a3a"),
    "auto": ("automatic", "#9170c2"),
    "none": ("none", "#5c5c5c"),
}
UNKNOWN_SOURCE = ("other", "#777777")


# --- helpers shared with the colorize actors ----------------------------------------

def thumb_frames(start: int, end: int) -> list[int]:
    """The frames of scene [start, end) that get thumbnails: first, middle, last."""
    if end <= start:
        return []
    return sorted({start, start + (end - start - 1) // 2, end - 1})


def thumb_uri(run_dir: str, film_id: str, frame: int, kind: str) -> str:
    """Where a thumbnail lives: kind "in" (the grey input frame) or "out" (coloured)."""
    return storage.join(run_dir, "thumbs", film_id, f"{frame:07d}-{kind}.jpg")


def encode_thumb(image: np.ndarray, width: int = THUMB_WIDTH) -> bytes:
    """A JPEG thumbnail `width` pixels wide of an 8-bit gray, BGR or BGRA image."""
    img = _to_bgr8(image)
    h, w = img.shape[:2]
    if w != width:
        height = max(1, round(h * width / w))
        interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
        img = cv2.resize(img, (width, height), interpolation=interp)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img.astype(np.float64) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        # drop alpha; hint images are transparent except where colour is given, so show
        # them over neutral grey rather than over whatever RGB hides under alpha 0
        a = img[:, :, 3:4].astype(np.float32) / 255.0
        rgb = img[:, :, :3].astype(np.float32)
        return np.clip(rgb * a + 96.0 * (1.0 - a), 0, 255).astype(np.uint8)
    if img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img[:, :, :3]


# --- reading the run ----------------------------------------------------------------

def _read(uri: str) -> bytes | None:
    try:
        return storage.read_bytes(uri)
    except (OSError, storage.StorageError):
        return None


def _jpeg_data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


class _Images:
    """Thumbnails as data: URIs, or None where missing/unreadable. Exemplars cached per URI."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self._listing: dict[str, set[str]] = {}
        self._exemplars: dict[str, str | None] = {}

    def frame(self, film_id: str, frame: int, kind: str) -> str | None:
        from pipeline.names import check_id

        if check_id(film_id):  # a hand-edited record: no thumbnails rather than a path outside
            return None
        if film_id not in self._listing:
            try:
                self._listing[film_id] = set(storage.listdir(storage.join(self.run_dir, "thumbs", film_id)))
            except (OSError, storage.StorageError):
                self._listing[film_id] = set()
        name = f"{frame:07d}-{kind}.jpg"
        if name not in self._listing[film_id]:
            return None
        data = _read(thumb_uri(self.run_dir, film_id, frame, kind))
        if not data:
            return None
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            return None  # truncated or not a JPEG: a placeholder, never a broken <img>
        if img.shape[1] > 2 * THUMB_WIDTH:
            data = encode_thumb(img)
        return _jpeg_data_uri(data)

    def exemplar(self, uri: str) -> str | None:
        if not uri:
            return None
        if uri not in self._exemplars:
            self._exemplars[uri] = self._make_exemplar(uri)
        return self._exemplars[uri]

    @staticmethod
    def _make_exemplar(uri: str) -> str | None:
        data = _read(uri)
        if not data:
            return None
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None or img.size == 0:
            return None
        try:
            return _jpeg_data_uri(encode_thumb(img))
        except (ValueError, cv2.error):
            return None


def _scene_status(shards: list[dict]) -> tuple[str, str]:
    if not shards:
        return "unknown", ""
    failed = [s for s in shards if s.get("status") == "failed"]
    if failed:
        errors = []
        for s in failed:
            e = (s.get("error") or "").strip()
            if e and e not in errors:
                errors.append(e)
        return "failed", "\n".join(errors)
    if all(s.get("status") == "done" for s in shards):
        return "done", ""
    return "pending", ""


def _parse_tc(tc: str) -> tuple[int, int, int, int] | None:
    parts = (tc or "").replace(";", ":").split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _add_frames_tc(tc: str, frames: int, base: int) -> str | None:
    """Non-drop-frame timecode `frames` after `tc` at `base` frames per second."""
    if ";" in (tc or "") or base <= 0:
        return None  # drop-frame: not computed
    p = _parse_tc(tc)
    if p is None:
        return None
    h, m, s, f = p
    total = ((h * 60 + m) * 60 + s) * base + f + frames
    f = total % base
    total //= base
    return f"{total // 3600 % 24:02d}:{total // 60 % 60:02d}:{total % 60:02d}:{f:02d}"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.2f} s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 600 else _fmt_duration(seconds)


def _model_html(model: dict | None) -> str:
    if not model or not model.get("name"):
        return '<span class="dim">—</span>'
    sha = model.get("weights_sha256") or ""
    out = f'{html.escape(str(model["name"]))} <span class="dim">v{html.escape(str(model.get("version") or "?"))}</span>'
    if sha:
        out += f' <code class="sha" title="weights sha256 {html.escape(sha)}">{html.escape(sha[:12])}</code>'
    return out


# --- keyframes to paint, and links to files -------------------------------------------

# Beside the pictures in RUN_DIR/keyframes/FILM/: per scene what its keyframe was chosen
# from, its frame and timecode, and the sha256 of the master its coloured picture came from.
KEYFRAME_MARKER = ".filmcolor-report.json"
# A scene's download links, in page order: kind -> (label, title)
LINKS = {
    "keyframe": ("keyframe", "the grey keyframe to paint (full resolution)"),
    "hints": ("hints template", "a transparent template of the keyframe to paint colour hints on"),
    "colours": ("colours", "the scene's current colours at the keyframe (from the master)"),
    "exemplar": ("exemplar", "the exemplar image the scene is coloured from"),
}


def ensure_keyframes(run_dir: str, films: list[dict], scenes: list[dict]) -> dict[str, dict[int, dict[str, str]]]:
    """Make sure each recorded film's keyframes are in RUN_DIR/keyframes/FILM/: per scene the
    grey keyframe and its hints template (`pipeline.keyframes.export`), and for a film whose
    master was published (done/skipped) its current colours at that frame. Only what is
    missing or stale is made: a scene whose frames or exemplar frame changed gets new
    pictures (the old ones are removed), coloured pictures are redone when the master's
    sha256 changes, and removed when the film has no master now. Returns
    {film id: {scene: {kind: URI}}} of the pictures that are there and current. Pictures
    that cannot be made (the input or master unreadable, storage errors) are a warning:
    the page is written with the links it has."""
    out: dict[str, dict[int, dict[str, str]]] = {}
    for row in films:
        fid = row.get("film_id")
        try:
            out[str(fid)] = _film_keyframes(run_dir, row, [s for s in scenes if s.get("film_id") == fid])
        except Exception as exc:  # noqa: BLE001 - the page is written without these links
            log.warning("%s: keyframes for the review page not made: %s", fid, exc)
    return out


def _film_keyframes(run_dir: str, row: dict, scene_rows: list[dict]) -> dict[int, dict[str, str]]:
    from pipeline import keyframes as kf
    from pipeline.errors import InputError
    from pipeline.names import check_id, join_inside

    fid = row["film_id"]
    problem = check_id(fid)
    if problem:
        raise InputError(f"film {problem}")
    folder = join_inside(run_dir, "keyframes", fid)
    marker_uri = join_inside(folder, KEYFRAME_MARKER)
    marker = _read_marker(marker_uri)
    master = (row.get("outputs") or [row.get("output")])[0]
    sha = row.get("output_sha256") or ""
    colour_sha = sha if (row.get("status") in ("done", "skipped") and master and sha
                         and _master_exists(master)) else ""
    listing = set(storage.listdir(folder))
    entries: dict[str, dict] = {}
    grey: list[int] = []  # scenes whose keyframe and hints template are made
    colours: list[int] = []  # scenes whose coloured picture is made (missing, or of another master)
    keys_of = {int(s["scene"]): _scene_key(s) for s in scene_rows if not s.get("low_variability")}
    for n, key in sorted(keys_of.items()):  # flat spans are not coloured: nothing to paint
        e = marker.get(str(n))
        if not (e and e.get("key") == key):
            grey.append(n)
            if colour_sha:
                colours.append(n)
            continue
        names = _keyframe_names(fid, n, e)
        entries[str(n)] = {**e, "coloured": e.get("coloured") if colour_sha else ""}
        if names["keyframe"] not in listing or names["hints"] not in listing:
            grey.append(n)
        if colour_sha and (names["colours"] not in listing or e.get("coloured") != colour_sha):
            colours.append(n)
    made = True
    if grey or colours:
        try:
            ((_, info, keys),) = kf.keyframes_of_run(run_dir, sorted(set(grey + colours)), fid)
            m = master if colour_sha else None
            for k in keys:
                entry = {"key": keys_of[k.scene], "frame": k.frame, "timecode": k.timecode,
                         "coloured": (entries.get(str(k.scene)) or {}).get("coloured", "")}
                if k.scene in grey:
                    kf.export([k], info, folder)  # grey keyframe and hints template
                if m and k.scene in colours:
                    try:  # the coloured picture alone: a keyframe painted in place here is kept
                        _write_coloured(folder, _keyframe_names(fid, k.scene, entry)["colours"],
                                        kf.coloured_frame(m, k.frame, info))
                        entry["coloured"] = colour_sha
                    except Exception as exc:  # noqa: BLE001 - the grey keyframes are still linked
                        log.warning("%s: coloured keyframes from %s not made: %s", fid, master, exc)
                        m = None
                if entry["coloured"] != colour_sha:
                    entry["coloured"] = ""
                entries[str(k.scene)] = entry
            listing = set(storage.listdir(folder))
        except Exception as exc:  # noqa: BLE001 - what is there already is still linked
            log.warning("%s: keyframes for the review page not made: %s", fid, exc)
            made = False
            listing = set(storage.listdir(folder))
    # what the folder holds now for the page; this film's older pictures (a scene that got
    # another keyframe, colours of a master that is gone) are removed
    wanted = {}
    for n, e in entries.items():
        names = _keyframe_names(fid, int(n), e)
        wanted[int(n)] = {kind: name for kind, name in names.items()
                          if name in listing and (kind != "colours" or e.get("coloured") == colour_sha != "")}
    keep = {name for names in wanted.values() for name in names.values()} | {KEYFRAME_MARKER}
    for name in sorted(listing - keep) if made else []:
        parsed = kf.parse_name(name)
        if parsed and parsed[0] == fid and parsed[3] in ("", "_hints", "_coloured"):
            storage.remove(join_inside(folder, name))
    if made and entries != marker:  # (a read-only run directory: what is there is linked)
        storage.write_bytes(marker_uri, json.dumps(entries, indent=1, sort_keys=True).encode("utf-8"))
    return {n: {kind: join_inside(folder, name) for kind, name in names.items()} for n, names in wanted.items()}


def _write_coloured(folder: str, name: str, bgr: np.ndarray) -> None:
    """Write a coloured keyframe and list it, as `keyframes.export` does, among the pictures
    exported as they are (`keyframes.EXPORTED`): brought back unchanged it is not taken
    for a painting."""
    import hashlib

    from pipeline import keyframes as kf
    from pipeline.names import join_inside

    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError("PNG encoding failed")
    data = buf.tobytes()
    storage.write_bytes(join_inside(folder, name), data)
    uri = join_inside(folder, kf.EXPORTED)
    try:
        listed = json.loads(_read(uri) or b"{}")
    except ValueError:
        listed = {}
    listed = {**(listed if isinstance(listed, dict) else {}), name: hashlib.sha256(data).hexdigest()}
    storage.write_bytes(uri, json.dumps(listed, indent=1, sort_keys=True).encode("utf-8"))


def _scene_key(s: dict) -> list[int]:
    """What a scene's keyframe choice depends on: its frames and its exemplar's frame."""
    ex = s.get("exemplar_frame")
    return [int(s["start_frame"]), int(s["end_frame"]), -1 if ex is None else int(ex)]


def _keyframe_names(fid: str, scene: int, entry: dict) -> dict[str, str]:
    from pipeline.keyframes import name_of

    frame, tc = int(entry["frame"]), str(entry["timecode"])
    return {"keyframe": name_of(fid, scene, frame, tc), "hints": name_of(fid, scene, frame, tc, "hints"),
            "colours": name_of(fid, scene, frame, tc, "coloured")}


def _read_marker(uri: str) -> dict:
    data = _read(uri)
    try:
        marker = json.loads(data) if data else {}
    except ValueError:
        return {}
    if not isinstance(marker, dict):
        return {}
    return {k: v for k, v in marker.items() if isinstance(v, dict) and "frame" in v and "timecode" in v}


def _master_exists(master: str) -> bool:
    from pipeline.io.sequence import is_sequence

    try:
        return is_sequence(master) or storage.exists(master)
    except (OSError, storage.StorageError):
        return False


def relative_href(page_dir: str, target: str) -> str | None:
    """A URL relative to the page's folder that reaches `target` (both local, or both in one
    bucket: a relative key path), percent-encoded; None where there is none."""
    if not target or storage.is_s3(page_dir) != storage.is_s3(target):
        return None
    if storage.is_s3(target):
        p_bucket, _, p_key = page_dir[len("s3://"):].partition("/")
        t_bucket, _, t_key = target[len("s3://"):].partition("/")
        if not p_bucket or p_bucket != t_bucket or not t_key:
            return None
        rel = posixpath.relpath(posixpath.normpath("/" + t_key), posixpath.normpath("/" + p_key))
    else:
        try:
            rel = os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))
        except ValueError:  # another drive
            return None
        rel = rel.replace(os.sep, "/")
    return urllib.parse.quote(rel, safe="/")


def _download(kind: str, uri: str, page_dir: str) -> str:
    label, title = LINKS[kind]
    href = relative_href(page_dir, uri)
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if href is None:  # not reachable from where the page is: its place, as text
        return (f'<div class="dl abs" data-kind="{_e(kind)}" title="{_e(title)}: {_e(uri)}">{_e(label)} '
                f'<code>{_e(uri)}</code></div>')
    return (f'<div><a class="dl" data-kind="{_e(kind)}" href="{_e(href)}" download="{_e(name)}" '
            f'title="{_e(title)}: {_e(name)}">{_e(label)}</a></div>')


# --- the page -----------------------------------------------------------------------

def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _placeholder(label: str, cls: str = "", height: int | None = None) -> str:
    style = f' style="height:{height}px"' if height else ""
    return (f'<div class="ph {cls}"{style} role="img" aria-label="{_e(label)}">'
            f'<span>{_e(label)}</span></div>')


def _img(src: str | None, alt: str, missing: str, cls: str = "", height: int | None = None) -> str:
    if not src:
        return _placeholder(missing, cls, height)
    return f'<img class="{cls}" src="{src}" alt="{_e(alt)}" title="{_e(alt)}">'


class _Film:
    def __init__(self, film_id: str, row: dict, scenes: list[dict], shards: list[dict],
                 files: dict[int, dict[str, str]] | None = None, recorded: bool = True):
        self.id = film_id
        self.row = row
        self.files = files or {}
        self.recorded = recorded  # a films row: `filmcolor keyframes` can export its scenes
        self.scenes = sorted(scenes, key=lambda s: (s.get("start_frame") or 0, s.get("scene") or 0))
        self.shards = shards
        fps = row.get("fps")
        self.fps = float(fps) if fps and fps > 0 else None
        frames = row.get("frames")
        self.frames = int(frames) if frames else (max((s["end_frame"] for s in self.scenes), default=0) or None)
        if self.fps and self.frames:
            self.duration = self.frames / self.fps
        else:
            ends = [s.get("end_time") for s in self.scenes if s.get("end_time") is not None]
            self.duration = max(ends) if ends else None
        rate = self.fps or (self.frames / self.duration if self.frames and self.duration else None)
        self.tc_base = int(round(rate)) if rate else 0
        w, h = row.get("width"), row.get("height")
        self.thumb_h = min(400, max(24, round(THUMB_WIDTH * h / w))) if w and h else None
        self.by_scene: dict[int, list[dict]] = {}
        for s in shards:
            self.by_scene.setdefault(s.get("scene"), []).append(s)


def build_html(run_dir: str, films: list[dict], scenes: list[dict], shards: list[dict],
               images: _Images | None = None, generated: str | None = None,
               files: dict[str, dict[int, dict[str, str]]] | None = None, page_dir: str | None = None) -> str:
    """The page as a string (the tables as read from the run record). `files`: each scene's
    keyframe pictures ({film id: {scene: {kind: URI}}}, `ensure_keyframes`), linked
    relative to `page_dir`, the folder the page is written to (default RUN_DIR/report)."""
    images = images or _Images(run_dir)
    files = files or {}
    page_dir = page_dir or storage.join(run_dir, "report")
    generated = generated or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    order: list[str] = []
    rows: dict[str, dict] = {}
    for r in films:
        fid = str(r.get("film_id"))
        if fid not in rows:
            order.append(fid)
        rows[fid] = r
    for r in scenes + shards:
        fid = str(r.get("film_id"))
        if fid not in rows:
            order.append(fid)
            rows[fid] = {"film_id": fid, "status": "pending"}
    recorded = {str(r.get("film_id")) for r in films}
    film_objs = [_Film(fid, rows[fid], [s for s in scenes if str(s.get("film_id")) == fid],
                       [s for s in shards if str(s.get("film_id")) == fid], files.get(fid) or {},
                       fid in recorded) for fid in order]

    body = [_header(run_dir, generated, film_objs)]
    for i, f in enumerate(film_objs):
        body.append(_film_section(i, f, images, page_dir))
    if not film_objs:
        body.append('<p class="dim">This run directory has no films recorded yet.</p>')
    config = json.dumps({"runDir": shlex.quote(run_dir)})
    config = config.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (_PAGE.replace("{{TITLE}}", _e(f"filmcolor review — {_basename(run_dir)}"))
            .replace("{{CSS}}", _CSS).replace("{{BODY}}", "\n".join(body))
            .replace("{{CONFIG}}", config).replace("{{JS}}", _JS))


def _basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1] or uri


def _header(run_dir: str, generated: str, films: list[_Film]) -> str:
    counts: dict[str, int] = {}
    for f in films:
        counts[str(f.row.get("status") or "pending")] = counts.get(str(f.row.get("status") or "pending"), 0) + 1
    summary = ", ".join(f'<span class="st st-{_e(k)}">{v} {_e(k)}</span>' for k, v in sorted(counts.items()))
    trs = []
    tot_frames = tot_dur = tot_wall = 0.0
    for i, f in enumerate(films):
        r = f.row
        wall = r.get("seconds")
        tot_frames += f.frames or 0
        tot_dur += f.duration or 0
        tot_wall += wall or 0
        fps = f"{f.frames / wall:.1f}" if wall and f.frames else "—"
        fh = f"{f.duration / wall:.3f}" if wall and f.duration else "—"
        stages = " · ".join(f"{n} {_fmt_seconds(r.get(k))}" for n, k in
                            (("scan", "scan_seconds"), ("colour", "colorize_seconds"),
                             ("assemble", "assemble_seconds")) if r.get(k) is not None)
        notes = []
        for w in r.get("warnings") or []:
            notes.append(f'<div class="warn">⚠ {_e(w)}</div>')
        if r.get("error"):
            notes.append(f'<div class="err">{_e(r.get("error"))}</div>')
        n_failed = sum(1 for s in f.scenes if _scene_status(f.by_scene.get(s.get("scene"), []))[0] == "failed")
        if n_failed:
            notes.append(f'<div class="err">{n_failed} scene{"s" if n_failed != 1 else ""} failed</div>')
        size = f'{_e(r.get("width"))}×{_e(r.get("height"))}' if r.get("width") else ""
        fmt = " ".join(x for x in (size, _e(r.get("codec") or "")) if x)
        trs.append(
            f'<tr><td><a href="#film-{i}">{_e(f.id)}</a><div class="dim small">{fmt}</div></td>'
            f'<td><span class="st st-{_e(r.get("status") or "pending")}">{_e(r.get("status") or "pending")}</span></td>'
            f'<td class="num">{_e(f.frames if f.frames is not None else "—")}</td>'
            f'<td class="num">{_fmt_duration(f.duration)}</td>'
            f'<td class="num" title="{_e(stages)}">{_fmt_seconds(wall)}</td>'
            f'<td class="num">{fps}</td><td class="num">{fh}</td>'
            f'<td>{_model_html(r.get("model"))}</td><td>{_model_html(r.get("auto_model"))}</td>'
            f'<td class="notes">{"".join(notes) or "<span class=dim>—</span>"}</td></tr>')
    if len(films) > 1:
        fps = f"{tot_frames / tot_wall:.1f}" if tot_wall else "—"
        fh = f"{tot_dur / tot_wall:.3f}" if tot_wall else "—"
        trs.append(f'<tr class="total"><td>all films</td><td></td><td class="num">{int(tot_frames)}</td>'
                   f'<td class="num">{_fmt_duration(tot_dur)}</td>'
                   f'<td class="num" title="sum of the films\' wall times (films overlap in a run)">'
                   f'Σ {_fmt_seconds(tot_wall)}</td><td class="num">{fps}</td><td class="num">{fh}</td>'
                   f'<td colspan="3"></td></tr>')
    return f"""
<header>
  <h1>filmcolor review</h1>
  <div class="meta"><span class="k">run</span> <code id="run-dir">{_e(run_dir)}</code>
    <span class="k">generated</span> {_e(generated)} <span class="k">films</span> {summary or '0'}</div>
</header>
<section class="cmd">
  <div class="cmd-head"><span class="k">send back</span>
    <button type="button" id="tick-failed">Tick failed scenes</button>
    <button type="button" id="clear">Clear</button>
    <button type="button" id="copy" disabled>Copy</button> <span id="copied" class="dim"></span></div>
  <p class="how"><b>Redo as is</b> — recolour the ticked scenes with the exemplars they have:</p>
  <pre><code id="command" class="empty">Tick “redo” on the scenes to send back; the reprocess command appears here.</code></pre>
  <p class="how"><b>Export to paint</b> — write the ticked scenes' keyframes (grey, full resolution) and hint
    templates into the folder <input type="text" id="paint-dir" value="to-paint" size="24" spellcheck="false"
    aria-label="folder to paint in">, then paint them there:
    <button type="button" id="copy-keyframes" class="copy-more" data-for="command-keyframes" disabled>Copy</button></p>
  <pre><code id="command-keyframes" class="empty">Tick “redo” on the scenes to paint; the keyframes command appears here.</code></pre>
  <p class="how"><b>Bring painted frames back</b> — only the scenes whose keyframes were painted are redone:
    <button type="button" id="copy-exemplars" class="copy-more" data-for="command-exemplars" disabled>Copy</button></p>
  <pre><code id="command-exemplars" class="empty">Then this command brings the painted keyframes back.</code></pre>
</section>
<section>
<table class="films">
  <thead><tr><th>film</th><th>status</th><th class="num">frames</th><th class="num">duration</th>
    <th class="num">wall time</th><th class="num">frames/s</th><th class="num" title="film-hours per wall-hour">film h / h</th>
    <th>model</th><th>auto model</th><th>warnings · errors</th></tr></thead>
  <tbody>{"".join(trs)}</tbody>
</table>
</section>"""


def _timeline(i: int, f: _Film) -> str:
    blocks = []
    used = []
    for s in f.scenes:
        n = s.get("scene")
        dur = None
        if s.get("end_time") is not None and s.get("start_time") is not None:
            dur = max(0.0, s["end_time"] - s["start_time"])
        if not dur:
            dur = max(1, (s.get("end_frame") or 0) - (s.get("start_frame") or 0)) / (f.fps or 24.0)
        src = str(s.get("exemplar_source") or "none")
        label, colour = SOURCES.get(src, UNKNOWN_SOURCE)
        if src not in used:
            used.append(src)
        status, error = _scene_status(f.by_scene.get(n, []))
        cls = "blk failed" if status == "failed" else "blk"
        tip = f"scene {n} · {s.get('start_timecode') or ''} · {label}"
        if s.get("low_variability"):
            tip += " · flat"
        if status == "failed":
            tip += f" · FAILED: {error}"
        blocks.append(f'<a class="{cls}" href="#film-{i}-scene-{_e(n)}" style="flex-grow:{dur:.6f};'
                      f'background-color:{colour}" title="{_e(tip)}" data-scene="{_e(n)}"></a>')
    legend = "".join(f'<span class="lg"><i style="background:{SOURCES.get(k, UNKNOWN_SOURCE)[1]}"></i>'
                     f'{_e(SOURCES.get(k, UNKNOWN_SOURCE)[0] if k in SOURCES else k)}</span>' for k in used)
    if any(_scene_status(f.by_scene.get(s.get("scene"), []))[0] == "failed" for s in f.scenes):
        legend += '<span class="lg"><i class="failed-key"></i>failed</span>'
    return (f'<div class="timeline" aria-label="scene timeline">{"".join(blocks)}</div>'
            f'<div class="legend">{legend}</div>')


def _exemplar_uri(film: _Film, s: dict) -> str:
    if "exemplar_image" in s and s.get("exemplar_image") is not None:
        return s.get("exemplar_image") or ""
    # older records: the scene's exemplar indices point into the film's exemplar list
    idx = s.get("exemplars") or []
    imgs = film.row.get("exemplars") or []
    if idx and 0 <= idx[0] < len(imgs):
        return imgs[idx[0]]
    return ""


def _scene_row(i: int, f: _Film, s: dict, images: _Images, page_dir: str) -> str:
    n = s.get("scene")
    start, end = int(s.get("start_frame") or 0), int(s.get("end_frame") or 0)
    tc0 = s.get("start_timecode") or ""
    # end_timecode is the scene's last frame (end_frame - 1), as pipeline.plan records it
    tc1 = s.get("end_timecode") or (_add_frames_tc(tc0, end - start - 1, f.tc_base) if tc0 else None) or ""
    tc = f'{_e(tc0)}<span class="dim"> – </span>{_e(tc1)}' if tc1 else _e(tc0)
    src = str(s.get("exemplar_source") or "none")
    label, colour = SOURCES.get(src, UNKNOWN_SOURCE)
    sim = s.get("exemplar_similarity")
    sim_html = f'<div class="dim small">similarity {sim:.2f}</div>' if isinstance(sim, (int, float)) else ""
    exf = s.get("exemplar_frame")
    exf_html = f'<div class="dim small">frame {int(exf)}</div>' if isinstance(exf, int) and exf >= 0 else ""
    flat = '<div class="tag">flat</div>' if s.get("low_variability") else ""
    status, error = _scene_status(f.by_scene.get(n, []))

    ex_uri = _exemplar_uri(f, s)
    ex_thumb = images.exemplar(ex_uri) if ex_uri else None
    if ex_uri:
        ex = _img(ex_thumb, f"exemplar {ex_uri}", "exemplar unreadable", "ex", f.thumb_h)
    else:
        ex = _placeholder("no exemplar", "ex", f.thumb_h)
    links = dict(f.files.get(n) or {})
    if ex_thumb:  # linked where it is readable
        links["exemplar"] = ex_uri
    dl = "".join(_download(kind, links[kind], page_dir) for kind in LINKS if links.get(kind))
    paint = ' data-paint="1"' if f.recorded and not s.get("low_variability") else ""
    cells = []
    frames = thumb_frames(start, end)
    names = ["first", "middle", "last"] if len(frames) == 3 else (["first", "last"] if len(frames) == 2 else ["only"])
    for k, (fr, name) in enumerate(zip(frames, names)):
        cells.append(f'<div class="fl">{name}<br><span class="dim">{fr}</span></div>')
        cells.append(_img(images.frame(f.id, fr, "in"), f"input frame {fr}", "no thumbnail", "th c-in", f.thumb_h))
        if k == 0:
            cells.append(f'<div class="exc" style="grid-row: 2 / span {len(frames)}">{ex}</div>')
        cells.append(_img(images.frame(f.id, fr, "out"), f"output frame {fr}", "no thumbnail", "th c-out", f.thumb_h))
    grid = (f'<div class="thumbs"><div class="fl"></div><div class="ch c-in">input</div>'
            f'<div class="ch exc">exemplar</div><div class="ch c-out">output</div>{"".join(cells)}</div>')
    err = f'<div class="err">{_e(error)}</div>' if error else ""
    return (f'<tr class="scene st-row-{_e(status)}" id="film-{i}-scene-{_e(n)}" data-film="{_e(f.id)}" '
            f'data-scene="{_e(n)}" data-status="{_e(status)}">'
            f'<td class="redo-cell"><label><input type="checkbox" class="redo" data-film="{_e(f.id)}" '
            f'data-scene="{_e(n)}"{paint}><span>redo</span></label></td>'
            f'<td class="num big">{_e(n)}</td>'
            f'<td><div class="tc">{tc}</div><div class="dim small">frames {start}–{end - 1} '
            f'({end - start})</div></td>'
            f'<td>{_e(s.get("transition") or "")}</td>'
            f'<td><span class="src" style="border-color:{colour}">{_e(label)}</span>{sim_html}{exf_html}{flat}</td>'
            f'<td>{grid}</td>'
            f'<td><span class="st st-{_e(status)}">{_e(status)}</span>{err}</td>'
            f'<td class="files">{dl or "<span class=dim>—</span>"}</td></tr>')


def _film_section(i: int, f: _Film, images: _Images, page_dir: str) -> str:
    r = f.row
    io_html = ""
    if r.get("input") or r.get("output"):
        io_html = (f'<div class="meta small"><span class="k">input</span> <code>{_e(r.get("input"))}</code> '
                   f'<span class="k">output</span> <code>{_e(r.get("output"))}</code>'
                   f'<span class="k">exemplars</span> {len(r.get("exemplars") or [])}'
                   f'<span class="k">hints</span> {len(r.get("hints") or [])}</div>')
    rows = "".join(_scene_row(i, f, s, images, page_dir) for s in f.scenes)
    if not rows:
        rows = '<tr><td colspan="8" class="dim">no scenes recorded</td></tr>'
    return f"""
<section class="film" id="film-{i}" data-film="{_e(f.id)}">
  <h2>{_e(f.id)} <span class="st st-{_e(r.get("status") or "pending")}">{_e(r.get("status") or "pending")}</span>
    <span class="dim small">{len(f.scenes)} scenes · {_fmt_duration(f.duration)}</span></h2>
  {io_html}
  {_timeline(i, f)}
  <table class="scenes">
    <thead><tr><th>redo</th><th class="num">#</th><th>timecode</th><th>transition</th><th>exemplar</th>
      <th>first · middle · last frame</th><th>status</th><th>download</th></tr></thead>
    <tbody>{rows}</tbody>
  </table>
</section>"""


def write_report(run_dir: str, out_dir: str | None = None) -> str:
    """Write the review page for the run in run_dir (local path or s3:// URI) to
    out_dir/index.html (default: RUN_DIR/report/index.html) and return its path/URI. The
    scenes' keyframes are made first where missing or stale (`ensure_keyframes`) and linked
    relative to out_dir."""
    films = read_table(run_dir, "films")
    scenes = read_table(run_dir, "scenes")
    shards = read_table(run_dir, "shards")
    out_dir = out_dir or storage.join(run_dir, "report")
    files = ensure_keyframes(run_dir, films, scenes)
    page = build_html(run_dir, films, scenes, shards, files=files, page_dir=out_dir)
    storage.makedirs(out_dir)
    uri = storage.join(out_dir, "index.html")
    storage.write_bytes(uri, page.encode("utf-8"))
    return uri


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>{{CSS}}</style>
</head>
<body>
{{BODY}}
<script id="report-config" type="application/json">{{CONFIG}}</script>
<script>{{JS}}</script>
</body>
</html>
"""

_CSS = """
:root { --bg:#1e1f21; --panel:#26282b; --line:#3a3d41; --fg:#d8d8d6; --dim:#8b8e92; --accent:#6fa3d8;
  --ok:#6fae6f; --bad:#d9574a; --warn:#d7a54a; }
* { box-sizing: border-box; }
body { margin:0; padding:18px 26px 60px; background:var(--bg); color:var(--fg);
  font:13px/1.45 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
h1 { font-size:18px; font-weight:600; margin:0 0 4px; letter-spacing:.02em; }
h2 { font-size:15px; font-weight:600; margin:26px 0 6px; }
code, pre { font-family: "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size:12px; }
a { color:var(--accent); text-decoration:none; }
.dim { color:var(--dim); } .small { font-size:11px; } .k { color:var(--dim); margin-left:12px; }
.meta .k:first-child { margin-left:0; }
.meta code { color:var(--fg); }
header { border-bottom:1px solid var(--line); padding-bottom:10px; margin-bottom:12px; }
table { border-collapse:collapse; width:100%; }
th { text-align:left; font-weight:500; color:var(--dim); border-bottom:1px solid var(--line); padding:5px 8px;
  font-size:11px; text-transform:uppercase; letter-spacing:.04em; }
td { padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
.num { text-align:right; font-variant-numeric: tabular-nums; }
table.films { background:var(--panel); }
table.films tr.total td { color:var(--dim); border-top:1px solid var(--line); }
.sha { color:var(--dim); cursor:help; }
.st { display:inline-block; padding:0 6px; border-radius:3px; font-size:11px; background:#3a3d41; }
.st-done { background:#2f4a30; color:#bfe0bf; } .st-failed { background:#5a2621; color:#ffd2cc; }
.st-skipped { background:#444; color:#ccc; } .st-pending, .st-unknown { background:#3d3a2c; color:#e6dcb0; }
.warn { color:var(--warn); } .err { color:#ff9c90; white-space:pre-wrap; word-break:break-word; max-width:44em; }
.notes { max-width:36em; }
.cmd { background:var(--panel); border:1px solid var(--line); padding:8px 10px; margin:0 0 14px; }
.cmd-head { display:flex; gap:8px; align-items:center; }
.cmd-head .k { margin:0 6px 0 0; }
.cmd pre { margin:6px 0 0; padding:8px; background:#151617; border:1px solid var(--line); white-space:pre-wrap;
  word-break:break-all; min-height:2.4em; }
.cmd pre code.empty { color:var(--dim); font-style:italic; }
.cmd .how { margin:8px 0 0; color:var(--dim); }
.cmd .how b { color:var(--fg); font-weight:600; }
.cmd .how button { margin-left:6px; padding:0 8px; }
#paint-dir { background:#151617; color:var(--fg); border:1px solid #4a4d52; border-radius:3px; padding:1px 5px;
  font:12px Menlo, Consolas, "DejaVu Sans Mono", monospace; }
td.files { white-space:nowrap; font-size:12px; }
td.files .abs { white-space:normal; color:var(--dim); max-width:18em; word-break:break-all; }
td.files .abs code { font-size:10px; }
button { background:#34373b; color:var(--fg); border:1px solid #4a4d52; border-radius:3px; padding:3px 10px;
  font:inherit; cursor:pointer; }
button:hover:not(:disabled) { background:#3f4347; } button:disabled { opacity:.45; cursor:default; }
.timeline { display:flex; height:22px; background:#151617; border:1px solid var(--line); margin:8px 0 4px; }
.blk { display:block; min-width:3px; height:100%; border-right:1px solid #151617; opacity:.9; }
.blk:hover { opacity:1; outline:1px solid #fff; outline-offset:-1px; }
.blk.failed, .failed-key { background-image: repeating-linear-gradient(45deg, rgba(0,0,0,.55) 0 3px, transparent 3px 7px);
  box-shadow: inset 0 0 0 2px var(--bad); }
.legend { display:flex; flex-wrap:wrap; gap:14px; font-size:11px; color:var(--dim); margin-bottom:8px; }
.lg i { display:inline-block; width:12px; height:10px; margin-right:5px; vertical-align:-1px; }
.failed-key { background-color:#777; }
table.scenes td { border-bottom:1px solid var(--line); }
tr.scene:target { background:#2c3036; }
tr.scene.ticked { background:#262c33; }
tr.st-row-failed td:first-child { box-shadow: inset 3px 0 0 var(--bad); }
.big { font-size:15px; font-weight:600; }
.tc { font-family: Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size:12px; white-space:nowrap; }
.src { display:inline-block; border-left:4px solid; padding-left:6px; white-space:nowrap; }
.tag { display:inline-block; margin-top:3px; font-size:10px; padding:0 5px; border:1px solid var(--dim);
  border-radius:3px; color:var(--dim); }
.redo-cell label { display:flex; flex-direction:column; align-items:center; gap:2px; cursor:pointer;
  color:var(--dim); font-size:10px; }
.redo-cell input { width:16px; height:16px; margin:0; accent-color: var(--accent); cursor:pointer; }
.thumbs { display:grid; grid-template-columns:auto auto auto auto; justify-content:start; gap:3px 6px; align-items:center; }
.thumbs .ch { font-size:10px; color:var(--dim); text-transform:uppercase; letter-spacing:.05em; }
.thumbs .fl { grid-column:1; font-size:10px; color:var(--dim); text-align:right; line-height:1.25; }
.thumbs img { display:block; width:192px; max-width:192px; height:auto; background:#000; }
.thumbs .c-in { grid-column:2; } .thumbs .exc { grid-column:3; align-self:center; }
.thumbs .c-out { grid-column:4; }
.ph { width:192px; height:108px; display:flex; align-items:center; justify-content:center; text-align:center;
  border:1px dashed #54575c; color:var(--dim); font-size:11px; background:#1a1b1d; }
"""

_JS = r"""
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("report-config").textContent);
  var box = document.getElementById("command");
  var copyBtn = document.getElementById("copy");
  var copied = document.getElementById("copied");
  var hint = box.textContent;
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.redo"));

  function shq(s) {
    s = String(s);
    if (s !== "" && /^[A-Za-z0-9@%+=:,.\/_-]+$/.test(s)) return s;
    return "'" + s.replace(/'/g, "'\"'\"'") + "'";
  }

  var paintDir = document.getElementById("paint-dir");
  var more = ["command-keyframes", "command-exemplars"].map(function (id) {
    var el = document.getElementById(id);
    return {box: el, hint: el.textContent, button: document.querySelector("button[data-for='" + id + "']")};
  });

  // The ticked scenes, per film in page order: {films: [...], scenes: {film: [n, ...]}};
  // paintable: only the scenes that have a keyframe (not black/flat spans).
  function ticked(paintable) {
    var films = [], scenes = {};
    boxes.forEach(function (b) {
      if (!b.checked || (paintable && b.getAttribute("data-paint") !== "1")) return;
      var f = b.getAttribute("data-film");
      if (!(f in scenes)) { scenes[f] = []; films.push(f); }
      scenes[f].push(b.getAttribute("data-scene"));
    });
    return {films: films, scenes: scenes};
  }

  function sceneArgs(list) {
    return list.map(function (n) { return " --scene " + n; }).join("");
  }

  function compose() {
    boxes.forEach(function (b) {
      var tr = b.closest("tr");
      if (tr) tr.classList.toggle("ticked", b.checked);
    });
    var t = ticked(false);
    return t.films.map(function (f) {
      return "filmcolor reprocess " + config.runDir + " --film " + shq(f) + sceneArgs(t.scenes[f]);
    }).join(" &&\n");
  }

  function folder() {
    return shq(paintDir.value.trim() || paintDir.defaultValue);
  }

  // [keyframes export command(s), the command that brings the painted keyframes back]
  function composePaint() {
    var t = ticked(true);
    if (!t.films.length) return ["", ""];
    return [t.films.map(function (f) {
      return "filmcolor keyframes " + config.runDir + " --film " + shq(f) + sceneArgs(t.scenes[f]) +
        " --out " + folder();
    }).join(" &&\n"), "filmcolor reprocess " + config.runDir + " --exemplars " + folder()];
  }

  function update() {
    var cmd = compose();
    box.textContent = cmd || hint;
    box.classList.toggle("empty", !cmd);
    copyBtn.disabled = !cmd;
    copied.textContent = "";
    composePaint().forEach(function (text, k) {
      var m = more[k];
      m.box.textContent = text || m.hint;
      m.box.classList.toggle("empty", !text);
      m.button.disabled = !text;
    });
  }

  function fallbackCopy(text, from) {
    var ta = document.createElement("textarea");
    ta.value = text; ta.setAttribute("readonly", "");
    ta.style.position = "fixed"; ta.style.left = "-9999px";
    document.body.appendChild(ta); ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    if (!ok) {  // leave the command selected so that Ctrl+C works
      var r = document.createRange(); r.selectNodeContents(from || box);
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
    }
    copied.textContent = ok ? "copied" : "selected: press Ctrl+C";
  }

  function copy(text, from) {
    if (!text) return;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { copied.textContent = "copied"; },
                                               function () { fallbackCopy(text, from); });
    } else {
      fallbackCopy(text, from);
    }
  }

  copyBtn.addEventListener("click", function () { copy(compose(), box); });
  more.forEach(function (m, k) {
    m.button.addEventListener("click", function () { copy(composePaint()[k], m.box); });
  });
  paintDir.addEventListener("input", update);
  document.getElementById("tick-failed").addEventListener("click", function () {
    boxes.forEach(function (b) {
      var tr = b.closest("tr");
      if (tr && tr.getAttribute("data-status") === "failed") b.checked = true;
    });
    update();
  });
  document.getElementById("clear").addEventListener("click", function () {
    boxes.forEach(function (b) { b.checked = false; });
    update();
  });
  boxes.forEach(function (b) { b.addEventListener("change", update); });
  update();
})();
"""
