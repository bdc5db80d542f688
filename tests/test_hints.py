"""Colour hints: the Levin solve, the checks on hint images, and hinted runs end to end."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from pipeline.colour import rgb_to_ycbcr
from pipeline.errors import InputError
from pipeline.hints import fit_hints, hint_exemplar, load_hints, spread
from pipeline.synth import photo
from tests.test_cli import _expect_bad, run_cli


def dots(rgb: np.ndarray, n: int = 24, radius: int = 3, seed: int = 0) -> np.ndarray:
    """An RGBA hint image: `n` dots of the true colour, transparent elsewhere."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 4), np.float32)
    for _ in range(n):
        x, y = int(rng.integers(radius, w - radius)), int(rng.integers(radius, h - radius))
        cv2.circle(out, (x, y), radius, (*map(float, rgb[y, x]), 1.0), -1)
    return out


def save_rgba(path, rgba: np.ndarray) -> str:
    bgra = cv2.cvtColor(np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGBA2BGRA)
    cv2.imwrite(str(path), bgra)
    return str(path)


def chroma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_spread_keeps_hints_and_follows_edges():
    # Two flat regions split by a luma edge; one hint in each: each region takes its hint.
    y = np.zeros((40, 60), np.float32)
    y[:, 30:] = 0.8
    c = np.zeros((2, 40, 60), np.float32)
    mask = np.zeros((40, 60), bool)
    c[:, 20, 5] = (0.2, -0.1)
    c[:, 20, 55] = (-0.3, 0.25)
    mask[20, 5] = mask[20, 55] = True
    out = spread(y, c, mask)
    assert np.allclose(out[:, 20, 5], (0.2, -0.1), atol=1e-5)
    assert np.allclose(out[:, 5:35, 2:28].mean(axis=(1, 2)), (0.2, -0.1), atol=0.02)
    assert np.allclose(out[:, 5:35, 33:58].mean(axis=(1, 2)), (-0.3, 0.25), atol=0.02)


def test_dots_recover_a_photo_much_better_than_grey():
    rgb = cv2.resize(photo("coffee").astype(np.float32) / 255, (320, 180), interpolation=cv2.INTER_AREA)
    ycc = rgb_to_ycbcr(rgb, "bt709")
    out = hint_exemplar(ycc[0], dots(rgb), (160, 90), "bt709")
    got = rgb_to_ycbcr(out, "bt709")
    assert np.median(np.abs(got[0] - ycc[0])) < 0.002  # the frame's own luma (bar gamut clipping)
    grey = chroma_psnr(np.zeros_like(ycc[1:]), ycc[1:])
    assert chroma_psnr(got[1:], ycc[1:]) > grey + 3


def test_painted_exemplar_wins_where_it_has_colour():
    y = np.full((36, 64), 0.5, np.float32)
    rgba = np.zeros((36, 64, 4), np.float32)
    rgba[10:14, 10:14] = (0.0, 0.0, 1.0, 1.0)  # a blue hint ...
    painted = np.full((36, 64, 3), 0.5, np.float32)
    painted[:, 32:] = (0.9, 0.3, 0.3)  # ... and a painted red right half
    out = rgb_to_ycbcr(hint_exemplar(y, rgba, (64, 36), "bt709", painted), "bt709")
    red = rgb_to_ycbcr(np.array([[[0.9, 0.3, 0.3]]], np.float32), "bt709")[1:, 0, 0]
    assert np.allclose(out[1:, 18, 50], red, atol=0.02)
    assert out[1, 12, 12] > 0.1  # blue where the hint is


def test_small_dots_survive_downscaling():
    rgba = np.zeros((720, 1280, 4), np.float32)
    rgba[100:102, 200:202] = (1.0, 0.0, 0.0, 1.0)  # 2x2 px: a quarter of a working pixel
    chroma, mask = fit_hints(rgba, (320, 180))
    assert mask.sum() >= 1 and chroma[1][mask].max() > 0.3  # still red, not faded


@pytest.mark.parametrize("make,needle", [
    (lambda p: cv2.imwrite(p, np.zeros((8, 8, 3), np.uint8)), "no alpha channel"),
    (lambda p: cv2.imwrite(p, np.zeros((8, 8, 4), np.uint8)), "no painted pixel"),
    (lambda p: open(p, "wb").write(b"GIF89a not a png"), "not a PNG"),
])
def test_bad_hint_images(tmp_path, make, needle):
    path = str(tmp_path / "h.png")
    make(path)
    with pytest.raises(InputError, match=needle):
        load_hints(path)


def test_jpeg_with_png_name_is_not_a_png(tmp_path):
    path = str(tmp_path / "h.png")
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    open(path, "wb").write(buf.tobytes())
    with pytest.raises(InputError, match="not a PNG"):
        load_hints(path)


# --- the command line: bad hints refused before any work -------------------------------

@pytest.fixture(scope="module")
def hint_png(film3, tmp_path_factory):
    d = tmp_path_factory.mktemp("hints")
    return save_rgba(d / "hints.png", dots(film3.colour[3]))


def test_cli_hint_frame_outside_the_film(film3, hint_png, tmp_path):
    out = str(tmp_path / "o.mkv")
    res = run_cli("colorize", film3.path, out, "--hints", f"{hint_png}@480")
    _expect_bad(res, out, "outside the film")


def test_cli_hint_without_alpha(film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    png = str(tmp_path / "rgb.png")
    cv2.imwrite(png, np.zeros((8, 8, 3), np.uint8))
    res = run_cli("colorize", film3.path, out, "--hints", f"{png}@3")
    _expect_bad(res, out, "no alpha channel")


def test_cli_hint_on_a_black_frame(tmp_path, hint_png):
    from pipeline.synth import SynthScene, write_film

    film = write_film(str(tmp_path / "lead.mkv"), [SynthScene("coffee", 20, fade_in=10)], 160, 96, pix_fmt="gray")
    out = str(tmp_path / "o.mkv")
    res = run_cli("colorize", film.path, out, "--hints", f"{hint_png}@0")  # black: the fade's first frame
    _expect_bad(res, out, "black or flat")


# --- end to end ---------------------------------------------------------------------------

def test_hinted_run_records_source_and_derived_exemplar(ray_cluster, film3, tmp_path):
    from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film
    from pipeline.record import read_table

    starts = [0] + film3.cuts
    hints = [save_rgba(tmp_path / f"h{k}.png", dots(film3.colour[s + 2], seed=k)) + f"@{s + 2}"
             for k, s in enumerate(starts[:2])]
    out = str(tmp_path / "hinted.mkv")
    # scene 0 and 1 from hints, scene 2 from its painted exemplar
    job = FilmJob("film3", film3.path, out, parse_exemplars(film3.exemplars[2:]), hints=parse_exemplars(hints))
    result = run_film(job, JobConfig(workers=2, progress=False, report=False))
    assert result.status == "done"
    scenes = {r["scene"]: r for r in read_table(result.run_dir, "scenes")}
    assert [scenes[k]["exemplar_source"] for k in range(3)] == ["hints", "hints", "own"]
    derived = scenes[0]["exemplar_image"]
    assert derived.startswith(os.path.join(result.run_dir, "exemplars", "film3")) and os.path.exists(derived)
    assert cv2.imread(derived).shape[:2] == (96, 160)  # full frame size, for the colourist
    films = read_table(result.run_dir, "films")
    assert films[0]["hints"] == [h.split("@")[0] for h in hints] and len(films[0]["hint_sha256"]) == 2
    # The colourist corrects scene 0's hints: only scene 0 is coloured again.
    from pipeline.job import reprocess

    shards = {r["scene"]: r for r in read_table(result.run_dir, "shards")}
    new = save_rgba(tmp_path / "h0-new.png", dots(film3.colour[5], n=40, seed=9))
    reprocess(result.run_dir, [], False, [], JobConfig(workers=2, progress=False, report=False), hints=[f"{new}@5"])
    after = {r["scene"]: r for r in read_table(result.run_dir, "shards")}
    assert after[0]["attempts"] == shards[0]["attempts"] + 1
    assert [after[k]["attempts"] for k in (1, 2)] == [shards[k]["attempts"] for k in (1, 2)]
    films = read_table(result.run_dir, "films")
    assert films[0]["hints"] == [hints[1].split("@")[0], new] and films[0]["hint_frames"][-1] == 5
    scenes = {r["scene"]: r for r in read_table(result.run_dir, "scenes")}
    assert scenes[0]["exemplar_image"].endswith("hints-0000005.png") and scenes[0]["exemplar_source"] == "hints"


def test_huge_hint_image_is_refused_before_decoding(tmp_path):
    """The same limit and line as exemplars (pipeline.exemplar.decode_image): a 20000 x
    20000 RGBA PNG of ~50 KB, refused from its header in well under a second."""
    import time

    from tests.test_exemplar import bomb_png

    path = str(tmp_path / "big_hints.png")
    with open(path, "wb") as f:
        f.write(bomb_png(20000, 20000, alpha=True))
    t = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_hints(path)
    assert time.perf_counter() - t < 1.0
    assert str(err.value) == (f"hints {path}: 20000 x 20000 pixels is above the limit of 67108864 "
                              "(8192 x 8192); scale it down to the film's size")
    small = str(tmp_path / "small_hints.png")  # the same kind of file at a small size loads
    with open(small, "wb") as f:
        f.write(bomb_png(40, 30, alpha=True))
    rgba, _ = load_hints(small)
    assert rgba.shape == (30, 40, 4) and np.allclose(rgba[0, 0], (220 / 255, 30 / 255, 30 / 255, 1.0))


def test_16_bit_hints_still_load(tmp_path):
    bgra = np.zeros((12, 16, 4), np.uint16)
    bgra[4, 5] = (0, 0, 65535, 65535)
    path = str(tmp_path / "h16.png")
    cv2.imwrite(path, bgra)
    rgba, _ = load_hints(path)
    assert rgba[4, 5].tolist() == [1.0, 0.0, 0.0, 1.0] and rgba[0, 0, 3] == 0.0
