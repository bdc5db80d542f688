"""The classical optical-flow propagator and the guided upsampling, on clips made in code."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.model import Exemplar, create
from pipeline.model.upsample import guided_upsample, work_size
from pipeline.synth import SynthScene, render_scene, rgb_to_ycbcr

SIZE = (128, 72)


@pytest.fixture(scope="module")
def clip():
    frames = render_scene(SynthScene("coffee", 30, pan=(3.0, 1.0)), 256, 144)
    ycc = [rgb_to_ycbcr(f) for f in frames]
    lo = lambda x: cv2.resize(x, SIZE, interpolation=cv2.INTER_AREA)  # noqa: E731
    return [(lo(y[0]), np.stack([lo(y[1]), lo(y[2])])) for y in ycc]


def _colour(model, clip):
    y0, c0 = clip[0]
    model.new_scene([Exemplar(0, y0, c0)])
    return [model.step(y) for y, _ in clip]


def test_flow_beats_copying_the_exemplar(clip):
    out = _colour(create("flow"), clip)
    err_flow = np.mean([np.abs(o - c).mean() for o, (_, c) in zip(out[10:], clip[10:])])
    err_copy = np.mean([np.abs(clip[0][1] - c).mean() for _, c in clip[10:]])
    assert err_flow < 0.7 * err_copy
    assert out[0].shape == (2, SIZE[1], SIZE[0]) and out[0].dtype == np.float32


def test_flow_is_deterministic(clip):
    a, b = _colour(create("flow"), clip), _colour(create("flow"), clip)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_new_scene_forgets_the_previous_one(clip):
    m = create("flow")
    first = _colour(m, clip)
    again = _colour(m, clip)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))


def test_guided_upsample_follows_luma_edges():
    hi = np.zeros((64, 64), np.float32)
    hi[:, 32:] = 1.0  # a sharp vertical edge
    lo = cv2.resize(hi, (16, 16), interpolation=cv2.INTER_AREA)
    chroma = np.stack([lo * 0.4 - 0.2, -(lo * 0.4 - 0.2)])  # colour tied to the luma
    up = guided_upsample(chroma, lo, hi)
    naive = cv2.resize(chroma[0], (64, 64), interpolation=cv2.INTER_LINEAR)
    # the guided result switches colour within a pixel or two of the edge, bilinear smears it
    assert abs(up[0, 10, 30] - (-0.2)) < abs(naive[10, 30] - (-0.2))
    assert up.shape == (2, 64, 64)
    same = guided_upsample(chroma, lo, lo)
    assert np.array_equal(same, chroma)  # nothing to bring back at equal size


def test_work_size_keeps_aspect_and_even_sides():
    assert work_size(1920, 1080) == (320, 180)
    assert work_size(640, 480) == (320, 240)
    w, h = work_size(721, 405)
    assert w % 2 == 0 and h % 2 == 0
