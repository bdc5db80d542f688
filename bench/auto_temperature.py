"""Choose the automatic colorizer's decoding temperature (and nothing else) on the
VALIDATION images (pipeline.model.auto_data 'val' split: wallpapers held out from
training; never the quality set). Per temperature: PSNR of the coloured image vs truth,
relative to the grey image's PSNR, and the colourfulness ratio. The issue's targets
(automatic mode: PSNR not below grey, colourfulness ratio >= 0.5) pick the temperature:
the most colourful one whose PSNR is not below grey's.

    .venv/bin/python bench/auto_temperature.py
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pipeline.metrics import colorfulness, psnr  # noqa: E402
from pipeline.model import auto  # noqa: E402
from pipeline.model.auto_data import load_images  # noqa: E402
from pipeline.model.memnet_data import rgb_to_ycbcr, to_u8, ycbcr_to_rgb  # noqa: E402

TEMPS = (0.2, 0.38, 0.7, 1.0, 1.3, 1.6, 2.0)


def main() -> None:
    c = auto.load()
    imgs = [cv2.resize(im, (320, round(320 * im.shape[0] / im.shape[1])), interpolation=cv2.INTER_AREA)
            for _, im in load_images("val", 384)]
    print(f"{len(imgs)} validation images; stored temperature {c.temperature}")
    rows = []
    for t in TEMPS:
        c.temperature = t
        gain, cf_out, cf_ref = [], [], []
        for im in imgs:
            rgb = im.astype(np.float32) / 255
            y, _ = rgb_to_ycbcr(rgb)
            out = to_u8(ycbcr_to_rgb(y, c.chroma(y)))
            grey = to_u8(np.repeat(y[..., None], 3, -1))
            gain.append(psnr(out, im) - psnr(grey, im))
            cf_out.append(colorfulness(out))
            cf_ref.append(colorfulness(im))
        rows.append((t, float(np.mean(gain)), float(np.sum(cf_out) / np.sum(cf_ref))))
        print(f"T={t:<5} PSNR vs grey {rows[-1][1]:+.2f} dB   colourfulness ratio {rows[-1][2]:.2f}")
    ok = [r for r in rows if r[1] >= 0]
    best = max(ok, key=lambda r: r[2]) if ok else max(rows, key=lambda r: r[1])
    print(f"chosen: T={best[0]} (PSNR vs grey {best[1]:+.2f} dB, colourfulness {best[2]:.2f})")


if __name__ == "__main__":
    main()
