"""scan_scenes on real files (PyAV), sequential and as parallel Ray tasks."""

from __future__ import annotations

import pytest

from pipeline.io import probe
from pipeline.scenes import SceneConfig, scan_scenes
from pipeline.scenes.scan import split_ranges
from pipeline.scenes.synth import write_gray

from .clips import clip, shot


@pytest.fixture(scope="module")
def border_film(tmp_path_factory):
    """120 frames; with 2, 3 and 4 ranges the range borders are 60 / 40, 80 / 30, 60, 90:
    cuts sit exactly on them, a flash sits just after one; with 7 ranges a border (103) falls
    inside the dissolve (frames 96-103)."""
    c = clip(seed=5)
    c.cut(shot("astronaut", 30)).cut(shot("coffee", 10)).cut(shot("rocket", 20))
    c.cut(shot("camera", 20)).cut(shot("chelsea", 24, pan=(0.5, 0.2)))
    c.dissolve(shot("coins", 24, pan=(-0.5, 0.2)), 8)
    c.flash(61, 1, "white")
    assert len(c) == 120
    c.damage(grain=0.02, flicker=0.03)
    path = str(tmp_path_factory.mktemp("scenes") / "border.mkv")
    write_gray(path, c.frames, rate=24, codec="ffv1", timecode="10:00:00:00")
    return path, c


def test_split_ranges_cover_the_film():
    assert split_ranges(120, 3) == [(0, 40), (40, 80), (80, 120)]
    assert split_ranges(5, 8) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_sequential_scan_of_a_file(border_film):
    path, c = border_film
    info = probe(path)
    sc = scan_scenes(path, info)
    starts = [(s.start_frame, s.transition) for s in sc]
    assert starts[:5] == [(0, "start"), (30, "cut"), (40, "cut"), (60, "cut"), (80, "cut")]
    assert starts[5][1] == "dissolve" and 96 <= starts[5][0] <= 104
    assert len(sc) == 6
    assert sc[-1].end_frame == info.frame_count == len(c)


@pytest.mark.parametrize("ranges", [2, 3, 4, 7])
def test_parallel_scan_equals_sequential(ray_cluster, border_film, ranges):
    path, _ = border_film
    info = probe(path)
    import ray

    assert ray.is_initialized()
    par = scan_scenes(path, info, ranges=ranges)
    ray_was = ray.is_initialized()
    assert ray_was
    from pipeline.scenes.scan import features_for, scenes_from_features
    from pipeline.scenes.scan import range_features

    cfg = SceneConfig()
    # The sequential answer, computed in this process without Ray.
    idx, mat = range_features(info, 0, info.frame_count, cfg)
    from pipeline.scenes.detect import Features
    from pipeline.scenes.features import feature_columns

    seq = scenes_from_features(Features(feature_columns(cfg), mat), cfg)
    assert par == seq
    # The features themselves are bit-identical.
    merged = features_for(info, cfg, ranges=ranges)
    import numpy as np

    assert np.array_equal(merged.m, mat, equal_nan=True)
    # Each cut on a range border is found exactly once.
    starts = [s.start_frame for s in par]
    for b in (30, 40, 60, 80):
        assert starts.count(b) == 1
