"""TIFF: our header parser and decoder on files written by OpenCV (libtiff), by FFmpeg's
TIFF encoder and by hand (big-endian, IFD first, as scanners write them)."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from pipeline.io import image, tiff
from pipeline.io.image import ImageFormatError, NeedMoreBytes

W, H = 7, 5


def _random(channels: int, bit_depth: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (H, W) if channels == 1 else (H, W, 3)
    img = rng.integers(0, 1 << bit_depth, shape)
    img.flat[:2] = (0, (1 << bit_depth) - 1)
    return img.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _ffmpeg_tiff(img: np.ndarray, compression: str) -> bytes:
    fmt = "gray16le" if img.ndim == 2 else "rgb48le"
    ctx = av.CodecContext.create("tiff", "w")
    ctx.width, ctx.height, ctx.pix_fmt = W, H, fmt
    ctx.time_base = Fraction(1, 24)
    ctx.options = {"compression_algo": compression}
    frame = av.VideoFrame.from_ndarray(img, format=fmt)
    return bytes((ctx.encode(frame) + ctx.encode(None))[0])


def _scanner_tiff(img: np.ndarray) -> bytes:
    """A big-endian ("MM") uncompressed 16-bit TIFF with its IFD first and two strips,
    written here byte by byte: the layout of scanner files, which neither OpenCV nor
    FFmpeg write."""
    spp = 1 if img.ndim == 2 else 3
    rows = (H + 1) // 2
    strips = [img[:rows].astype(">u2").tobytes(), img[rows:].astype(">u2").tobytes()]
    n = 11
    extra = 8 + 2 + 12 * n + 4  # out-of-line values follow the IFD
    bits_at, offsets_at, counts_at = extra, extra + 6, extra + 14
    data_at = extra + 22
    offsets = (data_at, data_at + len(strips[0]))
    short = lambda tag, v: struct.pack(">HHIH2x", tag, 3, 1, v)  # noqa: E731
    long_ = lambda tag, v, count=1: struct.pack(">HHII", tag, 4, count, v)  # noqa: E731
    bits = short(258, 16) if spp == 1 else struct.pack(">HHII", 258, 3, 3, bits_at)
    entries = [
        long_(256, W), long_(257, H), bits,
        short(259, 1), short(262, 1 if spp == 1 else 2),
        long_(273, offsets_at, 2), short(277, spp), long_(278, rows), long_(279, counts_at, 2),
        short(284, 1), short(339, 1),
    ]
    assert len(entries) == n
    out = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", n) + b"".join(entries)
    out += struct.pack(">I", 0) + struct.pack(">3H", 16, 16, 16)
    out += struct.pack(">2I", *offsets) + struct.pack(">2I", *map(len, strips))
    assert len(out) == data_at
    return out + b"".join(strips)


def _header_in_rounds(data: bytes) -> tuple[image.ImageHeader, int]:
    """What a sequence reader does: read 64 KiB, then as far as NeedMoreBytes says."""
    have, rounds = min(len(data), tiff.HEADER_READ_SIZE), 0
    while True:
        try:
            return tiff.read_header(data[:have]), rounds
        except NeedMoreBytes as exc:
            assert exc.offset_needed > have
            have, rounds = exc.offset_needed, rounds + 1


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip(channels, bit_depth):
    img = _random(channels, bit_depth)
    data = tiff.encode(img, bit_depth)
    header = tiff.read_header(data)
    assert (header.width, header.height, header.channels) == (W, H, channels)
    assert (header.bit_depth, header.big_endian, header.format) == (bit_depth, False, "tiff")
    assert header.data_size == img.nbytes  # uncompressed
    assert (header.frame_rate, header.timecode, header.data_offset) == (None, None, 0)
    out = tiff.decode(data)
    assert out.dtype == img.dtype
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("channels", [1, 3])
def test_opencv_written_compressed(channels):
    """OpenCV's own default (LZW) file: RGB order and values, data_size unknown."""
    img = _random(channels, seed=3)
    bgr = img if channels == 1 else img[..., ::-1]
    ok, buf = cv2.imencode(".tif", np.ascontiguousarray(bgr))
    assert ok
    data = buf.tobytes()
    header, _ = _header_in_rounds(data)
    assert (header.channels, header.bit_depth, header.data_size) == (channels, 16, 0)
    np.testing.assert_array_equal(tiff.decode(data), img)


@pytest.mark.parametrize("compression", ["raw", "packbits", "lzw", "deflate"])
@pytest.mark.parametrize("channels", [1, 3])
def test_ffmpeg_written(channels, compression):
    img = _random(channels, seed=5)
    data = _ffmpeg_tiff(img, compression)
    header, _ = _header_in_rounds(data)
    assert (header.width, header.height, header.channels, header.bit_depth) == (W, H, channels, 16)
    assert header.data_size == (img.nbytes if compression == "raw" else 0)
    np.testing.assert_array_equal(tiff.decode(data), img)


@pytest.mark.parametrize("channels", [1, 3])
def test_big_endian_scanner_layout(channels):
    img = _random(channels, seed=9)
    data = _scanner_tiff(img)
    header, rounds = _header_in_rounds(data)
    assert rounds == 0  # IFD first: the first bytes suffice
    assert header.big_endian and header.data_size == img.nbytes
    assert tiff.read_header(data[:200]).channels == channels  # header bytes only
    np.testing.assert_array_equal(tiff.decode(data), img)


def test_need_more_bytes_when_ifd_lies_beyond():
    """libtiff writes the IFD after the image: the caller is told how far to read."""
    data = tiff.encode(np.zeros((120, 160, 3), np.uint16))  # 115 KiB of pixels first
    with pytest.raises(NeedMoreBytes) as info:
        tiff.read_header(data[:16])
    assert 16 < info.value.offset_needed <= len(data)
    assert isinstance(info.value, ImageFormatError)
    header, rounds = _header_in_rounds(data)
    assert 1 <= rounds <= 3 and header == tiff.read_header(data)
    assert (header.width, header.height, header.channels) == (160, 120, 3)


def test_need_more_bytes_pickles():
    import pickle

    exc = pickle.loads(pickle.dumps(NeedMoreBytes(1234, "TIFF IFD")))
    assert exc.offset_needed == 1234 and "1234" in str(exc)


def test_truncated():
    data = _scanner_tiff(_random(1))
    with pytest.raises(ImageFormatError, match="truncated TIFF file"):
        tiff.decode(data[:-1])
    data = tiff.encode(_random(1))  # IFD at the end: cut off, the strips are not located
    with pytest.raises(ImageFormatError, match="truncated TIFF file"):
        tiff.decode(data[: len(data) // 2])


def test_bad_magic():
    with pytest.raises(ImageFormatError, match="not a TIFF file"):
        tiff.read_header(b"PK\x03\x04" + bytes(60))
    with pytest.raises(ImageFormatError, match="not a TIFF file"):
        tiff.decode(b"II\x2b\x01" + bytes(60))


@pytest.mark.parametrize(
    "img, message",
    [
        (np.zeros((H, W, 4), np.uint16), "4 samples per pixel"),
        (np.zeros((H, W), np.float32), "sample format"),
    ],
)
def test_unsupported_kinds(img, message):
    ok, buf = cv2.imencode(".tiff", img)
    assert ok
    with pytest.raises(ImageFormatError, match=message):
        tiff.decode(buf.tobytes())


def test_encode_refuses():
    with pytest.raises(ImageFormatError, match="bit depth 12"):
        tiff.encode(np.zeros((2, 2), np.uint16), 12)
    with pytest.raises(ImageFormatError, match="do not fit 8 bits"):
        tiff.encode(np.full((2, 2), 256, np.uint16), 8)


def test_ten_bit_values_stay_in_16_bit_container():
    img = _random(1, bit_depth=10)
    data = image.encode(img, ".tif", 16)
    assert image.read_header(data, ".TIFF").bit_depth == 16
    np.testing.assert_array_equal(image.decode(data, "tiff"), img)  # not scaled
