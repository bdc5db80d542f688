"""Image files of film scans (DPX, TIFF): the header every format reports, one error type,
dispatch by file extension, and the luma of an RGB scan.

Archives digitise film to image sequences, one file per frame. The sequence reader and the
deliverable writers work on `ImageHeader` and code-value arrays only; the formats live in
`pipeline.io.dpx` and `pipeline.io.tiff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType

import numpy as np


@dataclass(frozen=True)
class ImageHeader:
    """What one image file says about itself, read from its header alone."""

    width: int
    height: int
    channels: int  # 1 (luma) or 3 (RGB)
    bit_depth: int  # 8, 10, 12 or 16: bits per sample as stored
    big_endian: bool  # the file's byte order
    data_offset: int  # DPX: offset of the image data; TIFF: 0 (strips are scattered)
    data_size: int  # bytes of pixel data the file must hold; 0 if unknown (compressed TIFF)
    frame_rate: Fraction | None  # DPX film (or TV) header rate; None if unset
    timecode: str | None  # DPX TV header SMPTE timecode "HH:MM:SS:FF" (";" drop frame)
    format: str  # "dpx" | "tiff"


class ImageFormatError(ValueError):
    """The bytes are not an image file we can read (or write), said in words."""


class NeedMoreBytes(ImageFormatError):
    """The header lies (partly) beyond the bytes given: read the first `offset_needed`
    bytes of the file and call again. A subclass of ImageFormatError, so a caller that
    gave the whole file simply sees a truncated file."""

    def __init__(self, offset_needed: int, what: str = "header") -> None:
        self.offset_needed = offset_needed
        self.what = what
        super().__init__(f"{what} needs the first {offset_needed} bytes of the file")

    def __reduce__(self):
        # Picklable with its own arguments (Ray ships exceptions between processes).
        return type(self), (self.offset_needed, self.what)


_FORMATS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff"}


def format_of(ext: str) -> str:
    """"dpx" or "tiff" for an extension (".DPX", "tif", ".tiff"...)."""
    key = ext.lower() if ext.startswith(".") else "." + ext.lower()
    try:
        return _FORMATS[key]
    except KeyError:
        raise ImageFormatError(
            f"unsupported image extension {ext!r} (supported: {', '.join(sorted(_FORMATS))})"
        ) from None


def _module(ext: str) -> ModuleType:
    # Imported here: dpx and tiff import this module for ImageHeader.
    if format_of(ext) == "dpx":
        from pipeline.io import dpx

        return dpx
    from pipeline.io import tiff

    return tiff


def read_header(data: bytes, ext: str) -> ImageHeader:
    """The header of a file with extension `ext`; see dpx.read_header / tiff.read_header
    for how many bytes to pass."""
    return _module(ext).read_header(data)


def decode(data: bytes, ext: str) -> np.ndarray:
    """Whole file -> H x W or H x W x 3 (R, G, B) code values, uint8 or uint16."""
    return _module(ext).decode(data)


def encode(img: np.ndarray, ext: str, bit_depth: int, **kw) -> bytes:
    """Code values -> file bytes for `ext`. Keyword arguments go to the format's encoder
    (DPX: big_endian, frame_rate, timecode...; TIFF takes none)."""
    return _module(ext).encode(img, bit_depth=bit_depth, **kw)


# BT.709 luma coefficients in 16-bit fixed point; they sum to exactly 1 << 16, so equal
# R, G, B give back that value exactly. round(0.2126 * 65536) = 13933,
# round(0.7152 * 65536) = 46871, round(0.0722 * 65536) = 4732.
LUMA_709_FIXED = (13933, 46871, 4732)
_FRAC_BITS = 16
assert sum(LUMA_709_FIXED) == 1 << _FRAC_BITS


def luma_of_rgb(img: np.ndarray, bit_depth: int) -> np.ndarray:
    """H x W x 3 (R, G, B) code values -> H x W luma code values, same depth and dtype.

    Y' = 0.2126 R' + 0.7152 G' + 0.0722 B' (BT.709 luma, applied to the code values as
    they are: no range or transfer conversion), in integer fixed point
    Y' = (13933 R' + 46871 G' + 4732 B' + 32768) >> 16, i.e. rounded to nearest (halves
    up): exact, the same on every machine, and R' = G' = B' = v gives v. A black-and-white
    scan delivered as RGB thus keeps its code values bit for bit.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"luma_of_rgb wants H x W x 3, got shape {img.shape}")
    if not 1 <= bit_depth <= 16:
        raise ValueError(f"bit depth {bit_depth} outside 1..16")
    kr, kg, kb = LUMA_709_FIXED
    # 65536 * 65535 + 32768 < 2**32: the sum fits uint32 for any 16-bit input.
    y = img[..., 0].astype(np.uint32) * kr  # H x W uint32
    y += img[..., 1].astype(np.uint32) * kg
    y += img[..., 2].astype(np.uint32) * kb
    y += 1 << (_FRAC_BITS - 1)
    y >>= _FRAC_BITS
    return y.astype(img.dtype)  # H x W, dtype of img
