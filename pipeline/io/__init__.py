"""Frame sources: one interface over where a film's frames come from.

    probe(INPUT)            -> FilmInfo (frame table, depth, rate, timecode, other streams)
    iter_luma(info, a, b)   -> (index, luma) for a <= index < b, frame-accurate

Behind it, one reader per kind of input (the stages never ask which):
  - `container`: a file FFmpeg demuxes (Matroska/FFV1 incl. RAWcooked gray16le, MOV, MP4)
  - `sequence`: one DPX or TIFF file per frame, in a folder, an S3 prefix or a pattern

Luma comes out as H x W code values at the film's own depth (uint8, or uint16 holding
10/12/14/16-bit samples), native byte order, never rescaled: the output's Y plane is
these samples.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import cv2
import numpy as np

from pipeline.io.info import (FilmInfo, StreamInfo, frame_time, load_info, luma_range, luma_to_float,  # noqa: F401
                              plane_array, save_info)
from pipeline.io.container import PIX_FMTS, iter_frames, luma_of, open_input  # noqa: F401


def probe(path: str, fps: Fraction | None = None) -> FilmInfo:
    """Read the film's structure. Raises InputError for anything we cannot colorize.
    `fps`: the rate of an image sequence (required where the files carry none)."""
    from pipeline.io import container, sequence

    if sequence.is_sequence(path):
        return sequence.probe(path, fps)
    return container.probe(path)


def iter_luma(
    info: FilmInfo, start: int, end: int, size: tuple[int, int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, luma) for start <= index < end; luma H x W uint8/uint16, resized to
    size=(w, h) with INTER_AREA if given."""
    from pipeline.io import container, sequence

    reader = sequence if info.is_sequence else container
    for idx, y in reader.iter_luma(info, start, end):
        if size is not None and (y.shape[1], y.shape[0]) != tuple(size):
            y = cv2.resize(y, tuple(size), interpolation=cv2.INTER_AREA)
        yield idx, y


def parse_rate(text: str | float | int | None) -> Fraction | None:
    """'18', '24000/1001', '23.976' (-> 24000/1001), 25.0 -> an exact rate; None stays None."""
    from pipeline.errors import InputError

    if text is None or text == "":
        return None
    try:
        rate = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"frame rate {text!r}: expected a number such as 18, 24 or 24000/1001") from None
    for ntsc in (24, 30, 48, 60, 120):  # 23.976, 29.97 ... typed as decimals: the NTSC rates
        exact = Fraction(ntsc * 1000, 1001)
        if rate.denominator != 1 and abs(rate - exact) < Fraction(1, 100):
            return exact
    if rate <= 0 or rate > 1000:
        raise InputError(f"frame rate {text!r}: out of range")
    return rate
