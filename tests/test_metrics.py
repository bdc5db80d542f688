"""Sanity of the quality metrics behind `filmcolor eval`."""

import math

import av
import numpy as np
import pytest

from pipeline import metrics


def _frames(n, seed=0, h=32, w=48):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_identical_frames():
    f = _frames(6)
    r = metrics.evaluate(iter(f), iter(f))
    assert r["psnr"] == math.inf
    assert r["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert r["colorfulness_ratio"] == pytest.approx(1.0)
    assert r["cdc"] == pytest.approx(r["cdc_reference"])
    assert r["frames"] == 6 and len(r["scenes"]) == 1


def test_psnr_known_value():
    a = np.full((10, 10, 3), 100, np.uint8)
    b = a + 10  # MSE 100 -> 10 log10(255^2 / 100)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))


def test_ssim_drops_with_noise():
    f = _frames(1)[0]
    noisy = np.clip(f.astype(int) + np.random.default_rng(1).integers(-40, 40, f.shape), 0, 255).astype(np.uint8)
    assert 0 < metrics.ssim(f, noisy) < 0.99


def test_colorfulness():
    grey = np.full((8, 8, 3), 128, np.uint8)
    assert metrics.colorfulness(grey) == 0.0
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    # rg = 255, yb = 127.5, no variance -> 0.3 * sqrt(255^2 + 127.5^2)
    assert metrics.colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_js_divergence_known_values():
    p = np.zeros(256)
    q = np.zeros(256)
    p[0], q[1] = 1.0, 1.0
    assert metrics.js_divergence(p, q) == pytest.approx(math.log(2))  # disjoint: ln 2
    assert metrics.js_divergence(p, p) == 0.0


def test_cdc_static_is_zero_and_flicker_is_not():
    f = _frames(1)[0]
    static = metrics.evaluate(iter([f] * 5), iter([f] * 5))
    assert static["cdc"] == 0.0
    flicker = [f if i % 2 else (f // 2) for i in range(8)]
    r = metrics.evaluate(iter(flicker), iter([f] * 8))
    assert r["cdc"] > 0.05 and r["cdc_reference"] == 0.0


def test_per_scene_and_no_cdc_across_cuts():
    a, b = _frames(2, seed=3)
    out = [a] * 4 + [b] * 4
    r = metrics.evaluate(iter(out), iter(out), scenes=[(0, 4), (4, 8)])
    assert [s["frames"] for s in r["scenes"]] == [4, 4]
    assert r["cdc"] == 0.0  # the a->b jump is a cut, not flicker


def test_length_mismatch_raises():
    f = _frames(3)
    with pytest.raises(ValueError):
        metrics.evaluate(iter(f), iter(f[:2]))


def test_evaluate_files(tmp_path):
    frames = _frames(5, h=32, w=48)
    for name in ("a.mkv", "b.mkv"):
        with av.open(str(tmp_path / name), "w") as c:
            s = c.add_stream("ffv1", rate=25)
            s.width, s.height, s.pix_fmt = 48, 32, "bgr0"
            for f in frames:
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    r = metrics.evaluate_files(tmp_path / "a.mkv", tmp_path / "b.mkv")
    assert r["frames"] == 5 and r["psnr"] == math.inf
