"""Manifests and reprocessing: checked together up front; reruns redo only what is asked."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.errors import InputError
from pipeline.job import JobConfig, reprocess, run_manifest
from pipeline.manifest import ManifestError, load
from pipeline.record import read_table


def _write(tmp_path, doc, name="m.yaml"):
    import yaml

    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc) if name.endswith(".yaml") else json.dumps(doc))
    return str(p)


def _film_entry(film3, tmp_path, fid="reel1", out="out1.mkv"):
    image, at = film3.exemplars[1].split("@")
    return {"id": fid, "input": film3.path, "output": str(tmp_path / out),
            "exemplars": [{"image": image, "frame": int(at)}]}


def test_all_problems_are_reported_together_with_locations(film3, tmp_path):
    good = _film_entry(film3, tmp_path)
    bad = {"id": "reel1", "input": str(tmp_path / "missing.mkv"), "output": str(tmp_path / "x.avi"),
           "exemplars": [{"image": str(tmp_path / "nope.png"), "frame": 3, "colour": "red"}], "speed": 2}
    path = _write(tmp_path, {"version": 1, "films": [good, bad]})
    with pytest.raises(ManifestError) as err:
        load(path)
    text = "\n".join(err.value.problems)
    assert "films[1].id: duplicate id 'reel1'" in text
    assert "films[1].input:" in text and "no such file" in text
    assert "films[1].output:" in text and "unsupported output extension" in text
    assert "films[1].exemplars[0].image:" in text
    assert "films[1].exemplars[0].colour: unknown key" in text
    assert "films[1].speed: unknown key" in text
    assert not (tmp_path / "out1.mkv").exists()


def test_json_manifest_and_frames_outside_the_film(film3, tmp_path):
    entry = _film_entry(film3, tmp_path)
    entry["exemplars"][0]["frame"] = 4800
    path = _write(tmp_path, {"version": 1, "films": [entry]}, "m.json")
    load(path)  # the structure is fine; the frame is checked against the probed film
    with pytest.raises(ManifestError, match=r"films\[0\]\.exemplars\[0\]: exemplar frame 4800 is outside"):
        run_manifest(path, str(tmp_path / "run"), JobConfig(workers=1, progress=False))
    assert not (tmp_path / "run").exists()  # nothing written before the checks passed


def test_run_manifest_then_reprocess_a_scene_and_a_changed_exemplar(ray_cluster, film3, tmp_path):
    doc = {"version": 1, "defaults": {"codec": "ffv1"},
           "films": [_film_entry(film3, tmp_path)]}
    doc["films"][0]["exemplars"] = [{"image": e.split("@")[0], "frame": int(e.split("@")[1])}
                                    for e in film3.exemplars]
    run_dir = str(tmp_path / "run")
    cfg = JobConfig(workers=2, progress=False)
    (result,) = run_manifest(_write(tmp_path, doc), run_dir, cfg)
    out = tmp_path / "out1.mkv"
    first = hashlib.sha256(out.read_bytes()).hexdigest()
    shards = {s["scene"]: s for s in read_table(run_dir, "shards")}
    assert all(s["status"] == "done" for s in shards.values())

    # --scene 1: only scene 1 is redone; the same model gives the same film.
    reprocess(run_dir, [1], False, [], cfg)
    after = {s["scene"]: s for s in read_table(run_dir, "shards")}
    assert after[1]["attempts"] == 2 and after[0]["attempts"] == 1 and after[2]["attempts"] == 1
    assert hashlib.sha256(out.read_bytes()).hexdigest() == first

    # A colorist replaces scene 2's exemplar: scene 2 is redone, the film changes, others reused.
    import cv2

    new = tmp_path / "new.png"
    img = cv2.imread(film3.exemplars[2].split("@")[0])
    cv2.imwrite(str(new), img[:, :, ::-1])  # swap red and blue: a different grade
    reprocess(run_dir, [], False, [f"{new}@35"], cfg)
    final = {s["scene"]: s for s in read_table(run_dir, "shards")}
    assert final[2]["attempts"] == 2  # redone because its exemplar changed
    assert final[0]["attempts"] == 1 and final[1]["attempts"] == 2
    assert hashlib.sha256(out.read_bytes()).hexdigest() != first
    films = read_table(run_dir, "films")
    assert films[0]["exemplars"][-1] == str(new)


def test_reprocess_needs_a_selector(tmp_path):
    with pytest.raises(InputError):
        reprocess(str(tmp_path), [], False, [], JobConfig())


def test_hints_in_a_manifest_are_checked_with_their_location(film3, tmp_path):
    import cv2
    import numpy as np

    rgb = str(tmp_path / "rgb.png")
    cv2.imwrite(rgb, np.zeros((8, 8, 3), np.uint8))
    ok = str(tmp_path / "dots.png")
    dots = np.zeros((8, 8, 4), np.uint8)
    dots[3, 3] = (0, 0, 255, 255)
    cv2.imwrite(ok, dots)
    good = {"id": "auto", "input": film3.path, "output": str(tmp_path / "a.mkv")}  # neither: automatic
    hinted = {"id": "hinted", "input": film3.path, "output": str(tmp_path / "h.mkv"),
              "hints": [{"image": ok, "frame": 3}, {"image": rgb, "frame": 20}]}
    path = _write(tmp_path, {"version": 1, "films": [good, hinted]})
    with pytest.raises(ManifestError) as err:
        load(path)
    assert err.value.problems == [f"films[1].hints[1].image: hints {rgb}: the PNG has no alpha channel "
                                  "(hints are transparent except where colour is given)"]
    hinted["hints"].pop()
    m = load(_write(tmp_path, {"version": 1, "films": [good, hinted]}))
    assert m.films[0].exemplars == [] and m.films[0].hints == []
    assert [(h.image, h.at) for h in m.films[1].hints] == [(ok, "3")]


# --- ids are safe names; outputs may be a list; fps --------------------------------------

def _filmcolor(*args, cwd=None):
    """The installed entry point (`filmcolor`, pipeline.cli:main) as a user runs it."""
    import os
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "filmcolor")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "pipeline.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _tree(root) -> set[str]:
    import os

    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}


def test_unsafe_id_is_refused_and_nothing_is_written(tmp_path):
    """`id: "../../x"` would put segments, journal and thumbnails beside the manifest
    (RUN_DIR/segments/../../x): refused before anything starts, exit 2."""
    d = tmp_path / "archive" / "jobs"
    d.mkdir(parents=True)
    (d / "reel1.mkv").write_bytes(b"a film")  # not probed: validation fails first
    path = _write(d, {"version": 1, "films": [{"id": "../../x", "input": str(d / "reel1.mkv"),
                                                "output": str(d / "reel1-colour.mkv")}]})
    before = _tree(tmp_path)
    res = _filmcolor("run", path, cwd=str(d))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [f"filmcolor: error: {path}: 1 problem(s)",
                                       "  films[0].id: unsafe id '../../x' (letters, digits, '.', '_', '-' only)"]
    assert _tree(tmp_path) == before  # no run directory, no x/ beside the manifest or above it


@pytest.mark.parametrize("fid,needle", [
    ("a/b", "films[0].id: unsafe id 'a/b' (letters, digits, '.', '_', '-' only)"),
    ("..", "films[0].id: unsafe id '..' (not '.' or '..')"),
    (".", "films[0].id: unsafe id '.' (not '.' or '..')"),
    ("réel", "films[0].id: unsafe id 'réel' (letters, digits, '.', '_', '-' only)"),
    ("/abs", "films[0].id: unsafe id '/abs' (letters, digits, '.', '_', '-' only)"),
    (7, "films[0].id: expected a string id, got 7"),
    (None, "films[0].id: missing"),
])
def test_unsafe_ids_are_reported_with_the_other_problems(tmp_path, fid, needle):
    (tmp_path / "in.mkv").write_bytes(b"x")
    films = [{"id": fid, "input": str(tmp_path / "in.mkv"), "output": str(tmp_path / "o.avi")}]
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, {"version": 1, "films": films}))
    assert needle in err.value.problems
    if isinstance(fid, str):
        assert any(p.startswith("films[0].output: ") and "unsupported output extension" in p
                   for p in err.value.problems)


def test_ids_differing_only_in_case_are_duplicates(tmp_path):
    (tmp_path / "in.mkv").write_bytes(b"x")
    films = [{"id": i, "input": str(tmp_path / "in.mkv"), "output": str(tmp_path / f"{k}.mkv")}
             for k, i in enumerate(("reel1", "Reel1", "reel1"))]
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, {"version": 1, "films": films}))
    assert err.value.problems == ["films[1].id: duplicate id 'Reel1' (also films[0] as 'reel1')",
                                  "films[2].id: duplicate id 'reel1' (also films[0])"]


def test_outputs_as_a_list_each_checked(tmp_path):
    (tmp_path / "in.mkv").write_bytes(b"x")
    inp = str(tmp_path / "in.mkv")
    master, mezz, access = (str(tmp_path / n) for n in ("r.mkv", "r.mov", "r.mp4"))
    doc = {"version": 1, "defaults": {"codec": "ffv1"},  # the master's codec; the others by extension
           "films": [{"id": "r", "input": inp, "output": [master, mezz, access], "fps": "24000/1001"},
                     {"id": "s", "input": inp, "output": str(tmp_path / "s.mkv"), "fps": 25}]}
    m = load(_write(tmp_path, doc))
    assert m.films[0].outputs == [master, mezz, access] and m.films[0].output == master
    assert m.films[0].fps == "24000/1001"
    assert m.films[1].outputs == [m.films[1].output] and m.films[1].fps == "25"

    doc["films"][0]["output"] = [master, str(tmp_path / "r.avi"), str(tmp_path / "nope" / "r.mp4"), master, 3]
    doc["films"][1]["output"] = []
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, doc))
    assert err.value.problems == ["films[0].output[4]: expected a path or s3:// URI, got 3", "films[1].output: missing"]

    doc["films"][0]["output"] = [master, str(tmp_path / "r.avi"), str(tmp_path / "nope" / "r.mp4"), master]
    doc["films"][1]["output"] = [master]
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, doc))
    problems = err.value.problems
    assert any(p.startswith("films[0].output[1]: ") and "unsupported output extension '.avi'" in p for p in problems)
    assert any(p.startswith("films[0].output[2]: ") and "does not exist" in p for p in problems), problems
    assert f"films[0].output[3]: {master} is also written by films[0].output[0]" in problems
    assert f"films[1].output[0]: {master} is also written by films[0].output[0]" in problems
    assert not any(p.startswith("films[0].output[0]") for p in problems)
    assert not (tmp_path / "r.mkv").exists()


def test_master_codec_must_fit_the_master(tmp_path):
    (tmp_path / "in.mkv").write_bytes(b"x")
    doc = {"version": 1, "films": [{"id": "r", "input": str(tmp_path / "in.mkv"), "codec": "prores",
                                    "output": [str(tmp_path / "r.mp4"), str(tmp_path / "r.mkv")]}]}
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, doc))
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith("films[0].output[0]: ")
    assert "cannot carry prores" in err.value.problems[0]


@pytest.mark.parametrize("fps,stored", [(24, "24"), (23.976, "23.976"), ("24000/1001", "24000/1001"),
                                        (" 25 ", "25"), ("30000/1001", "30000/1001")])
def test_fps_accepted(tmp_path, fps, stored):
    (tmp_path / "in.mkv").write_bytes(b"x")
    doc = {"version": 1, "films": [{"id": "r", "input": str(tmp_path / "in.mkv"),
                                    "output": str(tmp_path / "r.mkv"), "fps": fps}]}
    assert load(_write(tmp_path, doc)).films[0].fps == stored


@pytest.mark.parametrize("fps", [0, -24, "24/0", "0/1001", "fast", True, None, [24], ".nan", "inf"])
def test_fps_refused(tmp_path, fps):
    (tmp_path / "in.mkv").write_bytes(b"x")
    doc = {"version": 1, "films": [{"id": "r", "input": str(tmp_path / "in.mkv"),
                                    "output": str(tmp_path / "r.mkv"), "fps": fps}]}
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, doc))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("films[0].fps: expected a positive frame rate like 24, 23.976 or "
                                            '"24000/1001", got ')


def test_huge_exemplar_in_a_manifest_is_located(tmp_path):
    from tests.test_exemplar import bomb_png

    (tmp_path / "in.mkv").write_bytes(b"x")
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(20000, 20000))
    doc = {"version": 1, "films": [{"id": "r", "input": str(tmp_path / "in.mkv"), "output": str(tmp_path / "r.mkv"),
                                    "exemplars": [{"image": str(big), "frame": 3}]}]}
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, doc))
    assert err.value.problems == [f"films[0].exemplars[0].image: exemplar {big}: 20000 x 20000 pixels is above "
                                  "the limit of 67108864 (8192 x 8192); scale it down to the film's size"]


def test_folders_of_painted_keyframes_in_a_manifest(film3, tmp_path):
    import os

    paint = tmp_path / "paint"
    paint.mkdir()
    doc = {"version": 1, "films": [
        {**_film_entry(film3, tmp_path), "exemplars_dir": str(paint), "hints_dir": str(tmp_path / "nope")}]}
    with pytest.raises(ManifestError) as e:
        load(_write(tmp_path, doc))
    assert e.value.problems == [f"films[0].hints_dir: {tmp_path / 'nope'}: no such folder"]
    del doc["films"][0]["hints_dir"]
    m = load(_write(tmp_path, doc))
    assert m.films[0].exemplars_dir == str(paint) and m.films[0].hints_dir is None
    assert os.listdir(paint) == []
