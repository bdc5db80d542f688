"""Colour exemplars: `IMAGE@FRAME` specs, frame resolution, loading and fitting.

`@FRAME` is a 0-based frame index, an SMPTE timecode `HH:MM:SS:FF` relative to the film's
start timecode, or seconds `12.5s` (the frame on screen at that time). All resolved to an
integer frame index with exact arithmetic.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import re
import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import cv2
import numpy as np

from pipeline import log, storage
from pipeline.errors import InputError
from pipeline.io import FilmInfo
from pipeline.model.base import Exemplar
from pipeline.colour import rgb_to_ycbcr

_TC = re.compile(r"^(\d{1,2})[:;](\d{2})[:;](\d{2})[:;](\d{2})$")


@dataclass(frozen=True)
class ExemplarSpec:
    image: str  # local path or s3:// URI
    at: str  # as given: '1200', '00:00:50:00', '12.5s'


def parse_spec(text: str, what: str = "exemplar") -> ExemplarSpec:
    image, sep, at = text.rpartition("@")
    if not sep or not image or not at:
        raise InputError(f"{what} {text!r}: expected IMAGE@FRAME (frame index, HH:MM:SS:FF or seconds like 12.5s)")
    return ExemplarSpec(image, at)


def timecode_frames(tc: str, fps: int) -> int:
    m = _TC.match(tc.strip())
    if not m:
        raise InputError(f"timecode {tc!r}: expected HH:MM:SS:FF")
    h, mi, s, f = (int(x) for x in m.groups())
    if f >= fps or mi >= 60 or s >= 60:
        raise InputError(f"timecode {tc!r}: out of range at {fps} fps")
    return ((h * 60 + mi) * 60 + s) * fps + f


def nominal_fps(info: FilmInfo) -> int:
    return max(1, round(info.avg_rate))


def resolve_frame(at: str, info: FilmInfo) -> int:
    """The 0-based frame index named by `at`; InputError if outside the film."""
    at = at.strip()
    if re.fullmatch(r"\d+", at):
        frame = int(at)
    elif _TC.match(at):
        fps = nominal_fps(info)
        frame = timecode_frames(at, fps) - timecode_frames(info.start_timecode, fps)
    elif at.endswith("s"):
        try:
            seconds = Fraction(Decimal(at[:-1]))
        except (InvalidOperation, ValueError):
            raise InputError(f"exemplar frame {at!r}: not a frame index, timecode or seconds") from None
        if seconds < 0 or seconds >= (info.end_pts - info.frame_pts[0]) * info.time_base:
            raise InputError(f"exemplar time {at} is outside the film")
        ticks = seconds / info.time_base + info.frame_pts[0]
        frame = bisect.bisect_right(info.frame_pts, ticks) - 1
    else:
        raise InputError(f"exemplar frame {at!r}: not a frame index, timecode or seconds")
    if not 0 <= frame < info.frame_count:
        raise InputError(f"exemplar frame {at} is outside the film (frames 0..{info.frame_count - 1})")
    return frame


# The largest guidance image decoded: an 8K scan frame (8192 x 8192 covers full-aperture
# 8K, 8192 x 6224, the largest frame archives scan film at; an exemplar is scaled to the
# film's working size anyway). The pixel count is read from the file's header before
# anything is decoded: a 20000 x 20000 PNG of one colour is a 50 KB file, and load_rgb
# took 17 s and 10 GB (BGR, then float32 RGB) to decode it, on the driver and again in
# every actor.
MAX_IMAGE_PIXELS = 8192 * 8192


def read_image_file(uri: str, what: str = "exemplar") -> bytes:
    """The bytes of a guidance image (`what`: exemplar, hints); InputError in words."""
    try:
        return storage.read_bytes(uri)
    except FileNotFoundError:
        raise InputError(f"{what} {uri}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what} {uri}: is a directory") from None
    except storage.StorageError as exc:
        raise InputError(f"{what} {exc}") from None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image from its header alone (nothing is decoded);
    None if the format is not known or the header is broken. PNG, JPEG and TIFF (the
    formats of scans and paintings) are read here; any other format Pillow knows is read
    by Pillow's header parser."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_size(data)
    except (IndexError, ValueError, struct.error):  # a truncated or broken header
        return None
    return _pillow_size(data)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":  # IHDR is the first chunk of every PNG
        return None
    w, h = struct.unpack(">II", data[16:24])
    return (w, h) if w and h else None


# Start-of-frame markers (every coding process), which carry the picture's size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            return None
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return (w, h) if w and h else None  # height 0: defined later (DNL), not supported
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """The first image of a TIFF or BigTIFF (the one a decoder reads)."""
    end = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:
        (ifd,) = struct.unpack(end + "Q", data[8:16])
        (count,) = struct.unpack(end + "Q", data[ifd:ifd + 8])
        first, size, value_at = ifd + 8, 20, 12
    else:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        (count,) = struct.unpack(end + "H", data[ifd:ifd + 2])
        first, size, value_at = ifd + 2, 12, 8
    fmt = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    dims = {}
    for k in range(min(count, 4096)):
        e = first + k * size
        tag, typ = struct.unpack(end + "HH", data[e:e + 4])
        if tag in (256, 257) and typ in fmt:  # ImageWidth, ImageLength
            (dims[tag],) = struct.unpack(end + fmt[typ], data[e + value_at:e + value_at + struct.calcsize(fmt[typ])])
    w, h = dims.get(256), dims.get(257)
    return (w, h) if w and h else None


def _pillow_size(data: bytes) -> tuple[int, int] | None:
    try:
        import warnings

        from PIL import Image
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its own bomb warning: the limit is ours
        try:
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                return img.size
        except Image.DecompressionBombError as exc:  # Pillow's own hard limit, above ours:
            # its message gives the pixel count only, returned as (pixels, 1)
            m = re.search(r"\((\d+) pixels\)", str(exc))
            return (int(m.group(1)), 1) if m else (MAX_IMAGE_PIXELS + 1, 1)
        except Exception:  # noqa: BLE001 - not an image Pillow knows: the caller decides
            return None


def decode_image(data: bytes, uri: str, what: str = "exemplar") -> np.ndarray:
    """cv2.imdecode (IMREAD_UNCHANGED: 8 or 16 bits, alpha kept) of a guidance image,
    refused before decoding when it is not an image format whose size can be read, or
    above MAX_IMAGE_PIXELS; InputError in one line."""
    size = image_size(data)
    if size is None:
        raise InputError(f"{what} {uri}: not a readable image")
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        shown = f"{w} x {h} pixels" if h > 1 else f"{w} pixels"
        raise InputError(f"{what} {uri}: {shown} is above the limit of {MAX_IMAGE_PIXELS} (8192 x 8192); "
                         "scale it down to the film's size")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise InputError(f"{what} {uri}: not a readable image")
    return img


def load_rgb(uri: str) -> tuple[np.ndarray, str]:
    """H x W x 3 float32 RGB in [0, 1] and the file's sha256."""
    data = read_image_file(uri)
    img = decode_image(data, uri)
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / peak
    return rgb, hashlib.sha256(data).hexdigest()


# An exemplar is grey when its chroma (BT.709 Cb, Cr offsets) stays below GREY_CHROMA on
# all but GREY_SHARE of its pixels. 2/255 is below a visible tint (about twice the
# chroma of one 8-bit code of difference between R, G and B) and above what a grey
# picture carries after 8-bit rounding or JPEG's colour conversion (under 1/255); the
# 0.1% tolerates stray coloured pixels (dust, a scanner's colour fringes on edges) in a
# grey scan. A painting whose colour covers less than 0.1% of the picture (a 45 x 45
# patch of a 1080p still) also counts as grey: a warning, which the colourist can ignore.
GREY_CHROMA = 2.0 / 255.0
GREY_SHARE = 0.001


def has_colour(rgb: np.ndarray) -> bool:
    """Whether an RGB float image ([0, 1], H x W x 3) has colour to give a scene (see
    GREY_CHROMA); computed in bands of rows, so an 8K exemplar needs little extra memory."""
    h, w = rgb.shape[:2]
    coloured = 0
    band = max(1, (1 << 20) // max(1, w))
    for y in range(0, h, band):
        ycc = rgb_to_ycbcr(rgb[y:y + band], "bt709")
        coloured += int(np.count_nonzero(np.maximum(np.abs(ycc[1]), np.abs(ycc[2])) >= GREY_CHROMA))
    return coloured > GREY_SHARE * h * w


def check_exemplar(uri: str) -> str:
    """The checks of an exemplar before work (on the driver, once per run): readable,
    within MAX_IMAGE_PIXELS (InputError), and a warning if it is a grey picture. Returns
    the file's sha256."""
    rgb, sha = load_rgb(uri)
    if not has_colour(rgb):
        log.warning("exemplar %s has no colour (a grey picture): its scene will come out grey", uri)
    return sha


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to cover `size` (w, h) keeping aspect, then centre-crop: an exemplar of another
    size or aspect (a scan, a differently cropped still) lines up with the frame's centre."""
    w, h = size
    scale = max(w / rgb.shape[1], h / rgb.shape[0])
    nw, nh = max(w, round(rgb.shape[1] * scale)), max(h, round(rgb.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    img = cv2.resize(rgb, (nw, nh), interpolation=interp)
    x0, y0 = (nw - w) // 2, (nh - h) // 2
    return np.clip(img[y0:y0 + h, x0:x0 + w], 0, 1)


def make_exemplar(rgb: np.ndarray, sha: str, frame: int, size: tuple[int, int], matrix: str) -> Exemplar:
    """An Exemplar at working resolution `size` in the output's Y'CbCr matrix."""
    ycc = rgb_to_ycbcr(fit(rgb, size), matrix)  # float all the way: 16-bit exemplars keep their precision
    return Exemplar(frame=frame, luma=ycc[0], chroma=ycc[1:].copy(), sha256=sha)


# --- exemplars across scenes -----------------------------------------------------------
# A scene with no exemplar of its own takes the film's exemplar whose luminance looks most
# like the scene (shots that return, shot/reverse-shot), not simply the nearest in time.

MATCH_SIZE = (64, 36)


def luma_descriptor(y: np.ndarray) -> np.ndarray:
    """A global luminance descriptor of an image (float [0,1] luma, any size): tonal
    histogram, coarse layout (4x4 mean luma) and edge structure (4x4 cells x 8 gradient
    orientations), each L2-normalised. Tolerant of small reframing; blind to colour."""
    y = cv2.resize(y.astype(np.float32), MATCH_SIZE, interpolation=cv2.INTER_AREA)
    hist = np.histogram(y, bins=16, range=(0.0, 1.0))[0].astype(np.float32)
    layout = cv2.resize(y, (4, 4), interpolation=cv2.INTER_AREA).ravel()
    layout = layout - layout.mean()
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    mag, ang = cv2.cartToPolar(gx, gy)
    bins = (ang / (2 * np.pi) * 8).astype(np.int32) % 8
    h, w = y.shape
    cells = (np.arange(h)[:, None] * 4 // h) * 4 + (np.arange(w)[None, :] * 4 // w)
    hog = np.bincount((cells * 8 + bins).ravel(), weights=mag.ravel(), minlength=128).astype(np.float32)
    parts = [hist, layout, hog]
    return np.concatenate([p / (np.linalg.norm(p) + 1e-6) for p in parts])


def descriptor_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of the descriptor's three parts (1 = same picture)."""
    return float(np.dot(a, b) / 3.0)


def scene_similarities(info: FilmInfo, scenes, exemplar_lumas: list[np.ndarray], samples: int = 3) -> dict:
    """scene -> [similarity to each exemplar], the mean over `samples` frames of the scene."""
    from pipeline.io import iter_luma, luma_to_float

    ex_desc = [luma_descriptor(y) for y in exemplar_lumas]
    out = {}
    for sc in scenes:
        n = sc.end_frame - sc.start_frame
        picks = sorted({sc.start_frame + (n * (k + 1)) // (samples + 1) for k in range(samples)})
        descs = []
        for f in picks:
            for _, y in iter_luma(info, f, f + 1, MATCH_SIZE):
                descs.append(luma_descriptor(luma_to_float(y, info)))
        out[sc.scene] = [float(np.mean([descriptor_similarity(d, e) for d in descs])) for e in ex_desc]
    return out


def exemplar_luma(rgb: np.ndarray, size: tuple[int, int] = MATCH_SIZE, matrix: str = "bt709") -> np.ndarray:
    return rgb_to_ycbcr(fit(rgb, size), matrix)[0]
