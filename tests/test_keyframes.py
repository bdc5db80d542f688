"""The colourist's round trip: keyframes out (grey, full resolution and depth, named by
film, scene, frame and timecode), painted frames back in by name, only those scenes
coloured again; wrong pictures refused with one line before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest

from pipeline import keyframes
from pipeline.colorize import ColorizeConfig
from pipeline.io import iter_luma, probe
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film
from pipeline.record import read_table
from pipeline.synth import SynthScene, write_sequence

FILMCOLOR = [sys.executable, "-m", "pipeline.cli"]


def _cli(*args):
    return subprocess.run(FILMCOLOR + list(args), capture_output=True, text=True)


def _pictures(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".png"))


def _read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _hue_turned(rgb: np.ndarray) -> np.ndarray:
    """The colour truth with its chroma turned 90 degrees: the same luma, other colours
    (what a colourist repainting a scene does)."""
    from pipeline.synth import rgb_to_ycbcr, ycbcr_to_rgb

    y, cb, cr = rgb_to_ycbcr(rgb, "bt601")
    return ycbcr_to_rgb(np.stack([y, -cr, cb]), "bt601")


def test_keyframes_of_a_film_are_its_frames_grey_and_named(film3, tmp_path):
    out = tmp_path / "paint"
    r = _cli("keyframes", film3.path, "--out", str(out))
    assert r.returncode == 0, r.stderr
    names = _pictures(out)
    grey = [n for n in names if not n.endswith("_hints.png")]
    assert len(grey) == 3 and len(names) == 6  # 3 scenes: keyframe + hints template each
    info = probe(film3.path)
    for n in grey:
        film, scene, frame, _ = keyframes.parse_name(n)
        assert film == "bw" and 0 <= frame < 48
        img = _read(out / n)
        y = next(iter_luma(info, frame, frame + 1))[1]
        assert img.dtype == np.uint8 and np.array_equal(img, y)  # 8-bit full-range gray: the samples
        tmpl = _read(out / n.replace(".png", "_hints.png"))
        assert tmpl.shape == (96, 160, 4) and not tmpl.any()
    # the timecode of the frame in the name (film3 starts at 10:00:00:00, 24 fps)
    first = keyframes.parse_name(grey[0])
    assert f"_10-00-00-{first[2]:02d}" in grey[0]


def test_a_16_bit_scan_gives_16_bit_keyframes_equal_to_its_samples(tmp_path):
    scan = write_sequence(str(tmp_path / "scan"), [SynthScene("astronaut", 8), SynthScene("coffee", 8)], 64, 48,
                          16, ".dpx", rate=Fraction(18), timecode="01:00:00:00")
    r = _cli("keyframes", scan.path, "--out", str(tmp_path / "k"), "--scene", "1")
    assert r.returncode == 0, r.stderr
    names = [n for n in _pictures(tmp_path / "k") if not n.endswith("_hints.png")]
    assert len(names) == 1 and names[0].startswith("scan_s0001_f")
    frame = keyframes.parse_name(names[0])[2]
    img = _read(tmp_path / "k" / names[0])
    y = next(iter_luma(probe(scan.path), frame, frame + 1))[1]
    assert img.dtype == np.uint16 and np.array_equal(img, y)


@pytest.fixture(scope="module")
def run(ray_cluster, film3, tmp_path_factory):
    d = tmp_path_factory.mktemp("rt")
    out = str(d / "reel.mkv")
    job = FilmJob("reel", film3.path, out, parse_exemplars(film3.exemplars))
    run_film(job, JobConfig(workers=2, progress=False, report=False, colorize=ColorizeConfig(model="flow")))
    return film3, out, str(d / "reel.filmcolor-run")


def test_round_trip_recolours_exactly_the_painted_scene(run, tmp_path):
    from pipeline import fixity

    film3, out, run_dir = run
    before = {s["shard_id"]: s for s in read_table(run_dir, "shards")}
    frames_before = fixity.framemd5(out).splitlines()
    paint = tmp_path / "paint"
    r = _cli("keyframes", run_dir, "--out", str(paint), "--coloured")
    assert r.returncode == 0, r.stderr
    names = _pictures(paint)
    assert len(names) == 9  # 3 scenes x (keyframe, hints template, current colours)
    scenes = read_table(run_dir, "scenes")
    k1 = next(n for n in names if "_s0001_" in n and n.count("_") == 3)
    frame = keyframes.parse_name(k1)[2]
    assert frame == scenes[1]["exemplar_frame"]  # the scene's own exemplar frame
    coloured = _read(paint / k1.replace(".png", "_coloured.png"))
    assert coloured.shape == (96, 160, 3) and coloured.std(axis=2).mean() > 3  # in colour
    # paint scene 1's keyframe (other colours, same luma) in place of the grey picture
    cv2.imwrite(str(paint / k1), cv2.cvtColor(_hue_turned(film3.colour[frame]), cv2.COLOR_RGB2BGR))
    r = _cli("reprocess", run_dir, "--exemplars", str(paint), "--workers", "2")
    assert r.returncode == 0, r.stderr
    after = {s["shard_id"]: s for s in read_table(run_dir, "shards")}
    s1 = scenes[1]
    for sid, s in after.items():
        changed = s["segment_sha256"] != before[sid]["segment_sha256"]
        assert changed == (s["scene"] == 1), s
    frames_after = fixity.framemd5(out).splitlines()
    hdr = sum(1 for x in frames_before if x.startswith("#"))
    for i, (a, b) in enumerate(zip(frames_before[hdr:], frames_after[hdr:])):
        assert (a != b) == (s1["start_frame"] <= i < s1["end_frame"]) or a == b, f"frame {i}"
    assert sum(a != b for a, b in zip(frames_before[hdr:], frames_after[hdr:])) > 0
    film = read_table(run_dir, "films")[0]
    assert any(os.path.basename(e) == k1 for e in film["exemplars"])


def test_wrong_pictures_are_refused_with_one_line_naming_them(run, tmp_path):
    film3, out, run_dir = run
    scenes = read_table(run_dir, "scenes")
    f0, f2 = scenes[0]["exemplar_frame"], scenes[2]["exemplar_frame"]
    painted = cv2.cvtColor(film3.colour[f2], cv2.COLOR_RGB2BGR)
    cases = {
        # scene 2's frame painted, named as scene 0's: another picture
        "wrong": (keyframes.name_of("reel", 0, f0, "10:00:00:00"), painted, "does not match frame"),
        "size": (keyframes.name_of("reel", 2, f2, "10:00:00:00"), cv2.resize(painted, (80, 48)), "80x48"),
        "outside": (keyframes.name_of("reel", 2, 9999, "10:00:00:00"), painted, "outside the film"),
    }
    for what, (name, img, expect) in cases.items():
        d = tmp_path / what
        d.mkdir()
        cv2.imwrite(str(d / name), img)
        stamp = os.path.getmtime(run_dir + "/shards.parquet")
        r = _cli("reprocess", run_dir, "--exemplars", str(d))
        assert r.returncode == 2, (what, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and expect in lines[0], (what, lines)
        assert os.path.getmtime(run_dir + "/shards.parquet") == stamp  # nothing was done


def test_keyframes_to_and_from_s3(s3_server, s3_bucket, film3, tmp_path):
    c = s3_server.client()
    c.upload_file(film3.path, s3_bucket, "in/reel.mkv")
    prefix = f"s3://{s3_bucket}/paint/"
    r = _cli("keyframes", f"s3://{s3_bucket}/in/reel.mkv", "--out", prefix, "--scene", "2")
    assert r.returncode == 0, r.stderr
    keys = sorted(o["Key"] for o in c.list_objects_v2(Bucket=s3_bucket, Prefix="paint/")["Contents"]
                  if o["Key"].endswith(".png"))
    assert len(keys) == 2 and keys[0].startswith("paint/reel_s0002_f")
    # painted on S3, read back from the prefix by name
    name = os.path.basename(keys[0])
    frame = keyframes.parse_name(name)[2]
    ok, buf = cv2.imencode(".png", cv2.cvtColor(film3.colour[frame], cv2.COLOR_RGB2BGR))
    c.put_object(Bucket=s3_bucket, Key=keys[0], Body=buf.tobytes())
    found = keyframes.collect(prefix, "reel", probe(film3.path))
    assert [(os.path.basename(p.uri), p.frame, p.kind) for p in found] == [(name, frame, "exemplar")]
