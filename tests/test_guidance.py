"""Colour guidance at plan time: automatic exemplars, reuse for look-alike scenes, the
threshold below which a borrowing scene gets automatic colours, keyframe choice."""

from __future__ import annotations

import os

import av
import cv2
import numpy as np
import pytest

from pipeline.guidance import GuidanceConfig, pick_keyframe, plan_guides
from pipeline.io import probe
from pipeline.plan import PreparedFilm
from pipeline.scenes import scan_scenes
from pipeline.synth import SynthScene, save_png, write_film
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def returning(tmp_path_factory):
    """astronaut | coffee | astronaut again (another camera move), with colour truth."""
    d = tmp_path_factory.mktemp("returning")
    film = write_film(str(d / "bw.mkv"), [SynthScene("astronaut", 16, pan=(2.0, 0.5)),
                                          SynthScene("coffee", 14, pan=(-2.0, 1.0)),
                                          SynthScene("astronaut", 14, pan=(-1.5, 0.3))],
                      160, 96, pix_fmt="gray", keep_colour=True)
    film.dir = d
    return film


def _prepared(film, run_dir, exemplars=()) -> PreparedFilm:
    from pipeline.exemplar import load_rgb

    info = probe(film.path)
    return PreparedFilm("f", film.path, str(run_dir / "out.mkv"), str(run_dir), info, "ffv1",
                        [e for e, _ in exemplars], [f for _, f in exemplars],
                        [load_rgb(e)[1] for e, _ in exemplars])


def test_automatic_exemplars_and_reuse_for_a_returning_shot(returning, tmp_path):
    film = _prepared(returning, tmp_path)
    scenes = scan_scenes(film.input, film.info)
    assert len(scenes) == 3
    guides, assigned = plan_guides(film, scenes, GuidanceConfig())
    assert [assigned[k].source for k in range(3)] == ["auto", "auto", "auto"]
    # Two keyframes coloured (astronaut, coffee); the returning shot reuses the first.
    assert len(guides) == 2 and all(g.source == "auto" for g in guides)
    assert assigned[2].exemplars == assigned[0].exemplars != assigned[1].exemplars
    assert assigned[2].similarity >= GuidanceConfig().auto_reuse
    for g, sc in zip(guides, scenes[:2]):
        assert sc.start_frame <= g.frame < sc.end_frame  # a keyframe of its own scene
        img = cv2.imread(g.image)
        assert img.shape[:2] == (96, 160) and os.path.dirname(g.image) == str(tmp_path / "exemplars" / "f")


def test_unlike_scene_gets_auto_a_returning_one_is_matched(returning, tmp_path):
    png = str(tmp_path / "ex0.png")
    save_png(png, returning.colour[5])
    film = _prepared(returning, tmp_path, [(png, 5)])
    scenes = scan_scenes(film.input, film.info)
    guides, assigned = plan_guides(film, scenes, GuidanceConfig())
    assert assigned[0].source == "own"
    assert assigned[1].source == "auto"  # coffee looks nothing like the astronaut exemplar
    assert assigned[2].source == "matched" and assigned[2].exemplars == (0,)
    assert [g.source for g in guides] == ["own", "auto"]
    # Everything is 'matched' when the threshold is off.
    _, assigned = plan_guides(film, scenes, GuidanceConfig(auto_below=0.0))
    assert [assigned[k].source for k in range(3)] == ["own", "matched", "matched"]


def test_keyframe_is_sharp_and_exposed(tmp_path):
    # A shot fading in over most of its length: the keyframe is in the fully exposed part.
    film = write_film(str(tmp_path / "fade.mkv"), [SynthScene("coffee", 30, fade_in=20)], 160, 96, pix_fmt="gray")
    info = probe(film.path)

    class Sc:
        scene, start_frame, end_frame = 0, 0, 30

    frame, small = pick_keyframe(info, Sc, GuidanceConfig())
    assert frame >= 15 and small.shape == (36, 64)  # not in the dim first half of the fade


def test_automatic_mode_end_to_end_cli(returning, tmp_path):
    """No --exemplar, no --hints: one line says automatic mode; the record says 'auto' and
    names the colorizer's weights; the output has colour; the review page is written."""
    from pipeline.model import auto
    from pipeline.record import read_table

    out = str(tmp_path / "auto.mkv")
    res = run_cli("colorize", returning.path, out, "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert sum("automatic colours" in line for line in res.stderr.splitlines()) == 1  # one line says so
    assert "Traceback" not in res.stderr and "WARNING" not in res.stderr
    run_dir = str(tmp_path / "auto.filmcolor-run")
    scenes = read_table(run_dir, "scenes")
    assert [s["exemplar_source"] for s in scenes] == ["auto"] * 3
    film = read_table(run_dir, "films")[0]
    assert film["auto_model"]["weights_sha256"] == auto.load().weights_sha256()
    assert os.path.exists(os.path.join(run_dir, "report", "index.html"))
    with av.open(out) as c:
        f = next(c.decode(video=0))
        u = np.frombuffer(f.planes[1], np.uint8)
    assert u.std() > 1.0  # chroma varies: colour, not a neutral grey film


def test_no_report_flag(film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    res = run_cli("colorize", film3.path, out, "--workers", "1", "--no-report", *sum((["-e", e] for e in film3.exemplars), []))
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(str(tmp_path / "o.filmcolor-run" / "report"))
    res = run_cli("report", str(tmp_path / "o.filmcolor-run"))
    assert res.returncode == 0 and res.stdout.strip().endswith("index.html")
    assert os.path.exists(str(tmp_path / "o.filmcolor-run" / "report" / "index.html"))


def test_report_of_no_run(tmp_path):
    res = run_cli("report", str(tmp_path))
    assert res.returncode == 2 and "no run record" in res.stderr and "Traceback" not in res.stderr
