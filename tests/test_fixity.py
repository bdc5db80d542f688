"""Fixity: framemd5 / sha256 sidecars and `verify`, on small real films and a DPX folder.

framemd5 is checked against two independent computations: numpy (each decoded plane's
bytes without line padding, hashed) always, and Debian's `ffmpeg -f framemd5` where
/usr/bin/ffmpeg exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline import fixity

W, H = 64, 48
FFMPEG = shutil.which("ffmpeg")
FFV1 = {"level": "3", "g": "1", "slices": "4", "slicecrc": "1", "coder": "1", "context": "1"}
VFR_PTS = [0, 40, 80, 125, 170, 250, 290, 333, 375, 500, 542, 583, 625, 700, 742, 800]  # ms
# What FFmpeg 5.1 (Debian 12) prints for VFR_PTS at its guessed 24 fps (checked by hand).
VFR_TICKS = [0, 1, 2, 3, 4, 6, 7, 8, 9, 12, 13, 14, 15, 17, 18, 19]


# --- test media -------------------------------------------------------------------------

def _depth(pix_fmt: str) -> int:
    m = re.search(r"p(\d+)(le|be)$", pix_fmt)
    return int(m.group(1)) if m else 8


def _fill(frame: av.VideoFrame, i: int) -> None:
    """Moving content: a diagonal gradient that drifts, and a bright square that moves."""
    depth = _depth(frame.format.name)
    top = (1 << depth) - 1
    dtype = np.uint16 if depth > 8 else np.uint8
    for p, plane in enumerate(frame.planes):
        a = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // np.dtype(dtype).itemsize)
        a = a[:, :plane.width]
        yy, xx = np.mgrid[0:plane.height, 0:plane.width]
        v = ((xx * 5 + yy * 3 + i * 7 + p * 40) % 256) * (top / 255.0)
        x0 = (i * 3) % max(plane.width - 8, 1)
        v[4:12, x0:x0 + 8] = top if p == 0 else top // 3
        a[:] = np.rint(v).astype(dtype)


def write_film(path: str, codec: str, pix_fmt: str, n: int = 24, rate=Fraction(24), pts_ms=None,
               options=None) -> str:
    with av.open(path, "w", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream(codec, rate=rate, options=dict(options or {}))
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(n if pts_ms is None else len(pts_ms)):
            f = av.VideoFrame(W, H, pix_fmt)
            _fill(f, i)
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            else:
                f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode(None):
            c.mux(pk)
    return path


def write_sequence(folder: str, codec: str, pix_fmt: str, ext: str, n: int = 12, first: int = 86400) -> str:
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        f = av.VideoFrame(W, H, pix_fmt)
        _fill(f, i)
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = W, H, pix_fmt
        ctx.time_base = Fraction(1, 24)
        data = b"".join(bytes(p) for p in ctx.encode(f) + ctx.encode(None))
        with open(os.path.join(folder, f"reel1_{first + i:08d}.{ext}"), "wb") as out:
            out.write(data)
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixity")
    return {
        "gray.mkv": write_film(str(d / "gray.mkv"), "ffv1", "gray", options=FFV1),
        "yuv420p16.mkv": write_film(str(d / "yuv420p16.mkv"), "ffv1", "yuv420p16le", options=FFV1),
        "prores.mov": write_film(str(d / "prores.mov"), "prores_ks", "yuv422p10le", n=12, options={"profile": "3"}),
        "h264.mp4": write_film(str(d / "h264.mp4"), "libx264", "yuv420p", options={"crf": "18", "g": "8"}),
        "vfr.mkv": write_film(str(d / "vfr.mkv"), "ffv1", "yuv420p", pts_ms=VFR_PTS, options=FFV1),
        "ntsc.mkv": write_film(str(d / "ntsc.mkv"), "ffv1", "yuv420p10le", n=12, rate=Fraction(24000, 1001),
                               options=FFV1),
        "dpx": write_sequence(str(d / "dpx"), "dpx", "gbrp10le", "dpx"),
        "tif": write_sequence(str(d / "tif"), "tiff", "rgb48le", "tif", n=6),
    }


# --- independent computations -----------------------------------------------------------

def _numpy_md5(frame: av.VideoFrame) -> tuple[int, str]:
    """Plane after plane, each row's pixel bytes without the line padding."""
    comps = frame.format.components
    chunks = []
    for i, plane in enumerate(frame.planes):
        bytes_per_pixel = sum((c.bits + 7) // 8 for c in comps if c.plane == i)
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        chunks.append(rows[:, :plane.width * bytes_per_pixel].tobytes())
    data = b"".join(chunks)
    return len(data), hashlib.md5(data).hexdigest()


def numpy_hashes(path: str) -> list[tuple[int, str]]:
    if os.path.isdir(path):
        out = []
        for name in fixity.sequence_files(path):
            with av.open(os.path.join(path, name)) as c:  # FFmpeg's image2 demuxer, one file
                out += [_numpy_md5(f) for f in c.decode(video=0)]
        return out
    with av.open(path) as c:
        return [_numpy_md5(f) for f in c.decode(video=0)]


def ffmpeg_framemd5(path: str) -> str:
    if os.path.isdir(path):
        names = fixity.sequence_files(path)
        m = re.match(r"^(.*?)(\d+)(\.\w+)$", names[0])
        src = ["-f", "image2", "-start_number", m.group(2), "-i",
               os.path.join(path, f"{m.group(1)}%0{len(m.group(2))}d{m.group(3)}")]
    else:
        src = ["-i", path, "-map", "0:v:0"]
    return subprocess.run([FFMPEG, "-v", "error", *src, "-fflags", "+bitexact", "-f", "framemd5", "-"],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def columns(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split(",")] for line in text.splitlines() if not line.startswith("#")]


def ffmpeg_major() -> int:
    out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout
    m = re.match(r"ffmpeg version (?:n)?(\d+)\.", out)
    return int(m.group(1)) if m else 0


KINDS = ["gray.mkv", "yuv420p16.mkv", "prores.mov", "h264.mp4", "vfr.mkv", "ntsc.mkv", "dpx", "tif"]


# --- framemd5 ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_framemd5_hashes_equal_numpy(media, kind):
    text = fixity.framemd5(media[kind])
    rows = columns(text)
    expected = numpy_hashes(media[kind])
    assert len(rows) == len(expected) > 0
    assert [(int(r[4]), r[5]) for r in rows] == expected
    assert text.endswith("\n") and "\n\n" not in text


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
@pytest.mark.parametrize("kind", KINDS)
def test_framemd5_equals_ffmpeg(media, kind):
    ours, theirs = fixity.framemd5(media[kind]), ffmpeg_framemd5(media[kind])
    assert [r[4:] for r in columns(ours)] == [r[4:] for r in columns(theirs)]  # size, hash
    if ffmpeg_major() == 5:  # Debian 12's: the command line whose timestamp rules we follow
        assert ours == theirs


def test_framemd5_header_and_timestamps(media):
    text = fixity.framemd5(media["gray.mkv"])
    assert text.splitlines()[:9] == [
        "#format: frame checksums", "#version: 2", "#hash: MD5", "#tb 0: 1/24", "#media_type 0: video",
        "#codec_id 0: rawvideo", f"#dimensions 0: {W}x{H}", "#sar 0: 0/1",
        "#stream#, dts,        pts, duration,     size, hash"]
    first = text.splitlines()[9]
    assert re.fullmatch(r"0, {10}0, {10}0, {8}1, {5}3072, [0-9a-f]{32}", first)
    assert "#tb 0: 1001/24000" in fixity.framemd5(media["ntsc.mkv"])
    assert [int(r[2]) for r in columns(fixity.framemd5(media["vfr.mkv"]))] == VFR_TICKS
    seq = fixity.framemd5(media["dpx"])
    assert "#tb 0: 1/25" in seq and [int(r[2]) for r in columns(seq)] == list(range(12))


def test_sequence_order_is_numeric(tmp_path):
    folder = tmp_path / "seq"
    write_sequence(str(folder), "dpx", "gray16le", "dpx", n=3, first=8)  # 8, 9, 10
    os.rename(folder / "reel1_00000010.dpx", folder / "reel1_10.dpx")  # sorts before _00000008 by name
    (folder / "notes.txt").write_text("not a frame")
    assert fixity.sequence_files(str(folder)) == ["reel1_00000008.dpx", "reel1_00000009.dpx", "reel1_10.dpx"]
    assert [r[5] for r in columns(fixity.framemd5(str(folder)))] == [h for _, h in numpy_hashes(str(folder))]


# --- sidecars and verify ----------------------------------------------------------------

def _copy(src: str, dst: str) -> str:
    (shutil.copytree if os.path.isdir(src) else shutil.copyfile)(src, dst)
    return dst


@pytest.mark.parametrize("kind", ["gray.mkv", "h264.mp4", "prores.mov", "dpx"])
def test_write_sidecars_then_verify_passes(media, tmp_path, kind):
    path = _copy(media[kind], str(tmp_path / ("reel1" if kind == "dpx" else f"reel1{os.path.splitext(kind)[1]}")))
    info = fixity.write_sidecars(path, path)
    fm, sha = fixity.sidecar_uris(path)
    assert (info["framemd5_uri"], info["sha256_uri"]) == (fm, sha)
    if kind == "dpx":
        assert (fm, sha) == (str(tmp_path / "reel1.framemd5"), str(tmp_path / "reel1.sha256"))
        assert fixity.sidecar_uris(path + "/") == (fm, sha)
        lines = open(sha).read().splitlines()
        assert [ln.split("  ")[1] for ln in lines] == sorted(os.listdir(path))
        assert info["sha256"] == hashlib.sha256(open(sha, "rb").read()).hexdigest()
        cwd = path
    else:
        assert (fm, sha) == (path + ".framemd5", path + ".sha256")
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        assert open(sha).read() == f"{digest}  {os.path.basename(path)}\n" and info["sha256"] == digest
        cwd = str(tmp_path)
    if shutil.which("sha256sum"):  # coreutils reads our sidecar
        check = subprocess.run(["sha256sum", "-c", sha], cwd=cwd, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    assert open(fm).read() == fixity.framemd5(path)
    assert info["framemd5_sha256"] == hashlib.sha256(open(fm, "rb").read()).hexdigest()
    assert fixity.verify(path) == []
    assert fixity.verify_paths([path]) == (1, [])


def _packet_spans(path: str) -> list[tuple[int, int]]:
    with av.open(path) as c:
        return [(p.pos, p.size) for p in c.demux(video=0) if p.size]


def test_verify_names_flipped_byte_and_frame(media, tmp_path):
    path = _copy(media["gray.mkv"], str(tmp_path / "reel1.mkv"))
    fixity.write_sidecars(path, path)
    size = os.path.getsize(path)
    spans = _packet_spans(path)
    frame = min(range(len(spans)), key=lambda i: abs(spans[i][0] + spans[i][1] // 2 - size // 2))
    pos, n = spans[frame]
    with open(path, "r+b") as f:  # one byte in the middle of the file (the middle of that frame's data)
        f.seek(pos + n // 2)
        b = f.read(1)
        f.seek(pos + n // 2)
        f.write(bytes([b[0] ^ 0x01]))
    problems = fixity.verify(path)
    assert any(re.fullmatch(rf"{re.escape(path)}: sha256 [0-9a-f]{{64}} does not match reel1\.mkv\.sha256 "
                            r"\([0-9a-f]{64}\)", p) for p in problems), problems
    assert any(p.startswith(f"{path}: frame {frame} differs from reel1.mkv.framemd5 (md5 ") for p in problems), problems
    assert len(problems) == 2, problems
    n_checked, found = fixity.verify_paths([path])
    assert n_checked == 1 and found == problems


def test_verify_names_the_edited_dpx_file(media, tmp_path):
    folder = _copy(media["dpx"], str(tmp_path / "reel1"))
    fixity.write_sidecars(folder, folder)
    names = fixity.sequence_files(folder)
    victim = os.path.join(folder, names[5])
    data = bytearray(open(victim, "rb").read())
    data[len(data) - 100] ^= 0xFF  # a pixel
    open(victim, "wb").write(bytes(data))
    problems = fixity.verify(folder)
    assert len(problems) == 2, problems
    assert all(p.startswith(f"{victim}: ") for p in problems), problems
    assert any("sha256" in p and "reel1.sha256" in p for p in problems)
    assert any(p.startswith(f"{victim}: frame 5 differs from reel1.framemd5") for p in problems)


def test_verify_folder_missing_and_extra_files(media, tmp_path):
    folder = _copy(media["dpx"], str(tmp_path / "reel1"))
    fixity.write_sidecars(folder, folder)
    names = fixity.sequence_files(folder)
    os.remove(os.path.join(folder, names[-1]))
    open(os.path.join(folder, "extra.txt"), "w").write("x")
    problems = fixity.verify(folder)
    assert f"{folder}/{names[-1]}: listed in reel1.sha256 but missing" in problems
    assert f"{folder}/extra.txt: not listed in reel1.sha256" in problems
    assert f"{folder}: 11 frames, reel1.framemd5 lists 12" in problems


def test_verify_missing_sidecars_and_frame_count(media, tmp_path):
    path = _copy(media["h264.mp4"], str(tmp_path / "reel1.mp4"))
    assert fixity.verify(path) == [f"{path}: no reel1.mp4.sha256 beside it", f"{path}: no reel1.mp4.framemd5 beside it"]
    fixity.write_sidecars(path, path)
    fm, _ = fixity.sidecar_uris(path)
    lines = open(fm).read().splitlines(True)
    open(fm, "w").write("".join(lines[:-1]))
    assert fixity.verify(path) == [f"{path}: 24 frames, reel1.mp4.framemd5 lists 23"]
    os.remove(fm)
    assert fixity.verify(path) == [f"{path}: no reel1.mp4.framemd5 beside it"]
    assert fixity.verify(str(tmp_path / "nope.mkv")) == [f"{tmp_path / 'nope.mkv'}: no such file"]


def test_verify_accepts_a_sidecar_written_by_ffmpeg(media, tmp_path):
    """Only the hash column is compared: FFmpeg's own framemd5 (with #software) verifies."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    path = _copy(media["prores.mov"], str(tmp_path / "reel1.mov"))
    fixity.write_sidecars(path, path)
    out = subprocess.run([FFMPEG, "-v", "error", "-i", path, "-map", "0:v:0", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    assert "#software" in out
    open(fixity.sidecar_uris(path)[0], "w").write(out)
    assert fixity.verify(path) == []


def test_verify_run_dir_and_paths(media, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = tmp_path / "run"
    run.mkdir()
    a = _copy(media["gray.mkv"], str(tmp_path / "a.mkv"))
    b_mkv = _copy(media["yuv420p16.mkv"], str(tmp_path / "b.mkv"))
    b_dpx = _copy(media["dpx"], str(tmp_path / "b_dpx"))
    sha = {p: fixity.write_sidecars(p, p)["sha256"] for p in (a, b_mkv, b_dpx)}
    b_pattern = os.path.join(b_dpx, "reel1_%08d.dpx")  # how the run record names a sequence
    rows = [
        {"film_id": "a", "output": a, "outputs": None, "output_sha256s": None, "status": "done",
         "output_sha256": sha[a]},
        {"film_id": "b", "output": b_mkv, "outputs": [b_mkv, b_pattern], "output_sha256s": [sha[b_mkv], sha[b_dpx]],
         "status": "skipped", "output_sha256": sha[b_mkv]},
        {"film_id": "c", "output": str(tmp_path / "never-written.mkv"), "outputs": None, "output_sha256s": None,
         "status": "failed", "output_sha256": None},
    ]
    pq.write_table(pa.Table.from_pylist(rows), str(run / "films.parquet"))
    assert fixity.verify_run_dir(str(run)) == []
    other = _copy(media["h264.mp4"], str(tmp_path / "other.mp4"))
    fixity.write_sidecars(other, other)
    assert fixity.verify_paths([str(run), other]) == (4, [])

    victim = os.path.join(b_dpx, fixity.sequence_files(b_dpx)[0])
    data = bytearray(open(victim, "rb").read())
    data[-1] ^= 0xFF
    open(victim, "wb").write(bytes(data))
    os.remove(other + ".sha256")
    n, problems = fixity.verify_paths([str(run), other])
    assert n == 4
    assert [p for p in problems if p.startswith(victim)] and f"{other}: no other.mp4.sha256 beside it" in problems
    assert all(p.startswith((victim, other)) for p in problems), problems

    # the run record's sha256s are checked too
    rows[0]["output_sha256"] = "0" * 64
    rows[1]["output_sha256s"] = [sha[b_mkv], "1" * 64]
    pq.write_table(pa.Table.from_pylist(rows), str(run / "films.parquet"))
    problems = fixity.verify_run_dir(str(run))
    assert f"{a}: sha256 {sha[a]} does not match the run record ({'0' * 64})" in problems
    assert f"{b_dpx}: the sha256 of b_dpx.sha256 {sha[b_dpx]} does not match the run record ({'1' * 64})" in problems
    assert fixity.verify_paths([str(tmp_path / "nothing-here")])[1] == [f"{tmp_path / 'nothing-here'}: no such file"]


def test_verify_on_s3(media, tmp_path, s3_bucket):
    """Sidecars written beside S3 deliverables (a file, a DPX prefix) and verified there."""
    from pipeline import storage

    film = f"s3://{s3_bucket}/masters/reel1.mkv"
    storage.put_file(media["gray.mkv"], film)
    info = fixity.write_sidecars(media["gray.mkv"], film)
    assert info["framemd5_uri"] == film + ".framemd5" and storage.exists(film + ".sha256")
    assert storage.read_bytes(film + ".sha256").decode().endswith("  reel1.mkv\n")
    prefix = f"s3://{s3_bucket}/scans/reel2/"
    for name in os.listdir(media["dpx"]):
        storage.put_file(os.path.join(media["dpx"], name), prefix + name)
    info = fixity.write_sidecars(media["dpx"], prefix)
    assert info["framemd5_uri"] == f"s3://{s3_bucket}/scans/reel2.framemd5"
    assert fixity.framemd5(prefix) == fixity.framemd5(media["dpx"])
    assert fixity.verify_paths([film, prefix]) == (2, [])

    data = bytearray(open(media["gray.mkv"], "rb").read())
    pos, n = _packet_spans(media["gray.mkv"])[3]
    data[pos + n // 2] ^= 0x10
    storage.write_bytes(film, bytes(data))
    problems = fixity.verify(film)
    assert len(problems) == 2 and problems[1].startswith(f"{film}: frame 3 differs from reel1.mkv.framemd5"), problems


def test_sidecars_from_a_staging_copy_and_sequence_patterns(media, tmp_path):
    """What assembly does: sidecar texts from the staged bytes, stored beside the published
    name; a sequence named by its pattern is its folder."""
    staged = _copy(media["gray.mkv"], str(tmp_path / ".reel1.mkv.x1y2.partial.mkv"))
    dest = str(tmp_path / "reel1.mkv")
    texts = fixity.sidecar_texts(staged, dest)
    os.replace(staged, dest)
    info = fixity.store_sidecars(dest, texts)
    assert open(dest + ".sha256").read() == f"{info['sha256']}  reel1.mkv\n"
    assert fixity.verify(dest) == []

    folder = _copy(media["dpx"], str(tmp_path / "reel2"))
    pattern = os.path.join(folder, "reel1_%08d.dpx")
    assert fixity.sidecar_uris(pattern) == fixity.sidecar_uris(folder) == (folder + ".framemd5", folder + ".sha256")
    fixity.write_sidecars(folder, pattern)
    assert fixity.framemd5(pattern) == fixity.framemd5(folder)
    assert fixity.verify(pattern) == [] and fixity.verify_paths([pattern, folder + "/"]) == (2, [])


def test_verify_goes_on_past_an_undecodable_file(media, tmp_path):
    folder = _copy(media["dpx"], str(tmp_path / "reel1"))
    fixity.write_sidecars(folder, folder)
    names = fixity.sequence_files(folder)
    broken, edited = os.path.join(folder, names[2]), os.path.join(folder, names[9])
    open(broken, "wb").write(b"not a DPX file at all")
    data = bytearray(open(edited, "rb").read())
    data[-10] ^= 0x0F
    open(edited, "wb").write(bytes(data))
    problems = fixity.verify(folder)
    assert f"{broken}: cannot be decoded" in " ".join(problems)
    assert any(p.startswith(f"{edited}: frame 9 differs") for p in problems), problems
    assert sorted({p.split(":")[0] for p in problems}) == sorted([broken, edited])
    with pytest.raises(fixity.FixityError, match=re.escape(broken)):
        fixity.framemd5(folder)
