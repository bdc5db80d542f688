"""The command line as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest



def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, film3):
    d = tmp_path_factory.mktemp("bad")
    (d / "notvideo.mkv").write_bytes(b"\x00garbage" * 500)
    data = open(film3.path, "rb").read()
    (d / "truncated.mkv").write_bytes(data[: len(data) // 2])
    (d / "bad.png").write_bytes(b"not a png")
    import av
    import numpy as np

    with av.open(str(d / "audio.mka"), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for p in s.encode(f):
            c.mux(p)
    return d


def _expect_bad(res, out, needle):
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr and needle in lines[0]
    assert not os.path.exists(out)
    if os.path.isdir(os.path.dirname(out)):
        assert not [f for f in os.listdir(os.path.dirname(out)) if "partial" in f or "filmcolor-run" in f]


def test_not_a_video(inputs, film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    _expect_bad(run_cli("colorize", str(inputs / "notvideo.mkv"), out, "-e", film3.exemplars[0]), out,
                "not a video")


def test_truncated_video(inputs, film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    _expect_bad(run_cli("colorize", str(inputs / "truncated.mkv"), out, "-e", film3.exemplars[0]), out, "truncated")


def test_no_video_stream(inputs, film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    _expect_bad(run_cli("colorize", str(inputs / "audio.mka"), out, "-e", film3.exemplars[0]), out, "no video stream")


def test_unreadable_exemplar(inputs, film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    _expect_bad(run_cli("colorize", film3.path, out, "-e", f"{inputs / 'bad.png'}@3"), out, "not a readable image")


def test_exemplar_frame_outside_the_film(film3, tmp_path):
    out = str(tmp_path / "o.mkv")
    image = film3.exemplars[0].split("@")[0]
    _expect_bad(run_cli("colorize", film3.path, out, "-e", f"{image}@480"), out, "outside the film")


def test_output_in_missing_directory(film3, tmp_path):
    out = str(tmp_path / "nope" / "o.mkv")
    _expect_bad(run_cli("colorize", film3.path, out, "-e", film3.exemplars[0]), out, "does not exist")


def test_unsupported_output_extension(film3, tmp_path):
    out = str(tmp_path / "o.avi")
    _expect_bad(run_cli("colorize", film3.path, out, "-e", film3.exemplars[0]), out, "unsupported output extension")


def test_missing_argument_is_usage_error(tmp_path):
    res = run_cli("colorize")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


def test_input_is_never_modified(inputs, film3, tmp_path):
    before = open(film3.path, "rb").read()
    run_cli("colorize", film3.path, str(tmp_path / "o.avi"), "-e", film3.exemplars[0])
    assert open(film3.path, "rb").read() == before


def test_scenes_csv(film3, tmp_path):
    out = tmp_path / "scenes.csv"
    res = run_cli("scenes", film3.path, "--out", str(out))
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "scene,start_frame,end_frame,start_time,end_time,start_timecode,transition,score"
    assert [l.split(",")[1] for l in lines[1:]] == ["0", "18", "32"]
    assert lines[2].split(",")[5] == "10:00:00:18"


def test_ray_job_entry_point_colorizes(film3, tmp_path):
    """jobs/colorize.py (what `ray job submit` runs) end to end in its own process and Ray."""
    out = tmp_path / "job.mkv"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    res = subprocess.run([sys.executable, os.path.join(root, "jobs", "colorize.py"), film3.path, str(out),
                          "-e", film3.exemplars[0], "-e", film3.exemplars[1].replace("@25", "@10:00:01:01"),
                          "--workers", "1"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert str(out) in res.stdout and out.exists()
    assert (tmp_path / "job.filmcolor-run" / "shards.parquet").exists()
