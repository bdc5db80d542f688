"""TIFF film scans (baseline TIFF, "II" or "MM"): header from the first IFD, decoding and
encoding through OpenCV (libtiff).

Scanners write 16-bit gray or RGB TIFF; 10- and 12-bit scans come in 16-bit containers,
so the bit depth reported is the one stored (16). BigTIFF, palette, CMYK, YCbCr,
min-is-white, float and signed samples and extra (alpha) channels are refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.io.image import ImageFormatError, ImageHeader, NeedMoreBytes

# The bytes to read first: the IFD of most scanners' files lies at 8, and 64 KiB cover
# it with its out-of-line values. libtiff (OpenCV, FFmpeg...) writes the IFD after the
# image data: then NeedMoreBytes says how far to read.
HEADER_READ_SIZE = 1 << 16

_TAG_WIDTH, _TAG_HEIGHT, _TAG_BITS, _TAG_COMPRESSION = 256, 257, 258, 259
_TAG_PHOTOMETRIC, _TAG_STRIP_OFFSETS, _TAG_SAMPLES, _TAG_STRIP_COUNTS = 262, 273, 277, 279
_TAG_TILE_OFFSETS, _TAG_TILE_COUNTS, _TAG_EXTRA, _TAG_SAMPLE_FORMAT = 324, 325, 338, 339

_PHOTOMETRIC_GRAY, _PHOTOMETRIC_RGB = 1, 2  # BlackIsZero, RGB
_UNCOMPRESSED = 1
# TIFF field types we read: BYTE, SHORT, LONG.
_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4)}


@dataclass(frozen=True)
class _Entry:
    """One IFD entry: its values lie at `at` (inline or out of line)."""

    type: int
    count: int
    at: int


class _Ifd:
    """The first IFD of a TIFF, reading values on demand; raises NeedMoreBytes for
    values beyond the bytes given."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.e, ifd = _byte_order(data)
        self.entries = _entries(data, self.e, ifd)

    def require(self, tags: tuple[int, ...]) -> None:
        """NeedMoreBytes once for all the values of `tags` that lie beyond the data."""
        end = max((self._end(t) for t in tags if t in self.entries), default=0)
        if end > len(self.data):
            raise NeedMoreBytes(end, "TIFF tag values")

    def _end(self, tag: int) -> int:
        entry = self.entries[tag]
        if entry.type not in _TYPES:
            raise ImageFormatError(f"TIFF tag {tag} has unexpected field type {entry.type}")
        return entry.at + _TYPES[entry.type][1] * entry.count

    def values(self, tag: int, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
        entry = self.entries.get(tag)
        if entry is None:
            if default is None:
                raise ImageFormatError(f"TIFF lacks required tag {tag}")
            return default
        self.require((tag,))
        code = _TYPES[entry.type][0]
        return struct.unpack_from(f"{self.e}{entry.count}{code}", self.data, entry.at)

    def value(self, tag: int, default: int | None = None) -> int:
        return self.values(tag, None if default is None else (default,))[0]


def _byte_order(data: bytes) -> tuple[str, int]:
    """(struct byte order, offset of the first IFD)."""
    if len(data) < 8:
        raise NeedMoreBytes(8, "TIFF header")
    order = bytes(data[:2])
    if order not in (b"II", b"MM"):
        raise ImageFormatError(f"not a TIFF file (bad byte order mark {order!r})")
    e = "<" if order == b"II" else ">"
    magic, ifd = struct.unpack_from(e + "HI", data, 2)
    if magic == 43:
        raise ImageFormatError("BigTIFF is not supported")
    if magic != 42:
        raise ImageFormatError(f"not a TIFF file (bad magic {magic})")
    return e, ifd


def _entries(data: bytes, e: str, ifd: int) -> dict[int, _Entry]:
    if ifd < 8:
        raise ImageFormatError(f"TIFF first IFD offset {ifd} is not valid")
    if ifd + 2 > len(data):
        raise NeedMoreBytes(ifd + 2, "TIFF IFD")
    (n,) = struct.unpack_from(e + "H", data, ifd)
    end = ifd + 2 + 12 * n
    if end > len(data):
        raise NeedMoreBytes(end, "TIFF IFD")
    entries = {}
    for k in range(n):
        at = ifd + 2 + 12 * k
        tag, typ, count = struct.unpack_from(e + "HHI", data, at)
        size = _TYPES.get(typ, ("", 0))[1] * count
        inline = size <= 4 and typ in _TYPES
        entries[tag] = _Entry(typ, count, at + 8 if inline else _u32(data, at + 8, e))
    return entries


def _u32(data: bytes, off: int, e: str) -> int:
    return struct.unpack_from(e + "I", data, off)[0]


def read_header(data: bytes) -> ImageHeader:
    """Parse the first IFD. `data`: the first HEADER_READ_SIZE (64 KiB) bytes of the
    file, or all of it. Where the IFD or the values it points to lie further on (libtiff
    writes the IFD after the image), raises NeedMoreBytes(offset_needed): read the first
    `offset_needed` bytes and call again (at most three rounds: IFD count, entries,
    out-of-line values)."""
    return _header(_Ifd(data))


_HEADER_TAGS = (
    _TAG_WIDTH, _TAG_HEIGHT, _TAG_BITS, _TAG_COMPRESSION, _TAG_PHOTOMETRIC, _TAG_SAMPLES,
    _TAG_STRIP_COUNTS, _TAG_TILE_COUNTS, _TAG_EXTRA, _TAG_SAMPLE_FORMAT,
)


def _header(ifd: _Ifd) -> ImageHeader:
    ifd.require(_HEADER_TAGS)
    width, height = ifd.value(_TAG_WIDTH), ifd.value(_TAG_HEIGHT)
    channels = ifd.value(_TAG_SAMPLES, 1)
    _check_kind(ifd, channels)
    bits = _bit_depth(ifd)
    compression = ifd.value(_TAG_COMPRESSION, _UNCOMPRESSED)
    return ImageHeader(
        width=width,
        height=height,
        channels=channels,
        bit_depth=bits,
        big_endian=ifd.e == ">",
        data_offset=0,
        data_size=sum(_counts(ifd)) if compression == _UNCOMPRESSED else 0,
        frame_rate=None,
        timecode=None,
        format="tiff",
    )


def _bit_depth(ifd: _Ifd) -> int:
    bits = set(ifd.values(_TAG_BITS, (1,)))
    if len(bits) != 1:
        raise ImageFormatError(f"TIFF channels of different bit depths {sorted(bits)}")
    (depth,) = bits
    if depth not in (8, 16):
        raise ImageFormatError(f"unsupported TIFF bit depth {depth} (supported: 8, 16)")
    return depth


def _check_kind(ifd: _Ifd, channels: int) -> None:
    if channels not in (1, 3) or ifd.entries.get(_TAG_EXTRA):
        raise ImageFormatError(
            f"unsupported TIFF with {channels} samples per pixel (supported: gray, RGB)"
        )
    photometric = ifd.value(_TAG_PHOTOMETRIC, _PHOTOMETRIC_RGB if channels == 3 else 1)
    want = _PHOTOMETRIC_GRAY if channels == 1 else _PHOTOMETRIC_RGB
    if photometric != want:
        raise ImageFormatError(
            f"unsupported TIFF photometric interpretation {photometric} with {channels} "
            "channel(s) (supported: 1 BlackIsZero gray, 2 RGB)"
        )
    formats = set(ifd.values(_TAG_SAMPLE_FORMAT, (1,)))
    if formats != {1}:
        raise ImageFormatError(
            f"unsupported TIFF sample format {sorted(formats)} (1, unsigned integers, only)"
        )


def _counts(ifd: _Ifd) -> tuple[int, ...]:
    """Byte counts of the strips (or tiles)."""
    if _TAG_STRIP_COUNTS in ifd.entries:
        return ifd.values(_TAG_STRIP_COUNTS)
    return ifd.values(_TAG_TILE_COUNTS)


def _offsets(ifd: _Ifd) -> tuple[int, ...]:
    if _TAG_STRIP_OFFSETS in ifd.entries:
        return ifd.values(_TAG_STRIP_OFFSETS)
    return ifd.values(_TAG_TILE_OFFSETS)


def decode(data: bytes) -> np.ndarray:
    """Whole TIFF file -> H x W (gray) or H x W x 3 (R, G, B) uint8 / uint16 code values.
    Raises ImageFormatError for a truncated file (strips beyond its end), a kind we do
    not read, or a decoded image that disagrees with the header."""
    try:
        ifd = _Ifd(data)
        header = _header(ifd)
        offsets, counts = _offsets(ifd), _counts(ifd)
    except NeedMoreBytes as exc:
        raise ImageFormatError(f"truncated TIFF file: {exc}") from None
    end = max((o + c for o, c in zip(offsets, counts)), default=0)
    if len(offsets) != len(counts) or end > len(data):
        raise ImageFormatError(
            f"truncated TIFF file: {len(data)} bytes, its strips end at {end}"
        )
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageFormatError("TIFF file cannot be decoded (OpenCV/libtiff refused it)")
    return _checked(img, header)


def _checked(img: np.ndarray, header: ImageHeader) -> np.ndarray:
    """OpenCV's BGR -> RGB, after checking size, channels and depth against the header."""
    want = np.uint8 if header.bit_depth == 8 else np.uint16
    channels = 1 if img.ndim == 2 else img.shape[2]
    if img.shape[:2] != (header.height, header.width) or channels != header.channels:
        raise ImageFormatError(
            f"TIFF decoded as {img.shape}, header says {header.height}x{header.width}"
            f"x{header.channels}"
        )
    if img.dtype != want:
        raise ImageFormatError(f"TIFF decoded as {img.dtype}, header says {header.bit_depth} bits")
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # H x W x 3, R, G, B
    return img  # H x W


def encode(img: np.ndarray, bit_depth: int = 16) -> bytes:
    """H x W (gray) or H x W x 3 (R, G, B) code values -> an uncompressed little-endian
    TIFF of `bit_depth` 16 (or 8) bits per sample. 10- and 12-bit code values are stored
    as they are in 16-bit samples (not scaled)."""
    if bit_depth not in (8, 16):
        raise ImageFormatError(f"unsupported TIFF bit depth {bit_depth} (8 or 16)")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ImageFormatError(f"TIFF encode wants H x W or H x W x 3, got shape {img.shape}")
    if not np.issubdtype(img.dtype, np.integer):
        raise ImageFormatError(f"TIFF encode wants integer code values, got {img.dtype}")
    if img.size and (int(img.min()) < 0 or int(img.max()) >= 1 << bit_depth):
        raise ImageFormatError(f"code values do not fit {bit_depth} bits")
    samples = img.astype(np.uint8 if bit_depth == 8 else np.uint16)
    if samples.ndim == 3:
        samples = cv2.cvtColor(samples, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR order
    ok, buf = cv2.imencode(".tiff", samples, [cv2.IMWRITE_TIFF_COMPRESSION, _UNCOMPRESSED])
    if not ok:
        raise ImageFormatError("OpenCV could not write the TIFF")
    return buf.tobytes()
