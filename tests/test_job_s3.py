"""The job from object storage to object storage, against a real S3 server (SeaweedFS).

The same guarantees as local files (frames, timestamps, luma bit-exact, audio identical,
the same bytes), mixed local/S3 paths, a manifest on S3, a multipart output, and the
server going away: for a few seconds (the run finishes, identical output) or for good
(clear error, shards failed, nothing at OUTPUT, no orphaned upload). Credentials never
appear in anything the job printed or wrote.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from pipeline.io import iter_luma, probe
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film, run_manifest
from pipeline.record import read_table
from pipeline.colorize import ColorizeConfig
from pipeline.synth import SynthScene, save_png, write_film

pytestmark = pytest.mark.timeout(300)
FLOW = ColorizeConfig(model="flow")  # the fast model: these tests are about storage


def _upload(client, bucket, path, key) -> str:
    client.upload_file(path, bucket, key)
    return f"s3://{bucket}/{key}"


def _download(client, uri, path) -> str:
    bucket, key = uri[5:].split("/", 1)
    client.download_file(bucket, key, path)
    return path


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _keys(client, bucket, prefix=""):
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _packets(path, kind):
    with av.open(path) as c:
        return [(p.pts, bytes(p)) for p in c.demux([s for s in c.streams if s.type == kind]) if p.size]


def _s3_inputs(client, bucket, film):
    """The film and its exemplars on S3; returns (film uri, exemplar specs)."""
    uri = _upload(client, bucket, film.path, "in/reel1.mkv")
    specs = []
    for k, spec in enumerate(film.exemplars):
        png, at = spec.rsplit("@", 1)
        specs.append(f"{_upload(client, bucket, png, f'in/refs/ex{k}.png')}@{at}")
    return uri, specs


@pytest.fixture(scope="module")
def local_reference(ray_cluster, film3, tmp_path_factory):
    """The same film coloured from and to local files: what S3 runs must equal."""
    out = str(tmp_path_factory.mktemp("local") / "reel1.mkv")
    run_film(FilmJob("reel1", film3.path, out, parse_exemplars(film3.exemplars)),
             JobConfig(workers=2, progress=False, colorize=FLOW))
    return out


@pytest.fixture(scope="module")
def s3_run(s3_server, ray_cluster, film3, tmp_path_factory):
    c = s3_server.client()
    bucket = "reels-e2e"
    c.create_bucket(Bucket=bucket)
    uri, specs = _s3_inputs(c, bucket, film3)
    out = f"s3://{bucket}/out/reel1.mkv"
    result = run_film(FilmJob("reel1", uri, out, parse_exemplars(specs)),
                      JobConfig(workers=2, progress=False, colorize=FLOW))
    local = _download(c, out, str(tmp_path_factory.mktemp("dl") / "reel1.mkv"))
    return result, bucket, local


def test_s3_to_s3_keeps_every_guarantee(s3_run, film3, local_reference):
    result, bucket, out = s3_run
    assert result.status == "done"
    a, b = probe(film3.path), probe(out)
    assert b.frame_pts == a.frame_pts and b.end_pts == a.end_pts
    for (i, ya), (_, yb) in zip(iter_luma(a, 0, a.frame_count), iter_luma(b, 0, b.frame_count)):
        assert np.array_equal(ya, yb), f"luma differs at frame {i}"
    assert _packets(out, "audio") == _packets(film3.path, "audio")
    assert _sha(out) == _sha(local_reference)  # the same bytes as a local run


def test_default_run_dir_is_beside_the_output_on_s3(s3_run, s3_server):
    result, bucket, out = s3_run
    assert result.run_dir == f"s3://{bucket}/out/reel1.filmcolor-run"
    shards = read_table(result.run_dir, "shards")
    films = read_table(result.run_dir, "films")
    assert films[0]["output_sha256"] == _sha(out)
    c = s3_server.client()
    for s in shards:
        assert s["status"] == "done" and s["segment_uri"].startswith(result.run_dir + "/segments/reel1/")
        bucket_, key = s["segment_uri"][5:].split("/", 1)
        head = c.head_object(Bucket=bucket_, Key=key)
        assert head["Metadata"]["sha256"] == s["segment_sha256"]  # durable with its checksum
    head = c.head_object(Bucket=bucket, Key="out/reel1.mkv")
    assert head["Metadata"]["sha256"] == _sha(out)
    assert not [k for k in _keys(c, bucket) if "partial" in k or "stage-" in k]


def test_rerun_from_s3_reuses_every_segment(s3_run, s3_server):
    result, bucket, out = s3_run
    films = read_table(result.run_dir, "films")
    specs = [f"{img}@{fr}" for img, fr in zip(films[0]["exemplars"], films[0]["exemplar_frames"])]
    job = FilmJob("reel1", films[0]["input"], films[0]["output"], parse_exemplars(specs))
    again = run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW))
    assert again.status == "skipped"  # published, its sha256 (object metadata) matches
    bucket_, key = films[0]["output"][5:].split("/", 1)
    s3_server.client().delete_object(Bucket=bucket_, Key=key)
    rebuilt = run_film(job, JobConfig(workers=2, progress=False, colorize=FLOW))
    assert rebuilt.status == "done"  # reassembled from the segments on S3
    shards = read_table(result.run_dir, "shards")
    assert all(s["attempts"] == 1 for s in shards)  # nothing coloured twice
    assert s3_server.client().head_object(Bucket=bucket_, Key=key)["Metadata"]["sha256"] == _sha(out)


def test_mixed_local_and_s3_paths(s3_server, s3_bucket, ray_cluster, film3, tmp_path, local_reference):
    c = s3_server.client()
    uri, specs = _s3_inputs(c, s3_bucket, film3)
    # S3 film, local exemplars, local output: run dir beside the local output.
    local_out = str(tmp_path / "a.mkv")
    run_film(FilmJob("reel1", uri, local_out, parse_exemplars(film3.exemplars)),
             JobConfig(workers=2, progress=False, colorize=FLOW))
    # Local film, S3 exemplars, S3 output, local run dir.
    s3_out = f"s3://{s3_bucket}/out/b.mkv"
    run_film(FilmJob("reel1", film3.path, s3_out, parse_exemplars(specs), run_dir=str(tmp_path / "run")),
             JobConfig(workers=2, progress=False, colorize=FLOW))
    b = _download(c, s3_out, str(tmp_path / "b.mkv"))
    assert _sha(local_out) == _sha(b) == _sha(local_reference)
    assert os.path.exists(tmp_path / "a.filmcolor-run" / "shards.parquet")
    assert os.path.exists(tmp_path / "run" / "shards.parquet")


def test_manifest_on_s3(s3_server, s3_bucket, ray_cluster, film3, local_reference, tmp_path):
    c = s3_server.client()
    uri, specs = _s3_inputs(c, s3_bucket, film3)
    ex = "\n".join(f"      - image: {s.rsplit('@', 1)[0]}\n        frame: {s.rsplit('@', 1)[1]}" for s in specs)
    text = (f"version: 1\ndefaults:\n  codec: ffv1\nfilms:\n  - id: reel1\n    input: {uri}\n"
            f"    output: s3://{s3_bucket}/out/reel1.mkv\n    model: flow\n    exemplars:\n{ex}\n")
    c.put_object(Bucket=s3_bucket, Key="manifests/night.yaml", Body=text.encode())
    results = run_manifest(f"s3://{s3_bucket}/manifests/night.yaml", None, JobConfig(workers=2, progress=False))
    assert [r.status for r in results] == ["done"]
    assert results[0].run_dir == f"s3://{s3_bucket}/manifests/night.filmcolor-run"
    out = _download(c, f"s3://{s3_bucket}/out/reel1.mkv", str(tmp_path / "m.mkv"))
    assert _sha(out) == _sha(local_reference)


def test_multipart_output(s3_server, s3_bucket, ray_cluster, tmp_path, monkeypatch):
    film = write_film(str(tmp_path / "big.mkv"), [SynthScene("astronaut", 32, pan=(3, 1)),
                                                 SynthScene("hubble_deep_field", 32, pan=(-3, 1))],
                      640, 360, keep_colour=True)
    save_png(str(tmp_path / "ex.png"), film.colour[0])
    monkeypatch.setenv("FILMCOLOR_S3_PART_SIZE", str(5 << 20))
    out = f"s3://{s3_bucket}/out/big.mkv"
    run_film(FilmJob("big", film.path, out, parse_exemplars([f"{tmp_path / 'ex.png'}@0"]),
                     run_dir=str(tmp_path / "run")), JobConfig(workers=2, progress=False, colorize=FLOW))
    c = s3_server.client()
    head = c.head_object(Bucket=s3_bucket, Key="out/big.mkv", ChecksumMode="ENABLED")
    assert head["ContentLength"] > 5 << 20
    assert "-" in head.get("ChecksumSHA256", "")  # a multipart object, every part checksummed
    assert probe(_download(c, out, str(tmp_path / "dl.mkv"))).frame_count == 64
    assert c.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


# --- the server going away, through the command line (its own Ray, like a user) ---------

@pytest.fixture(scope="module")
def slow_film(tmp_path_factory):
    """Six shots at 320x180 with the default model: long enough to stop the server mid-run."""
    d = tmp_path_factory.mktemp("slow")
    shots = [SynthScene(p, 40, pan=(2, 1)) for p in ("astronaut", "coffee", "chelsea", "rocket",
                                                     "stereo_motorcycle", "immunohistochemistry")]
    film = write_film(str(d / "reel.mkv"), shots, 320, 180, keep_colour=True)
    save_png(str(d / "ex.png"), film.colour[0])
    return film, str(d / "ex.png")


def _cli(args, env, log_dir):
    """Start `filmcolor` in its own process; stdout/stderr to files (grepped afterwards)."""
    out, err = open(os.path.join(log_dir, "stdout"), "ab"), open(os.path.join(log_dir, "stderr"), "ab")
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], stdout=out, stderr=err, env=env)


def _wait_for_segment(client, bucket, prefix, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if [k for k in _keys(client, bucket, prefix) if k.endswith(".mkv")]:
            return
        assert proc.poll() is None, "the run ended before any segment was written"
        time.sleep(0.2)
    raise AssertionError("no segment appeared")


def _no_credentials_anywhere(server, paths, blobs):
    secrets = [server.secret_key.encode(), server.access_key.encode(),
               server.readonly_key[1].encode()]
    for blob in blobs:
        assert not any(s in blob for s in secrets)
    for root in paths:
        for d, _, files in os.walk(root):
            for f in files:
                data = open(os.path.join(d, f), "rb").read()
                assert not any(s in data for s in secrets), os.path.join(d, f)


def test_server_down_for_seconds_the_run_finishes_identically(s3_server, s3_bucket, slow_film, tmp_path):
    film, ex = slow_film
    c = s3_server.client()
    uri = _upload(c, s3_bucket, film.path, "in/reel.mkv")
    ex_uri = _upload(c, s3_bucket, ex, "in/ex.png")
    env = {**os.environ}
    # Undisturbed reference run, then the same film with the server stopped mid-run.
    ref = subprocess.run([sys.executable, "-m", "pipeline.cli", "colorize", uri, f"s3://{s3_bucket}/ref/reel.mkv",
                          "-e", f"{ex_uri}@0"], env=env, capture_output=True, timeout=280)
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = _cli(["colorize", uri, f"s3://{s3_bucket}/out/reel.mkv", "-e", f"{ex_uri}@0"], env, str(tmp_path))
    _wait_for_segment(c, s3_bucket, "out/reel.filmcolor-run/segments/", proc)
    s3_server.stop()
    time.sleep(3)
    s3_server.start()
    assert proc.poll() is None  # the outage really fell inside the run
    assert proc.wait(280) == 0, open(tmp_path / "stderr").read()[-2000:]
    a = _download(c, f"s3://{s3_bucket}/ref/reel.mkv", str(tmp_path / "a.mkv"))
    b = _download(c, f"s3://{s3_bucket}/out/reel.mkv", str(tmp_path / "b.mkv"))
    assert _sha(a) == _sha(b)
    # Nothing the job printed or wrote (output, run record, segments) holds a credential.
    objects = [c.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in _keys(c, s3_bucket)]
    _no_credentials_anywhere(s3_server, [str(tmp_path)], objects + [ref.stdout, ref.stderr])


def test_server_gone_for_good_fails_clearly_and_leaves_nothing(s3_server, s3_bucket, slow_film, tmp_path):
    film, ex = slow_film
    c = s3_server.client()
    uri = _upload(c, s3_bucket, film.path, "in/reel.mkv")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "FILMCOLOR_S3_MAX_ATTEMPTS": "3", "FILMCOLOR_SCRATCH": str(scratch)}
    run_dir = str(tmp_path / "run")  # local, so the failures can be recorded
    proc = _cli(["colorize", uri, f"s3://{s3_bucket}/out/reel.mkv", "-e", f"{ex}@0", "--run-dir", run_dir],
                env, str(tmp_path))
    seg_dir, t0 = os.path.join(run_dir, "segments", "reel"), time.time()
    while not (os.path.isdir(seg_dir) and [f for f in os.listdir(seg_dir) if f.endswith(".mkv")]):
        assert time.time() - t0 < 240 and proc.poll() is None
        time.sleep(0.1)
    s3_server.stop()  # in the middle of the colouring: the first segment is stored
    try:
        rc = proc.wait(240)  # bounded: retries run out, no hang
        stderr = open(tmp_path / "stderr").read()
    finally:
        s3_server.start()
    assert rc == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "cannot reach" in stderr or "kept failing" in stderr
    shards = read_table(run_dir, "shards")
    failed = [s for s in shards if s["status"] == "failed"]
    assert failed and all(("cannot reach" in s["error"] or "kept failing" in s["error"]) for s in failed)
    assert "out/reel.mkv" not in _keys(c, s3_bucket, "out/")
    assert c.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    left = [os.path.join(d, f) for d, _, fs in os.walk(scratch) for f in fs]
    assert left == []  # the workers' scratch is clean after the failure too


def test_bad_storage_input_is_one_line_exit_2(s3_server, s3_bucket, film3, tmp_path):
    c = s3_server.client()
    uri, specs = _s3_inputs(c, s3_bucket, film3)
    cases = [
        ([f"s3://{s3_bucket}/in/nope.mkv", f"s3://{s3_bucket}/o.mkv", "-e", specs[0]], os.environ,
         f"s3://{s3_bucket}/in/nope.mkv: no such key"),
        (["s3://no-such-bucket-fc/in/reel1.mkv", f"s3://{s3_bucket}/o.mkv", "-e", specs[0]], os.environ,
         "s3://no-such-bucket-fc/: no such bucket"),
        ([uri, "s3://no-such-bucket-fc/o.mkv", "-e", specs[0]], os.environ, "s3://no-such-bucket-fc/: no such bucket"),
        ([uri, f"s3://{s3_bucket}/o.mkv", "-e", specs[0]],
         {**os.environ, "AWS_ACCESS_KEY_ID": s3_server.readonly_key[0],
          "AWS_SECRET_ACCESS_KEY": s3_server.readonly_key[1]}, f"s3://{s3_bucket}/: access denied"),
        ([uri, f"s3://{s3_bucket}/o.mkv", "-e", specs[0]], {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-QQ7"},
         "wrong secret key"),
        ([uri, f"s3://{s3_bucket}/o.mkv", "-e", f"s3://{s3_bucket}/in/refs/none.png@0"], os.environ,
         f"exemplar s3://{s3_bucket}/in/refs/none.png: no such key"),
    ]
    for args, env, needle in cases:
        r = subprocess.run([sys.executable, "-m", "pipeline.cli", "colorize", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
        assert "wrong-QQ7" not in r.stderr and s3_server.secret_key not in r.stderr
    assert _keys(c, s3_bucket, "o.") == [] and not [k for k in _keys(c, s3_bucket) if "filmcolor-run" in k]
