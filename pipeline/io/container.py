"""The container reader: films in a file FFmpeg demuxes (Matroska, MOV, MP4 ...), by PyAV.

Every video packet's timestamp is read once at probe time, so frames are integer indices
with exact timestamps; a range decode seeks to the keyframe before it and selects frames
by timestamp.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from pipeline import log, storage
from pipeline.errors import InputError
from pipeline.io.info import FilmInfo, StreamInfo, plane_array

# Input pixel formats we decode: (chroma layout, bit depth, full range by format). Only
# the luma plane is read: its samples at the film's own depth and byte order.
PIX_FMTS: dict[str, tuple[str, int, bool]] = {
    "gray": ("gray", 8, False),
    "yuv420p": ("420", 8, False),
    "yuv422p": ("422", 8, False),
    "yuv444p": ("444", 8, False),
    "yuvj420p": ("420", 8, True),
    "yuvj422p": ("422", 8, True),
    "yuvj444p": ("444", 8, True),
    **{f"gray{d}{e}": ("gray", d, False) for d in (10, 12, 14, 16) for e in ("le", "be")},
    **{f"yuv{c}p{d}{e}": (c, d, False) for c in ("420", "422", "444") for d in (10, 12, 16) for e in ("le", "be")},
}


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
            avg_rate=_nominal_rate(vs, Fraction(len(pts)) / span if span > 0 else Fraction(24)),
            colorspace=int(ctx.colorspace or 2),
            color_primaries=int(ctx.color_primaries or 2),
            color_trc=int(ctx.color_trc or 2),
            start_timecode=_timecode(container, vs),
            streams=streams,
            big_endian=pix_fmt.endswith("be"),
        )
    check_decodes(info)
    return info


def _nominal_rate(vs, measured: Fraction) -> Fraction:
    """The film's rate: the stream's declared rate (Matroska DefaultDuration, the MOV track's)
    where the frames agree with it within 1 %, else frames / span. Matroska rounds
    timestamps to milliseconds, so 48 frames of a 24 fps film measure 24.012 fps."""
    declared = vs.average_rate or vs.guessed_rate
    if declared and measured and abs(Fraction(declared) - measured) <= measured / 100:
        return Fraction(declared)
    return measured


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


def check_decodes(info: FilmInfo) -> None:
    """Decode the first and the last frame: catches damaged or cut-short payloads early."""
    for idx in sorted({0, info.frame_count - 1}):
        got = False
        try:
            for i, _ in iter_frames(info, idx, idx + 1):
                got = i == idx
        except av.FFmpegError as exc:
            raise InputError(f"{info.path}: frame {idx} cannot be decoded ({exc})") from None
        if not got:
            raise InputError(f"{info.path}: frame {idx} cannot be decoded (truncated?)")


def luma_of(frame: av.VideoFrame, info: FilmInfo) -> np.ndarray:
    """The Y' plane as H x W uint8 / uint16 in native byte order (copied out of the frame)."""
    if info.bit_depth == 8:
        return plane_array(frame.planes[0], frame.width, frame.height, np.uint8).copy()
    stored = np.dtype(">u2" if info.big_endian else "<u2")
    return plane_array(frame.planes[0], frame.width, frame.height, stored).astype(np.uint16)


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
        # Frame threads hold back a frame per thread before the first comes out: for a
        # few frames (a keyframe, a probe, a similarity sample) slice threads only.
        vs.thread_type = "SLICE" if end - start <= 4 else "AUTO"
        if seek:
            container.seek(want_first, stream=vs, backward=True, any_frame=False)
        expected = start
        for frame in _frames_from(container, vs, want_first):
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


def _frames_from(container, vs, want_first: int):
    """Decoded frames from where the demuxer stands. Matroska's cues index clusters, so a
    seek lands up to a cluster (~5 s) early; for a codec whose packets come in
    presentation order (FFV1, ProRes, DPX ... not H.264 with B-frames), packets before the
    wanted one are decoded only back to the last keyframe before it: an intra-only 2K
    film gives one frame for one decode instead of a cluster's worth."""
    if vs.codec_context.codec.reorder:
        yield from container.decode(vs)
        return
    pending = []  # packets before the wanted frame, from their last keyframe on
    for pkt in container.demux(vs):
        if pkt.size and pkt.pts is not None and pkt.pts < want_first:
            pending = [pkt] if pkt.is_keyframe else pending + [pkt]
            continue
        if pending and not (pkt.size and pkt.is_keyframe):
            for old in pending:
                yield from old.decode()
        pending = []
        yield from pkt.decode()  # an empty packet at the end flushes the decoder


def iter_luma(info: FilmInfo, start: int, end: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, luma) at full resolution, H x W uint8/uint16, start <= index < end."""
    for idx, frame in iter_frames(info, start, end):
        yield idx, luma_of(frame, info)
