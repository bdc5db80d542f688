"""An archive's scan through filmcolor: several deliverables from one colouring, measured.

    python bench/archive.py [--frames 480 --size 2048x1556 --scenes 4 --model memnet --workers 2]
                            [--rss-size 4096x3112 --rss-frames 48] [--skip-separate] [--skip-rss]

Makes (once, cached in bench/out/archive/) a 16-bit big-endian luma-only DPX sequence of
--frames frames at --size (pipeline.synth: one photograph per scene, hard cuts, 24 fps,
timecode 01:00:00:00), one colour exemplar per scene, then in this one invocation:

1. baseline: a plain decode of the sequence + FFV1 encode (gray16le, the archival settings
   of DESIGN.md, 2 slice threads) in this process: what a transcode of the scan costs;
2. one run: `filmcolor colorize SCAN master.mkv mezzanine.mov access.mp4` (a real CLI
   subprocess, embedded Ray) -- coloured once, three deliverables with fixity sidecars;
3. three runs: the same film coloured three times, one deliverable each (how archives
   had to do it before): what colouring once saves;
4. peak RSS of a colour actor at --rss-size (a shorter sequence, --rss-frames frames,
   master only), from the run record's `peak_rss_mb` per shard, with the frame's size.

The machine is shared and noisy: read the ratios, which come from the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CACHE = os.path.join(ROOT, "bench", "out", "archive")
PY = sys.executable
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "immunohistochemistry")


def make_scan(frames: int, width: int, height: int, scenes: int) -> tuple[str, list[str]]:
    """(sequence folder, ['IMAGE@FRAME' exemplars]) -- made once, then reused."""
    from pipeline.synth import SynthScene, render_scene, save_png, write_sequence

    name = f"dpx16-{width}x{height}-{frames}f-{scenes}s"
    folder = os.path.join(CACHE, name)
    done = os.path.join(folder, "exemplars.json")
    if os.path.exists(done):
        return os.path.join(folder, "scan"), json.load(open(done))
    shutil.rmtree(folder, ignore_errors=True)
    per = [frames // scenes + (1 if k < frames % scenes else 0) for k in range(scenes)]
    shots = [SynthScene(PHOTOS[k % len(PHOTOS)], n, pan=(3.0 * (-1) ** k, 1.0)) for k, n in enumerate(per)]
    t0 = time.perf_counter()
    write_sequence(os.path.join(folder, "scan"), shots, width, height, 16, ".dpx", big_endian=True,
                   rate=Fraction(24), timecode="01:00:00:00")
    exemplars, start = [], 0
    for k, shot in enumerate(shots):
        png = os.path.join(folder, f"exemplar{k}.png")
        save_png(png, render_scene(shot, width, height)[2])
        exemplars.append(f"{png}@{start + 2}")
        start += shot.frames
    json.dump(exemplars, open(done, "w"))
    print(f"made {frames} frames {width}x{height} 16-bit DPX in {time.perf_counter() - t0:.0f}s", flush=True)
    return os.path.join(folder, "scan"), exemplars


def baseline(scan: str, out: str) -> float:
    """Decode every frame of the sequence and encode it as a gray16le FFV1 master."""
    import av

    from pipeline.codecs import FFV1_OPTIONS
    from pipeline.io import iter_luma, plane_array, probe

    t0 = time.perf_counter()
    info = probe(scan)
    with av.open(out, "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=24, options=dict(FFV1_OPTIONS))
        s.width, s.height, s.pix_fmt = info.width, info.height, "gray16le"
        s.codec_context.thread_count = 2
        for i, y in iter_luma(info, 0, info.frame_count):
            f = av.VideoFrame(info.width, info.height, "gray16le")
            plane_array(f.planes[0], info.width, info.height, "<u2")[:] = y
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return time.perf_counter() - t0


def colorize(scan: str, exemplars: list[str], outputs: list[str], model: str, workers: int) -> float:
    cmd = [PY, "-m", "pipeline.cli", "colorize", scan, *outputs, "--model", model, "--workers", str(workers),
           "--no-report"]
    for e in exemplars:
        cmd += ["-e", e]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"colorize failed ({r.returncode}): {r.stderr[-2000:]}")
    return secs


def run_record(output: str) -> dict:
    from pipeline.record import default_run_dir, read_table

    run_dir = default_run_dir(output)
    films = read_table(run_dir, "films")
    return {"film": films[0] if films else {}, "shards": read_table(run_dir, "shards")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=480)
    ap.add_argument("--size", default="2048x1556")
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--model", default="memnet")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rss-size", default="4096x3112")
    ap.add_argument("--rss-frames", type=int, default=48)
    ap.add_argument("--skip-separate", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    a = ap.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    scan, exemplars = make_scan(a.frames, w, h, a.scenes)
    work = os.path.join(CACHE, "runs")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    rows = []
    base = baseline(scan, os.path.join(work, "baseline.mkv"))
    rows.append(("decode + FFV1 encode (baseline)", base))
    one = os.path.join(work, "one")
    os.makedirs(one)
    outs = [os.path.join(one, n) for n in ("master.mkv", "mezzanine.mov", "access.mp4")]
    t_one = colorize(scan, exemplars, outs, a.model, a.workers)
    rows.append(("one run: master + ProRes + H.264", t_one))
    rec = run_record(outs[0])
    t_sep = None
    if not a.skip_separate:
        t_sep = 0.0
        for k, name in enumerate(("master.mkv", "mezzanine.mov", "access.mp4")):
            d = os.path.join(work, f"sep{k}")
            os.makedirs(d)
            t_sep += colorize(scan, exemplars, [os.path.join(d, name)], a.model, a.workers)
        rows.append(("three runs, one deliverable each", t_sep))

    n = a.frames
    print(f"\n{n} frames {w}x{h} 16-bit DPX, {a.scenes} scenes, model {a.model}, {a.workers} workers")
    print(f"{'what':40s} {'seconds':>8s} {'fps':>7s} {'baseline/this':>14s}")
    for what, secs in rows:
        print(f"{what:40s} {secs:8.1f} {n / secs:7.2f} {base / secs:14.2f}")
    f = rec["film"]
    print(f"one run, record: scan {f.get('scan_seconds', 0):.1f}s, colour {f.get('colorize_seconds', 0):.1f}s, "
          f"assembly of 3 deliverables {f.get('assemble_seconds', 0):.1f}s; shards {len(rec['shards'])}, "
          f"attempts {sorted({s['attempts'] for s in rec['shards']})}")
    if t_sep:
        print(f"colouring once saves {t_sep - t_one:.1f}s: three runs take {t_sep / t_one:.2f}x the one run")

    if not a.skip_rss:
        rw, rh = (int(x) for x in a.rss_size.split("x"))
        big, big_ex = make_scan(a.rss_frames, rw, rh, 2)
        d = os.path.join(work, "rss")
        os.makedirs(d)
        secs = colorize(big, big_ex, [os.path.join(d, "master.mkv")], a.model, a.workers)
        shards = run_record(os.path.join(d, "master.mkv"))["shards"]
        peak = max((s["peak_rss_mb"] or 0) for s in shards)
        frame_mb = rw * rh * 2 / 2 ** 20
        print(f"\n{a.rss_frames} frames {rw}x{rh} 16-bit DPX, master only: {secs:.1f}s; actor peak RSS "
              f"{peak:.0f} MB ({frame_mb:.0f} MB per 16-bit luma frame)")


if __name__ == "__main__":
    main()
