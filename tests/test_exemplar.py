import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.exemplar import fit, load_rgb, parse_spec, resolve_frame
from pipeline.io import probe
from pipeline.synth import SynthScene, save_png, write_film


@pytest.fixture(scope="module")
def vfr_film(tmp_path_factory):
    d = tmp_path_factory.mktemp("ex")
    film = write_film(str(d / "f.mkv"), [SynthScene("coffee", 30)], 64, 48, vfr=True, audio=False,
                      timecode="01:00:00:00")
    return probe(film.path)


def test_parse_spec_splits_on_last_at():
    s = parse_spec("refs/a@b.png@120")
    assert s.image == "refs/a@b.png" and s.at == "120"
    with pytest.raises(InputError):
        parse_spec("refs/a.png")


def test_resolve_index_timecode_and_seconds(vfr_film):
    assert resolve_frame("7", vfr_film) == 7
    # timecode counts frames from the film's start timecode, at the nominal rate
    assert resolve_frame("01:00:00:05", vfr_film) == 5
    # seconds: the frame on screen at that time, from the exact timestamps (vfr)
    t = (vfr_film.frame_pts[10] - vfr_film.frame_pts[0]) * vfr_film.time_base
    assert resolve_frame(f"{float(t) + 0.001:.6f}s", vfr_film) == 10
    assert resolve_frame("0s", vfr_film) == 0


@pytest.mark.parametrize("at", ["30", "99999", "00:59:59:00", "100s", "-1", "abc"])
def test_frames_outside_the_film_are_rejected(vfr_film, at):
    with pytest.raises(InputError):
        resolve_frame(at, vfr_film)


def test_fit_covers_and_centres():
    img = np.zeros((100, 400, 3), np.float32)
    img[:, 150:250] = 1.0  # a white band in the centre
    out = fit(img, (64, 48))
    assert out.shape == (48, 64, 3)
    assert out[:, 32].min() > 0.9  # the centre stays the centre
    assert out[:, 0].max() < 0.1


def test_unreadable_exemplar(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"not an image")
    with pytest.raises(InputError, match="not a readable image"):
        load_rgb(str(p))
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    save_png(str(tmp_path / "ok.png"), rgb)
    got, sha = load_rgb(str(tmp_path / "ok.png"))
    assert got.shape == (20, 30, 3) and len(sha) == 64
    assert np.allclose(got * 255, rgb, atol=0.5)


def test_timecode_counts_frames_on_ntsc_rate_film():
    """23.976 fps runs non-drop timecode at 24: TC and frame index agree over an hour, and
    the scene list's timecodes name the frames the exemplar option resolves."""
    from fractions import Fraction

    from pipeline.io import FilmInfo
    from pipeline.scenes.export import timecode_of

    n = 90000
    info = FilmInfo(path="x", container="mov", width=64, height=48, pix_fmt="gray", chroma="gray", bit_depth=8,
                    full_range=True, time_base=Fraction(1, 24000), frame_pts=tuple(range(0, n * 1001, 1001)),
                    frame_duration_pts=1001, avg_rate=Fraction(24000, 1001), colorspace=2, color_primaries=2,
                    color_trc=2, start_timecode="01:00:00:00")
    assert timecode_of(info, 86400) == "02:00:00:00"
    assert resolve_frame("02:00:00:00", info) == 86400
    assert resolve_frame(timecode_of(info, 1234), info) == 1234
