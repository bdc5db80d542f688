"""Synthetic black-and-white clips with known shot boundaries, for the scene detector's tests
and benchmark: shots are camera moves over real photographs (scikit-image's samples, or
any image file), joined by cuts, fades and dissolves, with archive-film damage on top
(flashes, whip pans, occluders, grain, flicker, gate weave, vertical scratches).

Frames are float32 luma in [0, 1]; `write_gray` writes them losslessly (FFV1 gray) or with
H.264 (yuv420p) for speed measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import cv2
import numpy as np

SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "clock",
                  "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle", "retina",
                  "cell", "brick", "page", "horse")

_cache: dict[str, np.ndarray] = {}


def load_photo(name: str) -> np.ndarray:
    """Gray float32 [0, 1] photograph: a scikit-image sample name or an image file path."""
    if name in _cache:
        return _cache[name]
    if "/" in name:
        img = cv2.imread(name, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FileNotFoundError(name)
        g = img.astype(np.float32) / 255.0
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 3:
            img = img[..., :3].astype(np.float32)
            g = (0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]) / 255.0
        else:
            g = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else float(img.max() or 1))
    _cache[name] = np.ascontiguousarray(g, dtype=np.float32)
    return _cache[name]


@dataclass
class Shot:
    photo: str
    frames: int
    pan: tuple[float, float] = (1.0, 0.3)  # output pixels per frame
    zoom: float = 0.0  # relative scale change per frame
    scale: float = 1.0  # >1: tighter framing (a cut-in on the same photograph)
    center: tuple[float, float] = (0.5, 0.5)  # where in the photograph (fractions)
    gain: float = 1.0  # exposure (dark shots: 0.2)
    whip: tuple[int, int, float] | None = None  # (first frame, frames, px/frame) fast pan with blur
    occluder: tuple[int, int] | None = None  # (first frame, frames) a dark shape crossing


def render_shot(shot: Shot, width: int, height: int, rng: np.random.Generator) -> list[np.ndarray]:
    img = load_photo(shot.photo)
    ih, iw = img.shape
    # Fit: the window covers ~70% of the photograph's shorter fit, divided by scale.
    base = min(iw / width, ih / height) * 0.7 / shot.scale
    # Pre-shrink a photograph much larger than the frame (no aliasing in the warp).
    pre = max(1.0, base / 1.5)
    src = img if pre == 1.0 else cv2.resize(img, (int(iw / pre), int(ih / pre)), interpolation=cv2.INTER_AREA)
    if pre != 1.0:
        ih, iw = src.shape
        base = base / pre
    frames = []
    pos = np.array([shot.center[0] * iw, shot.center[1] * ih], dtype=np.float64)
    vel = np.array(shot.pan, dtype=np.float64) * base
    z = 1.0
    for i in range(shot.frames):
        v = vel.copy()
        nsub = 1
        if shot.whip and shot.whip[0] <= i < shot.whip[0] + shot.whip[1]:
            t = (i - shot.whip[0] + 0.5) / shot.whip[1]
            v = np.array([shot.whip[2] * math.sin(math.pi * t), 0.0]) * base
            nsub = 8
        acc = np.zeros((height, width), np.float32)
        for sub in range(nsub):
            p = pos + v * (sub / nsub)
            s = base * z
            # Reflect the window inside the photograph.
            cx = _reflect(p[0], s * width / 2, iw)
            cy = _reflect(p[1], s * height / 2, ih)
            m = np.float32([[s, 0, cx - s * width / 2], [0, s, cy - s * height / 2]])
            acc += cv2.warpAffine(src, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
        f = acc / nsub * shot.gain
        if shot.occluder and shot.occluder[0] <= i < shot.occluder[0] + shot.occluder[1]:
            t = (i - shot.occluder[0]) / max(1, shot.occluder[1] - 1)
            x = int(-0.3 * width + t * 1.6 * width)
            cv2.ellipse(f, (x, int(height * 0.6)), (int(width * 0.18), int(height * 0.55)), 0, 0, 360,
                        float(0.08 * shot.gain), -1)
        frames.append(f)
        pos = pos + v
        z *= 1.0 + shot.zoom
    return frames


def _reflect(c: float, half: float, size: float) -> float:
    lo, hi = half, size - half
    if hi <= lo:
        return size / 2
    span = hi - lo
    t = (c - lo) % (2 * span)
    return lo + (t if t <= span else 2 * span - t)


@dataclass
class Truth:
    kind: str  # 'cut' | 'fade' | 'dissolve'
    frame: int  # boundary frame (the new shot's first frame / where it dominates)
    span: tuple[int, int]  # frames the transition occupies [lo, hi)
    note: str = ""


@dataclass
class Clip:
    """A film under construction: frames plus ground truth."""

    width: int
    height: int
    seed: int = 0
    frames: list[np.ndarray] = field(default_factory=list)
    truth: list[Truth] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # non-boundary phenomena, for FP causes
    flat_spans: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def _shot(self, shot: Shot) -> list[np.ndarray]:
        fr = render_shot(shot, self.width, self.height, self.rng)
        n0 = len(self.frames)
        if shot.whip:
            self.events.append({"cause": "whip_pan", "span": (n0 + shot.whip[0], n0 + shot.whip[0] + shot.whip[1])})
        if shot.occluder:
            self.events.append({"cause": "occluder", "span": (n0 + shot.occluder[0], n0 + sum(shot.occluder))})
        if abs(shot.pan[0]) >= 3 or abs(shot.pan[1]) >= 3:
            self.events.append({"cause": "fast_pan", "span": (n0, n0 + shot.frames)})
        return fr

    def cut(self, shot: Shot, note: str = "") -> "Clip":
        if self.frames:
            n = len(self.frames)
            self.truth.append(Truth("cut", n, (n, n + 1), note))
        self.frames.extend(self._shot(shot))
        return self

    def flat(self, frames: int, level: float = 0.0, note: str = "leader") -> "Clip":
        """Flat frames (black leader, white, grey): a hard cut in and out."""
        n = len(self.frames)
        if self.frames:
            self.truth.append(Truth("cut", n, (n, n + 1), note))
        self.frames.extend([np.full((self.height, self.width), level, np.float32) for _ in range(frames)])
        self.flat_spans.append((n, n + frames))
        return self

    def fade_out(self, frames: int, level: float = 0.0, hold: int = 0) -> "Clip":
        """The last `frames` frames of the film so far fade to `level`; then `hold` flat frames.
        A hold of at least 6 frames is a scene of its own (two transitions: this fade out and
        the next fade in); a shorter dip makes fade out + fade in one transition."""
        n = len(self.frames)
        for i in range(frames):
            a = (i + 1) / (frames + 1)
            j = n - frames + i
            self.frames[j] = self.frames[j] * (1 - a) + level * a
        for _ in range(hold):
            self.frames.append(np.full((self.height, self.width), level, np.float32))
        if hold:
            self.flat_spans.append((n, n + hold))
        if hold >= 6:
            self.truth.append(Truth("fade", n, (n - frames, n + 1), "fade_out"))
        self._fade = (n - frames, hold)
        return self

    def fade_in(self, shot: Shot, frames: int, level: float = 0.0) -> "Clip":
        """A new shot fading in from `level` over its first `frames` frames."""
        n = len(self.frames)
        fr = self._shot(shot)
        for i in range(frames):
            a = (i + 1) / (frames + 1)
            fr[i] = fr[i] * a + level * (1 - a)
        fade = getattr(self, "_fade", None)
        if n > 0:
            if fade is not None and fade[1] < 6:
                self.truth.append(Truth("fade", n, (fade[0], n + frames), "fade_through"))
            else:
                self.truth.append(Truth("fade", n, (n - 1, n + frames), "fade_in"))
        self._fade = None
        self.frames.extend(fr)
        return self

    def dissolve(self, shot: Shot, frames: int) -> "Clip":
        """Cross-fade of `frames` frames from the current shot's tail into `shot`."""
        fr = self._shot(shot)
        n = len(self.frames)
        lo = n - frames
        for i in range(frames):
            a = (i + 1) / (frames + 1)
            self.frames[lo + i] = self.frames[lo + i] * (1 - a) + fr[i] * a
        # Where the incoming shot dominates: first frame with a >= 1/2.
        first = next(i for i in range(frames) if (i + 1) / (frames + 1) >= 0.5)
        self.truth.append(Truth("dissolve", lo + first, (lo, n), f"dissolve{frames}"))
        self.frames.extend(fr[frames:])
        return self

    def flash(self, at: int, frames: int = 1, kind: str = "white") -> "Clip":
        """Frames at..at+frames-1 (film index) blown out (white), exposure-jumped or blank."""
        for j in range(at, at + frames):
            f = self.frames[j]
            if kind == "white":
                self.frames[j] = np.clip(f * 0.4 + 0.75, 0, 1)
            elif kind == "exposure":
                self.frames[j] = np.clip(f * 2.2 + 0.1, 0, 1)
            elif kind == "dark":
                self.frames[j] = f * 0.25
            elif kind == "blank":
                self.frames[j] = np.full_like(f, 0.02)
        self.events.append({"cause": "flash", "span": (at, at + frames)})
        return self

    def damage(self, grain: float = 0.0, flicker: float = 0.0, weave: float = 0.0,
               scratches: int = 0) -> "Clip":
        """Archive-print damage over the whole clip."""
        rng = self.rng
        h, w = self.height, self.width
        xs = [float(rng.uniform(0.05, 0.95) * w) for _ in range(scratches)]
        for j, f in enumerate(self.frames):
            if weave:
                dx, dy = rng.normal(0, weave, 2)
                m = np.float32([[1, 0, dx], [0, 1, dy]])
                f = cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT)
            if flicker:
                f = f * float(1 + rng.normal(0, flicker)) + float(rng.normal(0, flicker * 0.3))
            if scratches:
                f = f.copy()
                for i in range(len(xs)):
                    xs[i] = float(np.clip(xs[i] + rng.normal(0, 1.5), 1, w - 2))
                    if rng.random() < 0.8:
                        x = int(xs[i])
                        f[:, x:x + max(1, w // 400)] = 0.9 if i % 2 else 0.1
            if grain:
                f = f + rng.normal(0, grain, f.shape).astype(np.float32)
            self.frames[j] = np.clip(f, 0, 1).astype(np.float32)
        return self

    def __len__(self):
        return len(self.frames)


def write_gray(path: str, frames: list[np.ndarray], rate: int = 24, codec: str = "ffv1",
               timecode: str | None = None, bit_depth: int = 8) -> None:
    """Write float [0, 1] frames: FFV1 gray (full range, lossless) or H.264 / other yuv420p."""
    import av

    h, w = frames[0].shape
    container = av.open(path, mode="w")
    if timecode:
        container.metadata["timecode"] = timecode
    vs = container.add_stream(codec, rate=rate)
    vs.width, vs.height = w, h
    tb = Fraction(1, rate)
    vs.time_base = tb
    vs.codec_context.time_base = tb
    if codec == "ffv1":
        vs.pix_fmt = "gray" if bit_depth == 8 else "gray10le"
    else:
        vs.pix_fmt = "yuv420p"
        if codec == "libx264":
            vs.codec_context.options = {"crf": "18", "preset": "veryfast", "g": "48"}
    if timecode:
        vs.metadata["timecode"] = timecode
    for i, f in enumerate(frames):
        if vs.pix_fmt == "gray":
            y = np.rint(np.clip(f, 0, 1) * 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(y, format="gray")
        elif vs.pix_fmt == "gray10le":
            y = np.rint(np.clip(f, 0, 1) * 1023).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(y, format="gray10le")
        else:
            y = np.rint(16 + np.clip(f, 0, 1) * 219).astype(np.uint8)
            frame = av.VideoFrame(w, h, "yuv420p")
            _fill_plane(frame.planes[0], y)
            c = np.full(((h + 1) // 2, (w + 1) // 2), 128, np.uint8)
            _fill_plane(frame.planes[1], c)
            _fill_plane(frame.planes[2], c)
        frame.pts = i
        frame.time_base = tb
        for pkt in vs.encode(frame):
            container.mux(pkt)
    for pkt in vs.encode(None):
        container.mux(pkt)
    container.close()


def _fill_plane(plane, arr: np.ndarray) -> None:
    h, w = arr.shape
    buf = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    buf[:h, :w] = arr
