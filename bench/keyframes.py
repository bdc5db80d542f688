"""The colourist's round trip at archive resolution: keyframes of a 40-scene 2K film.

    python bench/keyframes.py [--scenes 40 --frames-per-scene 6 --size 2048x1536]

Makes (cached in bench/out/keyframes/) a 10-bit luma DPX scan of --scenes hard-cut shots
(pipeline.synth, one file per frame as archives scan), colours it once with `--model flow` (the record is what matters here),
then times, each a real CLI subprocess:
  - `filmcolor keyframes RUN_DIR --out DIR` (only the keyframes are read),
  - the same with --coloured (plus the master's frame per scene),
  - `filmcolor keyframes INPUT --out DIR` (a film not run yet: scanned first),
  - `filmcolor report RUN_DIR` with its keyframe folder missing (what a run's end pays),
    then again with it current,
and, for scale, a plain decode of the whole film in this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CACHE = os.path.join(ROOT, "bench", "out", "keyframes")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "immunohistochemistry")


def cli(*args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {r.stderr[-1500:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--frames-per-scene", type=int, default=6)
    ap.add_argument("--size", default="2048x1536")
    a = ap.parse_args()
    from pipeline.io import iter_luma, probe
    from fractions import Fraction

    from pipeline.synth import SynthScene, write_sequence

    w, h = (int(x) for x in a.size.split("x"))
    d = os.path.join(CACHE, f"dpx-{a.scenes}s-{a.frames_per_scene}f-{w}x{h}")
    film = os.path.join(d, "scan")
    out = os.path.join(d, "out.mkv")
    run_dir = os.path.join(d, "out.filmcolor-run")
    if not os.path.exists(os.path.join(run_dir, "films.parquet")):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        shots = [SynthScene(PHOTOS[k % len(PHOTOS)], a.frames_per_scene, pan=(4.0 * (-1) ** k, 2.0 * (k % 3 - 1)),
                            zoom=0.01 * (k % 4)) for k in range(a.scenes)]
        write_sequence(film, shots, w, h, 10, ".dpx", rate=Fraction(24), timecode="01:00:00:00")
        cli("colorize", film, out, "--model", "flow", "--no-report")
    n = probe(film).frame_count
    rows = []
    for what, args in (("keyframes RUN_DIR --out DIR", ("keyframes", run_dir, "--out", os.path.join(d, "k1"))),
                       ("keyframes RUN_DIR --out DIR --coloured",
                        ("keyframes", run_dir, "--out", os.path.join(d, "k2"), "--coloured")),
                       ("keyframes INPUT --out DIR (scan first)", ("keyframes", film, "--out", os.path.join(d, "k3")))):
        shutil.rmtree(args[3], ignore_errors=True)
        rows.append((what, cli(*args)))
    shutil.rmtree(os.path.join(run_dir, "keyframes"), ignore_errors=True)
    rows.append(("report RUN_DIR, keyframe folder missing", cli("report", run_dir)))
    rows.append(("report RUN_DIR, keyframe folder current", cli("report", run_dir)))
    t0 = time.perf_counter()
    info = probe(film)
    for _ in iter_luma(info, 0, info.frame_count):
        pass
    rows.append(("plain decode of the whole film (this process)", time.perf_counter() - t0))
    files = len([f for f in os.listdir(os.path.join(d, "k1")) if f.endswith(".png")])
    print(f"\n{a.scenes} scenes, {n} frames {w}x{h} 10-bit DPX; {files} files per plain export")
    for what, secs in rows:
        print(f"{what:48s} {secs:7.1f} s")


if __name__ == "__main__":
    main()
