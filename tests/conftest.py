"""Shared fixtures: one real local Ray cluster per session, small synthetic films."""

from __future__ import annotations

import os

import pytest

from pipeline.synth import SynthScene, save_png, write_film

SCENES3 = [
    SynthScene("astronaut", 18, pan=(2.0, 0.5)),
    SynthScene("coffee", 14, pan=(-2.0, 1.0)),
    SynthScene("chelsea", 16, pan=(1.0, -0.5)),
]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster with 2 CPUs, started once for the session."""
    import ray

    from pipeline.raydata import init_ray

    init_ray(workers=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def film3(tmp_path_factory):
    """A 48-frame gray film, three shots with motion and hard cuts, AAC stereo audio;
    colour ground truth and exemplar PNGs (one mid-scene) beside it."""
    d = tmp_path_factory.mktemp("film3")
    film = write_film(str(d / "bw.mkv"), SCENES3, 160, 96, pix_fmt="gray", keep_colour=True,
                      timecode="10:00:00:00")
    starts = [0] + film.cuts
    film.exemplars = []
    for k, (s, at) in enumerate(zip(starts, (0, 7, 3))):
        png = str(d / f"ex{k}.png")
        save_png(png, film.colour[s + at])
        film.exemplars.append(f"{png}@{s + at}")
    return film


def read_only(path: str) -> None:
    os.chmod(path, 0o444)
