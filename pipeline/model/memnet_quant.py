"""int8 memnet: post-training static quantization (FX graph mode, fbgemm/x86) of the
convolutional parts (learned key encoder, decoder body and head); the memory readout and
the fusion stay in float. Calibrated on a fixed synthetic clip made from a training
photograph, so the quantized model is deterministic.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import torch


def _calibration_inputs(net) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(luma B x 1 x h x w, decoder input B x 12 x h x w) pairs from a float run."""
    import cv2

    from pipeline.model.memnet_data import SKIMAGE_TRAIN, ClipSpec, _skimage, make_clip, rgb_to_ycbcr
    from pipeline.model.memory import MemoryConfig, MemoryManager

    im = _skimage(SKIMAGE_TRAIN[0])  # a training photograph (never a benchmark one)
    im = cv2.resize(im, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(1234)
    pairs = []
    for j in range(2):
        rgb, luma = make_clip(im, ClipSpec(frames=6, height=88, width=160, occluders=1, pan=0.02), rng)
        y, c = rgb_to_ycbcr(rgb)
        mem = MemoryManager(MemoryConfig(gamma=2))
        captured = []
        hook = net.decoder.register_forward_pre_hook(lambda m, a: captured.append(a[0].detach()))
        with torch.no_grad():
            net.memorize(mem, torch.from_numpy(y[:1, None]), torch.from_numpy(c[:1]), permanent=True)
            prev = (y[:1], c[:1])
            for t in range(1, len(luma)):
                lt = torch.from_numpy(luma[t][None, None])
                out, keys = net.frame(mem, lt, prev[0], prev[1], y[:1], c[:1])
                prev = (luma[t][None], out.numpy())
                pairs.append((lt, captured[-1]))
        hook.remove()
    return pairs


def quantize_net(net):
    """-> a copy of ``net`` whose convolutions run in int8."""
    from torch.ao.quantization import get_default_qconfig_mapping

    from pipeline.model.memnet_net import half
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    import warnings

    net = copy.deepcopy(net).eval()
    calib = _calibration_inputs(net)
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    qmap = get_default_qconfig_mapping(torch.backends.quantized.engine)
    x0 = calib[0]
    with warnings.catch_warnings():  # torch's own deprecation notices of its int8 API:
        warnings.simplefilter("ignore", UserWarning)  # nothing the user can act on
        key_p = prepare_fx(net.key.net, qmap, (x0[0],))
        body_p = prepare_fx(net.decoder.body, qmap, (x0[1],))
        with torch.no_grad():
            for lt, xin in calib:
                key_p(lt - 0.5)
                body_p(xin)  # the decoder body at full resolution (decoder_scale 1) ...
                body_p(half(xin))  # ... and at half (decoder_scale 2): one archive, both
        key_q, body_q = convert_fx(key_p), convert_fx(body_p)
    net.key.net = key_q
    net.decoder.body = body_q
    return net


# --- prepared at build time -------------------------------------------------------------
# FX preparation and calibration cost an actor seconds (FX tracing alone imports torch's
# dynamo and sympy). The int8 modules are prepared once from the committed weights and
# shipped as a TorchScript archive (torch.jit.load builds tensors and TorchScript code; no
# Python pickle runs), checked against its sha256 and against the float weights it was
# made from. Re-export after training:
#     python -m pipeline.model.memnet_quant

PREPARED = Path(__file__).with_name("weights") / "memnet_int8.pt"


class _Pair(torch.nn.Module):
    """The two int8 parts in one archive (forward only so that it can be scripted)."""

    def __init__(self, key, body):
        super().__init__()
        self.key = key
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.key(x)


def export_prepared(net_q, weights_sha: str, path: Path = PREPARED) -> str:
    """Trace the int8 key encoder and decoder body of a quantized net into `path`;
    writes `path`.sha256 and returns the archive's sha256."""
    calib = _calibration_inputs_for(net_q)
    key = torch.jit.trace(net_q.key.net, (calib[0],), check_trace=False)
    body = torch.jit.trace(net_q.decoder.body, (calib[1],), check_trace=False)
    pair = torch.jit.script(_Pair(key, body))
    torch.jit.save(pair, str(path), _extra_files={"weights_sha256": weights_sha,
                                                  "torch": torch.__version__})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".sha256").write_text(sha + "\n")
    return sha


def load_prepared(net, weights_sha: str, path: Path = PREPARED):
    """-> ``net`` with the shipped int8 parts, or None when there is no archive for these
    weights and this torch (the caller quantizes on the fly). A corrupt archive raises."""
    sha_file = path.with_suffix(".sha256")
    if not path.exists() or not sha_file.exists():
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha_file.read_text().split()[0]:
        raise RuntimeError(f"{path}: sha256 does not match {sha_file.name} (corrupt prepared int8 model)")
    extra = {"weights_sha256": "", "torch": ""}
    import io
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pair = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    made = {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}
    if made["weights_sha256"] != weights_sha or made["torch"] != torch.__version__:
        return None  # made from other weights or another torch: not this model
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    net = copy.deepcopy(net).eval()
    net.key.net = pair.key
    net.decoder.body = pair.body
    return net


def _calibration_inputs_for(net_q) -> tuple[torch.Tensor, torch.Tensor]:
    """Example inputs of the key encoder (B x 1 x h x w) and decoder body (B x C x h x w)."""
    from pipeline.model.memnet import load_net

    float_net, _ = load_net("trained")
    lt, xin = _calibration_inputs(float_net)[0]
    return lt - 0.5, xin


if __name__ == "__main__":
    from pipeline.model.memnet import load_net

    net, sha = load_net("trained")
    print(PREPARED, export_prepared(quantize_net(net), sha))
