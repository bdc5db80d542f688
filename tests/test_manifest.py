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
