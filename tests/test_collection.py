"""A run over a collection: the journal, resume after a driver SIGKILL, published films
kept, the run-dir lock, an actor killed mid-shard, one bad film among several."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.colorize import ColorizeConfig
from pipeline.errors import InputError, ShardFailures
from pipeline.io import probe
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film, run_manifest
from pipeline.journal import Journal
from pipeline.record import read_table
from pipeline.runlock import RunLock
from pipeline.synth import SynthScene, save_png, write_film

pytestmark = pytest.mark.timeout(400)
FLOW = ColorizeConfig(model="flow")


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _manifest(path, films) -> str:
    doc = {"version": 1, "films": [{"id": fid, "input": inp, "output": out, "model": "flow",
                                     "exemplars": [{"image": e.rsplit("@", 1)[0], "frame": int(e.rsplit("@", 1)[1])}
                                                   for e in ex]} for fid, inp, out, ex in films]}
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def test_two_films_in_one_run_then_a_rerun_redoes_nothing(ray_cluster, film3, tmp_path, capsys):
    m = _manifest(str(tmp_path / "night.json"), [("a", film3.path, str(tmp_path / "a.mkv"), film3.exemplars),
                                                ("b", film3.path, str(tmp_path / "b.mkv"), film3.exemplars[:1])])
    first = run_manifest(m, None, JobConfig(workers=2))
    assert [r.status for r in first] == ["done", "done"]
    err = capsys.readouterr().err
    assert "films 2/2 done, 0 failed" in err and "96/96 frames" in err  # the overall line
    run_dir = str(tmp_path / "night.filmcolor-run")
    films = {f["film_id"]: f for f in read_table(run_dir, "films")}
    assert films["a"]["output_sha256"] == _sha(tmp_path / "a.mkv")
    scenes = read_table(run_dir, "scenes")
    assert sorted((s["film_id"], s["scene"]) for s in scenes) == [(f, i) for f in "ab" for i in range(3)]
    mtimes = [os.path.getmtime(tmp_path / n) for n in ("a.mkv", "b.mkv")]
    again = run_manifest(m, None, JobConfig(workers=2, progress=False))
    assert [r.status for r in again] == ["skipped", "skipped"]  # published, sha256 matches
    assert mtimes == [os.path.getmtime(tmp_path / n) for n in ("a.mkv", "b.mkv")]
    assert all(s["attempts"] == 1 for s in read_table(run_dir, "shards"))
    from pipeline.job import resume

    assert [r.status for r in resume(run_dir, JobConfig(workers=2, progress=False))] == ["skipped", "skipped"]


def test_a_changed_output_is_rebuilt_from_its_segments(ray_cluster, film3, tmp_path):
    out = tmp_path / "c.mkv"
    job = FilmJob("c", film3.path, str(out), parse_exemplars(film3.exemplars))
    run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW))
    good = _sha(out)
    out.write_bytes(b"damaged")
    again = run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW))
    assert again.status == "done" and _sha(out) == good
    assert all(s["attempts"] == 1 for s in read_table(str(tmp_path / "c.filmcolor-run"), "shards"))


def test_a_busy_run_dir_is_refused_and_a_stale_lock_taken_over(ray_cluster, film3, tmp_path):
    run_dir = str(tmp_path / "run")
    job = FilmJob("d", film3.path, str(tmp_path / "d.mkv"), parse_exemplars(film3.exemplars), run_dir)
    with RunLock(run_dir):
        with pytest.raises(InputError, match=r"in use by another run \(host .* pid %d" % os.getpid()) as e:
            run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW))
        assert e.value.exit_code == 2
    # A lock left by a process that is gone (a driver killed with SIGKILL) is stale.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with open(os.path.join(run_dir, "LOCK.json"), "w") as f:
        json.dump({"host": os.uname().nodename, "pid": int(dead.stdout), "started": time.time(),
                   "heartbeat": time.time(), "token": "x"}, f)
    assert run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW)).status == "done"
    assert not os.path.exists(os.path.join(run_dir, "LOCK.json"))  # released


def test_an_actor_killed_mid_shard_is_retried_and_counted_once(ray_cluster, film3, tmp_path, capsys):
    out = tmp_path / "e.mkv"
    drill = tmp_path / "drill"
    drill.mkdir()
    cfg = JobConfig(workers=2, colorize=ColorizeConfig(model="flow", crash_scenes=(1,), drill_dir=str(drill)))
    result = run_film(FilmJob("e", film3.path, str(out), parse_exemplars(film3.exemplars)), cfg)
    assert result.status == "done" and len(os.listdir(drill)) == 1  # it really crashed once
    a, b = probe(film3.path), probe(str(out))
    assert b.frame_pts == a.frame_pts  # every frame exactly once
    err = capsys.readouterr().err
    assert "48/48 frames" in err and not any(f"{n}/48 frames" in err for n in range(49, 100))


def test_a_bad_film_fails_alone(ray_cluster, film3, tmp_path, monkeypatch):
    """An exemplar that vanishes after the checks: that film fails with its error, the
    other completes, the run ends with exit 1 (ShardFailures)."""
    from pipeline import job as jobmod

    gone = str(tmp_path / "vanishing.png")
    os.link(film3.exemplars[0].rsplit("@", 1)[0], gone)
    out = tmp_path / "ok.mkv"
    m = _manifest(str(tmp_path / "m.json"), [("bad", film3.path, str(tmp_path / "bad.mkv"), [gone + "@0"]),
                                            ("ok", film3.path, str(out), film3.exemplars)])
    real_prepare = jobmod.prepare

    def prepare_then_remove(job, cfg, run_dir):
        film = real_prepare(job, cfg, run_dir)
        if job.film_id == "bad":
            os.remove(gone)
        return film

    monkeypatch.setattr(jobmod, "prepare", prepare_then_remove)
    with pytest.raises(ShardFailures, match="1 of 2 film"):
        run_manifest(m, None, JobConfig(workers=2, progress=False))
    assert out.exists() and not (tmp_path / "bad.mkv").exists()
    films = {f["film_id"]: f for f in read_table(str(tmp_path / "m.filmcolor-run"), "films")}
    assert films["ok"]["status"] == "done" and films["bad"]["status"] == "failed"
    assert "no such file" in films["bad"]["error"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB filesystem (tmpfs), grown to 16 MiB by calling the returned function."""
    d = tmp_path / "tiny"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield d, lambda: subprocess.run(["mount", "-o", "remount,size=16m", str(d)], check=True)
    subprocess.run(["umount", str(d)], capture_output=True)


def test_out_of_space_is_clear_leaves_nothing_and_resumes(ray_cluster, film3, tmp_path, tiny_disk):
    disk, grow = tiny_disk
    out = disk / "film.mkv"
    job = FilmJob("f", film3.path, str(out), parse_exemplars(film3.exemplars), run_dir=str(tmp_path / "run"))
    with pytest.raises(ShardFailures, match="no space left on device"):
        run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW))
    assert os.listdir(disk) == []  # no partial output, no staging file
    grow()  # space is free again: the same command finishes, from the segments already made
    assert run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW)).status == "done"
    assert probe(str(out)).frame_count == 48
    assert all(s["attempts"] == 1 for s in read_table(str(tmp_path / "run"), "shards"))


# --- the driver killed, then resumed (real processes, like a user) -----------------------

@pytest.fixture(scope="module")
def long_film(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    shots = [SynthScene(p, 36, pan=(2, 1)) for p in ("astronaut", "coffee", "chelsea", "rocket",
                                                     "stereo_motorcycle", "immunohistochemistry")]
    film = write_film(str(d / "reel.mkv"), shots, 320, 180, keep_colour=True)
    save_png(str(d / "ex.png"), film.colour[0])
    return film, f"{d / 'ex.png'}@0"


def _colorize(film, ex, out, **kw):
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "colorize", film.path, str(out), "-e", ex],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


@pytest.fixture(scope="module")
def long_ref(long_film, tmp_path_factory):
    film, ex = long_film
    ref = tmp_path_factory.mktemp("ref") / "ref.mkv"
    proc = _colorize(film, ex, ref)
    assert proc.wait(300) == 0, proc.stderr.read()[-2000:]
    return _sha(ref)


def test_driver_sigkill_then_resume_gives_the_same_bytes(long_film, long_ref, tmp_path):
    film, ex = long_film
    out = tmp_path / "out.mkv"
    proc = _colorize(film, ex, out)
    journal = Journal(str(tmp_path / "out.filmcolor-run"))
    t0 = time.time()
    while len(journal.shard_rows("reel")) < 2:
        assert proc.poll() is None and time.time() - t0 < 240
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only; its embedded Ray goes with it
    proc.wait()
    durable = {k for k, r in journal.shard_rows("reel").items() if r["status"] == "done"}
    assert not out.exists()
    resumed = _colorize(film, ex, out)
    assert resumed.wait(300) == 0, resumed.stderr.read()[-2000:]
    assert _sha(out) == long_ref
    shards = read_table(str(tmp_path / "out.filmcolor-run"), "shards")
    assert all(s["attempts"] == 1 for s in shards if s["shard_id"] in durable)  # kept, not recoloured
    assert sum(1 for s in shards if s["attempts"] > 1) <= 2  # at most the shards in flight (2 workers)


@pytest.mark.parametrize("point", ["planned", "published"])
def test_driver_sigkill_at_a_stage_boundary_then_resume(long_film, long_ref, tmp_path, point):
    """Killed where the plan is journaled but nothing handed out, or where the output is
    published but its row is not yet written: the resume neither rescans nor recolours
    more than it must, and gives the uninterrupted run's bytes."""
    from pipeline.collection import DRILL_ENV

    film, ex = long_film
    out, run_dir = tmp_path / "out.mkv", tmp_path / "out.filmcolor-run"
    proc = _colorize(film, ex, out, env={**os.environ, DRILL_ENV: point})
    assert proc.wait(300) == -signal.SIGKILL
    journal = Journal(str(run_dir))
    assert journal.plan("reel") is not None and journal.film_row("reel") is None
    assert out.exists() == (point == "published")
    before = {k: r["status"] for k, r in journal.shard_rows("reel").items()}
    resumed = _colorize(film, ex, out, env={k: v for k, v in os.environ.items() if k != DRILL_ENV})
    assert resumed.wait(300) == 0, resumed.stderr.read()[-2000:]
    assert _sha(out) == long_ref
    shards = read_table(str(run_dir), "shards")
    # planned: nothing was handed out before the kill; published: every shard was done
    assert before == {} if point == "planned" else set(before.values()) == {"done"}
    assert all(s["attempts"] == 1 for s in shards)  # none recoloured
    films = read_table(str(run_dir), "films")
    assert films[0]["status"] == "done" and not films[0].get("scan_seconds")  # no rescan
