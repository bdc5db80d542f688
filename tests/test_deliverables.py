"""An archive's scan in, its deliverables out, on a real local Ray cluster: a 16-bit
big-endian DPX sequence at 18 fps coloured once into an FFV1 master, a ProRes mezzanine,
an H.264 access copy and a 16-bit TIFF sequence, each with fixity sidecars."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.io import iter_luma, probe
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film
from pipeline.record import read_table
from pipeline.synth import SynthScene, save_png, write_sequence

SHOTS = [SynthScene("astronaut", 10, pan=(2, 1)), SynthScene("chelsea", 10, pan=(-2, 0.5))]
FILMCOLOR = [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture(scope="module")
def delivered(ray_cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("archive")
    scan = write_sequence(str(d / "scan"), SHOTS, 96, 64, 16, ".dpx", big_endian=True, rate=Fraction(18),
                          timecode="01:00:00:00", first_number=86400, keep_colour=True)
    exemplars = []
    for k, f in enumerate((3, 14)):
        png = str(d / f"ex{k}.png")
        save_png(png, scan.colour[f])
        exemplars.append(f"{png}@{f}")
    outs = [str(d / "out" / "reel1.mkv"), str(d / "out" / "reel1.mov"), str(d / "out" / "reel1.mp4"),
            str(d / "out" / "graded" / "reel1_%08d.tif")]
    os.makedirs(d / "out")
    job = FilmJob("reel1", scan.path, outs[0], parse_exemplars(exemplars), outputs=outs)
    result = run_film(job, JobConfig(workers=2, progress=False, report=False))
    return scan, outs, result, str(d / "out" / "reel1.filmcolor-run")


def test_master_luma_is_the_scans_16_bit_samples(delivered):
    scan, outs, result, _ = delivered
    assert result.status == "done"
    src, master = probe(scan.path), probe(outs[0])
    assert master.pix_fmt == "yuv420p16le" and master.frame_count == src.frame_count == 20
    for (i, a), (j, b) in zip(iter_luma(src, 0, 20), iter_luma(master, 0, 20)):
        assert i == j and a.dtype == b.dtype == np.uint16 and np.array_equal(a, b), f"frame {i}"
    with av.open(outs[0]) as c:  # colour was added, at 16 bits
        f = next(c.decode(video=0))
        cb = np.frombuffer(f.planes[1], "<u2")
        assert cb.std() > 200


def test_every_deliverable_keeps_count_rate_and_timecode(delivered):
    _, outs, _, _ = delivered
    for path in outs[:3]:
        info = probe(path)
        assert info.frame_count == 20, path
        assert info.start_timecode == "01:00:00:00", path
        with av.open(path) as c:
            assert c.streams.video[0].average_rate == 18, path  # MKV: DefaultDuration; MOV/MP4: the track
        if path.endswith(".mkv"):
            # Matroska stores timestamps in milliseconds (TimestampScale 10^6 ns): each
            # frame within half a millisecond of i/18 s
            assert all(abs(Fraction(p) / 1000 - Fraction(i, 18)) <= Fraction(1, 2000)
                       for i, p in enumerate(info.frame_pts)), path
        else:
            assert [p * info.time_base for p in info.frame_pts] == [Fraction(i, 18) for i in range(20)], path
            assert (info.end_pts - info.frame_pts[0]) * info.time_base == Fraction(20, 18), path
    with av.open(outs[1]) as c:  # the MOV carries a tmcd track
        assert any(s.type == "data" and s.codec_context is None or s.type == "data" for s in c.streams)
        assert c.streams.video[0].codec_context.name == "prores"
    with av.open(outs[2]) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    mask = os.umask(0)
    os.umask(mask)
    for path in outs[:3] + [os.path.dirname(outs[3])]:  # not the private mode of a staging file
        want = (0o777 if os.path.isdir(path) else 0o666) & ~mask
        assert os.stat(path).st_mode & 0o777 == want, path
    graded = sorted(os.listdir(os.path.dirname(outs[3])))
    assert graded[0] == "reel1_00086400.tif" and len(graded) == 20  # the scan's own numbering


def test_lossy_deliverables_keep_the_luma_within_codec_tolerance(delivered):
    scan, outs, _, _ = delivered
    src = dict(iter_luma(probe(scan.path), 0, 20))
    for path, tol in ((outs[1], 1.0), (outs[2], 2.5)):
        info = probe(path)
        for i, y in iter_luma(info, 0, 20):
            # full-range 16-bit scan -> video-range deliverable, compared in 8-bit units
            ref = 16 + src[i].astype(np.float64) / 65535 * 219
            got = y.astype(np.float64) / (1 << (info.bit_depth - 8))
            assert np.abs(got - ref).mean() < tol, (path, i)


def test_coloured_once_and_recorded(delivered):
    _, outs, _, run_dir = delivered
    shards = read_table(run_dir, "shards")
    assert shards and all(s["attempts"] == 1 and s["status"] == "done" for s in shards)
    film = read_table(run_dir, "films")[0]
    assert film["outputs"] == outs and film["codecs"] == ["ffv1", "prores", "h264", "tiff"]
    assert all(film["framemd5_uris"]) and all(film["sha256_uris"]) and all(film["output_sha256s"])
    assert film["rate"] == "18" and film["start_timecode"] == "01:00:00:00"
    import shutil

    if shutil.which("mediaconch"):  # the master is checked against the policy as it is published
        assert film["qc"] == ["pass", "", "", ""]


def test_fixity_sidecars_and_verify(delivered, tmp_path):
    _, outs, _, run_dir = delivered
    for path in outs[:3]:
        assert os.path.exists(path + ".framemd5") and os.path.exists(path + ".sha256")
    folder = os.path.dirname(outs[3])
    assert os.path.exists(folder + ".framemd5") and os.path.exists(folder + ".sha256")
    ok = subprocess.run(FILMCOLOR + ["verify", run_dir], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "4 deliverable(s) verified" in ok.stdout
    # one flipped byte in a copy of the master: named, with the first frame that differs
    import shutil

    bad = str(tmp_path / "reel1.mkv")
    shutil.copy(outs[0], bad)
    for ext in (".framemd5", ".sha256"):
        shutil.copy(outs[0] + ext, bad + ext)
    size = os.path.getsize(bad)
    with open(bad, "r+b") as f:
        f.seek(size * 2 // 3)
        b = f.read(1)
        f.seek(size * 2 // 3)
        f.write(bytes([b[0] ^ 0x55]))
    r = subprocess.run(FILMCOLOR + ["verify", bad], capture_output=True, text=True)
    assert r.returncode == 1 and "reel1.mkv" in r.stderr and "Traceback" not in r.stderr


def test_master_passes_the_mediaconch_policy(delivered):
    import shutil

    if not shutil.which("mediaconch"):
        pytest.skip("mediaconch is not installed (apt-get install mediaconch; .ci/run installs it)")
    from pipeline import qc

    _, outs, _, _ = delivered
    ok, report = qc.check_master(outs[0])
    assert ok, report


def test_sequence_input_needs_a_rate_and_bad_input_writes_nothing(tmp_path):
    scan = write_sequence(str(tmp_path / "tif"), SHOTS[:1], 32, 24, 16, ".tif", rate=None)
    out = tmp_path / "o.mkv"
    r = subprocess.run(FILMCOLOR + ["colorize", scan.path, str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "--fps" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    os.remove(os.path.join(scan.path, "reel_00000004.tif"))
    r = subprocess.run(FILMCOLOR + ["colorize", scan.path, str(out), "--fps", "16"], capture_output=True, text=True)
    assert r.returncode == 2 and "reel_00000005.tif" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["tif"]


def test_a_film_with_sound_to_a_prores_master_and_a_dpx_sequence(ray_cluster, film3, tmp_path):
    from pipeline.colorize import ColorizeConfig
    from pipeline.io import image
    from pipeline import fixity

    outs = [str(tmp_path / "reel.mov"), str(tmp_path / "dpx" / "reel_%06d.dpx")]
    job = FilmJob("film3", film3.path, outs[0], parse_exemplars(film3.exemplars), outputs=outs)
    r = run_film(job, JobConfig(workers=2, progress=False, report=False, colorize=ColorizeConfig(model="flow")))
    assert r.status == "done"
    with av.open(film3.path) as a, av.open(outs[0]) as b:  # AAC copied packet for packet into the MOV
        pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
        assert pa == pb and len(pa) > 10
    names = sorted(os.listdir(tmp_path / "dpx"))
    assert len(names) == 48 and names[0] == "reel_000000.dpx"
    data = open(tmp_path / "dpx" / names[25], "rb").read()
    h = image.read_header(data, ".dpx")
    assert (h.width, h.height, h.channels, h.bit_depth, h.big_endian) == (160, 96, 3, 10, True)
    assert h.frame_rate == 24 and h.timecode == "10:00:01:01"  # 10:00:00:00 + 25 frames at 24
    rgb = image.decode(data, ".dpx")
    assert rgb[..., 0].std() > 5 and np.abs(rgb[..., 0].astype(int) - rgb[..., 2]).mean() > 5  # in colour
    checked, problems = fixity.verify_paths([outs[0], str(tmp_path / "dpx")])
    assert checked == 2 and problems == []


def test_a_sequence_from_s3_to_s3_deliverables(s3_server, s3_bucket, ray_cluster, tmp_path):
    from pipeline.colorize import ColorizeConfig
    from pipeline import fixity

    scan = write_sequence(str(tmp_path / "scan"), SHOTS, 64, 48, 16, ".dpx", rate=Fraction(16),
                          timecode="00:10:00:00", keep_colour=True)
    c = s3_server.client()
    for name in sorted(os.listdir(scan.path)):
        c.upload_file(os.path.join(scan.path, name), s3_bucket, f"scans/reel2/{name}")
    save_png(str(tmp_path / "ex.png"), scan.colour[4])
    c.upload_file(str(tmp_path / "ex.png"), s3_bucket, "refs/ex.png")
    base = f"s3://{s3_bucket}"
    outs = [f"{base}/out/reel2.mkv", f"{base}/out/reel2.mp4", f"{base}/out/graded/reel2_%08d.tif"]
    job = FilmJob("reel2", f"{base}/scans/reel2/", outs[0], parse_exemplars([f"{base}/refs/ex.png@4"]),
                  outputs=outs)
    r = run_film(job, JobConfig(workers=2, progress=False, report=False, colorize=ColorizeConfig(model="flow")))
    assert r.status == "done"
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=s3_bucket, Prefix="out/").get("Contents", [])]
    assert {"out/reel2.mkv", "out/reel2.mkv.framemd5", "out/reel2.mkv.sha256", "out/reel2.mp4",
            "out/graded.framemd5", "out/graded.sha256"} <= set(keys)
    assert sum(k.startswith("out/graded/reel2_") for k in keys) == 20
    c.download_file(s3_bucket, "out/reel2.mkv", str(tmp_path / "m.mkv"))
    a, b = probe(scan.path), probe(str(tmp_path / "m.mkv"))
    for (i, ya), (_, yb) in zip(iter_luma(a, 0, 20), iter_luma(b, 0, 20)):
        assert np.array_equal(ya, yb), f"frame {i}"
    checked, problems = fixity.verify_paths([f"{base}/out/reel2.filmcolor-run"])
    assert checked == 3 and problems == []
