"""DPX (SMPTE 268M) film scans: header, decoding and encoding of one frame, numpy only.

What is read: luma (descriptor 6) and RGB (descriptor 50) images, big-endian ("SDPX") and
little-endian ("XPDS"), 8 and 16 bits (packing 0), 10 bits filled into 32-bit words
(packing 1 "method A", padding in the low 2 bits, or packing 2 "method B", padding in the
high 2 bits) and 12 bits in 16-bit words (packing 1: the high 12 bits, packing 2: the low
12 bits). Uncompressed only (encoding 0). Image element 0 only; orientation is ignored
(as FFmpeg does). 10-bit packing 0 ("packed", samples across words) is not read.

Sample order inside a 10-bit word follows FFmpeg (and OpenImageIO): RGB puts one pixel in
one word, R in bits 31..22, G in 21..12, B in 11..2; luma puts the first of three pixels
in bits 11..2, the second in 21..12, the third in 31..22. Each scan line starts on a new
32-bit word (SMPTE 268M table 3c), except the 10-bit files of Scanity and Lasergraphics
scanners, which run the samples on across lines (recognised by their creator / input
device fields, like FFmpeg).

`encode` writes SMPTE 268M v2.0 files: the 1664-byte generic header, film and TV industry
headers (2048 bytes in all), image data at 2048, lines padded to 32-bit words. Fields we
do not know are "undefined" (all bits set) as the standard asks; text fields are empty,
creation time included, so the same frame gives the same bytes. What is written:

- descriptor 6 (Y) or 50 (RGB); transfer characteristic and colorimetric specification
  0, "user-defined": the code values are whatever the scan is (no printing density, no
  video standard is claimed); callers may pass others.
- reference low / high data code 0 and 2**bits - 1 (quantities undefined); TV header
  black level 0 and white level 2**bits - 1: full-range code values (FFmpeg reads this
  pair as full range).
- frame rate in the film header (1724) and the TV header (1940) as float32; SMPTE
  timecode at 1920 in BCD, drop-frame flag (bit 6 of the frames byte) for "HH:MM:SS;FF".
- pixel aspect ratio 1:1, interlace 0 (progressive), orientation 0 (left to right, top
  to bottom), unencrypted.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from pipeline.io.image import ImageFormatError, ImageHeader, NeedMoreBytes

MAGIC = b"SDPX"  # as big-endian files store it; little-endian files hold b"XPDS"
GENERIC_HEADER_SIZE = 1664
INDUSTRY_HEADER_SIZE = 384  # film (256) + television (128)
HEADER_SIZE = GENERIC_HEADER_SIZE + INDUSTRY_HEADER_SIZE  # 2048: where encode puts data
UNDEFINED = 0xFFFFFFFF

DESCRIPTOR_LUMA = 6
DESCRIPTOR_RGB = 50
TRANSFER_USER_DEFINED = 0
COLORIMETRIC_USER_DEFINED = 0
CREATOR = "filmcolor"

# Offsets of the fields we use (SMPTE 268M-2003).
_OFF_DATA, _OFF_FILE_SIZE, _OFF_CREATOR = 4, 16, 160
_OFF_WIDTH, _OFF_HEIGHT = 772, 776
_OFF_ELEMENT = 780  # image element 0 (72 bytes; 8 elements)
_OFF_DESCRIPTOR, _OFF_BITS, _OFF_PACKING, _OFF_ENCODING = 800, 803, 804, 806
_OFF_EOL_PADDING = 812
_OFF_INPUT_DEVICE = 1556
_OFF_FILM_RATE = 1724
_OFF_TIMECODE, _OFF_TV_RATE = 1920, 1940

# Scanners whose 10-bit lines are not padded to a whole word (as FFmpeg's dpx.c).
_UNPADDED_10BIT_CREATORS = (b"Lasergraphics Inc.",)
_UNPADDED_10BIT_DEVICES = (b"Scanity",)

_DESCRIPTORS = {DESCRIPTOR_LUMA: 1, DESCRIPTOR_RGB: 3}
# 10-bit filled words: bit position (above the padding) of the 1st, 2nd, 3rd sample.
_SLOTS_10 = {1: (0, 10, 20), 3: (20, 10, 0)}

# Common film and video rates as the float a header holds them in -> exact.
_NTSC_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120))


@dataclass(frozen=True)
class _Layout:
    """Where the samples lie in the file: what decode needs beyond the public header."""

    width: int
    height: int
    channels: int
    bit_depth: int
    packing: int
    stride: int  # bytes from one line to the next
    row_bytes: int  # bytes of samples in a line (stride less padding)
    continuous: bool  # 10-bit samples run on across lines (Scanity, Lasergraphics)

    @property
    def data_size(self) -> int:
        if self.continuous:
            return _words_10(self.width * self.height * self.channels) * 4
        return self.stride * self.height


def _words_10(samples: int) -> int:
    """32-bit words holding `samples` 10-bit samples, three to a word."""
    return (samples + 2) // 3


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _row_bytes(width: int, channels: int, bit_depth: int) -> int:
    samples = width * channels
    if bit_depth == 8:
        return samples
    if bit_depth == 10:
        return _words_10(samples) * 4
    return samples * 2  # 12 bits in 16-bit words, or 16 bits


# ---- header -------------------------------------------------------------------------


def read_header(data: bytes) -> ImageHeader:
    """Parse a DPX header. `data`: the first 2048 bytes of the file (or the whole file;
    a file whose image data starts earlier, as FFmpeg's at 1664, needs only that much).

    Raises NeedMoreBytes if fewer bytes are given, ImageFormatError for what is not a
    DPX file or a kind we cannot decode.
    """
    return _parse(data)[0]


def _parse(data: bytes) -> tuple[ImageHeader, _Layout]:
    big = _byte_order(data)
    e = ">" if big else "<"
    if len(data) < 8:
        raise NeedMoreBytes(HEADER_SIZE, "DPX header")
    offset = _u32(data, _OFF_DATA, e)
    if offset <= _OFF_EOL_PADDING + 4:
        raise ImageFormatError(f"DPX image data offset {offset} lies inside the header")
    need = min(offset, HEADER_SIZE)
    if len(data) < need:
        raise NeedMoreBytes(need, "DPX header")
    layout = _layout(data, e, offset)
    header = ImageHeader(
        width=layout.width,
        height=layout.height,
        channels=layout.channels,
        bit_depth=layout.bit_depth,
        big_endian=big,
        data_offset=offset,
        data_size=layout.data_size,
        frame_rate=_frame_rate(data, e, offset),
        timecode=_timecode(data, e, offset),
        format="dpx",
    )
    return header, layout


def _byte_order(data: bytes) -> bool:
    """True for big-endian, from the magic number."""
    magic = bytes(data[:4])
    if magic == MAGIC:
        return True
    if magic == MAGIC[::-1]:
        return False
    if len(magic) < 4:
        raise NeedMoreBytes(4, "DPX magic number")
    raise ImageFormatError(f"not a DPX file (bad magic {magic!r})")


def _u32(data: bytes, off: int, e: str) -> int:
    return struct.unpack_from(e + "I", data, off)[0]


def _u16(data: bytes, off: int, e: str) -> int:
    return struct.unpack_from(e + "H", data, off)[0]


def _layout(data: bytes, e: str, offset: int) -> _Layout:
    width, height = _u32(data, _OFF_WIDTH, e), _u32(data, _OFF_HEIGHT, e)
    descriptor, bits = data[_OFF_DESCRIPTOR], data[_OFF_BITS]
    packing, encoding = _u16(data, _OFF_PACKING, e), _u16(data, _OFF_ENCODING, e)
    if width in (0, UNDEFINED) or height in (0, UNDEFINED):
        raise ImageFormatError(f"DPX image size {width}x{height} is not valid")
    if descriptor not in _DESCRIPTORS:
        raise ImageFormatError(
            f"unsupported DPX descriptor {descriptor} (supported: 6 luma, 50 RGB)"
        )
    if encoding != 0:
        raise ImageFormatError(f"unsupported DPX encoding {encoding} (run-length coded)")
    _check_packing(bits, packing)
    channels = _DESCRIPTORS[descriptor]
    row = _row_bytes(width, channels, bits)
    pad = _u32(data, _OFF_EOL_PADDING, e)
    pad = 0 if pad == UNDEFINED else pad
    continuous = bits == 10 and _unpadded_10bit_scanner(data, offset)
    return _Layout(width, height, channels, bits, packing, _align4(row + pad), row, continuous)


def _check_packing(bits: int, packing: int) -> None:
    if bits in (8, 16):
        return  # samples fill bytes / 16-bit words: packing changes nothing
    if bits not in (10, 12):
        raise ImageFormatError(f"unsupported DPX bit depth {bits} (supported: 8, 10, 12, 16)")
    if packing == 0:
        raise ImageFormatError(
            f"unsupported DPX packing 0 at {bits} bits (samples packed across 32-bit "
            "words; only filled words, packing 1 or 2, are read)"
        )
    if packing not in (1, 2):
        raise ImageFormatError(f"unsupported DPX packing {packing} at {bits} bits")


def _text(data: bytes, off: int, size: int) -> bytes:
    return bytes(data[off : off + size]).split(b"\0", 1)[0]


def _unpadded_10bit_scanner(data: bytes, offset: int) -> bool:
    """Scanity and Lasergraphics 10-bit files do not start lines on a new word."""
    creator = _text(data, _OFF_CREATOR, 100)
    device = _text(data, _OFF_INPUT_DEVICE, 32) if offset >= _OFF_INPUT_DEVICE + 32 else b""
    return creator.startswith(_UNPADDED_10BIT_CREATORS) or device.startswith(
        _UNPADDED_10BIT_DEVICES
    )


def _present(data: bytes, offset: int, field: int, size: int = 4) -> bool:
    """A header field is there if it lies before the image data and in the bytes given."""
    return field + size <= min(offset, len(data))


def _frame_rate(data: bytes, e: str, offset: int) -> Fraction | None:
    """Film header rate, else the TV header's; None where neither is set."""
    for field in (_OFF_FILM_RATE, _OFF_TV_RATE):
        if _present(data, offset, field) and _u32(data, field, e) != UNDEFINED:
            rate = exact_rate(struct.unpack_from(e + "f", data, field)[0])
            if rate is not None:
                return rate
    return None


def exact_rate(value: float) -> Fraction | None:
    """The rate a float header field means: 23.976 -> 24000/1001 (29.97, 47.952, 59.94,
    119.88 likewise), 24.0 -> 24; other values to the nearest 1/1000. None for 0, NaN,
    infinite or negative."""
    if not math.isfinite(value) or value <= 0:
        return None
    if abs(value - round(value)) < 1e-3:
        return Fraction(round(value))
    for rate in _NTSC_RATES:
        if abs(value - rate) < 2e-3:
            return rate
    return Fraction(value).limit_denominator(1000)


# ---- timecode ---------------------------------------------------------------------------

_TC_RE = re.compile(r"^(\d\d):(\d\d):(\d\d)([:;])(\d\d)$")
_DROP_FRAME = 0x40  # bit 6 of the frames byte (SMPTE 12M), as FFmpeg reads it


def _timecode(data: bytes, e: str, offset: int) -> str | None:
    if not _present(data, offset, _OFF_TIMECODE):
        return None
    return bcd_to_timecode(_u32(data, _OFF_TIMECODE, e))


def bcd_to_timecode(value: int) -> str | None:
    """DPX TV header time code (0xHHMMSSFF in BCD, flag bits masked) -> "HH:MM:SS:FF",
    ";" before the frames when the drop-frame flag is set. None when unset (all ones) or
    not valid BCD (a header field is not worth refusing the frame for)."""
    if value == UNDEFINED:
        return None
    fields = (value >> 24 & 0x3F, value >> 16 & 0x7F, value >> 8 & 0x7F, value & 0x3F)
    if any(b & 0xF > 9 for b in fields):
        return None
    hh, mm, ss, ff = (10 * (b >> 4) + (b & 0xF) for b in fields)
    if hh > 23 or mm > 59 or ss > 59:
        return None
    sep = ";" if value & _DROP_FRAME else ":"
    return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"


def timecode_to_bcd(timecode: str) -> int:
    """"HH:MM:SS:FF" (or ";FF", drop frame) -> the DPX TV header's BCD word."""
    m = _TC_RE.match(timecode)
    if not m:
        raise ImageFormatError(f"timecode {timecode!r} is not HH:MM:SS:FF or HH:MM:SS;FF")
    hh, mm, ss, ff = (int(m.group(i)) for i in (1, 2, 3, 5))
    if hh > 23 or mm > 59 or ss > 59 or ff > 39:
        raise ImageFormatError(f"timecode {timecode!r} out of range")
    value = 0
    for v in (hh, mm, ss, ff):
        value = value << 8 | (v // 10) << 4 | v % 10
    return value | (_DROP_FRAME if m.group(4) == ";" else 0)


# ---- decoding ---------------------------------------------------------------------------


def decode(data: bytes) -> np.ndarray:
    """Whole DPX file -> H x W (luma) or H x W x 3 (R, G, B) native code values: uint8
    for 8 bits, else uint16 (10 bits are 0..1023, not scaled). Raises ImageFormatError for
    a truncated file (shorter than its header says) or a kind we do not read."""
    header, layout = _parse(data)
    layout = _check_length(data, header, layout)
    e = ">" if header.big_endian else "<"
    if layout.bit_depth == 8:
        flat = _rows(data, header.data_offset, layout, np.dtype(np.uint8)).copy()
    elif layout.bit_depth == 10:
        flat = _decode_10(data, header.data_offset, layout, e)
    else:
        flat = _rows(data, header.data_offset, layout, np.dtype(e + "u2")).astype(np.uint16)
        if layout.bit_depth == 12:
            flat = _from_12_in_16(flat, layout.packing)
    shape = (layout.height, layout.width) + ((3,) if layout.channels == 3 else ())
    return np.ascontiguousarray(flat.reshape(shape))


def _check_length(data: bytes, header: ImageHeader, layout: _Layout) -> _Layout:
    """The layout to read, after making sure the file holds it.

    Like FFmpeg, accepts lines not padded to a word (old FFmpeg wrote such files), but only
    from a file that is complete by its own header's file size.
    """
    have = len(data) - header.data_offset
    if have >= layout.data_size:
        return layout
    unpadded = layout.row_bytes * layout.height
    if (
        not layout.continuous
        and layout.stride != layout.row_bytes
        and have >= unpadded
        and _u32(data, _OFF_FILE_SIZE, ">" if header.big_endian else "<") == len(data)
    ):
        return replace(layout, stride=layout.row_bytes)
    raise ImageFormatError(
        f"truncated DPX file: {len(data)} bytes, the header says "
        f"{header.data_offset + layout.data_size} ({header.width}x{header.height}, "
        f"{header.channels} channel(s), {header.bit_depth} bits)"
    )


def _rows(data: bytes, offset: int, layout: _Layout, dtype: np.dtype) -> np.ndarray:
    """H x (W * channels) samples of `dtype` (a read-only view), line padding skipped."""
    per_line = layout.stride // dtype.itemsize
    rows = np.frombuffer(data, dtype=dtype, count=per_line * layout.height, offset=offset)
    return rows.reshape(layout.height, per_line)[:, : layout.width * layout.channels]


def _from_12_in_16(samples: np.ndarray, packing: int) -> np.ndarray:
    """12-bit samples in 16-bit words: method A keeps them in the high bits."""
    if packing == 1:
        samples >>= 4
    else:
        samples &= 0xFFF
    return samples


def _decode_10(data: bytes, offset: int, layout: _Layout, e: str) -> np.ndarray:
    """H x (W * channels) uint16 from 10-bit samples filled three to a 32-bit word."""
    per_line = layout.width * layout.channels
    if layout.continuous:
        count = _words_10(per_line * layout.height)
        words = np.frombuffer(data, dtype=e + "u4", count=count, offset=offset)[None, :]
        return _unpack_10(words, layout)[0, : per_line * layout.height]
    words = _rows(data, offset, layout, np.dtype(e + "u4"))  # H x stride/4, file order
    return _unpack_10(words[:, : _words_10(per_line)], layout)[:, :per_line]


def _unpack_10(words: np.ndarray, layout: _Layout) -> np.ndarray:
    """N x K words -> N x 3K uint16 samples, in the order FFmpeg reads them."""
    pad = 2 if layout.packing == 1 else 0  # method A: padding in the low bits
    w = words.astype(np.uint32)  # N x K, native byte order
    out = np.empty(w.shape + (3,), np.uint16)  # N x K x 3
    for i, shift in enumerate(_SLOTS_10[layout.channels]):
        out[..., i] = (w >> (shift + pad)) & 0x3FF
    return out.reshape(w.shape[0], -1)


# ---- encoding ---------------------------------------------------------------------------


def encode(
    img: np.ndarray,
    bit_depth: int,
    big_endian: bool = True,
    frame_rate: Fraction | None = None,
    timecode: str | None = None,
    *,
    transfer: int = TRANSFER_USER_DEFINED,
    colorimetric: int = COLORIMETRIC_USER_DEFINED,
) -> bytes:
    """H x W (luma) or H x W x 3 (R, G, B) code values at `bit_depth` (8, 10, 12, 16) ->
    a SMPTE 268M v2.0 DPX file (see the module docstring for every field written).
    Packing: 0 for 8 and 16 bits, 1 (method A) for 10 and 12 bits."""
    channels = _channels_of(img)
    _check_values(img, bit_depth)
    height, width = img.shape[:2]
    e = ">" if big_endian else "<"
    samples = img.reshape(height, width * channels)  # H x (W * channels)
    pixels = _pack(samples, channels, bit_depth, e)
    header = _header(
        e, width, height, channels, bit_depth, len(pixels), frame_rate, timecode,
        transfer, colorimetric,
    )
    return header + pixels


def _channels_of(img: np.ndarray) -> int:
    if img.ndim == 2:
        return 1
    if img.ndim == 3 and img.shape[2] == 3:
        return 3
    raise ImageFormatError(f"DPX encode wants H x W or H x W x 3, got shape {img.shape}")


def _check_values(img: np.ndarray, bit_depth: int) -> None:
    if bit_depth not in (8, 10, 12, 16):
        raise ImageFormatError(f"unsupported DPX bit depth {bit_depth} (8, 10, 12 or 16)")
    if not np.issubdtype(img.dtype, np.integer):
        raise ImageFormatError(f"DPX encode wants integer code values, got {img.dtype}")
    if img.size and (int(img.min()) < 0 or int(img.max()) >= 1 << bit_depth):
        raise ImageFormatError(
            f"code values {int(img.min())}..{int(img.max())} do not fit {bit_depth} bits"
        )


def _pack(samples: np.ndarray, channels: int, bit_depth: int, e: str) -> bytes:
    """H x N samples -> the image data, each line padded to a 32-bit word."""
    if bit_depth == 8:
        lines = samples.astype(np.uint8)
    elif bit_depth == 10:
        lines = _pack_10(samples, channels).astype(e + "u4")
    else:
        shift = 4 if bit_depth == 12 else 0  # 12 bits: method A, the high bits
        lines = (samples.astype(np.uint16) << shift).astype(e + "u2")
    row = lines.shape[1] * lines.itemsize
    if row % 4:
        padded = np.zeros((lines.shape[0], _align4(row)), np.uint8)  # H x stride
        padded[:, :row] = lines.view(np.uint8).reshape(lines.shape[0], row)
        return padded.tobytes()
    return lines.tobytes()


def _pack_10(samples: np.ndarray, channels: int) -> np.ndarray:
    """H x N samples -> H x ceil(N / 3) uint32 words, packing 1 (method A)."""
    height, n = samples.shape
    k = _words_10(n)
    triples = np.zeros((height, k * 3), np.uint32)  # H x 3K, last word zero-filled
    triples[:, :n] = samples
    triples = triples.reshape(height, k, 3)
    words = np.zeros((height, k), np.uint32)
    for i, shift in enumerate(_SLOTS_10[channels]):
        words |= triples[..., i] << (shift + 2)
    return words


def _header(
    e: str,
    width: int,
    height: int,
    channels: int,
    bit_depth: int,
    data_size: int,
    frame_rate: Fraction | None,
    timecode: str | None,
    transfer: int,
    colorimetric: int,
) -> bytes:
    """The 2048-byte header: generic (file, image, orientation) and industry headers."""
    buf = bytearray(HEADER_SIZE)
    _file_info(buf, e, HEADER_SIZE + data_size)
    _image_info(buf, e, width, height, channels, bit_depth, transfer, colorimetric)
    _orientation(buf, e, width, height)
    rate = _rate_bits(e, frame_rate)
    _film(buf, e, rate)
    _television(buf, e, bit_depth, rate, timecode)
    return bytes(buf)


def _put(buf: bytearray, e: str, fmt: str, off: int, *values) -> None:
    struct.pack_into(e + fmt, buf, off, *values)


def _undefined(buf: bytearray, off: int, size: int) -> None:
    buf[off : off + size] = b"\xff" * size


def _file_info(buf: bytearray, e: str, file_size: int) -> None:
    buf[0:4] = MAGIC if e == ">" else MAGIC[::-1]
    _put(buf, e, "I", _OFF_DATA, HEADER_SIZE)
    buf[8:12] = b"V2.0"
    _put(buf, e, "IIIII", _OFF_FILE_SIZE, file_size, 1, GENERIC_HEADER_SIZE,
         INDUSTRY_HEADER_SIZE, 0)  # size, ditto key (new image), header sizes, no user data
    buf[_OFF_CREATOR : _OFF_CREATOR + len(CREATOR)] = CREATOR.encode()
    _put(buf, e, "I", 660, UNDEFINED)  # encryption key: unencrypted


def _image_info(
    buf: bytearray, e: str, width: int, height: int, channels: int, bit_depth: int,
    transfer: int, colorimetric: int,
) -> None:
    _put(buf, e, "HHII", 768, 0, 1, width, height)  # orientation, one element, size
    _undefined(buf, _OFF_ELEMENT, 72 * 8)  # elements 1..7 unused
    descriptor = DESCRIPTOR_LUMA if channels == 1 else DESCRIPTOR_RGB
    packing = 1 if bit_depth in (10, 12) else 0
    _put(buf, e, "IIIII", _OFF_ELEMENT, 0, 0, UNDEFINED, (1 << bit_depth) - 1, UNDEFINED)
    _put(buf, e, "BBBBHH", _OFF_DESCRIPTOR, descriptor, transfer, colorimetric, bit_depth,
         packing, 0)
    _put(buf, e, "III", 808, HEADER_SIZE, 0, 0)  # data offset, end-of-line/image padding
    buf[820:852] = bytes(32)  # element description: empty
    buf[1356:1408] = bytes(52)  # reserved


def _orientation(buf: bytearray, e: str, width: int, height: int) -> None:
    _put(buf, e, "II", 1408, 0, 0)  # x, y offset
    _undefined(buf, 1416, 8)  # x, y centre
    _put(buf, e, "II", 1424, width, height)  # original size
    _undefined(buf, 1620, 8)  # border validity
    _put(buf, e, "II", 1628, 1, 1)  # pixel aspect ratio 1:1
    _undefined(buf, 1636, 8)  # scanned size


def _rate_bits(e: str, frame_rate: Fraction | None) -> bytes:
    """The frame rate as the header's float32, or undefined."""
    if frame_rate is None:
        return b"\xff" * 4
    if not frame_rate > 0:
        raise ImageFormatError(f"frame rate {frame_rate} is not positive")
    return struct.pack(e + "f", float(frame_rate))


def _film(buf: bytearray, e: str, rate: bytes) -> None:
    _undefined(buf, 1712, 12)  # frame position, sequence length, held count
    buf[_OFF_FILM_RATE : _OFF_FILM_RATE + 4] = rate
    _undefined(buf, 1728, 4)  # shutter angle


def _television(
    buf: bytearray, e: str, bit_depth: int, rate: bytes, timecode: str | None
) -> None:
    tc = UNDEFINED if timecode is None else timecode_to_bcd(timecode)
    _put(buf, e, "II", _OFF_TIMECODE, tc, 0)  # time code, user bits
    buf[1928:1932] = bytes((0, 0xFF, 0, 0))  # progressive, field -, standard undefined
    _undefined(buf, 1932, 8)  # horizontal, vertical sampling rate
    buf[_OFF_TV_RATE : _OFF_TV_RATE + 4] = rate
    _undefined(buf, 1944, 28)  # sync offset, gamma, black level..integration time
    _put(buf, e, "f", 1952, 0.0)  # black level code value
    _put(buf, e, "f", 1964, float((1 << bit_depth) - 1))  # white level code value
