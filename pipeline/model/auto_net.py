"""Network of the automatic colorizer: a small U-Net, luma in, (Cb, Cr)-bin logits out.

After Zhang, Isola & Efros 2016 ("Colorful Image Colorization"), adapted to BT.709 Y'CbCr:
classification over quantised (Cb, Cr) bins, class-rebalanced cross-entropy, annealed-mean
decoding. Logits come out at 1/4 of the input resolution (colour is low-frequency); the input
side must be a multiple of STRIDE.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDE = 16  # input sides must be multiples of this
OUT_STRIDE = 4  # logits resolution = input / OUT_STRIDE
GRID_STEP = 0.04
T_DEFAULT = 0.38


def _cbr(cin: int, cout: int, stride: int = 1, dil: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dil, dilation=dil, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AutoNet(nn.Module):
    def __init__(self, n_bins: int, width: tuple[int, int, int, int] = (32, 64, 128, 192)):
        super().__init__()
        c1, c2, c3, c4 = width
        self.n_bins = n_bins
        self.width = width
        self.e1 = nn.Sequential(_cbr(1, c1, 2), _cbr(c1, c1))  # /2
        self.e2 = nn.Sequential(_cbr(c1, c2, 2), _cbr(c2, c2))  # /4
        self.e3 = nn.Sequential(_cbr(c2, c3, 2), _cbr(c3, c3))  # /8
        self.e4 = nn.Sequential(_cbr(c3, c4, 2), _cbr(c4, c4, dil=2), _cbr(c4, c4, dil=2))  # /16
        self.glob = nn.Sequential(nn.Linear(c4, c4), nn.ReLU(inplace=True))  # global scene context
        self.d3 = nn.Sequential(_cbr(c4 + c3, c3), _cbr(c3, c3))  # /8
        self.d2 = nn.Sequential(_cbr(c3 + c2, c2), _cbr(c2, c2))  # /4
        self.head = nn.Conv2d(c2, n_bins, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y: N x 1 x H x W luma in [0, 1] -> N x Q x H/4 x W/4 logits."""
        x = y - 0.5
        f1 = self.e1(x)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        f4 = self.e4(f3)
        g = self.glob(f4.mean((2, 3)))[:, :, None, None]
        f4 = f4 + g
        u = F.interpolate(f4, size=f3.shape[2:], mode="bilinear", align_corners=False)
        u = self.d3(torch.cat([u, f3], 1))
        u = F.interpolate(u, size=f2.shape[2:], mode="bilinear", align_corners=False)
        u = self.d2(torch.cat([u, f2], 1))
        return self.head(u)


def grid_centres(step: float = GRID_STEP) -> np.ndarray:
    """All (Cb, Cr) centres of the full grid over [-0.5, 0.5]^2: G x 2."""
    n = int(round(1.0 / step))
    v = (np.arange(n) + 0.5) * step - 0.5
    cb, cr = np.meshgrid(v, v, indexing="ij")
    return np.stack([cb.ravel(), cr.ravel()], 1).astype(np.float32)


def grid_index(c: np.ndarray, step: float = GRID_STEP) -> np.ndarray:
    """Chroma ... x 2 (last axis Cb, Cr) -> full-grid bin index."""
    n = int(round(1.0 / step))
    i = np.clip(np.floor((c + 0.5) / step).astype(np.int64), 0, n - 1)
    return i[..., 0] * n + i[..., 1]


def soft_encode(c: torch.Tensor, centres: torch.Tensor, k: int = 5, sigma: float = 0.02) -> torch.Tensor:
    """c: N x 2 x h x w chroma -> N x Q x h x w soft targets (Gaussian over the k nearest bins)."""
    n, _, h, w = c.shape
    p = c.permute(0, 2, 3, 1).reshape(-1, 2)
    d2 = torch.cdist(p, centres).pow(2)
    dk, ik = d2.topk(k, dim=1, largest=False)
    wk = torch.exp(-dk / (2 * sigma * sigma))
    wk = wk / wk.sum(1, keepdim=True)
    t = torch.zeros(p.shape[0], centres.shape[0], dtype=c.dtype, device=c.device)
    t.scatter_(1, ik, wk)
    return t.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, t: float = T_DEFAULT) -> torch.Tensor:
    """N x Q x h x w logits -> N x 2 x h x w chroma: mean of softmax(log p / T) over bin centres."""
    p = torch.softmax(logits.float() / t, dim=1)  # log-softmax(logits)/T up to a constant
    return torch.einsum("nqhw,qc->nchw", p, centres)
