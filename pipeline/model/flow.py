"""The classical propagator: exemplar chroma carried frame to frame by dense optical flow.

Each frame's chroma is a confidence-weighted blend of three candidates:
1. the previous frame's chroma warped by DIS flow (current -> previous);
2. the exemplar's chroma warped by DIS flow (current -> exemplar): re-anchors to the
   reference and stops drift wherever the exemplar is still visible;
3. a luma-conditioned colour lookup built from the exemplar (mean chroma per luma bin):
   a weak prior for disoccluded regions that neither flow explains.
A candidate's confidence is how well its warped luma matches the current luma.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.model.base import Exemplar, Propagator, register

LUT_BINS = 32


class FlowPropagator(Propagator):
    name = "flow"
    version = "1"

    def __init__(self, sigma: float = 0.05, anchor: float = 0.5, prior: float = 0.02, threads: int | None = None,
                 **_ignored):
        if threads is not None:
            cv2.setNumThreads(threads)
        self.sigma = sigma  # luma error (0..1) at which a candidate's confidence falls to 1/e
        self.anchor = anchor  # weight of the exemplar relative to the previous frame
        self.prior = prior  # weight of the luma-conditioned colour lookup
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._exemplars: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._lut = np.zeros((2, LUT_BINS), np.float32)
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._grid: np.ndarray | None = None

    def new_scene(self, exemplars: list[Exemplar]) -> None:
        if not exemplars:
            raise ValueError("a scene needs at least one exemplar")
        self._exemplars = [(_u8(e.luma), e.luma.astype(np.float32), e.chroma.astype(np.float32)) for e in exemplars]
        self._lut = _luma_lut([e.luma for e in exemplars], [e.chroma for e in exemplars])
        self._prev = None

    def step(self, luma: np.ndarray) -> np.ndarray:
        # luma: H x W float32 [0,1] -> chroma: 2 x H x W float32
        luma = luma.astype(np.float32)
        cur8 = _u8(luma)
        if self._exemplars and self._exemplars[0][1].shape != luma.shape:
            raise ValueError(f"luma {luma.shape} does not match the exemplar {self._exemplars[0][1].shape}")
        lut = self._lut[:, np.clip((luma * LUT_BINS).astype(np.int32), 0, LUT_BINS - 1)]
        num = lut * self.prior
        den = np.full(luma.shape, self.prior, np.float32)
        sources = [(e8, ey, ec, self.anchor) for e8, ey, ec in self._exemplars]
        if self._prev is not None:
            sources.append((*self._prev, 1.0))
        for src8, src_y, src_c, weight in sources:
            chroma, conf = self._warp(cur8, luma, src8, src_y, src_c)
            w = conf * weight
            num += chroma * w
            den += w
        out = num / den
        self._prev = (cur8, luma, out)
        return out

    def _warp(self, cur8, luma, src8, src_y, src_c):
        flow = self._dis.calc(cur8, src8, None)  # H x W x 2: where each current pixel is in src
        h, w = luma.shape
        if self._grid is None or self._grid.shape[1:] != (h, w):
            self._grid = np.mgrid[0:h, 0:w].astype(np.float32)  # 2 x H x W: (y, x)
        map_x = self._grid[1] + flow[..., 0]
        map_y = self._grid[0] + flow[..., 1]
        warped_y = cv2.remap(src_y, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_c = np.stack([
            cv2.remap(src_c[c], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for c in range(2)
        ])
        err = cv2.blur(np.abs(warped_y - luma), (5, 5))
        conf = np.exp(-((err / self.sigma) ** 2))
        outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
        conf[outside] = 0.0
        return warped_c, conf


def _u8(luma: np.ndarray) -> np.ndarray:
    return np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _luma_lut(lumas: list[np.ndarray], chromas: list[np.ndarray]) -> np.ndarray:
    """2 x LUT_BINS: mean chroma of the exemplar pixels in each luma bin (neutral if empty)."""
    y = np.concatenate([l.ravel() for l in lumas])
    c = np.concatenate([ch.reshape(2, -1) for ch in chromas], axis=1)
    bins = np.clip((y * LUT_BINS).astype(np.int32), 0, LUT_BINS - 1)
    count = np.bincount(bins, minlength=LUT_BINS).astype(np.float32)
    lut = np.stack([np.bincount(bins, weights=c[i], minlength=LUT_BINS) for i in range(2)]).astype(np.float32)
    return lut / np.maximum(count, 1.0)


register("flow", FlowPropagator)
