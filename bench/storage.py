"""S3 read strategies, and the whole job from/to S3 against local files, measured side by side.

    python bench/storage.py [--frames 2000] [--size 1280x720] [--shard 1000:1200] [--repeats 3]
                            [--job-frames 480] [--job-size 640x360] [--model flow] [--job-repeats 2]
                            [--skip-job]

Starts its own S3 server (SeaweedFS `weed mini`, tests/s3server.py) in a temp dir and
points this process (and so Ray) at it. Prints two tables:

1. Read strategies, on a gray FFV1 film (pipeline.synth, a few shots; cached in bench/out/
   by size and frame count) uploaded to a bucket: `local file` (baseline), `range` (ranged
   GETs), `cache cold` (empty FILMCOLOR_CACHE_DIR), `cache warm` (same dir again). For a
   shard in the middle of the film, as an actor reads it (probe result loaded from a saved
   JSON, `iter_luma` from the shard's first frame to its last): time to first frame, shard
   frames/s (open + seek + decode + luma of every frame), bytes and requests fetched from S3
   (rangeio.ReadStats; HTTP = requests actually sent, counted on the client), and what a
   probe costs (it demuxes every packet). Each measurement runs in a fresh spawned process;
   median of --repeats. Then "k shards on one node": a node colouring k shards that cover
   the film, measured in one process (new reader per shard, as an actor opens each shard).
2. The job (run_film, --model, 2 workers, embedded Ray) on a smaller film with 4 shots and
   exemplars: local -> local against s3 -> s3 (input, exemplars, output and run dir on S3),
   alternating, best of --job-repeats. Wall time, fps, ratio s3/local, and whether both
   outputs have the same sha256 (the S3 one downloaded).

The machine is shared and noisy: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing as mp
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OUT = os.path.join(ROOT, "bench", "out")
BUCKET = "filmcolor-bench"
STRATEGIES = ("local file", "range", "cache cold", "cache warm")


# --- the S3 server --------------------------------------------------------------------

def start_s3(root: str):
    """weed mini with this run's own credentials; os.environ points boto3 (and Ray) at it."""
    from tests.s3server import INTERFERING_ENV, S3Server

    for k in INTERFERING_ENV:
        os.environ.pop(k, None)
    srv = S3Server(root, "FCBENCHSTORAGE", "fc-bench-" + secrets.token_hex(12))
    srv.start()
    os.environ.update(srv.env())
    srv.client().create_bucket(Bucket=BUCKET)
    return srv


# --- the films ------------------------------------------------------------------------

def read_film(w: int, h: int, frames: int) -> tuple[str, str]:
    """(film, probe JSON) in bench/out/, made once per size and frame count."""
    from pipeline.io import probe, save_info

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"storage-{w}x{h}-{frames}.mkv")
    info_json = path[:-4] + "-info.json"
    if not os.path.exists(path):
        t0 = time.perf_counter()
        print(f"making {path} ...", flush=True)
        _write_shots(path, w, h, frames)
        print(f"  made in {time.perf_counter() - t0:.0f}s", flush=True)
    if not os.path.exists(info_json):
        save_info(probe(path), info_json)
    return path, info_json


def _write_shots(path: str, w: int, h: int, frames: int, shots: int = 5) -> None:
    """One shot per write_film call (a whole film's RGB frames at 720p would not fit in
    memory), then the shots' video packets remuxed into one film, timestamps shifted."""
    import av

    from pipeline.synth import PHOTOS, SynthScene, write_film

    per = [frames // shots] * (shots - 1) + [frames - (shots - 1) * (frames // shots)]
    parts = []
    with tempfile.TemporaryDirectory(dir=OUT) as d:
        for k, n in enumerate(per):
            scene = SynthScene(PHOTOS[k % len(PHOTOS)], n, pan=((-1) ** k * 2.0, 1.0))
            parts.append(write_film(os.path.join(d, f"shot{k}.mkv"), [scene], w, h, audio=False).path)
        tmp = path + ".partial"
        with av.open(tmp, "w", format="matroska") as out:
            offset, ostream = 0, None
            for p in parts:
                with av.open(p) as src:
                    vs = src.streams.video[0]
                    ostream = ostream or out.add_stream_from_template(vs)
                    last = 0
                    for pkt in src.demux(vs):
                        if pkt.dts is None:
                            continue
                        last = max(last, pkt.pts + (pkt.duration or 1))
                        pkt.pts, pkt.dts, pkt.stream = pkt.pts + offset, pkt.dts + offset, ostream
                        out.mux(pkt)
                    offset += last
        os.replace(tmp, path)


# --- one measurement, in a fresh process ------------------------------------------------

def measure(kind: str, src: str, info_json: str, start: int, end: int, env: dict) -> dict:
    """kind: 'shard' (frames start..end), 'probe', or 'shards' (start..end split in shards
    of `env['SHARD']` frames, each read as an actor reads it). Runs in a spawned process."""
    os.environ.update({k: v for k, v in env.items() if k != "SHARD"})
    from pipeline import storage
    from pipeline.io import iter_luma, load_info, probe
    from pipeline.storage import s3
    from pipeline.storage.rangeio import ReadStats

    sent: list = []
    if storage.is_s3(src):  # an actor's client is made once and stays warm: not timed
        client = s3.client()
        client.head_bucket(Bucket=BUCKET)
        client.meta.events.register("before-send.s3", lambda **_: sent.append(1))  # None: send as usual
    ReadStats.reset()
    first, n = None, 0
    t0 = time.perf_counter()
    if kind == "probe":
        n = probe(src).frame_count
    else:
        info = dataclasses.replace(load_info(info_json), path=src)
        step = int(env.get("SHARD") or end - start)
        for a in range(start, end, step):
            for _, _y in iter_luma(info, a, min(end, a + step)):
                first = first or time.perf_counter() - t0
                n += 1
    total = time.perf_counter() - t0
    got, gets = ReadStats.reset()
    return {"first": first, "seconds": total, "frames": n, "bytes": got, "gets": gets, "http": len(sent)}


def in_fresh_process(*args) -> dict:
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(measure, args)


def strategy_env(name: str, cache: str) -> dict:
    """The environment of a read strategy; `cache` is empty before 'cache cold' runs."""
    if name == "local file":
        return {}
    if name == "range":
        return {"FILMCOLOR_S3_READ": "range"}
    return {"FILMCOLOR_S3_READ": "cache", "FILMCOLOR_CACHE_DIR": cache}


def run_strategies(kind: str, path: str, uri: str, info_json: str, start: int, end: int, repeats: int) -> dict:
    runs: dict = {s: [] for s in STRATEGIES}
    for rep in range(repeats):
        cache = tempfile.mkdtemp(prefix="fc-bench-cache-")  # a fresh, empty one for each cold run
        try:
            for name in STRATEGIES:
                src = path if name == "local file" else uri
                runs[name].append(in_fresh_process(kind, src, info_json, start, end, strategy_env(name, cache)))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        print(f"  {kind} repeat {rep + 1}/{repeats} done", flush=True)
    keys = ("first", "seconds", "frames", "bytes", "gets", "http")
    return {name: {k: statistics.median([r[k] or 0 for r in rs]) for k in keys} for name, rs in runs.items()}


def covering_shards(uri: str, info_json: str, frames: int, shard: int) -> dict:
    """k shards covering the film, read one after another in one process (one node)."""
    out = {}
    cache = tempfile.mkdtemp(prefix="fc-bench-cache-")
    try:
        for name in ("range", "cache cold"):
            env = {**strategy_env(name, cache), "SHARD": str(shard)}
            out[name.split()[0]] = in_fresh_process("shards", uri, info_json, 0, frames, env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return out


def print_reads(args, size: int, shard: dict, probes: dict, cover: dict) -> None:
    mb, n, base, pbase = 1 << 20, args.end - args.start, shard["local file"], probes["local file"]
    print(f"\nread strategies: film {args.frames} frames {args.size} gray FFV1, {size / mb:.0f} MiB; "
          f"shard {args.start}..{args.end} ({n} frames); median of {args.repeats} fresh processes")
    print(f"{'strategy':>11} {'1st frame':>10} {'x local':>8} {'shard fps':>10} {'x local':>8} {'MiB got':>8} "
          f"{'% film':>7} {'GETs':>5} {'HTTP':>5} | {'probe s':>8} {'x local':>8} {'MiB got':>8} {'% film':>7}")
    for name in STRATEGIES:
        s, p = shard[name], probes[name]
        print(f"{name:>11} {s['first'] * 1000:8.0f}ms {s['first'] / base['first']:8.2f} {n / s['seconds']:10.1f} "
              f"{base['seconds'] / s['seconds']:8.2f} {s['bytes'] / mb:8.1f} {100 * s['bytes'] / size:6.1f}% "
              f"{s['gets']:5.0f} {s['http']:5.0f} | {p['seconds']:8.2f} {p['seconds'] / pbase['seconds']:8.2f} "
              f"{p['bytes'] / mb:8.1f} {100 * p['bytes'] / size:6.1f}%")
    print("GETs = rangeio.ReadStats requests; HTTP = requests the client sent (HEAD included)")
    rate = size / mb / (shard["cache cold"]["first"] - shard["cache warm"]["first"])
    print(f"cache cold downloads the whole film before its first frame: {rate:.0f} MiB/s here, so a 100 GB film "
          f"would wait {100e9 / mb / rate / 60:.0f} min at this rate, and needs 100 GB of disk on every node")
    k = -(-args.frames // n)
    print(f"\nk shards on one node: {k} shards of {n} frames covering the film, read one after another")
    print(f"{'strategy':>11} {'MiB got':>8} {'x film':>7} {'HTTP':>5} {'seconds':>8} {'fps':>7}")
    for name, r in cover.items():
        print(f"{name:>11} {r['bytes'] / mb:8.1f} {r['bytes'] / size:7.2f} {r['http']:5d} {r['seconds']:8.1f} "
              f"{r['frames'] / r['seconds']:7.1f}")
    extra = (cover["range"]["bytes"] - size) / k / mb
    print(f"range: {extra:.1f} MiB beyond the film per shard opened (container header, index, read-ahead past "
          f"the shard's end): a cost per shard, not per byte of film. Per job add the driver's probe and scene "
          f"scan, each reading the whole film (see probe; with cache free on a node already holding it)")


# --- the job ----------------------------------------------------------------------------

def upload(local: str, uri: str) -> str:
    from pipeline import storage

    storage.put_file(local, uri)
    return uri


def job(film: str, specs: list[str], out: str, model: str) -> float:
    from pipeline.colorize import ColorizeConfig
    from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film

    t0 = time.perf_counter()
    run_film(FilmJob("bench", film, out, parse_exemplars(specs)),
             JobConfig(workers=2, progress=False, colorize=ColorizeConfig(model=model)))
    return time.perf_counter() - t0


def run_jobs(args, d: str) -> None:
    from bench.throughput import make_film
    from pipeline import storage
    from pipeline.cluster import init_ray

    w, h = (int(x) for x in args.job_size.split("x"))
    film, specs = make_film(d, w, h, args.job_frames)
    base = f"s3://{BUCKET}/job"
    s3_film = upload(film.path, f"{base}/{os.path.basename(film.path)}")
    s3_specs = []
    for spec in specs:
        png, at = spec.rsplit("@", 1)
        s3_specs.append(f"{upload(png, base + '/' + os.path.basename(png))}@{at}")
    init_ray(workers=2)
    times: dict = {"local": [], "s3": []}
    for rep in range(args.job_repeats):  # alternating; a new output (and run dir) each time
        local_out, s3_out = os.path.join(d, f"out{rep}.mkv"), f"{base}/out{rep}.mkv"
        times["local"].append(job(film.path, specs, local_out, args.model))
        times["s3"].append(job(s3_film, s3_specs, s3_out, args.model))
    sha_local, sha_s3 = storage.file_sha256(local_out), hashlib.sha256(storage.read_bytes(s3_out)).hexdigest()
    n, t_local, t_s3 = args.job_frames, min(times["local"]), min(times["s3"])
    print(f"\njob: run_film model={args.model}, 2 workers, embedded Ray; film {n} frames {args.job_size}, "
          f"4 shots + exemplars; S3 read strategy {os.environ.get('FILMCOLOR_S3_READ', 'range')}; "
          f"best of {args.job_repeats}, alternating")
    print(f"{'job':>15} {'seconds':>8} {'fps':>7} {'ratio':>6}  all runs (s)")
    for name, t in (("local -> local", t_local), ("s3 -> s3", t_s3)):
        runs = " ".join(f"{x:.1f}" for x in times[name.split()[0]])
        print(f"{name:>15} {t:8.1f} {n / t:7.1f} {t / t_local:6.2f}  {runs}")
    same = "identical" if sha_local == sha_s3 else "DIFFERENT"
    print(f"outputs: {same} bytes (sha256 local {sha_local[:16]}..., s3 {sha_s3[:16]}...; "
          f"s3 metadata {'matches' if storage.stored_sha256(s3_out) == sha_s3 else 'does NOT match'})")


# --- main -------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--shard", default="1000:1200", help="START:END frames of the measured shard")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--job-frames", type=int, default=480)
    ap.add_argument("--job-size", default="640x360")
    ap.add_argument("--model", default="flow")
    ap.add_argument("--job-repeats", type=int, default=2)
    ap.add_argument("--skip-job", action="store_true")
    args = ap.parse_args()
    args.start, args.end = (int(x) for x in args.shard.split(":"))
    if not 0 <= args.start < args.end <= args.frames:
        ap.error(f"--shard {args.shard}: must lie within 0..{args.frames}")
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="fc-bench-storage-") as d:
        srv = start_s3(os.path.join(d, "s3"))  # before anything can start Ray
        try:
            path, info_json = read_film(w, h, args.frames)
            t0 = time.perf_counter()
            uri = upload(path, f"s3://{BUCKET}/{os.path.basename(path)}")
            size = os.path.getsize(path)
            print(f"uploaded {size >> 20} MiB in {time.perf_counter() - t0:.1f}s", flush=True)
            shard = run_strategies("shard", path, uri, info_json, args.start, args.end, args.repeats)
            probes = run_strategies("probe", path, uri, info_json, 0, 0, args.repeats)
            cover = covering_shards(uri, info_json, args.frames, args.end - args.start)
            print_reads(args, size, shard, probes, cover)
            if not args.skip_job:
                run_jobs(args, d)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
