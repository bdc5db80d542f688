"""memnet: a memory-based propagation model (ColorMNet / XMem style), CPU-sized.

Per frame (working-res luma H x W in, chroma 2 x H x W out):
  1. luma -> decoder resolution h x w (long side <= ``max_side``; the working res of a
     640x360 film, 320x180, is used as is)
  2. key encoder (fixed features + learned CNN) on luma at h/2 x w/2 -> keys at h/8 x w/8
  3. global step: L2-similarity top-k readout of the keys against the memory
     (permanent exemplars + working + long-term, see ``pipeline.model.memory``)
  4. local step: the previous output's chroma warped onto this frame by dense flow (DIS),
     with its luma warp error as confidence; and the exemplar's chroma sampled through
     the exemplar track (``ExemplarTrack``: the map frame -> exemplar followed through the
     scene, so pans, zooms and rotations far beyond a direct flow's reach stay anchored)
  5. decoder (learned, luma-guided) fuses local and global chroma
  6. chroma back to H x W (bilinear; the caller then upsamples guided by full-res luma)
  7. every gamma-th frame: its keys and values (pooled chroma + luma) enter working memory

The input luma is never altered (only chroma is produced).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.model.base import Exemplar, Propagator, register
from pipeline.model.memnet_net import (
    Decoder,
    ExemplarTrack,
    KeyEncoder,
    decoder_size,
    encode_value,
    fixed_fusion,
    key_size,
    local_warp,
    readout,
    upsample_chroma,
)
from pipeline.model.memory import MemoryConfig, MemoryManager

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "memnet.safetensors"  # the committed trained weights
#: what ``weights=None`` means, chosen on the *validation* clips of real footage
#: (bench/model/footage.py; ``bench/model/run.py --real validation``), mean PSNR over 4
#: clips with top-k 8: the floor (fixed keys, fixed fusion) 31.02 dB, the committed
#: trained weights 30.88, the same fine-tuned on real video (BBB, 500 steps) 30.94, flow
#: 30.92. The trained decoder was trained on synthetic camera moves over photographs and
#: wins only there (the synthetic quality set). "trained" loads the committed weights.
DEFAULT = "none"


class MemNet(nn.Module):
    """The learned parts plus the per-frame engine (batched: training and inference)."""

    def __init__(self, learned: bool = True, ch: int = 24, mem_scale: int = 2,
                 global_logit: float = -4.0):
        super().__init__()
        self.learned = learned
        self.mem_scale = mem_scale
        self.decoder_scale = 1  # the decoder network's resolution divisor (Decoder.forward)
        self.key = KeyEncoder(learned=learned)
        self.decoder = Decoder(ch, global_logit) if learned else None
        self.log_inv_temp = nn.Parameter(torch.tensor(math.log(300.0)))

    def key_input(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x h x w (decoder res) -> B x C x hk x wk (key res), area-averaged."""
        hk, wk = key_size(x.shape[-2], x.shape[-1], self.mem_scale)
        return x if (hk, wk) == tuple(x.shape[-2:]) else F.interpolate(x, size=(hk, wk), mode="area")

    def memorize(self, mem: MemoryManager, luma: torch.Tensor, chroma: torch.Tensor,
                 keys: torch.Tensor | None = None, permanent: bool = False) -> None:
        # luma: B x 1 x h x w, chroma: B x 2 x h x w, keys: B x Ck x hk/4 x wk/4
        lk = self.key_input(luma)
        if keys is None:
            keys = self.key(lk)
        v = encode_value(lk, self.key_input(chroma))  # B x 3 x hk/4 x wk/4
        k, v = keys.flatten(2), v.flatten(2)  # B x Ck x E, B x 3 x E
        if permanent:
            mem.add_permanent(k, v)
        else:
            mem.add_working(k.detach(), v.detach())

    def frame(self, mem: MemoryManager, luma: torch.Tensor, prev_luma: np.ndarray,
              prev_chroma: np.ndarray, ex_luma: np.ndarray, ex_chroma: np.ndarray,
              tracks: list[ExemplarTrack] | None = None, ex_ids: list[int] | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame.

        luma: B x 1 x h x w; prev_luma, ex_luma: B x h x w;
        prev_chroma, ex_chroma: B x 2 x h x w (numpy)
        tracks: one exemplar track per batch item (state kept by the caller across the
        frames of a scene; None: plain flow to the exemplar); ex_ids: which exemplar
        -> chroma B x 2 x h x w, keys B x Ck x hk/4 x wk/4
        """
        b, _, h, w = luma.shape
        keys = self.key(self.key_input(luma))  # B x Ck x h4 x w4 (h4 = hk / 4)
        h4, w4 = keys.shape[-2:]
        mk, mv, mk2 = mem.keys_values()  # B x Ck x N, B x 3 x N, B x N
        read, stats, usage = readout(
            keys.flatten(2), mk, mv, mk2, mem.cfg.topk, self.log_inv_temp.exp(), self.key.dim
        )  # B x 3 x Nq, B x 2 x Nq, B x N
        mem.add_usage(usage)
        glob = torch.cat([read, stats], 1).view(b, 5, h4, w4)
        glob = F.interpolate(glob, size=(h, w), mode="bilinear", align_corners=False)
        cur = luma[:, 0].detach().cpu().numpy()
        warped = np.empty((b, 2, h, w), np.float32)
        err = np.empty((b, 1, h, w), np.float32)
        exw = np.empty((b, 2, h, w), np.float32)
        exerr = np.empty((b, 1, h, w), np.float32)
        for i in range(b):  # local step: flow-warped previous chroma (and exemplar's)
            warped[i], err[i, 0], flow = local_warp(cur[i], prev_luma[i], prev_chroma[i], return_flow=True)
            if tracks is None:
                exw[i], exerr[i, 0] = local_warp(cur[i], ex_luma[i], ex_chroma[i])
            else:
                eid = ex_ids[i] if ex_ids is not None else 0
                exw[i], exerr[i, 0] = tracks[i].warp(cur[i], ex_luma[i], ex_chroma[i], flow, eid)
        dev = luma.device  # the local step ran on the CPU (OpenCV); its maps join the luma's device

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(dev, non_blocking=True)

        x = torch.cat(
            [luma, t(warped), t(err), glob[:, 0:2], (glob[:, 2:3] - luma).abs(), glob[:, 3:5], t(exw), t(exerr)],
            1,
        )  # B x 12 x h x w
        out = self.decoder(x, self.decoder_scale) if self.decoder is not None else fixed_fusion(x)
        return out, keys  # B x 2 x h x w, B x Ck x h4 x w4


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_net(weights: str | os.PathLike | None) -> tuple[MemNet, str]:
    """weights: 'trained' (the committed weights file), a .safetensors path, 'none' (no
    learned parts: fixed keys and fixed fusion, the floor) or None (``DEFAULT``).
    -> (net in eval mode, sha256 of the weights file or '')."""
    if weights is None:
        weights = DEFAULT
    if isinstance(weights, str) and weights.lower() == "none":
        return MemNet(learned=False).eval(), ""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = DEFAULT_WEIGHTS if weights == "trained" else Path(weights)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    net = MemNet(learned=True, ch=int(meta.get("ch", 24)), mem_scale=int(meta.get("mem_scale", 1)),
                 global_logit=float(meta.get("global_logit", -4.0)))
    net.load_state_dict(load_file(str(path)), strict=True)
    net.key.drop_if_dead()
    return net.eval(), file_sha256(path)


class MemNetPropagator(Propagator):
    name = "memnet"
    version = "3"  # 2: exemplar track; 3: decoder at half resolution (re-runs redo older segments)

    def __init__(
        self,
        *,
        weights: str | os.PathLike | None = None,
        quantize: bool = True,  # int8 decoder for learned weights on the CPU: same PSNR, faster (bench)
        device: str = "cpu",  # "cuda" (or "auto": cuda when there is one): the networks and
        # the readout run there in float; the flow (OpenCV) stays on the CPU
        threads: int | None = None,
        gamma: int = 5,
        max_working: int = 6,
        min_working: int = 3,
        compress_to: int = 128,
        max_longterm: int = 1024,
        topk: int = 8,  # validation (real clips, floor): k=4 31.03, 8 31.02, 16 30.96 dB; 8 loses to flow least
        max_side: int = 320,
        fusion: str = "learned",
        track: bool = True,
        decoder_scale: int = 2,
    ):
        if threads is not None:
            # torch stays on one thread: its convolutions here are tiny, and a second
            # intra-op thread only spins against the decoder/encoder threads (measured
            # through the job at 640x360 on 2 busy cores: 2.0 fps with 2 torch threads)
            torch.set_num_threads(1)
            cv2.setNumThreads(int(threads))
        # torch.use_deterministic_algorithms() without its first import of torch._inductor
        # (dynamo, sympy: 2.5 s of an actor's start-up; nothing here is compiled)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda"):
            # deterministic cuBLAS (bmm of the readout) needs a fixed workspace
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        torch._C._set_deterministic_algorithms(True, warn_only=True)
        self.device = torch.device(device)
        self.net, self._sha = load_net(weights)
        if fusion not in ("learned", "fixed"):
            raise ValueError(f"fusion must be 'learned' or 'fixed', not {fusion!r}")
        if fusion == "fixed":  # learned keys, fixed candidate weighting
            self.net.decoder = None
        self.quantized = False
        if quantize and self.net.learned and self.net.decoder is not None and self.device.type == "cpu":
            from pipeline.model.memnet_quant import load_prepared, quantize_net

            # The shipped int8 parts when they were made from these weights (0.2 s),
            # else prepared and calibrated here (seconds).
            self.net = load_prepared(self.net, self._sha) or quantize_net(self.net)
            self.quantized = True
        self.net.to(self.device)
        if int(decoder_scale) not in (1, 2):
            raise ValueError(f"decoder_scale must be 1 or 2, not {decoder_scale!r}")
        self.net.decoder_scale = int(decoder_scale)
        self.max_side = int(max_side)
        self.mem = MemoryManager(
            MemoryConfig(
                gamma=gamma,
                max_working=max_working,
                min_working=min_working,
                compress_to=compress_to,
                max_longterm=max_longterm,
                topk=topk,
            )
        )
        self._exemplars: list[tuple[np.ndarray, np.ndarray]] = []
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._size: tuple[int, int] | None = None
        self.track = ExemplarTrack() if track else None

    def weights_sha256(self) -> str:
        return self._sha

    @classmethod
    def static_info(cls) -> dict:
        """The default model's record entry, from its weights file alone (no file: the floor)."""
        sha = "" if DEFAULT == "none" else file_sha256(DEFAULT_WEIGHTS)
        return {"name": cls.name, "version": cls.version, "weights_sha256": sha}

    # ---- helpers -----------------------------------------------------------------------
    def _down(self, x: np.ndarray) -> np.ndarray:
        h, w = self._size
        if x.shape[-2:] == (h, w):
            return np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 2:
            return cv2.resize(x.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return np.stack([self._down(c) for c in x])

    def _t(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    # ---- Propagator --------------------------------------------------------------------
    def new_scene(self, exemplars: list[Exemplar]) -> None:
        if not exemplars:
            raise ValueError("a scene needs at least one exemplar")
        self.mem.reset()
        H, W = exemplars[0].luma.shape
        self._size = decoder_size(H, W, self.max_side)
        self._exemplars = []
        with torch.inference_mode():
            for ex in exemplars:
                if ex.luma.shape != (H, W):
                    raise ValueError("exemplars of one scene must share the working size")
                lum = self._down(ex.luma)
                chr_ = self._down(ex.chroma)
                self._exemplars.append((lum, chr_))
                self.net.memorize(
                    self.mem, self._t(lum)[None, None], self._t(chr_)[None], permanent=True
                )
        self._prev = None
        if self.track is not None:
            self.track.reset()

    def step(self, luma: np.ndarray) -> np.ndarray:
        if self._size is None:
            raise RuntimeError("new_scene() must be called before step()")
        H, W = luma.shape
        if decoder_size(H, W, self.max_side) != self._size:
            raise ValueError("frame size differs from the scene's exemplars")
        luma = np.asarray(luma, dtype=np.float32)
        lum = self._down(luma)
        # the exemplar that looks most like this frame: re-anchoring target (and the
        # "previous frame" of the scene's first step)
        ex_id = 0
        if len(self._exemplars) > 1:
            ex_id = int(np.argmin([float(np.abs(e[0] - lum).mean()) for e in self._exemplars]))
        ex = self._exemplars[ex_id]
        if self._prev is None:
            self._prev = ex
        pl, pc = self._prev
        with torch.inference_mode():
            lt = self._t(lum)[None, None]  # 1 x 1 x h x w
            out, keys = self.net.frame(self.mem, lt, pl[None], pc[None], ex[0][None], ex[1][None],
                                       tracks=None if self.track is None else [self.track], ex_ids=[ex_id])
            if self.mem.should_memorize():
                self.net.memorize(self.mem, lt, out, keys=keys)
            out_np = out[0].cpu().numpy()  # 2 x h x w
        self._prev = (lum, out_np)
        return upsample_chroma(out_np, luma)


    # ---- exemplars across scenes ---------------------------------------------------------
    def exemplar_similarity(self, exemplar_luma: np.ndarray, frames: list[np.ndarray]) -> float:
        """How well an exemplar's content explains a scene: for each of the scene's sample
        frames (working-res luma), the mean L2 distance of its keys to their best match
        among the exemplar's keys (the readout's own similarity); -> exp(-distance), in
        (0, 1], higher = more similar. For picking the exemplar of a scene without one
        (returning shots, shot / reverse shot)."""
        H, W = exemplar_luma.shape
        size = self._size
        self._size = decoder_size(H, W, self.max_side)
        try:
            with torch.inference_mode():
                ek = self.net.key(self._t(self._down(exemplar_luma))[None, None]).flatten(2)
                ek2 = (ek * ek).sum(1)  # 1 x N
                dists = []
                for f in frames:
                    q = self.net.key(self._t(self._down(f))[None, None]).flatten(2)  # 1 x Ck x Nq
                    d = (q * q).sum(1).unsqueeze(-1) - 2 * torch.bmm(q.transpose(1, 2), ek) + ek2.unsqueeze(1)
                    dists.append(float(d.min(-1).values.clamp_min(0).div(self.net.key.dim).sqrt().mean()))
        finally:
            self._size = size
        return float(math.exp(-10.0 * float(np.mean(dists))))


register("memnet", MemNetPropagator)
