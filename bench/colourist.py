"""The colourist's side, measured: hints vs full exemplars, automatic colours vs grey and
vs a per-frame colorizer. All runs in one process, on one film, side by side.

    .venv/bin/python bench/colourist.py [--width 320 --height 180 --frames 24]

The film: the quality set's held-out photographs (scikit-image's astronaut, coffee,
chelsea, rocket, motorcycle; never trained or tuned on: pipeline.model.memnet_data
BENCH_IMAGES) as shots with camera moves and hard cuts, plus a returning first shot, with
colour ground truth. Guidance is at one frame per shot (the shot's 4th frame):

1. hints: 24 dots (radius 3 px) of the true colour at that frame
   - `exemplar`   the full colour frame as exemplar, memnet (the ceiling)
   - `hints`      the dots, spread by pipeline.hints, then memnet (what --hints does)
   - `hints+flow` the dots spread by pipeline.hints, propagated by the `flow` model
   - `dots+flow`  the raw dots (grey elsewhere) as exemplar, propagated by `flow`
2. automatic (no guidance): `auto` (keyframe per scene coloured, memnet carries it) vs
   `grey` (the input) and `per-frame` (the same colorizer on every frame, no propagation).

Prints PSNR / SSIM / CDC / colourfulness ratio per variant, and the targets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pipeline.metrics import decode_rgb, evaluate  # noqa: E402
from pipeline.synth import SynthScene, save_png, write_film  # noqa: E402

SHOTS = [("astronaut", (2.0, 0.6), 0.0), ("coffee", (-2.0, 0.8), 0.003), ("chelsea", (1.5, -0.6), 0.004),
         ("rocket", (0.0, 1.5), 0.0), ("stereo_motorcycle", (-1.5, 0.0), 0.003), ("astronaut", (-1.0, 0.4), 0.0)]
AT = 3  # guidance frame within each shot


def dots(rgb: np.ndarray, n: int = 24, radius: int = 3, seed: int = 0) -> np.ndarray:
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 4), np.uint8)
    for _ in range(n):
        x, y = int(rng.integers(radius, w - radius)), int(rng.integers(radius, h - radius))
        cv2.circle(out, (x, y), radius, (*map(int, rgb[y, x]), 255), -1)
    return out


def save_rgba(path: str, rgba: np.ndarray) -> str:
    cv2.imwrite(path, cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return path


def dots_on_grey(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """The raw dots as an exemplar: the frame's grey, coloured only under the dots."""
    y = (0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]).astype(np.uint8)
    out = np.repeat(y[..., None], 3, -1)
    m = rgba[..., 3] > 127
    out[m] = rgba[..., :3][m]
    return out


def per_frame_auto(path: str) -> list[np.ndarray]:
    """The automatic colorizer on every frame (no propagation): what per-frame colorizers do."""
    from pipeline.guidance import auto_rgb
    from pipeline.model import auto
    from pipeline.model.upsample import work_size

    c = auto.load()
    out = []
    for rgb in decode_rgb(path):
        y = rgb[..., 0].astype(np.float32) / 255.0  # the input is grey: R = G = B = Y'
        size = work_size(y.shape[1], y.shape[0], 320)
        work = cv2.resize(y, size, interpolation=cv2.INTER_AREA)
        out.append(np.clip(auto_rgb(c, y, work, "bt709") * 255 + 0.5, 0, 255).astype(np.uint8))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from pipeline.cluster import init_ray  # one Ray for every run
    from pipeline.colorize import ColorizeConfig
    from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film

    d = tempfile.mkdtemp(prefix="bench-colourist-")
    scenes = [SynthScene(p, args.frames, pan=pan, zoom=z) for p, pan, z in SHOTS]
    film = write_film(os.path.join(d, "bw.mkv"), scenes, args.width, args.height, pix_fmt="gray",
                      keep_colour=True, audio=False)
    starts = [0] + film.cuts
    bounds = list(zip(starts, starts[1:] + [len(film.colour)]))
    guided = starts[:-1]  # the returning last shot has no guidance of its own (matched)
    ex, hints, raw = [], [], []
    for k, s in enumerate(guided):
        f = s + AT
        ex.append(f"{d}/ex{k}.png@{f}")
        save_png(f"{d}/ex{k}.png", film.colour[f])
        rgba = dots(film.colour[f], seed=k)
        hints.append(save_rgba(f"{d}/hint{k}.png", rgba) + f"@{f}")
        raw.append(f"{d}/raw{k}.png@{f}")
        save_png(f"{d}/raw{k}.png", dots_on_grey(film.colour[f], rgba))

    init_ray(workers=args.workers)
    results = {}

    def run(name, model="memnet", exemplars=(), hint_specs=()):
        out = os.path.join(d, f"{name}.mkv")
        job = FilmJob("bench", film.path, out, parse_exemplars(list(exemplars)), run_dir=os.path.join(d, f"run-{name}"),
                      hints=parse_exemplars(list(hint_specs), "hints"))
        r = run_film(job, JobConfig(workers=args.workers, progress=False, report=False,
                                    colorize=ColorizeConfig(model=model)))
        results[name] = evaluate(decode_rgb(out), film.colour, bounds)
        results[name]["seconds"] = r.seconds

    run("exemplar", exemplars=ex)
    run("hints", hint_specs=hints)
    run("hints+flow", model="flow", hint_specs=hints)
    run("dots+flow", model="flow", exemplars=raw)
    run("auto")
    results["grey"] = evaluate(decode_rgb(film.path), film.colour, bounds)
    results["per-frame"] = evaluate(per_frame_auto(film.path), film.colour, bounds)

    print(f"film: {len(film.colour)} frames {args.width}x{args.height}, {len(bounds)} shots "
          f"(held-out photographs), guidance at frame {AT} of each of the first {len(guided)} shots")
    print(f"{'variant':12s} {'PSNR dB':>8s} {'SSIM':>6s} {'CDC':>8s} {'colourful':>9s}")
    for name, r in results.items():
        print(f"{name:12s} {r['psnr']:8.2f} {r['ssim']:6.3f} {r['cdc']:8.5f} {r['colorfulness_ratio']:9.2f}")
    e, h = results["exemplar"], results["hints"]
    print(f"\n1. hints vs full exemplar: {h['psnr'] - e['psnr']:+.2f} dB (target: within 2 dB); "
          f"vs hints+flow {h['psnr'] - results['hints+flow']['psnr']:+.2f} dB, "
          f"vs dots+flow {h['psnr'] - results['dots+flow']['psnr']:+.2f} dB")
    a, g, p = results["auto"], results["grey"], results["per-frame"]
    print(f"2. auto: PSNR {a['psnr']:.2f} vs grey {g['psnr']:.2f} ({a['psnr'] - g['psnr']:+.2f} dB, target >= 0), "
          f"vs per-frame {p['psnr']:.2f}; colourfulness ratio {a['colorfulness_ratio']:.2f} (target >= 0.5); "
          f"CDC {a['cdc']:.5f} vs exemplar mode {e['cdc']:.5f} (target: not above) and per-frame {p['cdc']:.5f}")


if __name__ == "__main__":
    main()
