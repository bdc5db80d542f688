"""Colour exemplars: `IMAGE@FRAME` specs, frame resolution, loading and fitting.

`@FRAME` is a 0-based frame index, an SMPTE timecode `HH:MM:SS:FF` relative to the film's
start timecode, or seconds `12.5s` (the frame on screen at that time). All resolved to an
integer frame index with exact arithmetic.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import cv2
import numpy as np

from pipeline import storage
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


def load_rgb(uri: str) -> tuple[np.ndarray, str]:
    """H x W x 3 float32 RGB in [0, 1] and the file's sha256."""
    data = read_image_file(uri)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise InputError(f"exemplar {uri}: not a readable image")
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / peak
    return rgb, hashlib.sha256(data).hexdigest()


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
