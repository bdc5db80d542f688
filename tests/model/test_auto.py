"""The automatic colorizer: weights loading/verification and inference (fast, CPU)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pipeline.metrics import colorfulness  # noqa: E402
from pipeline.model import auto  # noqa: E402
from pipeline.model.memnet_data import rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return auto.load(threads=1)


def _colourfulness(y: np.ndarray, c: np.ndarray) -> float:
    return colorfulness(np.clip(ycbcr_to_rgb(y, c), 0, 1) * 255.0)


def _camera() -> np.ndarray:
    import skimage.data

    return (skimage.data.camera().astype(np.float32) / 255.0)


def test_interface(model):
    assert auto.AutoColorizer.name == "auto" and auto.AutoColorizer.version == "1"
    assert auto.load(threads=1) is model  # cached per process


def test_checksum_matches_file(model):
    path = auto.DEFAULT_WEIGHTS
    want = open(os.path.splitext(path)[0] + ".sha256").read().split()[0]
    assert len(want) == 64
    got = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert got == want == model.weights_sha256()
    assert os.path.getsize(path) < 8 * 1024 * 1024


def test_wrong_checksum_raises(tmp_path):
    w = tmp_path / "auto.safetensors"
    shutil.copy(auto.DEFAULT_WEIGHTS, w)
    (tmp_path / "auto.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(RuntimeError, match="sha256"):
        auto.AutoColorizer(weights=str(w))
    os.remove(tmp_path / "auto.sha256")
    with pytest.raises(RuntimeError, match="checksum file"):
        auto.AutoColorizer(weights=str(w))


def test_corrupt_weights_raise(tmp_path):
    w = tmp_path / "auto.safetensors"
    data = bytearray(open(auto.DEFAULT_WEIGHTS, "rb").read())
    data[-100] ^= 0xFF
    w.write_bytes(bytes(data))
    (tmp_path / "auto.sha256").write_text(open(os.path.splitext(auto.DEFAULT_WEIGHTS)[0] + ".sha256").read())
    with pytest.raises(RuntimeError, match="sha256"):
        auto.AutoColorizer(weights=str(w))


def test_shape_dtype_range(model):
    y = np.random.default_rng(0).random((180, 320)).astype(np.float32)
    c = model.chroma(y)
    assert c.shape == (2, 180, 320) and c.dtype == np.float32
    assert np.isfinite(c).all() and c.min() >= -0.5 and c.max() <= 0.5


@pytest.mark.parametrize("shape", [(160, 214), (214, 160), (97, 161), (31, 17), (300, 300), (5, 400)])
def test_odd_sizes(model, shape):
    y = np.linspace(0, 1, shape[0] * shape[1], dtype=np.float32).reshape(shape)
    c = model.chroma(y)
    assert c.shape == (2,) + shape and c.dtype == np.float32
    assert np.isfinite(c).all() and np.abs(c).max() <= 0.5


def test_deterministic(model):
    y = _camera()[::2, ::2].copy()
    a = model.chroma(y)
    b = model.chroma(y.copy())
    assert a.tobytes() == b.tobytes()
    other = auto.AutoColorizer(threads=1)
    assert other.chroma(y).tobytes() == a.tobytes()


def test_camera_has_colour(model):
    y = _camera()
    c = model.chroma(y)
    assert _colourfulness(y, c) > 10.0
    assert float(np.abs(c).mean()) > 0.01


def test_gradient_has_colour(model):
    # a sky-like vertical gradient with a darker textured band at the bottom
    h, w = 180, 320
    yy = np.linspace(0.9, 0.35, h, dtype=np.float32)[:, None].repeat(w, 1)
    yy[120:] = 0.25 + 0.1 * np.random.default_rng(1).random((60, w)).astype(np.float32)
    c = model.chroma(yy)
    assert _colourfulness(yy, c) > 2.0


def test_grey_input_of_colour_photo(model):
    # a real colour photo that is not a benchmark image: predicted colour is not sepia-flat
    import skimage.data

    rgb = skimage.data.retina()[::4, ::4].astype(np.float32) / 255.0
    y, _ = rgb_to_ycbcr(rgb)
    c = model.chroma(y)
    assert c.shape == (2,) + y.shape
    assert _colourfulness(y, c) > 2.0


def test_runtime_320x180(model):
    y = np.random.default_rng(2).random((180, 320)).astype(np.float32)
    model.chroma(y)  # warm-up
    t = time.perf_counter()
    for _ in range(3):
        model.chroma(y)
    assert (time.perf_counter() - t) / 3 < 0.5
