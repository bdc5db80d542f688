"""Working resolution, and chroma brought back to full resolution guided by the luma.

The model works small (colour is low-frequency); edges come back from the full-resolution
luma through a fast guided filter (He & Sun 2015): the linear luma->chroma coefficients are
fitted at working resolution, upsampled, and applied to the full-resolution luma.
"""

from __future__ import annotations

import cv2
import numpy as np


def work_size(width: int, height: int, max_side: int = 320) -> tuple[int, int]:
    """(w, h) of the working resolution: longest side <= max_side, even, aspect kept."""
    scale = min(1.0, max_side / max(width, height))
    w = max(16, int(round(width * scale / 2)) * 2)
    h = max(16, int(round(height * scale / 2)) * 2)
    return w, h


def downsize(luma: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (luma.shape[1], luma.shape[0]) == tuple(size):
        return luma
    return cv2.resize(luma, tuple(size), interpolation=cv2.INTER_AREA)


def guided_upsample(
    chroma_lo: np.ndarray, luma_lo: np.ndarray, luma_hi: np.ndarray, radius: int = 1, eps: float = 1e-4
) -> np.ndarray:
    """chroma_lo: 2 x h x w, luma_lo: h x w, luma_hi: H x W (float32) -> 2 x H x W.

    Defaults measured on propagated chroma (flow, pans and zooms, 2x up to 640x360 chroma):
    radius 1 / eps 1e-4 gains 0.17 dB chroma PSNR over bilinear, while radius 2 / eps 1e-3
    lost 0.8 dB (a wider window smooths the colour more than the luma sharpens it). At equal
    size there is nothing to bring back and filtering only smooths (-0.3 dB): identity."""
    size = (luma_hi.shape[1], luma_hi.shape[0])
    if chroma_lo.shape[1:] == luma_hi.shape:
        return np.clip(chroma_lo, -0.5, 0.5).astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)
    box = lambda x: cv2.blur(x, k, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mean_i = box(luma_lo)
    var_i = box(luma_lo * luma_lo) - mean_i * mean_i
    out = np.empty((2, size[1], size[0]), np.float32)
    for c in range(2):
        p = chroma_lo[c]
        mean_p = box(p)
        a = (box(luma_lo * p) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        a_hi = cv2.resize(box(a), size, interpolation=cv2.INTER_LINEAR)
        b_hi = cv2.resize(box(b), size, interpolation=cv2.INTER_LINEAR)
        out[c] = a_hi * luma_hi + b_hi
    return np.clip(out, -0.5, 0.5, out=out)
