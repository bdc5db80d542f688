"""Synthetic colour clips from installed photographs, for memnet training and benchmarks.

Images come only from installed packages: scikit-image's sample photographs and, where
installed, Debian's ``gnome-backgrounds`` / ``mate-backgrounds``. The splits are disjoint:
- ``bench``: scikit-image photographs (the quality benchmark's material, never trained on)
- ``val``:   a few held-out backgrounds (validation during training)
- ``train``: everything else

A clip is a virtual camera over one photograph: pan, zoom, rotation, shake, moving
occluders (patches of other photographs), lighting change and film grain on the luma.
Colour conversion: BT.709 Y'CbCr, full range (Y in [0, 1], Cb/Cr in [-0.5, 0.5]).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import cv2
import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB

BENCH_IMAGES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
SKIMAGE_TRAIN = ("motorcycle_right.png", "ihc.png", "hubble_deep_field.jpg", "retina.jpg")
BACKGROUND_DIRS = ("/usr/share/backgrounds/gnome", "/usr/share/backgrounds/mate")
VAL_BACKGROUNDS = ("GreenMeadow", "Storm", "wood-l")
SKIP_BACKGROUNDS = ("vnc-", "Elephants_", "-d.webp")  # tiny, duplicates, dark twins


# ---- colour ---------------------------------------------------------------------------
def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rgb: ... x H x W x 3 float [0, 1] -> (Y ... x H x W, CbCr ... x 2 x H x W)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = KR * r + KG * g + KB * b
    cb = (b - y) / (2 * (1 - KB))
    cr = (r - y) / (2 * (1 - KR))
    return y.astype(np.float32), np.stack([cb, cr], -3).astype(np.float32)


def ycbcr_to_rgb(y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Y H x W, CbCr 2 x H x W -> rgb H x W x 3 float (unclipped)."""
    cb, cr = c[0], c[1]
    r = y + 2 * (1 - KR) * cr
    b = y + 2 * (1 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    return np.stack([r, g, b], -1)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ---- images ---------------------------------------------------------------------------
def _skimage(name: str) -> np.ndarray:
    """A photograph shipped inside scikit-image's package (no download)."""
    import skimage.data

    path = os.path.join(os.path.dirname(skimage.data.__file__), name)
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def image_paths(split: str) -> list[str]:
    """Background image files of a split ('train' or 'val'); [] if none installed."""
    out = []
    for d in BACKGROUND_DIRS:
        for f in sorted(glob.glob(os.path.join(d, "**", "*"), recursive=True)):
            if not f.lower().endswith((".jpg", ".png", ".webp")):
                continue
            if any(s in os.path.basename(f) for s in SKIP_BACKGROUNDS):
                continue
            is_val = any(v in os.path.basename(f) for v in VAL_BACKGROUNDS)
            if (split == "val") == is_val:
                out.append(f)
    return out


def load_images(split: str, max_side: int) -> list[tuple[str, np.ndarray]]:
    """[(name, rgb uint8 H x W x 3)] of a split, downscaled to at most max_side."""
    items: list[tuple[str, np.ndarray]] = []
    if split == "bench":
        items = [(n, _skimage(n)) for n in BENCH_IMAGES]
    else:
        for f in image_paths(split):
            im = cv2.imread(f, cv2.IMREAD_COLOR)
            if im is not None:
                items.append((os.path.basename(f), cv2.cvtColor(im, cv2.COLOR_BGR2RGB)))
        if split == "train":
            items += [(n, _skimage(n)) for n in SKIMAGE_TRAIN]
        if not items:  # no backgrounds installed: fall back to held-out scikit-image ones
            names = SKIMAGE_TRAIN if split == "train" else ("motorcycle_right.png",)
            items = [(n, _skimage(n)) for n in names]
    out = []
    for n, im in items:
        s = max_side / max(im.shape[:2])
        if s < 1:
            im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append((n, np.ascontiguousarray(im)))
    return out


# ---- clips ----------------------------------------------------------------------------
@dataclass
class ClipSpec:
    frames: int = 8
    height: int = 96
    width: int = 160
    pan: float = 0.02  # camera speed, fraction of frame width per frame
    zoom: float = 0.004  # log-zoom change per frame
    rotate: float = 0.003  # radians per frame
    shake: float = 0.004  # per-frame jitter, fraction of frame width
    occluders: int = 1
    occluder_speed: float = 0.02
    lighting: float = 0.15  # amplitude of gain change over the clip
    grain: float = 0.02  # luma noise std
    time_jumps: float = 0.0  # probability that a frame jumps in camera time (returns)


def _affine(cx, cy, scale, theta, w, h) -> np.ndarray:
    """Inverse map (frame -> image) for a camera centred at (cx, cy)."""
    c, s = np.cos(theta) * scale, np.sin(theta) * scale
    return np.array(
        [[c, -s, cx - c * w / 2 + s * h / 2], [s, c, cy - s * w / 2 - c * h / 2]], np.float32
    )


class Clip:
    """A virtual camera over one photograph; frames rendered on demand (``frame(t)``).

    Construction draws all random parameters from ``rng``; rendering is deterministic.
    """

    def __init__(self, image: np.ndarray, spec: ClipSpec, rng: np.random.Generator,
                 others: list[np.ndarray] | None = None, path: dict | None = None):
        self.spec = spec
        T, h, w = spec.frames, spec.height, spec.width
        H, W = image.shape[:2]
        self.img = image.astype(np.float32) / 255.0
        # base scale: image pixels per frame pixel; keep the frame mostly inside the image
        base = min(H / h, W / w) * rng.uniform(0.45, 0.8)
        self.base = base
        self.c0 = (W / 2 + rng.uniform(-0.15, 0.15) * W, H / 2 + rng.uniform(-0.15, 0.15) * H)
        ang = rng.uniform(0, 2 * np.pi)
        self.v = (np.cos(ang) * spec.pan * w * base, np.sin(ang) * spec.pan * w * base)
        self.zr = rng.uniform(-1, 1) * spec.zoom
        self.om = rng.uniform(-1, 1) * spec.rotate
        self.th0 = rng.uniform(-0.05, 0.05)
        if path is not None and "times" in path:
            times = np.asarray(path["times"], np.float32)
        else:
            times = np.arange(T, dtype=np.float32)
            jumps = rng.random(T) < spec.time_jumps
            jumps[0] = False
            times[jumps] = rng.uniform(0, 4 * T, jumps.sum())
        self.times = times
        self.shake = rng.normal(0, spec.shake * w * base, (len(times), 2)).astype(np.float32)
        self.shake[0] = 0
        self.gain_phase = rng.uniform(0, 2 * np.pi)
        self.gain_freq = rng.uniform(0.2, 1.0) / max(T, 1)
        self.amp = rng.uniform(0, spec.lighting)
        # occluders: textured patches moving linearly
        self.occ = []
        for _ in range(spec.occluders):
            src = others[rng.integers(len(others))] if others else image
            oh, ow = int(h * rng.uniform(0.2, 0.45)), int(w * rng.uniform(0.15, 0.35))
            sy = rng.integers(0, max(1, src.shape[0] - oh))
            sx = rng.integers(0, max(1, src.shape[1] - ow))
            patch = src[sy : sy + oh, sx : sx + ow].astype(np.float32) / 255.0
            patch = cv2.resize(patch, (ow, oh))
            mask = np.zeros((oh, ow), np.float32)
            if rng.random() < 0.5:
                cv2.ellipse(mask, (ow // 2, oh // 2), (ow // 2 - 1, oh // 2 - 1), 0, 0, 360, 1.0, -1)
            else:
                mask[:] = 1.0
            mask = cv2.GaussianBlur(mask, (3, 3), 0)
            p0 = np.array([rng.uniform(-ow, w), rng.uniform(-oh, h)], np.float32)
            a2 = rng.uniform(0, 2 * np.pi)
            v = np.array([np.cos(a2), np.sin(a2)], np.float32) * spec.occluder_speed * w * rng.uniform(0.5, 1.5)
            self.occ.append((patch, mask, p0, v))

    def __len__(self) -> int:
        return len(self.times)

    def frame(self, i: int) -> np.ndarray:
        """Ground-truth RGB h x w x 3 float32 [0, 1] of frame i."""
        spec, t = self.spec, float(self.times[i])
        h, w = spec.height, spec.width
        H, W = self.img.shape[:2]
        cx = self.c0[0] + self.v[0] * t + self.shake[i, 0]
        cy = self.c0[1] + self.v[1] * t + self.shake[i, 1]
        # bounce the camera inside the image
        cx = W / 2 + _tri(cx - W / 2, W * 0.3)
        cy = H / 2 + _tri(cy - H / 2, H * 0.3)
        M = _affine(cx, cy, self.base * np.exp(self.zr * t), self.th0 + self.om * t, w, h)
        fr = cv2.warpAffine(self.img, M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REFLECT)
        for patch, mask, p0, v in self.occ:
            x0, y0 = (p0 + v * t).astype(int)
            _paste(fr, patch, mask, x0, y0)
        gain = 1.0 + self.amp * np.sin(self.gain_phase + 2 * np.pi * self.gain_freq * t)
        return np.clip(fr * gain, 0, 1).astype(np.float32)


def make_clip(
    image: np.ndarray,
    spec: ClipSpec,
    rng: np.random.Generator,
    others: list[np.ndarray] | None = None,
    path: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A whole (short) clip over ``image`` (uint8 RGB).

    -> (rgb T x h x w x 3 float32 ground truth, luma T x h x w float32 input with grain)
    ``path`` may give the camera time of each frame explicitly: {'times': array}.
    """
    clip = Clip(image, spec, rng, others, path)
    rgb = np.stack([clip.frame(i) for i in range(len(clip))])
    y, _ = rgb_to_ycbcr(rgb)
    luma = y + rng.normal(0, 1, y.shape).astype(np.float32) * rng.uniform(0, spec.grain)
    return rgb, np.clip(luma, 0, 1).astype(np.float32)


def _tri(x: float, half: float) -> float:
    """Fold x into [-half, half] (triangle wave): the camera bounces at the borders."""
    p = (x + half) % (4 * half)
    return (p if p < 2 * half else 4 * half - p) - half


def _paste(fr: np.ndarray, patch: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    h, w = fr.shape[:2]
    ph, pw = mask.shape
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + pw), min(h, y0 + ph)
    if xa >= xb or ya >= yb:
        return
    m = mask[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
    fr[ya:yb, xa:xb] = fr[ya:yb, xa:xb] * (1 - m) + patch[ya - y0 : yb - y0, xa - x0 : xb - x0] * m


# ---- real video ------------------------------------------------------------------------
class VideoWindows:
    """Training windows from real colour video: T consecutive frames (stride 1-2) inside
    one shot (the job's scene detector finds the shots, so no window crosses a cut),
    randomly cropped to h x w at half the file's size (the decoder resolution of a 640x360
    film) and flipped. Real motion: non-rigid, occlusion, lighting, motion blur.

    Frames are held in memory as uint8 (a 640x360 clip of 800 frames: 140 MB)."""

    def __init__(self, paths: list[str], min_len: int = 12):
        import av

        from pipeline.io import probe
        from pipeline.scenes import scan_scenes

        self.frames: list[np.ndarray] = []  # per file: N x H/2 x W/2 x 3 uint8
        self.shots: list[tuple[int, int, int]] = []  # (file, start, end)
        for fi, p in enumerate(paths):
            with av.open(p) as c:
                fr = [cv2.resize(f.to_ndarray(format="rgb24"), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
                      for f in c.decode(video=0)]
            self.frames.append(np.stack(fr))
            for sc in scan_scenes(p, probe(p)):
                if sc.frames >= min_len and not sc.low_variability:
                    self.shots.append((fi, sc.start_frame, sc.end_frame))
        if not self.shots:
            raise ValueError("no shot long enough in the training video")

    def sample(self, rng: np.random.Generator, frames: int, h: int, w: int, grain: float = 0.03):
        """-> (rgb T x h x w x 3 float32 truth, luma T x h x w float32 input with grain)"""
        fi, a, b = self.shots[int(rng.integers(len(self.shots)))]
        stride = int(rng.integers(1, 3)) if b - a > 2 * frames else 1
        span = min((frames - 1) * stride + 1, b - a)
        t0 = int(rng.integers(a, b - span + 1))
        idx = np.minimum(t0 + np.arange(frames) * stride, b - 1)
        clip = self.frames[fi][idx]  # T x H x W x 3
        H, W = clip.shape[1:3]
        y0, x0 = int(rng.integers(0, max(1, H - h + 1))), int(rng.integers(0, max(1, W - w + 1)))
        clip = clip[:, y0 : y0 + h, x0 : x0 + w]
        if clip.shape[1:3] != (h, w):
            clip = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in clip])
        if rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        rgb = np.ascontiguousarray(clip, dtype=np.float32) / 255.0
        y, _ = rgb_to_ycbcr(rgb)
        luma = y + rng.normal(0, 1, y.shape).astype(np.float32) * rng.uniform(0, grain)
        return rgb, np.clip(luma, 0, 1).astype(np.float32)
