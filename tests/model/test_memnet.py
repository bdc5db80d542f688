"""memnet: memory bookkeeping, determinism, weights, a short colorization."""

import hashlib

import numpy as np
import pytest
import torch

from pipeline.model import Exemplar, create
from pipeline.model import memnet
from pipeline.model.memnet import DEFAULT_WEIGHTS, MemNetPropagator, load_net
from pipeline.model.memnet_data import ClipSpec, load_images, make_clip, rgb_to_ycbcr
from pipeline.model.memory import MemoryConfig, MemoryManager


def _kv(e, ck=4, cv=3, fill=None):
    k = torch.randn(1, ck, e) if fill is None else torch.full((1, ck, e), float(fill))
    return k, torch.randn(1, cv, e)


def test_exemplar_never_evicted_and_memory_bounded():
    cfg = MemoryConfig(gamma=1, max_working=4, min_working=2, compress_to=5, max_longterm=12)
    mem = MemoryManager(cfg)
    ek, ev = _kv(10, fill=7.0)
    mem.add_permanent(ek, ev)
    sizes = []
    for i in range(60):
        k, v = _kv(10)
        mem.add_working(k, v)
        # the permanent elements receive no attention at all: still kept
        mem.add_usage(torch.cat([torch.zeros(1, 10), torch.rand(1, mem.size - 10)], 1))
        sizes.append(mem.size)
        assert torch.equal(mem.permanent.keys, ek) and torch.equal(mem.permanent.values, ev)
    assert mem.compressions > 0
    assert max(sizes) <= 10 + cfg.max_longterm + cfg.max_working * 10
    assert mem.longterm.size <= cfg.max_longterm
    assert len(mem.working) <= cfg.max_working
    k, v, k2 = mem.keys_values()
    assert k.shape[-1] == mem.size and torch.equal(k[..., :10], ek)


def test_compression_keeps_most_used():
    cfg = MemoryConfig(gamma=1, max_working=2, min_working=1, compress_to=3, max_longterm=100)
    mem = MemoryManager(cfg)
    mem.add_permanent(*_kv(2))
    f0 = _kv(6)
    mem.add_working(*f0)
    usage = torch.tensor([[0, 0, 0.1, 5.0, 0.2, 3.0, 0.0, 4.0]])  # 2 permanent + 6 of frame 0
    mem.add_usage(usage)
    mem.add_working(*_kv(6))
    mem.add_working(*_kv(6))  # 3 > max_working: frame 0 and 1 compressed (min_working=1)
    assert mem.compressions == 1 and len(mem.working) == 1
    # frame 0's used elements (3, 5, 1 by usage 5.0, 4.0, 3.0) beat frame 1's unused ones
    kept = mem.longterm.keys[0].T
    expect = f0[0][0].T[[1, 5, 3]]
    assert mem.longterm.size == 3
    assert torch.equal(kept, expect)
    assert mem.longterm.usage.tolist() == [[5.0, 4.0, 3.0]]


def test_longterm_eviction_keeps_most_used():
    cfg = MemoryConfig(gamma=1, max_working=1, min_working=0, compress_to=4, max_longterm=4)
    mem = MemoryManager(cfg)
    mem.add_permanent(*_kv(1))
    for i in range(5):
        mem.add_working(*_kv(4))
        mem.add_usage(torch.cat([torch.zeros(1, mem.size - 4), torch.full((1, 4), float(i))], 1))
    assert mem.longterm.size <= 4


def _clip(frames=12, seed=0, h=72, w=128):
    ims = load_images("bench", 400)
    rng = np.random.default_rng(seed)
    rgb, luma = make_clip(ims[1][1], ClipSpec(frames=frames, height=h, width=w, pan=0.02, occluders=1), rng)
    _, c = rgb_to_ycbcr(rgb)
    return luma, c


def _run(model, luma, c):
    model.new_scene([Exemplar(0, luma[0], c[0])])
    return np.stack([model.step(l) for l in luma[1:]])


@pytest.mark.parametrize("weights", [None, "trained"])
def test_deterministic(weights):
    luma, c = _clip()
    a = _run(MemNetPropagator(weights=weights), luma, c)
    b = _run(MemNetPropagator(weights=weights), luma, c)
    assert a.shape == c[1:].shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    m = MemNetPropagator(weights=weights)
    assert np.array_equal(_run(m, luma, c), _run(m, luma, c))  # new_scene resets everything


def test_weights_load_and_checksum():
    assert DEFAULT_WEIGHTS.exists(), "committed weights missing"
    net, sha = load_net("trained")
    assert net.learned
    assert sha == hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    recorded = DEFAULT_WEIGHTS.with_suffix(".sha256").read_text().split()[0]
    assert sha == recorded
    m = create("memnet", threads=1, weights="trained")
    assert m.weights_sha256() == sha and m.name == "memnet"
    assert create("memnet", weights=str(DEFAULT_WEIGHTS)).weights_sha256() == sha
    # the default is what the benchmark chose (memnet.DEFAULT)
    assert create("memnet").weights_sha256() == ("" if memnet.DEFAULT == "none" else sha)
    assert create("memnet", weights="none").weights_sha256() == ""


@pytest.mark.parametrize("weights", [None, "trained"])
def test_beats_copy_baseline(weights):
    luma, c = _clip(frames=16, seed=1)
    out = _run(create("memnet", weights=weights), luma, c)
    mse = float(np.mean((out - c[1:]) ** 2))
    copy = float(np.mean((c[:1] - c[1:]) ** 2))
    assert mse < 0.7 * copy


def test_needs_scene():
    m = MemNetPropagator(weights="none")
    with pytest.raises(RuntimeError):
        m.step(np.zeros((16, 16), np.float32))
    with pytest.raises(ValueError):
        m.new_scene([])


def test_exemplar_similarity_picks_the_returning_shot():
    ims = load_images("bench", 400)
    spec = ClipSpec(frames=6, height=72, width=128, pan=0.01, occluders=0)
    shots = []
    for k in (0, 3):  # two different shots (photographs)
        rgb, luma = make_clip(ims[k][1], spec, np.random.default_rng(k))
        shots.append((rgb_to_ycbcr(rgb)[0][0], luma[3:]))  # exemplar luma, later frames
    m = MemNetPropagator()
    for k, (_, frames) in enumerate(shots):
        sims = [m.exemplar_similarity(ex, list(frames)) for ex, _ in shots]
        assert int(np.argmax(sims)) == k


def _path_clip(times, seed=3, h=72, w=128, pan=0.01, rotate=0.0):
    ims = load_images("bench", 400)
    spec = ClipSpec(frames=len(times), height=h, width=w, pan=pan, zoom=0.0, rotate=rotate, shake=0.001,
                    occluders=0, lighting=0.1, grain=0.01)
    rgb, luma = make_clip(ims[0][1], spec, np.random.default_rng(seed), path={"times": np.asarray(times)})
    return luma, rgb_to_ycbcr(rgb)[1]


def test_exemplar_track_keeps_the_colour_over_a_long_pan():
    # 60 frames of a steady rotation: by the end the view has turned far beyond what a
    # direct flow to the exemplar finds; the tracked map still reaches the exemplar.
    luma, c = _path_clip(np.arange(60), pan=0.001, rotate=0.01)
    errs = {}
    for track in (True, False):
        out = _run(MemNetPropagator(weights="none", track=track), luma, c)
        errs[track] = float(np.mean((out[-20:] - c[-20:]) ** 2))
    assert errs[True] < 0.7 * errs[False], errs


def test_exemplar_track_recovers_after_a_jump():
    # the camera jumps away and comes back: the lost track is replaced by the direct flow
    times = np.concatenate([np.arange(8), 300 + np.arange(8), np.arange(8)[::-1]])
    luma, c = _path_clip(times, pan=0.004)
    out = _run(MemNetPropagator(weights="none"), luma, c)
    back = float(np.mean((out[-4:] - c[-4:]) ** 2))  # near the exemplar's view again
    away = float(np.mean((out[8:15] - c[9:16]) ** 2))
    start = float(np.mean((out[:4] - c[1:5]) ** 2))
    assert back < 2.0 * start + 1e-5 and back < away, (start, away, back)


def test_shipped_int8_parts_equal_quantizing_here(tmp_path):
    """The prepared int8 archive (weights/memnet_int8.pt) is the same model as quantizing
    and calibrating at start-up: bit-identical output, made from the committed weights."""
    from pipeline.model import memnet_quant as q

    net, sha = load_net("trained")
    shipped = q.load_prepared(net, sha)
    assert shipped is not None, "weights/memnet_int8.pt missing or made from other weights: re-export it"
    here = q.quantize_net(net)
    luma, c = _clip(frames=10, seed=3)
    a, b = MemNetPropagator(weights="trained"), MemNetPropagator(weights="trained")
    a.net, b.net = shipped, here
    assert np.array_equal(_run(a, luma, c), _run(b, luma, c))
    # Made from other weights: not used (the caller quantizes); corrupt: refused.
    assert q.load_prepared(net, "0" * 64) is None
    bad = tmp_path / "memnet_int8.pt"
    bad.write_bytes(q.PREPARED.read_bytes()[:-10] + b"0123456789")
    (tmp_path / "memnet_int8.sha256").write_text(q.PREPARED.with_suffix(".sha256").read_text())
    with pytest.raises(RuntimeError, match="sha256 does not match"):
        q.load_prepared(net, sha, bad)


def test_info_without_building_the_model():
    from pipeline.model import info

    assert info("memnet") == {"name": "memnet", "version": MemNetPropagator.version,
                              "weights_sha256": create("memnet").weights_sha256()}
    assert info("flow")["name"] == "flow"
