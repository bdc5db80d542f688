"""Benchmark films for the scene detector, generated in code from real photographs.

Each film is a seeded sequence of shots (camera moves over a photograph) joined by hard cuts
(plain, dark-to-dark, same-subject cut-ins, cuts to/from black leader), fades (to black and
to white, with long holds or a short dip), and dissolves of 6-30 frames; inside the shots:
flash frames / exposure jumps / blank frames, whip pans, fast pans and occluders crossing
the frame; over the whole film: grain, flicker, gate weave and vertical scratches at a
per-film level. The ground truth is written beside each film as JSON.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from pipeline.scenes.synth import SKIMAGE_PHOTOS, Clip, Shot, load_photo, write_gray  # noqa: E402

DEBIAN_PHOTO_DIRS = ("/usr/share/backgrounds/mate/nature",)


def photo_pool(skimage_only: bool = False) -> list[str]:
    photos = [p for p in SKIMAGE_PHOTOS if p not in ("page", "horse")]
    if not skimage_only:
        for d in DEBIAN_PHOTO_DIRS:
            for path in sorted(glob.glob(os.path.join(d, "*.jpg")))[:8]:
                try:
                    _load_limited(path)
                    photos.append(path)
                except Exception:
                    pass
    return photos


def _load_limited(path: str) -> None:
    """Load a (possibly huge) image file once, shrunk to <= 1600 px wide, into the cache."""
    import cv2

    from pipeline.scenes import synth

    if path in synth._cache:
        return
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(path)
    if img.shape[1] > 1600:
        f = 1600 / img.shape[1]
        img = cv2.resize(img, (1600, int(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
    synth._cache[path] = img.astype(np.float32) / 255.0


TRANSITIONS = ["cut", "dissolve", "cut_dark", "fade_hold", "cutin", "dissolve", "fade_dip",
               "cut", "leader", "dissolve", "fade_white", "cut_dark", "cutin", "dissolve"]
PHENOMENA = ["flash", "whip", "occluder", "fast_pan", "exposure", None, "flash2", "whip", "blank",
             "occluder", "fast_pan", None]


def make_film(seed: int, width: int, height: int, photos: list[str], n_shots: int = 10) -> Clip:
    """One film: shots of 56-76 visible frames; each within-shot event sits early in its shot,
    clear of the transitions on both sides (a 30-frame dissolve eats the tail of a shot)."""
    rng = np.random.default_rng(1000 + seed)
    clip = Clip(width, height, seed=seed)
    order = list(rng.permutation(len(photos)))
    state = {"i": 0, "last": "astronaut"}

    def next_photo() -> str:
        p = photos[order[state["i"] % len(order)]]
        state["i"] += 1
        return p

    def shot(lead: int = 0, photo=None, ph=None, **kw) -> Shot:
        frames = lead + int(rng.integers(56, 76))
        photo = photo or next_photo()
        state["last"] = photo
        pan = (float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-0.6, 0.6)))
        s = Shot(photo, frames, pan=pan, zoom=float(rng.choice([0.0, 0.0, 0.004, -0.004])),
                 center=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))), **kw)
        if ph == "whip":
            s.whip = (lead + 8, 6, float(rng.uniform(25, 45)) * float(rng.choice([-1, 1])))
        elif ph == "occluder":
            s.occluder = (lead + 4, 16)
        elif ph == "fast_pan":
            s.pan = (float(rng.choice([-1, 1]) * rng.uniform(4, 7)), float(rng.uniform(-1, 1)))
        return s

    t_off, p_off = seed * 3, seed * 5
    if seed % 2 == 0:
        clip.flat(8, 0.0)
        clip.fade_in(shot(lead=14), 14)
    else:
        clip.cut(shot())
    for i in range(n_shots):
        kind = TRANSITIONS[(i + t_off) % len(TRANSITIONS)]
        ph = PHENOMENA[(i + p_off) % len(PHENOMENA)]
        if kind == "cut":
            clip.cut(shot(ph=ph), "cut")
        elif kind == "cut_dark":
            # Dark-to-dark: a dark shot, then a cut to another dark shot.
            clip.cut(shot(gain=float(rng.uniform(0.3, 0.45))), "dark_in")
            clip.cut(shot(ph=ph, gain=float(rng.uniform(0.3, 0.45))), "dark_to_dark")
        elif kind == "cutin":
            # Same subject, tighter framing (a cut-in).
            clip.cut(shot(ph=ph, photo=state["last"], scale=float(rng.uniform(1.8, 2.6))), "cutin")
        elif kind == "dissolve":
            n = int(rng.choice([6, 8, 12, 16, 20, 24, 30]))
            clip.dissolve(shot(lead=n, ph=ph), n)
        elif kind == "fade_hold":
            n = int(rng.integers(8, 20))
            clip.fade_out(int(rng.integers(8, 20)), 0.0, hold=int(rng.integers(8, 14)))
            clip.fade_in(shot(lead=n, ph=ph), n)
        elif kind == "fade_dip":
            n = int(rng.integers(6, 14))
            clip.fade_out(int(rng.integers(6, 14)), 0.0, hold=int(rng.integers(0, 3)))
            clip.fade_in(shot(lead=n, ph=ph), n)
        elif kind == "fade_white":
            n = int(rng.integers(8, 16))
            clip.fade_out(int(rng.integers(8, 16)), 1.0, hold=int(rng.integers(8, 12)))
            clip.fade_in(shot(lead=n, ph=ph), n, level=1.0)
        elif kind == "leader":
            clip.flat(int(rng.integers(8, 14)), 0.02, note="to_leader")
            clip.cut(shot(ph=ph), "from_leader")
        # Flash-like events early in the newest shot, after its incoming transition.
        if ph in ("flash", "flash2", "exposure", "blank"):
            at = clip.truth[-1].span[1] + 10 if clip.truth else 20
            frames = 2 if ph == "flash2" else 1
            kind_f = {"flash": "white", "flash2": "white", "exposure": "exposure", "blank": "blank"}[ph]
            clip.flash(at, frames, kind_f)
    if seed % 3 == 1:
        clip.fade_out(int(rng.integers(10, 20)), 0.0, hold=10)
    return clip


DAMAGE = [
    dict(),
    dict(grain=0.03, flicker=0.03, weave=0.5, scratches=1),
    dict(grain=0.05, flicker=0.05, weave=0.8, scratches=2),
    dict(grain=0.02, flicker=0.08, weave=0.3, scratches=0),
    dict(grain=0.06, flicker=0.02, weave=1.2, scratches=3),
    dict(grain=0.04, flicker=0.04, weave=0.6, scratches=2),
    dict(grain=0.03, flicker=0.06, weave=1.0, scratches=1),
    dict(grain=0.05, flicker=0.03, weave=0.4, scratches=3),
]


def generate(out_dir: str, n_films: int = 8, width: int = 320, height: int = 180,
             skimage_only: bool = False) -> list[str]:
    """Write films + truth JSON; returns the film paths."""
    os.makedirs(out_dir, exist_ok=True)
    photos = photo_pool(skimage_only)
    paths = []
    for i in range(n_films):
        path = os.path.join(out_dir, f"film{i:02d}.mkv")
        truth_path = path + ".truth.json"
        paths.append(path)
        if os.path.exists(path) and os.path.exists(truth_path):
            continue
        clip = make_film(i, width, height, photos)
        damage = DAMAGE[i % len(DAMAGE)]
        if damage:
            clip.damage(**damage)
        _write(path, clip, damage)
    # Smooth, heavily upscaled shots under steady pans and slow zooms, hard cuts only.
    path = os.path.join(out_dir, "film_smooth00.mkv")
    paths.append(path)
    if not (os.path.exists(path) and os.path.exists(path + ".truth.json")):
        clip = make_smooth_film(0)
        _write(path, clip, {"grain": 0.015})
    return paths


def _write(path: str, clip: Clip, damage: dict) -> None:
    truth = {
        "film": os.path.basename(path), "frames": len(clip), "width": clip.width, "height": clip.height,
        "damage": damage,
        "boundaries": [{"kind": t.kind, "frame": t.frame, "span": list(t.span), "note": t.note}
                       for t in clip.truth],
        "events": clip.events,
        "flat_spans": [list(s) for s in clip.flat_spans],
    }
    write_gray(path + ".tmp.mkv", clip.frames, rate=24, codec="ffv1", timecode="01:00:00:00")
    os.replace(path + ".tmp.mkv", path)
    with open(path + ".truth.json", "w") as fh:
        json.dump(truth, fh, indent=1)


SMOOTH_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "moon", "camera")


def make_smooth_film(seed: int = 0, width: int = 640, height: int = 360, n_shots: int = 8) -> Clip:
    """Smooth photographs heavily upscaled (most of a 300-500 px photo filling a 640 px
    frame, 1.6-2.7x, as when a small still is panned across), under long, steady pans (up
    to 3 px per frame, as far as the photograph allows without bouncing) and slow zooms,
    joined by hard cuts only. A steadily panned smooth picture is
    close to the mean of the frames k before and k after it, which an under-aligned "mix of
    the two ends" test takes for a dissolve: this film must score no dissolve at all."""
    rng = np.random.default_rng(5000 + seed)
    clip = Clip(width, height, seed=seed)
    prev = None
    for i in range(n_shots):
        photo = SMOOTH_PHOTOS[(i + seed) % len(SMOOTH_PHOTOS)]
        if photo == prev:
            photo = SMOOTH_PHOTOS[(i + seed + 1) % len(SMOOTH_PHOTOS)]
        prev = photo
        frames = int(rng.integers(90, 150))
        scale = float(rng.uniform(0.75, 1.25))
        img = load_photo(photo)
        ih, iw = img.shape
        base = min(iw / width, ih / height) * 0.7 / scale  # photograph px per output px
        # A steady pan that stays inside the photograph for the whole shot (no bounce).
        room_x = max(0.0, iw - base * width * 1.1)
        room_y = max(0.0, ih - base * height * 1.1)
        speed = float(rng.uniform(1.0, 3.0))
        sx = float(rng.choice([-1, 1]))
        vx = sx * min(speed, 0.85 * room_x / base / frames)
        vy = float(rng.uniform(-0.25, 0.25)) * abs(vx)
        vy = float(np.clip(vy, -0.85 * room_y / base / frames, 0.85 * room_y / base / frames))
        cx = (iw / 2 - sx * 0.4 * room_x) / iw
        cy = 0.5 - (np.sign(vy) * 0.4 * room_y) / ih
        zoom = float([0.0, -0.003, 0.003, -0.004][i % 4])
        clip.cut(Shot(photo, frames, pan=(vx, vy), zoom=zoom, scale=scale, center=(cx, cy)), "smooth_pan")
    clip.damage(grain=0.015)
    return clip


def speed_film(out_dir: str, width: int, height: int, frames: int = 144) -> str:
    """An H.264 film at a delivery size, for detection vs decode-only throughput."""
    path = os.path.join(out_dir, f"speed_{height}p.mp4")
    if os.path.exists(path):
        return path
    clip = Clip(width, height, seed=99)
    photos = [p for p in SKIMAGE_PHOTOS if p not in ("page", "horse")]
    n = 0
    i = 0
    while n < frames:
        clip.cut(Shot(photos[i % len(photos)], 36, pan=(2.0, 0.5)))
        n += 36
        i += 1
    clip.frames = clip.frames[:frames]
    clip.damage(grain=0.02)
    write_gray(path + ".tmp.mp4", clip.frames, rate=24, codec="libx264")
    os.replace(path + ".tmp.mp4", path)
    return path


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/out/scenes"
    for p in generate(out):
        print(p)
