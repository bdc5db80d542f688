"""End to end on a real local Ray cluster: the output guarantees of DESIGN.md."""

from __future__ import annotations

import hashlib

import av
import numpy as np
import pytest

from pipeline.colorize import ColorizeConfig
from pipeline.errors import ShardFailures
from pipeline.io import iter_luma, probe
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film
from pipeline.record import read_table
from pipeline.model.memnet import MemNetPropagator
from pipeline.synth import SynthScene, save_png, write_film


def _run(film, out, workers=2, exemplars=None, **cfg):
    job = FilmJob("film3", film.path, str(out), parse_exemplars(exemplars or film.exemplars))
    return run_film(job, JobConfig(workers=workers, progress=False, **cfg))


def _packets(path, kind):
    with av.open(path) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [(p.stream.index, p.pts, bytes(p)) for p in c.demux(streams) if p.size]


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _chroma_spread(path, index):
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                u = np.frombuffer(f.planes[1], np.uint8)
                return float(u.std())
    raise AssertionError("frame not found")


@pytest.fixture(scope="module")
def colored(ray_cluster, film3, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "colour.mkv"
    result = _run(film3, out, workers=2)
    return film3, str(out), result


def test_output_keeps_frames_timestamps_duration(colored):
    film, out, result = colored
    a, b = probe(film.path), probe(out)
    assert result.status == "done"
    assert b.frame_count == a.frame_count == 48
    assert b.frame_pts == a.frame_pts
    assert b.end_pts == a.end_pts


def test_luma_is_bit_exact_and_chroma_is_added(colored):
    film, out, _ = colored
    a, b = probe(film.path), probe(out)
    assert b.pix_fmt == "yuv420p"
    for (i, ya), (j, yb) in zip(iter_luma(a, 0, a.frame_count), iter_luma(b, 0, b.frame_count)):
        assert i == j and np.array_equal(ya, yb), f"luma differs at frame {i}"
    assert _chroma_spread(out, 20) > 2.0  # colour was really added


def test_audio_packets_are_identical(colored):
    film, out, _ = colored
    src, dst = _packets(film.path, "audio"), _packets(out, "audio")
    assert len(src) > 10
    assert [(p, d) for _, p, d in src] == [(p, d) for _, p, d in dst]


def test_colour_tags_are_explicit(colored):
    _, out, _ = colored
    with av.open(out) as c:
        cc = c.streams.video[0].codec_context
        assert int(cc.colorspace) == 6 and int(cc.color_primaries) == 6 and int(cc.color_trc) == 6
        assert int(cc.color_range) == 2  # gray input is full range, and says so


def test_run_record_lists_scenes_and_shards(colored):
    film, out, result = colored
    shards = read_table(result.run_dir, "shards")
    scenes = read_table(result.run_dir, "scenes")
    films = read_table(result.run_dir, "films")
    assert [s["start_frame"] for s in scenes] == [0, 18, 32]  # the three shots, found by the scan
    assert all(s["status"] == "done" and s["error"] == "" for s in shards)
    assert sum(s["frames"] for s in shards) == 48
    assert shards[0]["model"]["name"] == "memnet" and shards[0]["model"]["version"] == MemNetPropagator.version
    assert len(shards[0]["exemplar_sha256"][0]) == 64
    assert films[0]["output_sha256"] == _sha(out)


def test_one_worker_gives_the_same_output_as_two(colored, tmp_path):
    film, out, _ = colored
    one = tmp_path / "one.mkv"
    _run(film, one, workers=1)
    assert _sha(one) == _sha(out)


def test_failed_shard_is_recorded_and_rerun_redoes_only_it(ray_cluster, film3, tmp_path):
    out = tmp_path / "c.mkv"
    with pytest.raises(ShardFailures):
        _run(film3, out, colorize=ColorizeConfig(fault_scenes=(1,)))
    assert not out.exists()  # no partial output
    run_dir = str(tmp_path / "c.filmcolor-run")
    shards = {s["scene"]: s for s in read_table(run_dir, "shards")}
    assert shards[1]["status"] == "failed" and "injected fault" in shards[1]["error"]
    assert shards[0]["status"] == shards[2]["status"] == "done"
    result = _run(film3, out)
    assert result.status == "done" and out.exists()
    shards = {s["scene"]: s for s in read_table(run_dir, "shards")}
    assert shards[1]["attempts"] == 2 and shards[0]["attempts"] == 1  # done work was skipped
    assert probe(str(out)).frame_count == 48


def test_vfr_h264_input_keeps_its_timing(ray_cluster, tmp_path):
    shots = [SynthScene("rocket", 20, pan=(0, 2)), SynthScene("chelsea", 16)]
    film = write_film(str(tmp_path / "vfr.mp4"), shots, 96, 64, pix_fmt="yuv420p", codec="libx264", vfr=True,
                      keep_colour=True)
    save_png(str(tmp_path / "e.png"), film.colour[5])
    out = tmp_path / "vfr-colour.mkv"
    _run(film, out, exemplars=[f"{tmp_path / 'e.png'}@5"])
    a, b = probe(film.path), probe(str(out))
    assert b.frame_count == a.frame_count
    ta = [float((p - a.frame_pts[0]) * a.time_base) for p in a.frame_pts]
    tb = [float((p - b.frame_pts[0]) * b.time_base) for p in b.frame_pts]
    assert np.allclose(ta, tb, atol=0.0011)  # Matroska stores milliseconds
    assert set(np.round(np.diff(tb) * 48)) == {1, 2}  # durations of 1 and 2 ticks survive
    for (_, ya), (_, yb) in zip(iter_luma(a, 0, a.frame_count), iter_luma(b, 0, b.frame_count)):
        assert np.array_equal(ya, yb)


@pytest.mark.parametrize("ext, pix_fmt", [(".mov", "yuv422p10le"), (".mp4", "yuv420p")])
def test_mezzanine_and_access_codecs(colored, tmp_path, ext, pix_fmt):
    film, _, _ = colored
    out = str(tmp_path / f"c{ext}")
    _run(film, out)
    a, b = probe(film.path), probe(out)
    assert b.pix_fmt == pix_fmt and b.frame_count == a.frame_count
    assert abs(float((b.end_pts - b.frame_pts[0]) * b.time_base) - float((a.end_pts - a.frame_pts[0]) * a.time_base)) < 0.002
    errs = []
    for (_, ya), (_, yb) in zip(iter_luma(a, 0, a.frame_count), iter_luma(b, 0, b.frame_count)):
        yb = yb.astype(np.float64) / (4 if b.bit_depth == 10 else 1)
        # the output is video range (ProRes/H.264), the gray input full range: compare in 0..1
        lo, hi = (16, 235) if not b.full_range else (0, 255)
        errs.append(np.mean(((yb - lo) / (hi - lo) - ya / 255.0) ** 2))
    psnr = 10 * np.log10(1 / max(np.mean(errs), 1e-12))
    assert psnr > 40, psnr
    assert len(_packets(out, "audio")) == len(_packets(film.path, "audio"))


def test_returning_shot_picks_up_its_own_exemplar(ray_cluster, tmp_path):
    # A-B-A': A' has no exemplar; B is nearer in time, but A's exemplar looks like A'.
    shots = [SynthScene("astronaut", 16, pan=(1.5, 0.5)), SynthScene("coffee", 16, pan=(-1.5, 0)),
             SynthScene("astronaut", 16, pan=(-1.0, -0.5))]
    film = write_film(str(tmp_path / "aba.mkv"), shots, 160, 96, keep_colour=True)
    specs = []
    for k, f in enumerate((2, 18)):
        save_png(str(tmp_path / f"e{k}.png"), film.colour[f])
        specs.append(f"{tmp_path / f'e{k}.png'}@{f}")
    result = _run(film, tmp_path / "aba-colour.mkv", exemplars=specs)
    scenes = read_table(result.run_dir, "scenes")
    assert [s["start_frame"] for s in scenes] == [0, 16, 32]
    last = scenes[2]
    assert last["exemplar_source"] == "matched" and last["exemplars"] == [0]
    assert last["exemplar_similarity"] > 0.7


@pytest.mark.parametrize("pix_fmt", ["gray10le", "yuv422p", "yuv444p10le"])
def test_other_input_formats_keep_luma_bit_exact(ray_cluster, tmp_path, pix_fmt):
    shots = [SynthScene("chelsea", 12, pan=(1, 0)), SynthScene("rocket", 12, pan=(0, 1))]
    film = write_film(str(tmp_path / "f.mkv"), shots, 96, 64, pix_fmt=pix_fmt, keep_colour=True)
    save_png(str(tmp_path / "e.png"), film.colour[3])
    out = str(tmp_path / "o.mkv")
    _run(film, out, exemplars=[f"{tmp_path / 'e.png'}@3"])
    a, b = probe(film.path), probe(out)
    assert b.bit_depth == a.bit_depth and b.frame_count == a.frame_count
    assert b.chroma == ("420" if a.chroma == "gray" else a.chroma)
    for (_, ya), (_, yb) in zip(iter_luma(a, 0, a.frame_count), iter_luma(b, 0, b.frame_count)):
        assert np.array_equal(ya, yb)


def test_eval_scores_the_colorized_film_above_the_black_and_white_one(colored, tmp_path):
    import json
    import subprocess
    import sys

    film, out, _ = colored
    ref = str(tmp_path / "reference.mkv")
    with av.open(ref, "w") as c:  # the colour ground truth as a lossless RGB film
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = film.width, film.height, "bgr0"
        for rgb in film.colour:
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)

    def figures(path):
        res = subprocess.run([sys.executable, "-m", "pipeline.cli", "eval", path, ref, "--json",
                              str(tmp_path / "e.json")], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return json.loads((tmp_path / "e.json").read_text())

    colour, grey = figures(out), figures(film.path)
    assert colour["frames"] == grey["frames"] == 48
    assert [s["start_frame"] for s in colour["scenes"]] == [0, 18, 32]  # per scene
    assert colour["psnr"] > grey["psnr"] + 3
    assert colour["colorfulness_ratio"] > 2 * grey["colorfulness_ratio"]
