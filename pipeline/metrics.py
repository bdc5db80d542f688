"""Quality metrics of a colorized film against its colour reference (``filmcolor eval``).

All on 8-bit RGB frames (H x W x 3 uint8), computed in float:
- psnr:  mean over frames of 10 log10(255^2 / MSE) (inf for identical frames)
- ssim:  mean over frames and channels of SSIM (Wang et al. 2004: Gaussian window
         sigma 1.5, K1 0.01, K2 0.03, data range 255)
- cdc:   colour distribution consistency (TCVC, Liu et al.): per channel 256-bin
         histograms, Jensen-Shannon divergence (natural log) between frames i and i+d,
         d = 1, 2, 4, averaged over frame pairs, channels and d. Lower = steadier colour.
         Pairs never cross a scene boundary.
- colorfulness: Hasler & Suesstrunk (2003), mean over frames, and its ratio output /
         reference (1.0 = as colourful as the reference).
Per scene and overall. Frames are consumed one at a time (a film never sits in memory).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

CDC_STEPS = (1, 2, 4)


# ---- per-frame metrics ------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over channels (Gaussian 11x11, sigma 1.5)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    g = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mu_a, mu_b = g(a), g(b)
    saa = g(a * a) - mu_a * mu_a
    sbb = g(b * b) - mu_b * mu_b
    sab = g(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk colourfulness of one RGB frame (0 for grey)."""
    f = rgb.astype(np.float64)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    return float(math.sqrt(rg.var() + yb.var()) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def histograms(rgb: np.ndarray) -> np.ndarray:
    """3 x 256 normalised per-channel histograms."""
    h = np.stack([np.bincount(rgb[..., c].ravel(), minlength=256) for c in range(3)])
    return h.astype(np.float64) / max(1, rgb.shape[0] * rgb.shape[1])


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log) between histograms p, q (... x 256),
    averaged over the leading axes."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum(-1)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum(-1)
    return float(np.mean(0.5 * (kl_p + kl_q)))


# ---- accumulation -------------------------------------------------------------------------
class _Acc:
    """Running sums of one scene (or of the whole film)."""

    def __init__(self) -> None:
        self.n = 0
        self.psnr = 0.0
        self.ssim = 0.0
        self.cf_out = 0.0
        self.cf_ref = 0.0
        self.js = {d: [0.0, 0] for d in CDC_STEPS}
        self.js_ref = {d: [0.0, 0] for d in CDC_STEPS}
        self.hist: deque = deque(maxlen=max(CDC_STEPS))
        self.hist_ref: deque = deque(maxlen=max(CDC_STEPS))

    def add(self, out: np.ndarray, ref: np.ndarray, cdc_pairs: bool = True) -> None:
        self.n += 1
        self.psnr += psnr(out, ref)
        self.ssim += ssim(out, ref)
        self.cf_out += colorfulness(out)
        self.cf_ref += colorfulness(ref)
        for hist, js, img in ((self.hist, self.js, out), (self.hist_ref, self.js_ref, ref)):
            h = histograms(img)
            if cdc_pairs:
                for d in CDC_STEPS:
                    if len(hist) >= d:
                        js[d][0] += js_divergence(hist[-d], h)
                        js[d][1] += 1
            hist.append(h)

    def reset_history(self) -> None:
        self.hist.clear()
        self.hist_ref.clear()

    @staticmethod
    def _cdc(js) -> float:
        vals = [s / c for s, c in js.values() if c]
        return float(np.mean(vals)) if vals else float("nan")

    def result(self) -> dict:
        n = max(self.n, 1)
        cf_out, cf_ref = self.cf_out / n, self.cf_ref / n
        return {
            "frames": self.n,
            "psnr": self.psnr / n,
            "ssim": self.ssim / n,
            "cdc": self._cdc(self.js),
            "cdc_reference": self._cdc(self.js_ref),
            "colorfulness": cf_out,
            "colorfulness_reference": cf_ref,
            "colorfulness_ratio": cf_out / cf_ref if cf_ref > 0 else (1.0 if cf_out == 0 else math.inf),
        }


def _scene_ranges(scenes) -> list[tuple[int, int]]:
    """Accepts [(start, end)], [{'start_frame', 'end_frame'}] or a scene table with those
    columns (pandas / pyarrow); end is exclusive."""
    if scenes is None:
        return []
    if hasattr(scenes, "to_pylist"):
        scenes = scenes.to_pylist()
    elif hasattr(scenes, "to_dict"):
        scenes = scenes.to_dict("records")
    out = []
    for s in scenes:
        if isinstance(s, dict):
            out.append((int(s["start_frame"]), int(s["end_frame"])))
        else:
            out.append((int(s[0]), int(s[1])))
    return sorted(out)


def evaluate(
    output_frames: Iterable[np.ndarray],
    reference_frames: Iterable[np.ndarray],
    scenes: Sequence | None = None,
) -> dict:
    """Metrics of output vs reference (iterables of H x W x 3 uint8 RGB frames, same order).

    -> {overall metrics..., 'scenes': [{'scene', 'start_frame', 'end_frame', metrics...}]}
    Without ``scenes`` the film is one scene. CDC pairs never straddle a scene cut.
    """
    ranges = _scene_ranges(scenes)
    total = _Acc()
    per = [_Acc() for _ in ranges]
    si = 0
    n = 0
    it_ref = iter(reference_frames)
    for i, out in enumerate(output_frames):
        try:
            ref = next(it_ref)
        except StopIteration:
            raise ValueError(f"output has more frames than the reference ({i})") from None
        if out.shape != ref.shape:
            raise ValueError(f"frame {i}: output {out.shape} vs reference {ref.shape}")
        while si < len(ranges) and i >= ranges[si][1]:
            si += 1
        in_scene = si < len(ranges) and ranges[si][0] <= i < ranges[si][1]
        if in_scene and i == ranges[si][0]:
            total.reset_history()  # a cut: no CDC pair across it
        total.add(out, ref)
        if in_scene:
            per[si].add(out, ref)
        n = i + 1
    if next(it_ref, None) is not None:
        raise ValueError(f"reference has more frames than the output ({n})")
    res = total.result()
    if ranges:
        res["scenes"] = [
            {"scene": k, "start_frame": a, "end_frame": b, **acc.result()}
            for k, ((a, b), acc) in enumerate(zip(ranges, per))
        ]
    else:
        res["scenes"] = [{"scene": 0, "start_frame": 0, "end_frame": n, **{k: v for k, v in res.items()}}]
    return res


def decode_rgb(path: str) -> Iterator[np.ndarray]:
    """Frames of a film's first video stream as H x W x 3 uint8 RGB, one at a time."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def evaluate_files(output_path: str, reference_path: str, scenes: Sequence | None = None) -> dict:
    """``evaluate`` on two films decoded with PyAV (frame by frame)."""
    res = evaluate(decode_rgb(output_path), decode_rgb(reference_path), scenes)
    res["output"], res["reference"] = str(output_path), str(reference_path)
    return res
