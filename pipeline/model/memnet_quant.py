"""int8 memnet: post-training static quantization (FX graph mode, fbgemm/x86) of the
convolutional parts (learned key encoder, decoder body and head); the memory readout and
the fusion stay in float. Calibrated on a fixed synthetic clip made from a training
photograph, so the quantized model is deterministic.
"""

from __future__ import annotations

import copy

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
                body_p(xin)
        key_q, body_q = convert_fx(key_p), convert_fx(body_p)
    net.key.net = key_q
    net.decoder.body = body_q
    return net
