"""Small synthetic films made in code, for the demo, the tests and the benchmarks.

Each scene is a window moving over a real colour photograph (scikit-image's samples), so
the film has camera motion, texture and a colour ground truth. The black-and-white film
is the ground truth's luma (BT.601/709 per the film's height), written losslessly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import av
import cv2
import numpy as np

from pipeline import colour
from pipeline.codecs import make_frame
from pipeline.io import plane_array

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "stereo_motorcycle", "hubble_deep_field")


@dataclass(frozen=True)
class SynthScene:
    photo: str
    frames: int
    pan: tuple[float, float] = (2.0, 0.5)  # pixels per frame at output size
    zoom: float = 0.0  # relative scale change per frame
    fade_in: int = 0  # frames of fade from black at the start
    fade_out: int = 0  # frames of fade to black at the end


@dataclass
class SynthFilm:
    path: str
    width: int
    height: int
    cuts: list[int]  # frame indices where a new scene starts (excluding 0)
    pts: list[int]
    time_base: Fraction
    colour: list[np.ndarray] = field(default_factory=list, repr=False)  # RGB ground truth if kept


def photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def render_scene(scene: SynthScene, width: int, height: int) -> list[np.ndarray]:
    """RGB uint8 frames: a moving, zooming window over the photograph."""
    img = photo(scene.photo)
    # Scale the photo so that the window plus the whole motion path fits inside it.
    travel_x = abs(scene.pan[0]) * scene.frames
    travel_y = abs(scene.pan[1]) * scene.frames
    zoom_max = (1 + abs(scene.zoom)) ** scene.frames
    need = max((width * zoom_max + travel_x) / img.shape[1], (height * zoom_max + travel_y) / img.shape[0])
    img = cv2.resize(img, None, fx=need * 1.05, fy=need * 1.05, interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(scene.frames):
        s = (1 + scene.zoom) ** i
        cx = img.shape[1] / 2 + scene.pan[0] * (i - scene.frames / 2)
        cy = img.shape[0] / 2 + scene.pan[1] * (i - scene.frames / 2)
        m = np.float32([[1 / s, 0, cx - width / (2 * s)], [0, 1 / s, cy - height / (2 * s)]])
        frame = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        gain = 1.0
        if scene.fade_in and i < scene.fade_in:
            gain = i / scene.fade_in
        if scene.fade_out and i >= scene.frames - scene.fade_out:
            gain = min(gain, (scene.frames - 1 - i) / scene.fade_out)
        if gain < 1.0:
            frame = (frame.astype(np.float32) * gain).astype(np.uint8)
        out.append(frame)
    return out


def render_scenes(scenes: list[SynthScene], width: int, height: int) -> tuple[list[np.ndarray], list[int]]:
    """(RGB frames of all scenes one after another, frame indices where scenes 2.. start)."""
    frames: list[np.ndarray] = []
    cuts: list[int] = []
    for sc in scenes:
        if frames:
            cuts.append(len(frames))
        frames.extend(render_scene(sc, width, height))
    return frames, cuts


def rgb_to_ycbcr(rgb: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """H x W x 3 uint8 RGB -> 3 x H x W float32: Y' in [0,1], Cb/Cr in [-0.5, 0.5]."""
    return colour.rgb_to_ycbcr(rgb.astype(np.float32) / 255.0, matrix)


def ycbcr_to_rgb(ycc: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """3 x H x W float32 (Y' [0,1], Cb/Cr [-0.5,0.5]) -> H x W x 3 uint8 RGB."""
    return (colour.ycbcr_to_rgb(ycc, matrix) * 255 + 0.5).astype(np.uint8)


def luma_code(y: np.ndarray, bit_depth: int = 8, full_range: bool = False) -> np.ndarray:
    scale = 1 << (bit_depth - 8)
    lo, span = (0.0, 255.0 * scale) if full_range else (16.0 * scale, 219.0 * scale)
    code = np.rint(lo + y * span)
    return code.astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_film(
    path: str,
    scenes: list[SynthScene],
    width: int = 160,
    height: int = 96,
    pix_fmt: str = "gray",
    rate: int = 24,
    audio: bool = True,
    vfr: bool = False,
    codec: str = "ffv1",
    keep_colour: bool = False,
    timecode: str | None = None,
) -> SynthFilm:
    """Write a black-and-white film (luma of the rendered colour scenes) with an audio track.

    pix_fmt: gray/gray10le, or yuv4xxp(10le) with neutral chroma. vfr: frame durations alternate
    1 and 2 ticks of 1/(2*rate), like a film with dropped/held frames."""
    frames, cuts = render_scenes(scenes, width, height)
    depth = next((d for d in (10, 12, 16) if f"{d}le" in pix_fmt or f"{d}be" in pix_fmt), 8)
    tb = Fraction(1, 2 * rate) if vfr else Fraction(1, rate)
    pts, t = [], 0
    for i in range(len(frames)):
        pts.append(t)
        t += (1 if i % 3 == 0 else 2) if vfr else 1
    container = av.open(path, mode="w")
    if timecode:
        container.metadata["timecode"] = timecode
    vs = container.add_stream(codec, rate=rate)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    vs.time_base = tb
    vs.codec_context.time_base = tb
    if codec == "libx264":
        vs.codec_context.options = {"g": "12", "bf": "2", "crf": "16"}
    if timecode:
        vs.metadata["timecode"] = timecode
    astream = None
    if audio:
        astream = container.add_stream("aac", rate=48000, layout="stereo")
    matrix = "bt601" if height < 720 else "bt709"
    for i, rgb in enumerate(frames):
        gray = pix_fmt.startswith("gray")
        # gray is treated as full range by FFmpeg: write the full-range code values.
        y = luma_code(rgb_to_ycbcr(rgb, matrix)[0], depth, full_range=gray)
        if gray:
            frame = av.VideoFrame(width, height, pix_fmt)
            plane_array(frame.planes[0], width, height, y.dtype)[:] = y
        else:
            sub = pix_fmt[3:6]
            cw = -(-width // 2) if sub in ("420", "422") else width
            ch = -(-height // 2) if sub == "420" else height
            neutral = np.full((ch, cw), 128 << (depth - 8), dtype=y.dtype)
            frame = make_frame(y, neutral, neutral, pix_fmt)
        frame.pts = pts[i]
        frame.time_base = tb
        for pkt in vs.encode(frame):
            container.mux(pkt)
    for pkt in vs.encode(None):
        container.mux(pkt)
    if astream is not None:
        _write_tone(container, astream, float(t * tb))
    container.close()
    return SynthFilm(path, width, height, cuts, pts, tb, frames if keep_colour else [])


def _write_tone(container, stream, seconds: float) -> None:
    """A stereo tone that changes pitch every half second (so packets differ)."""
    rate, n = 48000, 1024
    total = int(seconds * rate)
    t0 = 0
    while t0 < total:
        t = np.arange(t0, t0 + n) / rate
        f = 220.0 * (1 + (int(t[0] * 2) % 4))
        s = (0.2 * np.sin(2 * math.pi * f * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([s, s]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = t0
        for pkt in stream.encode(frame):
            container.mux(pkt)
        t0 += n
    for pkt in stream.encode(None):
        container.mux(pkt)


def save_png(path: str, rgb: np.ndarray) -> None:
    cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_sequence(
    folder: str,
    scenes: list[SynthScene],
    width: int = 160,
    height: int = 96,
    bit_depth: int = 16,
    ext: str = ".dpx",
    big_endian: bool = True,
    rgb: bool = False,
    rate: Fraction | None = Fraction(24),
    timecode: str | None = None,
    name: str = "reel_%08d",
    first_number: int = 0,
    keep_colour: bool = False,
) -> SynthFilm:
    """A black-and-white scan as an image sequence (DPX or TIFF, one file per frame, made in
    code): full-range luma of the rendered scenes at `bit_depth`, stored luma-only or as
    R=G=B (`rgb`); DPX headers carry `rate` and each frame's timecode from `timecode`."""
    import os

    from pipeline.io import image
    from pipeline.scenes.export import format_timecode, parse_timecode

    os.makedirs(folder, exist_ok=True)
    frames, cuts = render_scenes(scenes, width, height)
    fps = max(1, round(rate)) if rate else 24
    start = parse_timecode(timecode, fps) if timecode else None
    for i, frame in enumerate(frames):
        # float luma -> the full code range at this depth (what a scanner writes)
        y = np.rint(rgb_to_ycbcr(frame, "bt709")[0] * ((1 << bit_depth) - 1)).astype(
            np.uint8 if bit_depth == 8 else np.uint16)
        img = np.stack([y, y, y], -1) if rgb else y
        kw = {}
        if ext == ".dpx":
            kw = {"big_endian": big_endian, "frame_rate": rate,
                  "timecode": format_timecode(start + i, fps) if start is not None else None}
        with open(os.path.join(folder, (name % (first_number + i)) + ext), "wb") as f:
            f.write(image.encode(img, ext, bit_depth, **kw))
    tb = Fraction(1, 1) / Fraction(rate or 24)
    return SynthFilm(folder, width, height, cuts, list(range(len(frames))), tb, frames if keep_colour else [])
