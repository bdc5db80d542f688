"""The sequence reader: a film scanned to one image file per frame (DPX or TIFF), in a
folder or S3 prefix, or named by a printf pattern (`scans/reel1_%08d.dpx`).

Frame index i is the i-th file in order of its number: the first file (whatever its
number: 86400, 1, 0 ...) is frame 0. Numbers must be consecutive: a gap or a number that
appears twice is refused, naming the file. Every file must have the first one's size,
layout and bit depth. The rate comes from the DPX header where it is set, else from the
caller (`--fps`), and is required; the start timecode from the DPX header where present.

Each frame is read on its own (a whole small file; on S3 one GET pinned to the ETag seen at
listing time), so a shard reads only the files of its frame range.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

from pipeline import log, storage
from pipeline.errors import InputError
from pipeline.io import image
from pipeline.io.info import FilmInfo

EXTENSIONS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff"}
HEADER_BYTES = 4096  # DPX headers are 2048 bytes; a TIFF's first IFD is usually near the start
_PATTERN = re.compile(r"%(0?)(\d*)d")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z]+)$")


def is_sequence(path: str) -> bool:
    """Whether INPUT names an image sequence rather than a container file: a printf
    pattern, a folder (an S3 prefix ends in '/'), or a single DPX/TIFF file."""
    base = os.path.basename(path.rstrip("/"))
    if _PATTERN.search(base) and os.path.splitext(base)[1].lower() in EXTENSIONS:
        return True
    if storage.is_s3(path):
        return path.endswith("/") or os.path.splitext(path)[1].lower() in EXTENSIONS
    return os.path.isdir(path) or os.path.splitext(path)[1].lower() in EXTENSIONS


@dataclass(frozen=True)
class _Frame:
    name: str
    number: int
    size: int
    etag: str


def _folder_and_pattern(path: str) -> tuple[str, re.Pattern | None, str]:
    """(folder URI, regex a file name must match or None for 'the one sequence there',
    how to name the input in messages)."""
    if storage.is_s3(path) and path.endswith("/"):
        return path.rstrip("/"), None, path
    if os.path.isdir(path):
        return path, None, path
    folder = storage.parent(path) if storage.is_s3(path) else os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    m = _PATTERN.search(base)
    if m is None:  # one image file: a one-frame sequence
        return folder, re.compile("^" + re.escape(base) + "$"), path
    return folder, pattern_regex(base), path


def pattern_regex(base: str) -> re.Pattern:
    """The file names a printf pattern (`reel1_%08d.dpx`) stands for; group 1 the number."""
    m = _PATTERN.search(base)
    width = int(m.group(2) or 0)
    digits = rf"(\d{{{width},}})" if m.group(1) and width else r"(\d+)"
    rx = "^" + re.escape(base[:m.start()]) + digits + re.escape(base[m.end():]) + "$"
    return re.compile(rx, re.IGNORECASE)


def list_frames(path: str) -> tuple[str, list[_Frame], str]:
    """The sequence's files in frame order: (folder, frames, extension). InputError for a
    folder with no sequence, several sequences, a gap or a duplicate number."""
    folder, rx, shown = _folder_and_pattern(path)
    listing = storage.list_files(folder)
    if not listing and not storage.is_s3(folder) and not os.path.isdir(folder):
        raise InputError(f"{shown}: no such file or folder")
    groups: dict[tuple[str, str], list[_Frame]] = {}
    for name, size, etag in listing:
        ext = os.path.splitext(name)[1].lower()
        if ext not in EXTENSIONS:
            continue
        if rx is not None:
            m = rx.match(name)
            if not m:
                continue
            number = int(m.group(1)) if m.groups() else 0
            key = ("", ext)
        else:
            m = _NUMBERED.match(name)
            if not m:
                continue
            number, key = int(m.group(2)), (m.group(1), ext)
        groups.setdefault(key, []).append(_Frame(name, number, size, etag))
    if not groups:
        raise InputError(f"{shown}: no DPX or TIFF frames found (expected numbered .dpx, .tif or .tiff files)")
    if len(groups) > 1:
        names = ", ".join(f"{p}NNNN{e}" for p, e in sorted(groups))
        raise InputError(f"{shown}: holds more than one image sequence ({names}); name one with a pattern "
                         "such as reel1_%08d.dpx")
    (_, ext), frames = next(iter(groups.items()))
    frames.sort(key=lambda f: (f.number, f.name))
    _check_numbering(folder, frames)
    return folder, frames, ext


def _check_numbering(folder: str, frames: list[_Frame]) -> None:
    for prev, cur in zip(frames, frames[1:]):
        if cur.number == prev.number:
            raise InputError(f"{storage.join(folder, cur.name)}: duplicate frame number {cur.number} "
                             f"(also {prev.name})")
        if cur.number != prev.number + 1:
            missing = f"{prev.number + 1}" + (f"-{cur.number - 1}" if cur.number - 1 > prev.number + 1 else "")
            raise InputError(f"{storage.join(folder, cur.name)}: gap in the sequence: frame number "
                             f"{missing} missing after {prev.name}")


def _read(uri: str, size: int, etag: str, limit: int | None = None) -> bytes:
    """A file's bytes (the first `limit` of them, if given); S3 reads are pinned to the
    ETag of the listing, so a frame replaced mid-run is an error, not a mix."""
    n = size if limit is None else min(size, limit)
    if storage.is_s3(uri):
        from pipeline.storage.rangeio import fetch

        return fetch(uri, 0, n, etag or None) if n else b""
    try:
        with open(uri, "rb") as f:
            return f.read(n)
    except OSError as exc:
        raise InputError(f"{uri}: cannot read ({exc.strerror})") from None


def _header(uri: str, size: int, etag: str, ext: str) -> image.ImageHeader:
    limit = HEADER_BYTES
    while True:
        data = _read(uri, size, etag, limit)
        try:
            return image.read_header(data, ext)
        except image.NeedMoreBytes as exc:
            need = int(getattr(exc, "offset_needed", 0) or (exc.args[0] if exc.args else 0))
            if need <= limit or limit >= size:
                raise InputError(f"{uri}: not a readable {EXTENSIONS[ext].upper()} file (header cut short)") from None
            limit = need
        except image.ImageFormatError as exc:
            raise InputError(f"{uri}: not a readable {EXTENSIONS[ext].upper()} file ({exc})") from None


def _layout(h: image.ImageHeader) -> tuple:
    return (h.width, h.height, h.channels, h.bit_depth, h.big_endian)


def _describe(h: image.ImageHeader) -> str:
    kind = "luma" if h.channels == 1 else "RGB"
    return f"{h.width}x{h.height} {h.bit_depth}-bit {kind}"


def _check_uniform(folder: str, frames: list[_Frame], ext: str, first: image.ImageHeader) -> None:
    """Every file like the first: layout and depth, and long enough for its pixels.

    Local files: every header is read (a few KB each). S3: the listing's sizes are
    compared, and only files whose size differs have their header fetched, so a 100,000-
    frame prefix costs no 100,000 requests (uncompressed frames of one layout are all the
    same size)."""
    def check(fr: _Frame, h: image.ImageHeader) -> None:
        uri = storage.join(folder, fr.name)
        if _layout(h) != _layout(first):
            raise InputError(f"{uri}: {_describe(h)}, unlike the sequence's first frame "
                             f"{frames[0].name} ({_describe(first)})")
        if h.data_size and fr.size < h.data_offset + h.data_size:
            raise InputError(f"{uri}: truncated ({fr.size} bytes, the header needs "
                             f"{h.data_offset + h.data_size})")

    check(frames[0], first)
    s3 = storage.is_s3(folder)
    for fr in frames[1:]:
        if s3 and fr.size == frames[0].size:
            continue
        check(fr, _header(storage.join(folder, fr.name), fr.size, fr.etag, ext))


def probe(path: str, fps: Fraction | None = None) -> FilmInfo:
    """The sequence's structure; InputError for anything that cannot be coloured."""
    folder, frames, ext = list_frames(path)
    uri0 = storage.join(folder, frames[0].name)
    first = _header(uri0, frames[0].size, frames[0].etag, ext)
    _check_uniform(folder, frames, ext, first)
    rate = _rate(path, first, fps)
    depth, be = first.bit_depth, first.big_endian
    kind = "gray" if first.channels == 1 else "rgb"
    pix_fmt = kind + (str(depth) if depth > 8 else "") + (("be" if be else "le") if depth > 8 else "")
    n = len(frames)
    info = FilmInfo(
        path=path, container=EXTENSIONS[ext], width=first.width, height=first.height, pix_fmt=pix_fmt,
        chroma=kind, bit_depth=depth, full_range=True,  # scans use the whole code range
        time_base=Fraction(rate.denominator, rate.numerator), frame_pts=tuple(range(n)), frame_duration_pts=1,
        avg_rate=rate, colorspace=2, color_primaries=2, color_trc=2,
        start_timecode=first.timecode or "00:00:00:00", streams=(), source="sequence",
        frame_files=tuple(storage.join(folder, f.name) for f in frames),
        frame_sizes=tuple(f.size for f in frames), frame_etags=tuple(f.etag for f in frames), big_endian=be,
    )
    for i in sorted({0, n - 1}):  # decodes, end to end: damaged payloads are caught here
        next(iter_luma(info, i, i + 1))
    log.debug("%s: %d frames %s, %s fps", path, n, _describe(first), rate)
    return info


def _rate(path: str, header: image.ImageHeader, fps: Fraction | None) -> Fraction:
    if fps is not None:
        if header.frame_rate and header.frame_rate != fps:
            log.info("%s: the DPX header says %s fps; using the --fps given, %s", path, header.frame_rate, fps)
        return Fraction(fps)
    if header.frame_rate:
        return header.frame_rate
    where = "TIFF files carry no frame rate" if header.format == "tiff" else "the DPX header has no frame rate"
    raise InputError(f"{path}: {where}: give the film's rate with --fps RATE (manifest: fps:), e.g. --fps 18")


def decode_frame(info: FilmInfo, index: int) -> np.ndarray:
    """Frame `index` as H x W luma code values at the scan's depth (uint8 / uint16)."""
    uri = info.frame_files[index]
    data = _read(uri, info.frame_sizes[index], info.frame_etags[index])
    ext = os.path.splitext(uri)[1].lower()
    try:
        img = image.decode(data, ext)
    except image.ImageFormatError as exc:
        raise InputError(f"{uri}: cannot be decoded ({exc})") from None
    if img.shape[:2] != (info.height, info.width):
        raise InputError(f"{uri}: {img.shape[1]}x{img.shape[0]}, unlike the sequence ({info.width}x{info.height})")
    if img.ndim == 3:  # an RGB scan of black-and-white film
        img = image.luma_of_rgb(img, info.bit_depth)
    return img


def iter_luma(info: FilmInfo, start: int, end: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, luma) for start <= index < end, H x W uint8/uint16, one file per frame."""
    for i in range(max(0, start), min(end, info.frame_count)):
        yield i, decode_frame(info, i)
