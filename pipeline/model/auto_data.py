"""Training / validation images for the automatic colorizer (``auto``), from installed packages only.

Sources (whatever of them is installed):
- Debian wallpaper packages: ``gnome-backgrounds``, ``mate-backgrounds`` (``/usr/share/backgrounds``,
  recursively; ``ukui-wallpapers`` and ``lomiri-wallpapers*`` also install there) and
  ``plasma-workspace-wallpapers`` (``/usr/share/wallpapers/<Name>/contents/images*/``: one file per
  wallpaper, the one closest to 1920 px wide).
- scikit-image's colour sample photographs EXCEPT the benchmark images (``BENCH_IMAGES``), which are
  never read here.

Split: every background gets a group key (file stem without light/dark or size suffixes, or the
Plasma wallpaper name), and a group is validation when md5(key) % 10 == 0 (deterministic, ~10 %);
twins of one picture always land in the same split. scikit-image photos are training only.
Colour: BT.709 Y'CbCr full range, exactly ``memnet_data.rgb_to_ycbcr``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re

import cv2
import numpy as np

from pipeline.model.memnet_data import BENCH_IMAGES, rgb_to_ycbcr

BACKGROUND_ROOT = "/usr/share/backgrounds"
PLASMA_ROOT = "/usr/share/wallpapers"
SKIMAGE_COLOUR = ("motorcycle_right.png", "ihc.png", "hubble_deep_field.jpg", "retina.jpg")
EXTS = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 300  # skip tiny images
MIN_BYTES = 20_000


def _group_key(path: str) -> str:
    if path.startswith(PLASMA_ROOT):
        return "plasma:" + os.path.relpath(path, PLASMA_ROOT).split(os.sep)[0].lower()
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    stem = re.sub(r"_\d+x\d+$", "", stem)  # Elephants_3840x2160
    stem = re.sub(r"-(d|l|dark|light)$", "", stem)  # adwaita-d / adwaita-l
    return "bg:" + stem


def is_val(path: str) -> bool:
    return int(hashlib.md5(_group_key(path).encode()).hexdigest(), 16) % 10 == 0


def _plasma_files() -> list[str]:
    out = []
    for d in sorted(glob.glob(os.path.join(PLASMA_ROOT, "*", "contents"))):
        cands = []
        for f in glob.glob(os.path.join(d, "images", "*")):  # not images_dark (twins), not screenshots
            m = re.match(r"(\d+)x(\d+)\.", os.path.basename(f))
            if m and f.lower().endswith(EXTS):
                cands.append((abs(int(m.group(1)) - 1920), f))
        if cands:
            out.append(sorted(cands)[0][1])
    return out


def background_files() -> list[str]:
    files = [f for f in sorted(glob.glob(os.path.join(BACKGROUND_ROOT, "**", "*"), recursive=True))
             if f.lower().endswith(EXTS) and os.path.isfile(f)]
    files += _plasma_files()
    return [f for f in files if os.path.getsize(f) >= MIN_BYTES]


def image_paths(split: str) -> list[str]:
    """Background files of 'train' or 'val'."""
    assert split in ("train", "val")
    return [f for f in background_files() if is_val(f) == (split == "val")]


def _read(path: str, max_side: int) -> np.ndarray | None:
    im = None
    if path.lower().endswith((".jpg", ".jpeg")):  # fast reduced decode for big JPEGs
        full = cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_2)
        im = full
    if im is None:
        im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None or min(im.shape[:2]) < MIN_SIDE // 2:
        return None
    s = max_side / max(im.shape[:2])
    if s < 1:
        im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))


def _skimage(name: str, max_side: int) -> np.ndarray | None:
    import skimage.data

    assert name not in BENCH_IMAGES
    return _read(os.path.join(os.path.dirname(skimage.data.__file__), name), max_side)


def load_images(split: str, max_side: int = 384) -> list[tuple[str, np.ndarray]]:
    """[(name, rgb uint8 H x W x 3)], downscaled to longest side max_side; near-grey images dropped."""
    items = []
    for f in image_paths(split):
        im = _read(f, max_side)
        if im is not None:
            items.append((f, im))
    if split == "train":
        for n in SKIMAGE_COLOUR:
            im = _skimage(n, max_side)
            if im is not None:
                items.append(("skimage:" + n, im))
    out = []
    for n, im in items:
        _, c = rgb_to_ycbcr(im.astype(np.float32) / 255.0)
        if float(np.abs(c).mean()) > 0.01:  # drop grey pictures (nothing to learn)
            out.append((n, im))
    return out


def random_crop(im: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Random-scale crop (side between 0.35 and 1.0 of the short side, at least size/2), flip, resize."""
    h, w = im.shape[:2]
    short = min(h, w)
    lo = min(short, max(size // 2, int(0.35 * short)))
    side = int(rng.integers(lo, short + 1))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    c = im[y:y + side, x:x + side]
    if rng.random() < 0.5:
        c = c[:, ::-1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=interp)


def batch(images: list[np.ndarray], rng: np.random.Generator, n: int, size: int,
          grain: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(luma n x 1 x S x S, chroma n x 2 x S x S) float32 of random crops."""
    ys, cs = [], []
    for _ in range(n):
        im = images[int(rng.integers(len(images)))]
        rgb = random_crop(im, rng, size).astype(np.float32) / 255.0
        y, c = rgb_to_ycbcr(rgb)
        if grain > 0:  # film-like luma noise, some crops only
            if rng.random() < 0.5:
                y = np.clip(y + rng.normal(0, grain * rng.random(), y.shape).astype(np.float32), 0, 1)
        ys.append(y[None])
        cs.append(c)
    return np.stack(ys), np.stack(cs)


def val_batch(images: list[np.ndarray], n: int, size: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, reproducible set of validation crops."""
    return batch(images, np.random.default_rng(seed), n, size)
