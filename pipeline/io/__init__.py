"""Film I/O with PyAV: probe, frame-accurate luma decoding, segment encoding.

Frames are addressed by 0-based integer index into the film's presentation order. The
mapping index -> timestamp comes from demuxing every video packet once at probe time, so
variable-frame-rate films are handled by their own timestamps, never by a float rate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import av
import cv2
import numpy as np

from pipeline import log, storage
from pipeline.errors import InputError

# Input pixel formats we decode: (chroma layout, bit depth, full range by format).
PIX_FMTS: dict[str, tuple[str, int, bool]] = {
    "gray": ("gray", 8, False),
    "gray10le": ("gray", 10, False),
    "gray12le": ("gray", 12, False),
    "yuv420p": ("420", 8, False),
    "yuv422p": ("422", 8, False),
    "yuv444p": ("444", 8, False),
    "yuvj420p": ("420", 8, True),
    "yuvj422p": ("422", 8, True),
    "yuvj444p": ("444", 8, True),
    "yuv420p10le": ("420", 10, False),
    "yuv422p10le": ("422", 10, False),
    "yuv444p10le": ("444", 10, False),
}


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # 'audio' | 'subtitle' | 'data'
    codec: str
    time_base: Fraction


@dataclass(frozen=True)
class FilmInfo:
    path: str
    container: str
    width: int
    height: int
    pix_fmt: str
    chroma: str  # 'gray' | '420' | '422' | '444'
    bit_depth: int
    full_range: bool
    time_base: Fraction
    frame_pts: tuple[int, ...] = field(repr=False)
    frame_duration_pts: int  # duration of the last frame, in time_base
    avg_rate: Fraction
    colorspace: int  # AVColorSpace, 2 = unspecified
    color_primaries: int
    color_trc: int
    start_timecode: str
    streams: tuple[StreamInfo, ...] = ()

    @property
    def frame_count(self) -> int:
        return len(self.frame_pts)

    @property
    def end_pts(self) -> int:
        return self.frame_pts[-1] + self.frame_duration_pts

    def index_of_pts(self, pts: int) -> int | None:
        i = bisect.bisect_left(self.frame_pts, pts)
        return i if i < len(self.frame_pts) and self.frame_pts[i] == pts else None


def frame_time(info: FilmInfo, index: int) -> Fraction:
    """Exact presentation time (seconds, from the film's first frame) of frame `index`;
    `index == frame_count` gives the end of the film."""
    pts = info.end_pts if index >= info.frame_count else info.frame_pts[index]
    return (pts - info.frame_pts[0]) * info.time_base


def open_input(path: str) -> av.container.InputContainer:
    """A PyAV container reading `path`: a local file, or an s3:// object read by URI
    (ranged GETs or this node's cache, see pipeline.storage), never a driver-only copy."""
    if storage.is_s3(path):
        f = storage.open_read(path)
        try:
            # A larger AVIO buffer: fewer Python calls per MiB read from the object.
            return _Reading(av.open(f, mode="r", buffer_size=1 << 18), f)
        except (av.error.InvalidDataError, UnicodeDecodeError):
            f.close()
            raise InputError(f"{path}: not a video file (FFmpeg cannot read it)") from None
        except av.FFmpegError as exc:
            f.close()
            raise InputError(f"{path}: cannot open: {exc}") from None
    return _open(path)


class _Reading:
    """A PyAV container over a file object, closing both (PyAV leaves the object open,
    with its cached chunks or its cache file descriptor)."""

    def __init__(self, container, fileobj):
        self._container, self._file = container, fileobj

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._file.close()


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, mode="r")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (av.error.InvalidDataError, UnicodeDecodeError):
        raise InputError(f"{path}: not a video file (FFmpeg cannot read it)") from None
    except av.FFmpegError as exc:
        raise InputError(f"{path}: cannot open: {exc}") from None


def _timecode(container, vstream) -> str:
    for meta in (vstream.metadata, container.metadata):
        tc = meta.get("timecode") or meta.get("TIMECODE")
        if tc:
            return tc.replace(";", ":")
    return "00:00:00:00"


def probe(path: str) -> FilmInfo:
    """Read the film's structure. Raises InputError for anything we cannot colorize."""
    with open_input(path) as container:
        if not container.streams.video:
            raise InputError(f"{path}: has no video stream")
        vs = container.streams.video[0]
        ctx = vs.codec_context
        pix_fmt = ctx.format.name if ctx.format else None
        if pix_fmt not in PIX_FMTS:
            raise InputError(
                f"{path}: unsupported pixel format {pix_fmt} "
                f"(supported: {', '.join(sorted(PIX_FMTS))})"
            )
        chroma, depth, full_by_fmt = PIX_FMTS[pix_fmt]
        tb = vs.time_base
        pts: list[int] = []
        durations: dict[int, int] = {}
        try:
            for pkt in container.demux(vs):
                if pkt.size == 0:
                    continue
                ts = pkt.pts if pkt.pts is not None else pkt.dts
                if ts is None:
                    raise InputError(f"{path}: video packets without timestamps")
                pts.append(ts)
                durations[ts] = pkt.duration or 0
        except av.FFmpegError as exc:
            raise InputError(f"{path}: damaged video stream ({exc})") from None
        if not pts:
            raise InputError(f"{path}: video stream has no frames")
        pts.sort()
        if len(set(pts)) != len(pts):
            raise InputError(f"{path}: duplicate video timestamps")
        last_dur = durations.get(pts[-1]) or (pts[-1] - pts[-2] if len(pts) > 1 else 0)
        if last_dur <= 0:
            rate = vs.average_rate or vs.guessed_rate or Fraction(24)
            last_dur = max(1, round(1 / (Fraction(rate) * tb)))
        _check_not_truncated(path, container, vs, pts, last_dur)
        span = (pts[-1] + last_dur - pts[0]) * tb
        streams = tuple(
            StreamInfo(s.index, s.type, s.codec_context.name if s.codec_context else "", s.time_base)
            for s in container.streams
            if s.type in ("audio", "subtitle") and s.time_base is not None
        )
        info = FilmInfo(
            path=path,
            container=container.format.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=pix_fmt,
            chroma=chroma,
            bit_depth=depth,
            # Untagged gray is full range: that is how FFmpeg's scaler treats it.
            full_range=full_by_fmt or int(ctx.color_range or 0) == 2
            or (chroma == "gray" and int(ctx.color_range or 0) == 0),
            time_base=Fraction(tb),
            frame_pts=tuple(pts),
            frame_duration_pts=int(last_dur),
            avg_rate=Fraction(len(pts)) / span if span > 0 else Fraction(24),
            colorspace=int(ctx.colorspace or 2),
            color_primaries=int(ctx.color_primaries or 2),
            color_trc=int(ctx.color_trc or 2),
            start_timecode=_timecode(container, vs),
            streams=streams,
        )
    _check_decodes(info)
    return info


def _check_not_truncated(path, container, vs, pts, last_dur) -> None:
    """A file cut short still demuxes; compare what is there with what the header promised."""
    declared = None
    if vs.duration:
        declared = vs.duration * vs.time_base
    elif container.duration:
        declared = Fraction(container.duration, av.time_base)
    if declared is None:
        return
    have = (pts[-1] + last_dur - pts[0]) * vs.time_base
    # Allow two frames of slack for rounding in container durations.
    if have + 2 * last_dur * vs.time_base < declared:
        raise InputError(
            f"{path}: truncated video ({float(have):.2f}s of frames, header says {float(declared):.2f}s)"
        )


def _check_decodes(info: FilmInfo) -> None:
    """Decode the first and the last frame: catches damaged or cut-short payloads early."""
    for idx in sorted({0, info.frame_count - 1}):
        got = False
        try:
            for i, _ in iter_luma(info, idx, idx + 1):
                got = i == idx
        except av.FFmpegError as exc:
            raise InputError(f"{info.path}: frame {idx} cannot be decoded ({exc})") from None
        if not got:
            raise InputError(f"{info.path}: frame {idx} cannot be decoded (truncated?)")


def plane_array(plane, width: int, height: int, dtype) -> np.ndarray:
    """A writable H x W view of a frame plane, skipping the line padding."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype=dtype).reshape(-1, plane.line_size // item)[:height, :width]


def luma_of(frame: av.VideoFrame, info: FilmInfo) -> np.ndarray:
    """The Y' plane as H x W uint8 / uint16 (copied out of the frame)."""
    dtype = np.uint8 if info.bit_depth == 8 else np.uint16
    return plane_array(frame.planes[0], frame.width, frame.height, dtype).copy()


class _LandedLate(Exception):
    """The demuxer's seek landed after the wanted frame (inexact index)."""


def iter_frames(info: FilmInfo, start: int, end: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decoded frames start <= index < end, frame-accurate.

    Seeks to the keyframe at or before `start`, decodes forward and selects frames by
    timestamp. If the seek lands after the target (inexact indexes), decodes from the start.
    """
    end = min(end, info.frame_count)
    if start >= end:
        return
    try:
        yield from _decode_range(info, start, end, seek=start > 0)
    except _LandedLate:
        log.debug("%s: seek to frame %d landed late; decoding from the start", info.path, start)
        yield from _decode_range(info, start, end, seek=False)


def _decode_range(info: FilmInfo, start: int, end: int, seek: bool):
    want_first = info.frame_pts[start]
    with open_input(info.path) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        if seek:
            container.seek(want_first, stream=vs, backward=True, any_frame=False)
        expected = start
        for frame in container.decode(vs):
            if frame.pts is None or frame.pts < want_first:
                continue
            if expected == start and frame.pts != want_first:
                raise _LandedLate
            idx = info.index_of_pts(frame.pts)
            if idx != expected:
                raise InputError(f"{info.path}: frame {expected} is missing from the stream")
            yield idx, frame
            expected += 1
            if expected == end:
                return
    raise InputError(f"{info.path}: stream ends at frame {expected}, expected {end}")


def iter_luma(
    info: FilmInfo, start: int, end: int, size: tuple[int, int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, luma) for start <= index < end; luma H x W uint8/uint16, resized to
    size=(w, h) with INTER_AREA if given."""
    for idx, frame in iter_frames(info, start, end):
        y = luma_of(frame, info)
        if size is not None and (y.shape[1], y.shape[0]) != tuple(size):
            y = cv2.resize(y, tuple(size), interpolation=cv2.INTER_AREA)
        yield idx, y


def luma_range(info: FilmInfo) -> tuple[float, float]:
    """Code values of black and white for this film's luma (video or full range)."""
    scale = 1 << (info.bit_depth - 8)
    if info.full_range:
        return 0.0, float((1 << info.bit_depth) - 1)
    return 16.0 * scale, 235.0 * scale


def luma_to_float(luma: np.ndarray, info: FilmInfo) -> np.ndarray:
    """H x W code values -> H x W float32 in [0, 1] (black..white), clipped."""
    lo, hi = luma_range(info)
    return np.clip((luma.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def save_info(info: FilmInfo, path: str) -> None:
    """Write the probe result (frame timestamps included) for actors to load instead of
    demuxing the whole film again, once per actor."""
    import dataclasses
    import json

    d = dataclasses.asdict(info)
    d["time_base"] = str(info.time_base)
    d["avg_rate"] = str(info.avg_rate)
    d["streams"] = [{**dataclasses.asdict(s), "time_base": str(s.time_base)} for s in info.streams]
    storage.write_bytes(path, json.dumps(d).encode())


def load_info(path: str) -> FilmInfo:
    import json

    d = json.loads(storage.read_bytes(path))
    d["time_base"] = Fraction(d["time_base"])
    d["avg_rate"] = Fraction(d["avg_rate"])
    d["frame_pts"] = tuple(d["frame_pts"])
    d["streams"] = tuple(StreamInfo(**{**s, "time_base": Fraction(s["time_base"])}) for s in d["streams"])
    return FilmInfo(**d)
