"""DPX: round trips through our encoder and decoder, and both checked against FFmpeg's own
DPX decoder and encoder (through PyAV), so the files are real DPX and the code values
agree with what every FFmpeg-based tool reads."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.io import dpx, image
from pipeline.io.image import ImageFormatError, NeedMoreBytes

DEPTHS = (8, 10, 12, 16)
W, H = 7, 5  # odd width: lines end mid-word, so the line padding is exercised


def _random(bit_depth: int, channels: int, seed: int = 0, w: int = W, h: int = H) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, 3)
    img = rng.integers(0, 1 << bit_depth, shape)
    img.flat[:2] = (0, (1 << bit_depth) - 1)  # the extremes, too
    return img.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _plane(plane, width: int, height: int, dtype: str) -> np.ndarray:
    """H x width samples of a PyAV plane, line padding skipped."""
    item = np.dtype(dtype).itemsize
    flat = np.frombuffer(bytes(plane), dtype=dtype)
    return flat[: height * plane.line_size // item].reshape(height, -1)[:, :width]


def _ffmpeg_values(frame: av.VideoFrame) -> np.ndarray:
    """The frame's code values as H x W or H x W x 3 (R, G, B), native uint8 / uint16."""
    name, w, h = frame.format.name, frame.width, frame.height
    dtype = "u1" if name in ("gray", "rgb24") else (">u2" if name.endswith("be") else "<u2")
    if name.startswith("gbrp"):
        g, b, r = (_plane(frame.planes[i], w, h, dtype) for i in range(3))
        out = np.stack([r, g, b], axis=-1)
    elif name.startswith("rgb"):
        out = _plane(frame.planes[0], 3 * w, h, dtype).reshape(h, w, 3)
    elif name.startswith("gray"):
        out = _plane(frame.planes[0], w, h, dtype)
    else:
        raise AssertionError(f"unexpected FFmpeg pixel format {name}")
    return out.astype(np.uint8 if dtype == "u1" else np.uint16)


def _ffmpeg_decode(data: bytes) -> tuple[av.VideoFrame, av.CodecContext]:
    ctx = av.CodecContext.create("dpx", "r")
    (frame,) = ctx.decode(av.Packet(data))
    return frame, ctx


def _ffmpeg_encode(frame: av.VideoFrame) -> bytes:
    ctx = av.CodecContext.create("dpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, frame.format.name
    ctx.time_base = Fraction(1, 24)
    packets = ctx.encode(frame) + ctx.encode(None)
    return bytes(packets[0])


# ---- our round trip ---------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("bit_depth", DEPTHS)
def test_round_trip_and_ffmpeg_agrees(bit_depth, channels, big_endian):
    img = _random(bit_depth, channels, seed=bit_depth + channels)
    data = dpx.encode(img, bit_depth, big_endian, Fraction(24), "10:00:00:00")

    header = dpx.read_header(data[:2048])
    assert (header.width, header.height, header.channels) == (W, H, channels)
    assert (header.bit_depth, header.big_endian, header.format) == (bit_depth, big_endian, "dpx")
    assert header.data_offset == 2048 and len(data) == 2048 + header.data_size
    assert data[:4] == (b"SDPX" if big_endian else b"XPDS")

    out = dpx.decode(data)
    assert out.dtype == img.dtype and out.shape == img.shape
    np.testing.assert_array_equal(out, img)

    frame, _ = _ffmpeg_decode(data)
    np.testing.assert_array_equal(_ffmpeg_values(frame), img)


@pytest.mark.parametrize("channels", [1, 3])
def test_10bit_wide_frame_every_width_remainder(channels):
    """Luma lines of 3k+1, 3k+2 samples end mid-word; FFmpeg must still agree."""
    for w in (1, 2, 3, 4, 5, 64):
        img = _random(10, channels, seed=w, w=w, h=3)
        data = dpx.encode(img, 10, big_endian=w % 2 == 0)
        np.testing.assert_array_equal(dpx.decode(data), img)
        np.testing.assert_array_equal(_ffmpeg_values(_ffmpeg_decode(data)[0]), img)


def test_10bit_word_layout():
    """Method A as FFmpeg reads it: RGB one pixel a word (R high); luma first pixel low."""
    rgb = np.array([[[1, 2, 3]]], np.uint16)
    word = struct.unpack(">I", dpx.encode(rgb, 10)[2048:2052])[0]
    assert word == 1 << 22 | 2 << 12 | 3 << 2
    luma = np.array([[1, 2, 3]], np.uint16)
    word = struct.unpack("<I", dpx.encode(luma, 10, big_endian=False)[2048:2052])[0]
    assert word == 1 << 2 | 2 << 12 | 3 << 22


def test_12bit_in_high_bits_of_16():
    img = np.array([[0xABC]], np.uint16)
    data = dpx.encode(img, 12)
    assert data[2048:2050] == bytes([0xAB, 0xC0])  # method A: shifted left by 4
    assert struct.unpack(">H", data[804:806])[0] == 1


@pytest.mark.parametrize(
    "rate, timecode",
    [
        (Fraction(24), "01:00:00:00"),
        (Fraction(18), "00:59:59:17"),
        (Fraction(16), "23:59:59:15"),
        (Fraction(24000, 1001), "10:00:00:00"),
        (Fraction(30000, 1001), "00:01:00;02"),
        (Fraction(25), None),
        (None, "01:02:03:04"),
        (None, None),
    ],
)
def test_frame_rate_and_timecode(rate, timecode):
    data = dpx.encode(_random(16, 1), 16, frame_rate=rate, timecode=timecode)
    header = dpx.read_header(data)
    assert header.frame_rate == rate
    assert header.timecode == timecode
    # Both industry headers carry the rate (film 1724, TV 1940).
    film, tv = (struct.unpack(">f", data[o : o + 4])[0] for o in (1724, 1940))
    if rate is None:
        assert data[1724:1728] == data[1940:1944] == b"\xff" * 4
    else:
        assert film == tv == pytest.approx(float(rate), rel=1e-6)
    frame, ctx = _ffmpeg_decode(data)
    if rate is not None:
        assert float(ctx.framerate) == pytest.approx(float(rate), abs=1e-3)
    if timecode is not None and rate is not None:
        # FFmpeg exports the timecode only when a rate is set (dpx.c tests the rate field).
        assert frame.metadata["timecode"] == timecode


def test_tv_header_rate_used_when_film_header_unset():
    data = bytearray(dpx.encode(_random(8, 1), 8, frame_rate=Fraction(25)))
    data[1724:1728] = b"\xff" * 4
    assert dpx.read_header(bytes(data)).frame_rate == Fraction(25)


@pytest.mark.parametrize(
    "value, rate",
    [(23.976, Fraction(24000, 1001)), (29.97, Fraction(30000, 1001)),
     (59.94, Fraction(60000, 1001)), (47.952, Fraction(48000, 1001)), (16.0, Fraction(16)),
     (18.0, Fraction(18)), (24.0, Fraction(24)), (12.5, Fraction(25, 2)), (0.0, None),
     (float("nan"), None), (-24.0, None)],
)
def test_exact_rate(value, rate):
    single = struct.unpack("f", struct.pack("f", value))[0]  # as a float32 field holds it
    assert dpx.exact_rate(single) == rate


def test_header_fields_written():
    """The v2.0 fields a DPX reader looks at; see the module docstring."""
    data = dpx.encode(_random(10, 3), 10, big_endian=False)
    le = lambda fmt, off: struct.unpack_from("<" + fmt, data, off)[0]  # noqa: E731
    assert data[8:12] == b"V2.0" and le("I", 16) == len(data)
    assert (le("I", 24), le("I", 28)) == (1664, 384)  # generic, industry header sizes
    assert le("I", 660) == 0xFFFFFFFF  # unencrypted
    assert (le("H", 768), le("H", 770)) == (0, 1)  # orientation, one element
    assert tuple(data[800:804]) == (50, 0, 0, 10)  # RGB, user-defined, user-defined, 10 bits
    assert (le("H", 804), le("H", 806), le("I", 808)) == (1, 0, 2048)
    assert (le("I", 784), le("I", 792)) == (0, 1023)  # reference low / high code
    assert (le("f", 1952), le("f", 1964)) == (0.0, 1023.0)  # black, white level
    assert (le("I", 1628), le("I", 1632)) == (1, 1)  # pixel aspect
    assert data[160:169] == b"filmcolor"
    assert dpx.encode(_random(10, 3), 10, big_endian=False) == data  # deterministic


# ---- FFmpeg's encoder, our decoder -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["gray16be", "gray16le", "rgb48be", "rgb48le", "gbrp10le",
                                 "gbrp10be", "gbrp12le", "gray", "rgb24"])
def test_ffmpeg_written_files_decode_to_ffmpeg_values(fmt):
    rng = np.random.default_rng(7)
    frame = av.VideoFrame(W, H, fmt)
    depth = {"gbrp10": 10, "gbrp12": 12}.get(fmt[:6], 8 if fmt in ("gray", "rgb24") else 16)
    for plane in frame.planes:
        if depth == 8:
            plane.update(rng.integers(0, 256, plane.buffer_size, dtype=np.uint8).tobytes())
        else:
            dt = ">u2" if fmt.endswith("be") else "<u2"
            vals = rng.integers(0, 1 << depth, plane.buffer_size // 2).astype(dt)
            plane.update(vals.tobytes())
    want = _ffmpeg_values(frame)
    data = _ffmpeg_encode(frame)
    header = dpx.read_header(data)
    assert header.data_offset == 1664  # FFmpeg writes no industry headers
    assert (header.frame_rate, header.timecode) == (None, None)
    assert header.big_endian == fmt.endswith("be")  # FFmpeg writes 8 bits little-endian
    assert header.bit_depth == depth
    np.testing.assert_array_equal(dpx.decode(data), want)


# ---- other files real scanners write ---------------------------------------------------


def _set_u16(data: bytearray, off: int, value: int, big: bool = True) -> None:
    struct.pack_into(">H" if big else "<H", data, off, value)


def test_10bit_method_b():
    """Packing 2: padding in the high bits (FFmpeg reads it too)."""
    img = _random(10, 3)
    data = bytearray(dpx.encode(img, 10))
    words = np.frombuffer(bytes(data[2048:]), ">u4") >> 2
    data[2048:] = words.astype(">u4").tobytes()
    _set_u16(data, 804, 2)
    np.testing.assert_array_equal(dpx.decode(bytes(data)), img)
    np.testing.assert_array_equal(_ffmpeg_values(_ffmpeg_decode(bytes(data))[0]), img)


def test_10bit_lines_run_on_for_scanity():
    """Scanity / Lasergraphics luma: samples run on across lines, as FFmpeg reads them."""
    img = _random(10, 1, w=4, h=3)  # 12 samples: 4 words run on, 6 words padded
    padded = dpx.encode(img, 10)
    flat = dpx._pack_10(img.reshape(1, -1), 1).astype(">u4").tobytes()
    data = bytearray(padded[:2048] + flat)
    data[1556:1563] = b"Scanity"
    assert dpx.read_header(bytes(data)).data_size == 16
    np.testing.assert_array_equal(dpx.decode(bytes(data)), img)
    np.testing.assert_array_equal(_ffmpeg_values(_ffmpeg_decode(bytes(data))[0]), img)


def test_unpadded_lines_from_a_complete_file():
    """Lines not padded to a word (old FFmpeg) are read when the file is complete by its
    own file size field; the same length without it is truncation."""
    img = _random(8, 1, w=5, h=3)
    padded = dpx.encode(img, 8)
    data = bytearray(padded[:2048] + img.tobytes())
    struct.pack_into(">I", data, 16, len(data))
    np.testing.assert_array_equal(dpx.decode(bytes(data)), img)
    struct.pack_into(">I", data, 16, len(padded))
    with pytest.raises(ImageFormatError, match="truncated"):
        dpx.decode(bytes(data))


# ---- errors ----------------------------------------------------------------------------


def test_bad_magic():
    data = b"JUNK" + dpx.encode(_random(8, 1), 8)[4:]
    with pytest.raises(ImageFormatError, match="not a DPX file"):
        dpx.read_header(data)
    with pytest.raises(ImageFormatError, match="not a DPX file"):
        dpx.decode(data)


def test_truncated():
    data = dpx.encode(_random(16, 3), 16)
    with pytest.raises(ImageFormatError, match=r"truncated DPX file: \d+ bytes, the header says"):
        dpx.decode(data[:-1])
    assert dpx.read_header(data[:2048]).data_size == len(data) - 2048  # header alone is fine


def test_header_needs_2048_bytes():
    data = dpx.encode(_random(8, 1), 8)
    with pytest.raises(NeedMoreBytes) as info:
        dpx.read_header(data[:1000])
    assert info.value.offset_needed == 2048


@pytest.mark.parametrize(
    "off, value, message",
    [(804, 0, "packing 0 at 10 bits"), (804, 3, "packing 3 at 10 bits"),
     (806, 1, "encoding 1")],
)
def test_unsupported_packing_and_encoding(off, value, message):
    data = bytearray(dpx.encode(_random(10, 1), 10))
    _set_u16(data, off, value)
    with pytest.raises(ImageFormatError, match=message):
        dpx.decode(bytes(data))


def test_unsupported_descriptor_and_depth():
    data = bytearray(dpx.encode(_random(8, 3), 8))
    data[800] = 51
    with pytest.raises(ImageFormatError, match="descriptor 51"):
        dpx.read_header(bytes(data))
    data[800], data[803] = 50, 32
    with pytest.raises(ImageFormatError, match="bit depth 32"):
        dpx.read_header(bytes(data))


def test_encode_refuses_values_beyond_depth():
    with pytest.raises(ImageFormatError, match="do not fit 10 bits"):
        dpx.encode(np.full((2, 2), 1024, np.uint16), 10)
    with pytest.raises(ImageFormatError, match="timecode"):
        dpx.encode(np.zeros((2, 2), np.uint16), 16, timecode="1:00:00:00")


def test_dispatch_by_extension():
    img = _random(12, 3)
    data = image.encode(img, ".DPX", 12, big_endian=False, frame_rate=Fraction(18))
    assert image.read_header(data, "dpx").frame_rate == 18
    np.testing.assert_array_equal(image.decode(data, ".dpx"), img)
    with pytest.raises(ImageFormatError, match="unsupported image extension"):
        image.decode(data, ".exr")


# ---- luma of an RGB scan ---------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", DEPTHS)
def test_luma_of_grey_rgb_is_exact(bit_depth):
    """A black-and-white scan stored as RGB (R = G = B) keeps its code values."""
    v = np.arange(1 << bit_depth, dtype=np.uint8 if bit_depth == 8 else np.uint16)
    rgb = np.repeat(v.reshape(1, -1, 1), 3, axis=2)  # 1 x 2**bits x 3
    y = image.luma_of_rgb(rgb, bit_depth)
    assert y.dtype == rgb.dtype and y.shape == (1, v.size)
    np.testing.assert_array_equal(y[0], v)


def test_luma_of_colour():
    rgb = np.array([[[1023, 0, 0], [0, 1023, 0], [0, 0, 1023], [600, 300, 100]]], np.uint16)
    y = image.luma_of_rgb(rgb, 10)
    # 0.2126 * 1023 = 217.49, 0.7152 * 1023 = 731.65, 0.0722 * 1023 = 73.86;
    # 0.2126 * 600 + 0.7152 * 300 + 0.0722 * 100 = 349.34
    np.testing.assert_array_equal(y, [[217, 732, 74, 349]])
    white = np.full((2, 2, 3), 65535, np.uint16)
    np.testing.assert_array_equal(image.luma_of_rgb(white, 16), 65535)
    assert sum(image.LUMA_709_FIXED) == 1 << 16


def test_luma_of_decoded_dpx_rgb():
    grey = _random(10, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    out = dpx.decode(dpx.encode(rgb, 10))
    np.testing.assert_array_equal(image.luma_of_rgb(out, 10), grey)
