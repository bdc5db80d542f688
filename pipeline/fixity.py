"""Fixity for deliverables: framemd5 and sha256 sidecars, and `verify` against them.

A deliverable is a container file (`.mkv` FFV1 master, `.mov` ProRes, `.mp4` H.264) or an
image-sequence folder (numbered `.dpx` / `.tif` / `.tiff` files, one frame per file). Beside
it, at the URI it is published at (local or `s3://`), `write_sidecars` puts:

- `DEST.framemd5`: FFmpeg's framemd5 (version 2) of the video: the MD5 of every decoded
  frame in its stored pixel format, packed the way FFmpeg's rawvideo encoder packs it
  (planes one after another, no line padding: av_image_copy_to_buffer, align 1; samples
  of more than 8 bits in the pix_fmt's byte order). The packing *is* FFmpeg's rawvideo
  encoder, run through PyAV, so the hash is by construction what `ffmpeg -f framemd5`
  hashes.
- `DEST.sha256`: `sha256sum` format, `<hex>  <name>`; for a folder one line per file (all
  files directly in it except hidden ones), names relative to the folder.

  `reel1.mkv` -> `reel1.mkv.framemd5`, `reel1.mkv.sha256` (the extension is kept, so the
  .mkv master, .mov mezzanine and .mp4 access copy of one film can sit side by side);
  folder `reel1/` -> `reel1.framemd5`, `reel1.sha256` beside the folder.

framemd5 text compared with Debian 12's `ffmpeg` 5.1 (checked byte for byte on gray,
yuv420p, yuv420p10le and yuv420p16le FFV1 in .mkv, ProRes yuv422p10le in .mov, H.264
yuv420p in .mp4, 24000/1001 films, variable-frame-rate .mkv and .mp4, and DPX / 16-bit
TIFF folders):

- Container files equal `ffmpeg -i FILE -map 0:v:0 -fflags +bitexact -f framemd5 -`
  (without `-fflags +bitexact` FFmpeg adds a `#software: Lavf...` line; it is left out
  here so that a sidecar does not depend on the library version that wrote it). The
  timestamp columns follow the FFmpeg 5.1 command line's defaults for this muxer
  (`-fps_mode vfr`): time base 1/r where r is the stream's guessed frame rate
  (av_guess_frame_rate, 25 when unknown); pts is the frame's time from the file's start
  rounded onto that grid, the same 0.6-tick rules deciding when it advances by one tick
  and when it jumps; dts = pts; duration 1.
- Where timestamps cannot match, hashes still do:
  - FFmpeg *drops* a frame that lands more than 0.6 tick behind the previous one on the
    1/r grid (a VFR film whose frames are much closer together than 1/r); here every
    decoded frame gets its line, because fixity must cover every frame: such a frame
    repeats the previous frame's pts, so FFmpeg's lines are exactly these minus those.
  - The film's start: FFmpeg counts pts from the container's start time. Where an audio
    stream starts before the video with encoder priming (AAC in Matroska: a packet at
    -21 ms), FFmpeg 5.1's libavformat puts the start there and its pts column begins at 1;
    the FFmpeg 8 libraries PyAV bundles skip the priming samples, the start is the
    video's, and the column begins at 0 here.
  - FFmpeg's newer command lines (fftools of 6.1 and later, read, not run) hand the
    frame's own duration in ticks to the packet, where 5.1 prints 1 in that column.
- Image-sequence folders equal `ffmpeg -f image2 -start_number N -i DIR/name_%08d.dpx
  -fflags +bitexact -f framemd5 -`: `#tb 0: 1/25` (the image2 demuxer's default rate: the
  files carry no rate FFmpeg reads), pts 0, 1, 2 ... in the order of the files' numbers.
  FFmpeg stops at a gap in the numbering; here every image file in the folder is listed.

`verify(path)` recomputes both and compares: the sha256 of the file (each file of a
folder) with the .sha256 sidecar, and the frame hashes (the hash column only; the header
and timestamp columns are not compared, so a sidecar written by FFmpeg itself verifies
too) and frame count with the .framemd5 sidecar. Frames are streamed: memory stays bounded
whatever the film's length (the sidecar's hash list is held: 33 bytes a frame).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from pipeline import storage
from pipeline.errors import FilmcolorError

SEQUENCE_CODECS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff"}
SEQUENCE_RATE = Fraction(25)  # FFmpeg's image2 demuxer's default frame rate
DEFAULT_RATE = Fraction(25)  # the ffmpeg command line's fallback when a stream's rate is unknown
MAX_LINES = 20  # per kind of problem per deliverable; then one line says how many more
AV_TIME_BASE = Fraction(1, 1_000_000)
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")
_SHA_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class FixityError(FilmcolorError):
    """A deliverable cannot be hashed (no video, nothing decodable, no frames)."""


# --- sidecar names ----------------------------------------------------------------------

def sidecar_uris(dest: str) -> tuple[str, str]:
    """(framemd5 URI, sha256 URI) of the deliverable published at `dest`: `DEST.framemd5`,
    `DEST.sha256`; a folder's (`reel1/`, or its pattern `reel1/reel1_%08d.dpx`) sit beside
    it (`reel1.framemd5`)."""
    base = deliverable_of(dest).rstrip("/")
    return base + ".framemd5", base + ".sha256"


def _name(uri: str) -> str:
    return os.path.basename(uri.rstrip("/"))


_PRINTF = re.compile(r"%0?\d*d")


def deliverable_of(path: str) -> str:
    """The deliverable a path names: an image-sequence pattern (`graded/reel1/reel1_%08d.dpx`,
    as the run record holds it) names its folder (`graded/reel1`, `s3://b/graded/reel1/`);
    anything else names itself."""
    base = os.path.basename(path)
    if _PRINTF.search(base) and os.path.splitext(base)[1].lower() in SEQUENCE_CODECS:
        if storage.is_s3(path):
            return path.rsplit("/", 1)[0] + "/"
        return os.path.dirname(path) or "."
    return path


def is_folder(path: str) -> bool:
    """Whether `path` names an image-sequence folder: a local directory, or an S3 prefix
    (ending in '/', or a key that is not an object but has objects under it)."""
    if storage.is_s3(path):
        if path.endswith("/"):
            return True
        return not storage.exists(path) and bool(storage.listdir(path))
    return os.path.isdir(path)


# --- framemd5 ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameHash:
    index: int
    pts: int
    size: int
    md5: str
    file: str | None = None  # the image file of a sequence frame
    error: str | None = None  # a sequence file that cannot be decoded (md5 "")

    def line(self) -> str:
        return f"0, {self.pts:10d}, {self.pts:10d}, {1:8d}, {self.size:8d}, {self.md5}\n"


def _header(tb: Fraction, width: int, height: int, sar: Fraction) -> str:
    return ("#format: frame checksums\n#version: 2\n#hash: MD5\n"
            f"#tb 0: {tb.numerator}/{tb.denominator}\n#media_type 0: video\n#codec_id 0: rawvideo\n"
            f"#dimensions 0: {width}x{height}\n#sar 0: {sar.numerator}/{sar.denominator}\n"
            "#stream#, dts,        pts, duration,     size, hash\n")


class _Packer:
    """FFmpeg's rawvideo encoder: a frame's planes packed without line padding."""

    def __init__(self) -> None:
        self._ctx = None
        self._key: tuple | None = None

    def md5(self, frame: av.VideoFrame) -> tuple[int, str]:
        """(packed size, md5 hex) of the frame. Note: encoding rescales frame.pts."""
        key = (frame.width, frame.height, frame.format.name)
        if key != self._key:
            ctx = av.CodecContext.create("rawvideo", "w")
            ctx.width, ctx.height, ctx.pix_fmt = key
            ctx.time_base = Fraction(1, 1)
            self._ctx, self._key = ctx, key
        h = hashlib.md5()
        size = 0
        for packet in self._ctx.encode(frame):
            h.update(packet)
            size += packet.size
        return size, h.hexdigest()


def _rescale(a: int, b: Fraction, c: Fraction) -> int:
    """av_rescale_q: a * b / c rounded to nearest, halves away from zero."""
    x = Fraction(a) * b / c
    n = (abs(x.numerator) * 2 + x.denominator) // (2 * x.denominator)
    return n if x >= 0 else -n


def _lrintf(x: float) -> int:
    return int(np.rint(np.float32(x)))


def _sar(*candidates) -> Fraction:
    for sar in candidates:
        if sar is not None and sar.numerator and sar.denominator:
            return Fraction(sar)
    return Fraction(0, 1)


class _Sync:
    """The ffmpeg 5.1 command line's VFR timestamp logic (fftools do_video_out with
    vsync vfr), minus frame drops: every frame gets a pts."""

    def __init__(self, in_tb: Fraction, enc_tb: Fraction, offset: int):
        self.in_tb, self.enc_tb, self.offset = in_tb, enc_tb, offset
        self.next_pts = 0
        bits = max(0, min(16, 29 - (enc_tb.denominator.bit_length() - 1)))
        self._fine_tb = Fraction(enc_tb.numerator, enc_tb.denominator << bits)
        self._bits = bits

    def pts(self, frame_pts: int | None, frame_duration: int | None) -> int:
        duration = 1.0  # 1 / (frame rate * encoder time base)
        if frame_duration:
            d = _lrintf(frame_duration * float(self.in_tb) / float(self.enc_tb))
            if d > 0:
                duration = float(d)
        if frame_pts is not None:
            fpts = _rescale(frame_pts + self.offset, self.in_tb, self._fine_tb) / (1 << self._bits)
            fpts += (1.0 if fpts > 0 else -1.0 if fpts < 0 else 0.0) / (1 << 17)
            delta0 = fpts - self.next_pts
            delta = delta0 + duration
            if delta0 < 0 < delta:
                fpts = float(self.next_pts)
            if delta <= -0.6:
                # ffmpeg drops this frame. It keeps its line here, with the previous
                # frame's pts, and the frames after it keep ffmpeg's timestamps.
                return max(self.next_pts - 1, 0)
            if delta > 0.6:
                self.next_pts = int(round(fpts))  # llrint: halves to even
        pts = self.next_pts
        self.next_pts += 1
        return pts


def _timing(container, vs) -> tuple[Fraction, Fraction, int]:
    """(the framemd5's time base: 1 / the stream's rate, the stream's time base, the start
    offset in it), as the ffmpeg command line derives them."""
    rate = vs.guessed_rate
    rate = Fraction(rate) if rate and rate > 0 else DEFAULT_RATE
    in_tb = Fraction(vs.time_base)
    start = container.start_time
    offset = _rescale(-start, AV_TIME_BASE, in_tb) if start is not None else 0
    return 1 / rate, in_tb, offset


def _container_hashes(path: str) -> tuple[str, Iterator[FrameHash]]:
    from pipeline.io.container import open_input

    container = open_input(path)
    try:
        if not container.streams.video:
            raise FixityError(f"{path}: has no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        enc_tb, in_tb, offset = _timing(container, vs)
        frames = container.decode(vs)
        try:
            first = next(frames)
        except StopIteration:
            raise FixityError(f"{path}: no decodable video frames") from None
        sar = _sar(vs.sample_aspect_ratio, vs.codec_context.sample_aspect_ratio)
        header = _header(enc_tb, first.width, first.height, sar)
    except BaseException:
        container.close()
        raise

    def lines() -> Iterator[FrameHash]:
        sync = _Sync(in_tb, enc_tb, offset)
        packer = _Packer()
        try:
            frame = first
            index = 0
            while frame is not None:
                pts = sync.pts(frame.pts, frame.duration)
                size, md5 = packer.md5(frame)
                yield FrameHash(index, pts, size, md5)
                index += 1
                frame = next(frames, None)
        finally:
            container.close()

    return header, lines()


def sequence_files(folder: str) -> list[str]:
    """The image files of a sequence folder, in frame order (by the number in the name)."""
    names = [n for n in storage.listdir(folder)
             if not n.startswith(".") and os.path.splitext(n)[1].lower() in SEQUENCE_CODECS]

    def key(name: str):
        m = _NUMBERED.match(name)
        return (m.group(1), m.group(3).lower(), int(m.group(2)), name) if m else (name, "", -1, name)

    return sorted(names, key=key)


def _decode_image(data: bytes, codec: str) -> tuple[av.VideoFrame, Fraction]:
    ctx = av.CodecContext.create(codec, "r")
    frames = list(ctx.decode(av.Packet(data))) + list(ctx.decode(None))
    if not frames:
        raise av.error.InvalidDataError(0, "no picture decoded")
    return frames[0], _sar(ctx.sample_aspect_ratio)


def _sequence_hashes(folder: str) -> tuple[str, Iterator[FrameHash]]:
    names = sequence_files(folder)
    if not names:
        raise FixityError(f"{folder}: no DPX or TIFF frames found (numbered .dpx, .tif or .tiff files)")
    base = folder.rstrip("/")

    def decode(name: str) -> tuple[av.VideoFrame, Fraction]:
        uri = storage.join(base, name)
        try:
            return _decode_image(storage.read_bytes(uri), SEQUENCE_CODECS[os.path.splitext(name)[1].lower()])
        except av.FFmpegError as exc:
            raise FixityError(f"{uri}: cannot be decoded ({exc})") from None

    first, sar = decode(names[0])
    header = _header(1 / SEQUENCE_RATE, first.width, first.height, sar)

    def lines() -> Iterator[FrameHash]:
        packer = _Packer()
        for i, name in enumerate(names):
            try:
                frame = first if i == 0 else decode(name)[0]
            except FixityError as exc:  # one bad file: the others are still hashed
                yield FrameHash(i, i, 0, "", name, str(exc))
                continue
            size, md5 = packer.md5(frame)
            yield FrameHash(i, i, size, md5, name)

    return header, lines()


def framemd5_from_md5s(path: str, md5s: list[str], size: int) -> str:
    """The framemd5 of a lossless intra-coded file whose frames' md5s are already known
    (the colour actors hash the planes they hand to FFV1, which gives them back exactly):
    the same text as `framemd5(path)`, with the timestamps read from its packets instead
    of decoding every frame again (a 2K 16-bit FFV1 frame decodes in ~0.2 s)."""
    from pipeline.io.container import open_input

    with open_input(path) as container:
        vs = container.streams.video[0]
        enc_tb, in_tb, offset = _timing(container, vs)
        sar = _sar(vs.sample_aspect_ratio, vs.codec_context.sample_aspect_ratio)
        header = _header(enc_tb, vs.codec_context.width, vs.codec_context.height, sar)
        sync = _Sync(in_tb, enc_tb, offset)
        lines = []
        for pkt in container.demux(vs):
            if not pkt.size:
                continue
            if len(lines) == len(md5s):
                raise FixityError(f"{path}: more frames than the {len(md5s)} hashed")
            pts = sync.pts(pkt.pts, pkt.duration)
            lines.append(FrameHash(len(lines), pts, size, md5s[len(lines)]).line())
    if len(lines) != len(md5s):
        raise FixityError(f"{path}: {len(lines)} frames, {len(md5s)} hashed")
    return header + "".join(lines)


def frame_hashes(path: str) -> tuple[str, Iterator[FrameHash]]:
    """(framemd5 header text, iterator of FrameHash) of a deliverable: a container file or
    an image-sequence folder (or its pattern), local or S3. Frames are decoded one at a time."""
    path = deliverable_of(path)
    if is_folder(path):
        return _sequence_hashes(path)
    return _container_hashes(path)


def iter_framemd5(path: str) -> Iterator[str]:
    """The framemd5 text of `path`, a line at a time."""
    header, frames = frame_hashes(path)
    yield header
    for fh in frames:
        if fh.error:
            raise FixityError(fh.error)
        yield fh.line()


def framemd5(path: str) -> str:
    """FFmpeg's framemd5 (version 2) of the video of `path` (see the module docstring)."""
    return "".join(iter_framemd5(path))


# --- sha256 -----------------------------------------------------------------------------

def sha256_of(uri: str) -> str:
    """sha256 of a local file or S3 object, streamed in 1 MiB blocks."""
    if not storage.is_s3(uri):
        return storage.file_sha256(uri)
    h = hashlib.sha256()
    with storage.open_read(uri) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_files(folder: str) -> list[str]:
    """Every file directly in a deliverable folder except hidden ones: frames first, in
    frame order, then any others by name."""
    frames = sequence_files(folder)
    seen = set(frames)
    others = [n for n in storage.listdir(folder) if not n.startswith(".") and n not in seen]
    return frames + sorted(others)


def _folder_sha_text(folder: str) -> str:
    base = folder.rstrip("/")
    return "".join(f"{sha256_of(storage.join(base, n))}  {n}\n" for n in folder_files(folder))


# --- writing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Sidecars:
    """The two sidecar texts of a deliverable, computed before it is published."""

    framemd5: bytes
    sha256_list: bytes  # sha256sum format
    sha256: str  # the file's; for a folder the sha256 of `sha256_list`

    @property
    def framemd5_sha256(self) -> str:
        return hashlib.sha256(self.framemd5).hexdigest()


def sidecar_texts(local_path: str, dest: str, framemd5_text: str | None = None) -> Sidecars:
    """The sidecars of the finished deliverable at `local_path` (a file or an image-sequence
    folder on local disk, e.g. a staging copy) that will be published at `dest`; names in
    the sha256 list are `dest`'s (a file) or relative to the folder. `framemd5_text`: the
    framemd5 when already known (framemd5_from_md5s), else computed by decoding."""
    fm_text = (framemd5_text if framemd5_text is not None else framemd5(local_path)).encode()
    if os.path.isdir(local_path):
        sha_text = _folder_sha_text(local_path).encode()
        sha = hashlib.sha256(sha_text).hexdigest()
    else:
        sha = storage.file_sha256(local_path)
        sha_text = f"{sha}  {_name(dest)}\n".encode()
    return Sidecars(fm_text, sha_text, sha)


def store_sidecars(dest: str, sidecars: Sidecars) -> dict:
    """Write `DEST.framemd5` and `DEST.sha256`, each atomically (storage.write_bytes).
    Returns {"framemd5_uri", "sha256_uri", "sha256", "framemd5_sha256"}."""
    fm_uri, sha_uri = sidecar_uris(dest)
    storage.write_bytes(fm_uri, sidecars.framemd5)
    storage.write_bytes(sha_uri, sidecars.sha256_list)
    return {"framemd5_uri": fm_uri, "sha256_uri": sha_uri, "sha256": sidecars.sha256,
            "framemd5_sha256": sidecars.framemd5_sha256}


def write_sidecars(local_path: str, dest: str) -> dict:
    """Write `DEST.framemd5` and `DEST.sha256` for the finished deliverable at `local_path`
    (a file or an image-sequence folder on local disk) that is or will be published at
    `dest`. Each sidecar is written atomically (storage.write_bytes).

    Returns {"framemd5_uri", "sha256_uri", "sha256", "framemd5_sha256"}: "sha256" is the
    file's, or for a folder the sha256 of the .sha256 sidecar's text."""
    return store_sidecars(dest, sidecar_texts(local_path, dest))


# --- verifying --------------------------------------------------------------------------

def _read_text(uri: str) -> str | None:
    try:
        if not storage.exists(uri):
            return None
        return storage.read_bytes(uri).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def parse_framemd5(text: str) -> list[str]:
    """The hash column of a framemd5 text (video stream 0), in order."""
    hashes = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) >= 6 and cols[0] == "0":
            hashes.append(cols[5].split()[0].lower() if cols[5] else "")
    return hashes


def parse_sha256(text: str) -> dict[str, str]:
    """{name: hex} of a sha256sum-format text."""
    out = {}
    for line in text.splitlines():
        m = _SHA_LINE.match(line.rstrip("\r"))
        if m:
            out[m.group(2)] = m.group(1).lower()
    return out


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[:MAX_LINES] + [f"... and {len(lines) - MAX_LINES} more {what}"]


def _check_sha_file(path: str, text: str, sidecar: str, actual: str) -> list[str]:
    listed = parse_sha256(text)
    expected = listed.get(_name(path))
    if expected is None and len(listed) == 1:
        expected = next(iter(listed.values()))
    if expected is None:
        return [f"{path}: {sidecar} has no sha256 line for {_name(path)}"]
    if actual != expected:
        return [f"{path}: sha256 {actual} does not match {sidecar} ({expected})"]
    return []


def _check_sha_folder(folder: str, text: str, sidecar: str) -> list[str]:
    base = folder.rstrip("/")
    listed = parse_sha256(text)
    present = folder_files(folder)
    problems = []
    for name in present:
        uri = storage.join(base, name)
        if name not in listed:
            problems.append(f"{uri}: not listed in {sidecar}")
            continue
        actual = sha256_of(uri)
        if actual != listed[name]:
            problems.append(f"{uri}: sha256 {actual} does not match {sidecar} ({listed[name]})")
    have = set(present)
    problems += [f"{storage.join(base, n)}: listed in {sidecar} but missing" for n in listed if n not in have]
    return _capped(problems, "files differ from " + sidecar)


def _check_frames(path: str, text: str, sidecar: str, folder: bool) -> list[str]:
    expected = parse_framemd5(text)
    base = path.rstrip("/")
    n, diffs, first = 0, 0, None
    problems: list[str] = []
    try:
        _, frames = frame_hashes(path)
        for fh in frames:
            n += 1
            if fh.error:
                problems.append(fh.error)
            elif fh.index < len(expected) and fh.md5 != expected[fh.index]:
                diffs += 1
                where = storage.join(base, fh.file) if folder else path
                line = f"{where}: frame {fh.index} differs from {sidecar} (md5 {fh.md5}, expected {expected[fh.index]})"
                if folder:
                    problems.append(line)
                elif first is None:
                    first = line
    except (FilmcolorError, av.FFmpegError) as exc:
        msg = str(exc)
        failure = msg if msg.startswith((path, base)) else f"{path}: cannot be decoded after frame {n} ({msg})"
    else:
        failure = None
    if first is not None:
        problems.append(first + (f"; {diffs} frames differ in all" if diffs > 1 else ""))
    problems = _capped(problems, "files differ from " + sidecar)
    if failure is not None:
        problems.append(failure)
    elif n != len(expected):
        problems.append(f"{path}: {n} frames, {sidecar} lists {len(expected)}")
    return problems


def verify(path: str, expected_sha256: str | None = None) -> list[str]:
    """Re-check the deliverable at `path` (a file or image-sequence folder, local or S3)
    against its sidecars. [] when everything matches; else one line per problem: a missing
    sidecar, a sha256 mismatch (each file of a folder), the first frame that differs (for a
    folder: each differing file), a frame count mismatch.

    `expected_sha256` (e.g. from the run record): also compared with the file's sha256
    (for a folder: with the sha256 of its .sha256 sidecar's text)."""
    path = deliverable_of(path)
    folder = is_folder(path)
    if not folder and not storage.exists(path):
        return [f"{path}: no such file"]
    fm_uri, sha_uri = sidecar_uris(path)
    fm_name, sha_name = _name(fm_uri), _name(sha_uri)
    problems: list[str] = []

    sha_text = _read_text(sha_uri)
    if sha_text is None:
        problems.append(f"{path}: no {sha_name} beside it")
    if folder:
        if sha_text is not None:
            problems += _check_sha_folder(path, sha_text, sha_name)
            actual_record = hashlib.sha256(sha_text.encode()).hexdigest()
        else:
            actual_record = None
    else:
        actual_record = sha256_of(path) if (sha_text is not None or expected_sha256) else None
        if sha_text is not None:
            problems += _check_sha_file(path, sha_text, sha_name, actual_record)
    if expected_sha256 and actual_record is not None and actual_record != expected_sha256:
        what = f"the sha256 of {sha_name}" if folder else "sha256"
        problems.append(f"{path}: {what} {actual_record} does not match the run record ({expected_sha256})")

    fm_text = _read_text(fm_uri)
    if fm_text is None:
        problems.append(f"{path}: no {fm_name} beside it")
    else:
        problems += _check_frames(path, fm_text, fm_name, folder)
    return problems


def _run_dir_deliverables(run_dir: str) -> list[tuple[str, str | None]]:
    """(deliverable URI, sha256 the run record holds for it or None) of every published
    film of a run (status done or skipped)."""
    from pipeline import record

    out = []
    for row in record.read_table(run_dir, "films"):
        if row.get("status") not in ("done", "skipped"):
            continue
        outputs = list(row.get("outputs") or [])
        shas = list(row.get("output_sha256s") or [])
        if not outputs and row.get("output"):
            outputs, shas = [row["output"]], [row.get("output_sha256")]
        shas += [None] * (len(outputs) - len(shas))
        if outputs and outputs[0] == row.get("output") and not shas[0]:
            shas[0] = row.get("output_sha256")
        out += [(uri, sha or None) for uri, sha in zip(outputs, shas) if uri]
    return out


def is_run_dir(path: str) -> bool:
    if not storage.is_s3(path) and not os.path.isdir(path):
        return False
    return storage.exists(storage.join(path.rstrip("/") if storage.is_s3(path) else path, "films.parquet"))


def _verify_run_dir(run_dir: str) -> tuple[int, list[str]]:
    if not is_run_dir(run_dir):
        return 0, [f"{run_dir}: no films.parquet (not a run directory)"]
    deliverables = _run_dir_deliverables(run_dir)
    problems: list[str] = []
    for uri, sha in deliverables:
        problems += verify(uri, sha)
    return len(deliverables), problems


def verify_run_dir(run_dir: str) -> list[str]:
    """verify() every deliverable of every published film (status done or skipped) in the
    run directory's films.parquet: a row's `outputs` where present, else its `output`; the
    sha256 the record holds for each (`output_sha256s`, `output_sha256`) is checked too."""
    return _verify_run_dir(run_dir)[1]


def verify_paths(paths: list[str]) -> tuple[int, list[str]]:
    """`filmcolor verify PATH...`: each PATH a deliverable or a run directory (one holding
    films.parquet) -> (number of deliverables checked, problems). Exit 0 when there are no
    problems, 1 otherwise."""
    checked, problems = 0, []
    for path in paths:
        try:
            if is_run_dir(path):
                n, found = _verify_run_dir(path)
            else:
                n, found = 1, verify(path)
        except FilmcolorError as exc:  # e.g. storage errors: unreachable, access denied
            n, found = 1, [str(exc)]
        checked += n
        problems += found
    return checked, problems
