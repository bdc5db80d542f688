"""Throughput of the whole job against a plain decode + FFV1 encode, measured side by side.

    python bench/throughput.py [--frames N] [--sizes 640x360,1280x720] [--model memnet]

For each size: makes a gray film with several shots and audio, times (a) a plain PyAV
decode + FFV1 encode of it (the floor any job must pay), (b) the whole filmcolor job
(probe, scan, plan, colorize, assemble) with 1 worker and with 2 workers on the same
embedded Ray. Prints frames per second, the ratio job/baseline, the 1->2 worker speed-up
and the peak RSS of the actors. The machine is shared: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import av  # noqa: E402

from pipeline.codecs import FFV1_OPTIONS  # noqa: E402
from pipeline.colorize import ColorizeConfig  # noqa: E402
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film  # noqa: E402
from pipeline.cluster import init_ray  # noqa: E402
from pipeline.record import read_table  # noqa: E402
from pipeline.synth import SynthScene, save_png, write_film  # noqa: E402


def make_film(d: str, w: int, h: int, frames: int):
    per = frames // 4
    shots = [SynthScene("astronaut", per, pan=(2, 1)), SynthScene("coffee", per, pan=(-2, 0.5)),
             SynthScene("chelsea", per, pan=(1, -1)), SynthScene("rocket", frames - 3 * per, pan=(0, 2))]
    film = write_film(os.path.join(d, f"bw-{w}x{h}.mkv"), shots, w, h, keep_colour=True)
    starts = [0] + film.cuts
    specs = []
    for k, s in enumerate(starts):
        png = os.path.join(d, f"ex-{w}-{k}.png")
        save_png(png, film.colour[s + 2])
        specs.append(f"{png}@{s + 2}")
    film.colour = []
    return film, specs


def baseline(path: str, out: str) -> float:
    """Decode + FFV1 encode (same settings as the job's output), audio copied."""
    t0 = time.perf_counter()
    with av.open(path) as src, av.open(out, "w") as dst:
        vs = src.streams.video[0]
        o = dst.add_stream("ffv1", rate=24, options=dict(FFV1_OPTIONS))
        o.width, o.height, o.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv420p"
        for frame in src.decode(vs):
            for p in o.encode(frame.reformat(format="yuv420p")):
                dst.mux(p)
        for p in o.encode(None):
            dst.mux(p)
    return time.perf_counter() - t0


def job(film, specs, out: str, workers: int, model: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    result = run_film(FilmJob("bench", film.path, out, parse_exemplars(specs)),
                      JobConfig(workers=workers, progress=False, colorize=ColorizeConfig(model=model)))
    seconds = time.perf_counter() - t0
    rss = max((r["peak_rss_mb"] or 0) for r in read_table(result.run_dir, "shards"))
    film = read_table(result.run_dir, "films")[0]
    print(f"  {out}: {seconds:.1f}s = scan {film['scan_seconds']:.1f} + colorize {film['colorize_seconds']:.1f}"
          f" + assemble {film['assemble_seconds']:.1f} + rest", flush=True)
    return seconds, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=960)  # 40 s of film: per-film fixed costs amortised as in real use
    ap.add_argument("--sizes", default="640x360,1280x720")
    ap.add_argument("--model", default="memnet")
    args = ap.parse_args()
    init_ray(workers=2)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for size in args.sizes.split(","):
            w, h = (int(x) for x in size.split("x"))
            film, specs = make_film(d, w, h, args.frames)
            n = args.frames
            base = baseline(film.path, os.path.join(d, "base.mkv"))
            t1, rss1 = job(film, specs, os.path.join(d, f"out1-{w}.mkv"), 1, args.model)
            t2, rss2 = job(film, specs, os.path.join(d, f"out2-{w}.mkv"), 2, args.model)
            rows.append((size, n / base, n / t1, n / t2, base / t1, base / t2, t1 / t2, max(rss1, rss2)))
    print(f"\nmodel={args.model} frames={args.frames} (whole job: probe+scan+colorize+assemble; Ray already up)")
    print(f"{'size':>10} {'base fps':>9} {'job1 fps':>9} {'job2 fps':>9} {'ratio1':>7} {'ratio2':>7} "
          f"{'1->2':>6} {'actor peak MB':>14}")
    for r in rows:
        print(f"{r[0]:>10} {r[1]:9.1f} {r[2]:9.1f} {r[3]:9.1f} {r[4]:7.2f} {r[5]:7.2f} {r[6]:6.2f} {r[7]:14.0f}")
    print("ratio = job throughput / (decode + FFV1 encode) throughput, same film, same run; target >= 0.5")


if __name__ == "__main__":
    main()
