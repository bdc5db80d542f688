"""R'G'B' <-> Y'CbCr with the matrix the output is tagged with (BT.601 or BT.709).

Float in, float out: Y' in [0, 1], Cb/Cr offsets in [-0.5, 0.5]. Code values (ranges,
bit depths) are the codecs' business (`pipeline.codecs`)."""

from __future__ import annotations

import numpy as np

MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}  # (Kr, Kb)


def rgb_to_ycbcr(rgb: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """H x W x 3 float RGB [0, 1] -> 3 x H x W float32 (Y', Cb, Cr)."""
    kr, kb = MATRICES[matrix]
    x = rgb.astype(np.float32)
    y = kr * x[..., 0] + (1 - kr - kb) * x[..., 1] + kb * x[..., 2]
    cb = (x[..., 2] - y) / (2 * (1 - kb))
    cr = (x[..., 0] - y) / (2 * (1 - kr))
    return np.stack([y, cb, cr]).astype(np.float32)


def ycbcr_to_rgb(ycc: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """3 x H x W float (Y', Cb, Cr) -> H x W x 3 float RGB, clipped to [0, 1]."""
    kr, kb = MATRICES[matrix]
    y, cb, cr = ycc
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b], -1).clip(0, 1)
