"""Automatic colorizer: plausible colour for one grey keyframe, without any exemplar.

A small U-Net (``auto_net.AutoNet``) trained here (``jobs/train_auto.py``) after Zhang, Isola &
Efros 2016: it predicts a distribution over quantised (Cb, Cr) bins per pixel, decoded by the
annealed mean (temperature stored with the weights). The net runs at a fixed working size
(longest side WORK_SIDE, aspect kept, edge-padded to a multiple of its stride); chroma comes back
to the input's H x W through ``upsample.guided_upsample`` guided by the luma.

Colour: BT.709 Y'CbCr full range (``memnet_data.rgb_to_ycbcr`` / ``ycbcr_to_rgb``).
Weights: ``weights/auto.safetensors`` (no pickle), checked against ``weights/auto.sha256``.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import torch

from pipeline.model.auto_meta import DEFAULT_WEIGHTS, NAME, VERSION, verified_sha256
from pipeline.model.auto_net import OUT_STRIDE, STRIDE, T_DEFAULT, AutoNet, annealed_mean
from pipeline.model.upsample import guided_upsample

WORK_SIDE = 256


class AutoColorizer:
    name = NAME
    version = VERSION

    def __init__(self, threads: int = 1, weights: str | None = None):
        from safetensors import safe_open

        path = os.fspath(weights) if weights is not None else DEFAULT_WEIGHTS
        self._sha = verified_sha256(path)
        self._threads = max(1, int(threads))
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
        self.centres = sd.pop("centres").float()
        t = sd.pop("temperature", None)
        self.temperature = float(t.reshape(-1)[0]) if t is not None else T_DEFAULT
        width = tuple(int(v) for v in meta.get("width", "32,64,128,192").split(","))
        self.meta = meta
        self.net = AutoNet(self.centres.shape[0], width)
        missing, unexpected = self.net.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"auto colorizer: {path} does not fit the network "
                               f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        self.net.eval()
        self._lock = threading.Lock()

    def weights_sha256(self) -> str:
        return self._sha

    def chroma(self, luma: np.ndarray) -> np.ndarray:
        """luma: H x W float32 in [0, 1] (Y', BT.709, full range) -> 2 x H x W float32 (Cb, Cr)
        offsets in [-0.5, 0.5], BT.709, same H x W. Deterministic."""
        luma = np.asarray(luma)
        if luma.ndim != 2 or min(luma.shape) < 1:
            raise ValueError(f"auto colorizer: luma must be H x W, got shape {luma.shape}")
        hi = np.ascontiguousarray(np.clip(luma.astype(np.float32), 0.0, 1.0))
        H, W = hi.shape
        s = WORK_SIDE / max(H, W)
        w, h = max(1, int(round(W * s))), max(1, int(round(H * s)))
        if (w, h) == (W, H):
            lo = hi
        else:
            lo = cv2.resize(hi, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        ph, pw = -h % STRIDE, -w % STRIDE
        x = np.pad(lo, ((0, ph), (0, pw)), mode="edge")
        with self._lock:
            prev = torch.get_num_threads()
            torch.set_num_threads(self._threads)
            try:
                with torch.inference_mode():
                    lg = self.net(torch.from_numpy(np.ascontiguousarray(x))[None, None])
                    c = annealed_mean(lg, self.centres, self.temperature)[0].numpy()  # 2 x h/4 x w/4
            finally:
                torch.set_num_threads(prev)
        # chroma at the padded working size, then the real working area
        c = np.stack([cv2.resize(ch, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR) for ch in c])
        c = np.ascontiguousarray(c[:, :h, :w], dtype=np.float32)
        if (h, w) == (H, W):
            return np.clip(c, -0.5, 0.5).astype(np.float32)
        return guided_upsample(c, lo, hi).astype(np.float32)


_CACHE: dict[int, AutoColorizer] = {}
_CACHE_LOCK = threading.Lock()


def load(threads: int = 1) -> AutoColorizer:
    """The default AutoColorizer, cached per process (one per thread count)."""
    with _CACHE_LOCK:
        if threads not in _CACHE:
            _CACHE[threads] = AutoColorizer(threads=threads)
        return _CACHE[threads]
