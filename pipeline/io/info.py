"""What a frame source tells the stages about a film: `FilmInfo`, the same for a container
file and an image sequence, so no stage asks where frames came from.

Frames are addressed by 0-based integer index in presentation order; index -> timestamp
is the table `frame_pts` in `time_base` units (a container's own packet timestamps, or
0, 1, 2, ... at 1/rate for a sequence), never a float rate.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from pipeline import storage


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # 'audio' | 'subtitle' | 'data'
    codec: str
    time_base: Fraction


@dataclass(frozen=True)
class FilmInfo:
    path: str
    container: str  # FFmpeg's demuxer name, or 'dpx' / 'tiff' for an image sequence
    width: int
    height: int
    pix_fmt: str
    chroma: str  # 'gray' | '420' | '422' | '444' | 'rgb' (an RGB scan: luma by matrix)
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
    # 'container' (PyAV) or 'sequence' (one image file per frame, see pipeline.io.sequence)
    source: str = "container"
    # Sequences: every frame's file (URI), size and ETag (S3: each read is pinned to it).
    frame_files: tuple[str, ...] = field(default=(), repr=False)
    frame_sizes: tuple[int, ...] = field(default=(), repr=False)
    frame_etags: tuple[str, ...] = field(default=(), repr=False)
    big_endian: bool = False  # samples as stored (DPX, TIFF, gray16be ...)

    @property
    def frame_count(self) -> int:
        return len(self.frame_pts)

    @property
    def end_pts(self) -> int:
        return self.frame_pts[-1] + self.frame_duration_pts

    @property
    def is_sequence(self) -> bool:
        return self.source == "sequence"

    def index_of_pts(self, pts: int) -> int | None:
        i = bisect.bisect_left(self.frame_pts, pts)
        return i if i < len(self.frame_pts) and self.frame_pts[i] == pts else None


def frame_time(info: FilmInfo, index: int) -> Fraction:
    """Exact presentation time (seconds, from the film's first frame) of frame `index`;
    `index == frame_count` gives the end of the film."""
    pts = info.end_pts if index >= info.frame_count else info.frame_pts[index]
    return (pts - info.frame_pts[0]) * info.time_base


def plane_array(plane, width: int, height: int, dtype) -> np.ndarray:
    """A writable H x W view of a frame plane, skipping the line padding."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype=dtype).reshape(-1, plane.line_size // item)[:height, :width]


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


_TUPLES = ("frame_pts", "frame_files", "frame_sizes", "frame_etags")


def save_info(info: FilmInfo, path: str) -> None:
    """Write the probe result (frame timestamps, a sequence's file table) for actors to
    load instead of demuxing or listing the whole film again, once per actor."""
    d = dataclasses.asdict(info)
    d["time_base"] = str(info.time_base)
    d["avg_rate"] = str(info.avg_rate)
    d["streams"] = [{**dataclasses.asdict(s), "time_base": str(s.time_base)} for s in info.streams]
    storage.write_bytes(path, json.dumps(d).encode())


def load_info(path: str) -> FilmInfo:
    d = json.loads(storage.read_bytes(path))
    d["time_base"] = Fraction(d["time_base"])
    d["avg_rate"] = Fraction(d["avg_rate"])
    for k in _TUPLES:
        d[k] = tuple(d.get(k) or ())
    d["streams"] = tuple(StreamInfo(**{**s, "time_base": Fraction(s["time_base"])}) for s in d["streams"])
    return FilmInfo(**d)
