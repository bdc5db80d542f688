"""One test per phenomenon, on tiny synthetic clips analysed in memory."""

from __future__ import annotations

import pytest

from pipeline.scenes import SceneConfig

from .clips import boundaries, clip, scenes, shot


def test_hard_cuts_are_frame_exact():
    c = clip().cut(shot("astronaut", 30)).cut(shot("coffee", 27)).cut(shot("rocket", 33))
    assert boundaries(c) == [(30, "cut"), (57, "cut")]


def test_same_subject_cut_in_is_a_cut():
    c = clip().cut(shot("coffee", 30)).cut(shot("coffee", 30, scale=2.2, center=(0.4, 0.45)))
    assert boundaries(c) == [(30, "cut")]


def test_dark_to_dark_cut_is_found():
    c = clip().cut(shot("astronaut", 30, gain=0.35)).cut(shot("camera", 30, gain=0.35))
    assert boundaries(c) == [(30, "cut")]


@pytest.mark.parametrize("kind,frames", [("white", 1), ("white", 2), ("exposure", 1), ("dark", 1), ("blank", 1)])
def test_flash_or_exposure_jump_is_not_a_cut(kind, frames):
    c = clip().cut(shot("astronaut", 50)).flash(25, frames, kind)
    assert boundaries(c) == []


def test_flash_next_to_a_cut_leaves_only_the_cut():
    c = clip().cut(shot("astronaut", 40)).cut(shot("coffee", 40)).flash(52, 1, "white")
    assert boundaries(c) == [(40, "cut")]


def test_fade_out_and_in_through_a_short_dip_is_one_fade():
    c = clip().cut(shot("astronaut", 40))
    c.fade_out(10, 0.0, hold=2)
    c.fade_in(shot("coffee", 40), 10)
    b = boundaries(c)
    assert len(b) == 1 and b[0][1] == "fade"
    lo, hi = c.truth[0].span
    assert lo <= b[0][0] <= hi


def test_fade_to_black_hold_is_a_low_variability_scene():
    c = clip().cut(shot("astronaut", 40))
    c.fade_out(10, 0.0, hold=10)
    c.fade_in(shot("coffee", 40), 10)
    sc = scenes(c)
    assert [s.transition for s in sc] == ["start", "fade", "fade"]
    assert [s.low_variability for s in sc] == [False, True, False]
    assert sc[1].start_frame == 40  # first black frame
    assert sc[2].start_frame == 50  # first non-black frame of the fade in


def test_fade_to_white_is_one_fade_each_way():
    c = clip().cut(shot("astronaut", 40))
    c.fade_out(10, 1.0, hold=8)
    c.fade_in(shot("coffee", 40), 10, level=1.0)
    sc = scenes(c)
    assert [s.transition for s in sc] == ["start", "fade", "fade"]
    assert sc[1].low_variability


def test_black_leader_at_the_start_is_flagged():
    c = clip().flat(10, 0.02)
    c.cut(shot("astronaut", 40))
    sc = scenes(c)
    assert [(s.start_frame, s.low_variability) for s in sc] == [(0, True), (10, False)]


@pytest.mark.parametrize("length", [8, 16, 24])
def test_dissolve_is_one_transition_at_its_midpoint(length):
    c = clip().cut(shot("astronaut", 50, pan=(0.5, 0.2)))
    c.dissolve(shot("coffee", 50 + length, pan=(-0.5, 0.2)), length)
    b = boundaries(c)
    assert len(b) == 1 and b[0][1] == "dissolve", b
    t = c.truth[0]
    assert t.span[0] <= b[0][0] <= t.span[1]
    assert abs(b[0][0] - t.frame) <= max(2, length // 4)


@pytest.mark.parametrize("pan", [(5.0, 0.5), (-7.0, 1.0)])
def test_fast_pan_is_not_a_cut(pan):
    c = clip().cut(shot("astronaut", 60, pan=pan))
    assert boundaries(c) == []


def test_whip_pan_is_not_a_cut():
    c = clip().cut(shot("rocket", 60, whip=(25, 6, 40.0)))
    assert boundaries(c) == []


def test_object_crossing_is_not_a_cut():
    c = clip().cut(shot("coffee", 60, occluder=(15, 14)))
    assert boundaries(c) == []


def test_grain_flicker_weave_scratches_are_not_cuts():
    c = clip(seed=3).cut(shot("astronaut", 50)).cut(shot("camera", 50))
    c.damage(grain=0.04, flicker=0.06, weave=0.8, scratches=2)
    assert boundaries(c) == [(50, "cut")]


def test_minimum_scene_length_is_a_parameter():
    c = clip().cut(shot("astronaut", 30)).cut(shot("coffee", 4)).cut(shot("rocket", 30))
    assert len(boundaries(c, SceneConfig(min_scene_len=6))) == 1
    assert boundaries(c, SceneConfig(min_scene_len=3)) == [(30, "cut"), (34, "cut")]


def test_scenes_cover_the_clip_exactly():
    c = clip().cut(shot("astronaut", 20)).cut(shot("coffee", 20)).cut(shot("rocket", 9))
    sc = scenes(c)
    assert sc[0].start_frame == 0 and sc[-1].end_frame == len(c)
    assert all(a.end_frame == b.start_frame for a, b in zip(sc, sc[1:]))
    assert [s.scene for s in sc] == list(range(len(sc)))
    assert sc[0].transition == "start" and sc[0].score == 0.0


@pytest.mark.parametrize("zoom", [0.008, -0.008])
def test_zoom_is_not_a_dissolve(zoom):
    c = clip().cut(shot("chelsea", 70, pan=(0.3, 0.1), zoom=zoom))
    assert boundaries(c) == []


def test_dim_grainy_shot_is_neither_flat_nor_a_fade():
    c = clip(3).cut(shot("moon", 40, gain=0.4)).cut(shot("astronaut", 40, gain=0.4))
    c.damage(grain=0.02, flicker=0.08)
    assert boundaries(c) == [(40, "cut")]


def test_burst_of_motion_is_not_a_cut():
    # An occluder sweeping through fast: several frames change, none is a cut.
    c = clip().cut(shot("coffee", 50, occluder=(15, 5)))
    assert boundaries(c) == []


def test_steady_pan_over_smooth_photo_is_not_a_dissolve():
    # A smooth photograph under a slow, steady pan (~0.4 thumbnail px per frame): each frame
    # lies between the frames k before and k after it, so ends aligned by the (biased) sum
    # of per-frame shifts make it look like their mix; each end must be aligned directly.
    c = clip().cut(shot("chelsea", 70, pan=(0.6, 0.15)))
    assert boundaries(c) == []


def test_smooth_pan_then_cut_is_one_cut():
    c = clip().cut(shot("chelsea", 50, pan=(0.6, 0.15))).cut(shot("coffee", 40, pan=(-0.6, 0.1)))
    assert boundaries(c) == [(50, "cut")]
