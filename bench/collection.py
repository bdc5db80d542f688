"""A collection (a manifest of several films) through `filmcolor run`, measured side by side.

    python bench/collection.py [--sections 1,2,3,4]
        [--films 4 --frames 960 --size 640x360 --scenes 8 --model memnet --skip-old]
        [--mix 480@640x360:4,216@1280x720:3,192@640x360:2 --mix-model flow]

Every run is a real `python -m pipeline.cli run MANIFEST --workers N` subprocess with its
own run dir and outputs (embedded Ray, as a user starts it). Films are gray FFV1 with
audio (pipeline.synth, one photograph per scene, hard cuts), made once and cached in
bench/out/collection/ with one colour exemplar per scene (taken 2 frames into it).
The baseline is a plain PyAV decode + FFV1 encode of the same films in the same
invocation (bench/throughput.py's `baseline`): the machine is shared and noisy, so read
the ratios. CPU columns: `machine` = psutil.cpu_percent of all cores over the run (other
work on the machine included); `run` = the run's process tree (driver, GCS, raylet, Ray
workers) and `ray::` = the Ray worker processes alone, both as % of all cores (sampled
every 0.5 s from /proc; a process's last 0.5 s before it exits is missed).

Prints four tables:

1. Old vs new (the headline): --films films of --frames frames, --size, --scenes scenes,
   --model (memnet), 2 workers, through (a) the NEW code (this tree: one streaming run)
   and (b) the OLD code, git commit 8fc70e4 (film after film), extracted with
   `git archive` to /tmp/filmcolor-old and run with PYTHONPATH and cwd there (the
   `pipeline.__file__` each resolves to is printed), and (c) the baseline. Seconds,
   frames/s, ratio to baseline, CPU, the new/old speed-up, and whether old and new
   outputs have the same bytes. --skip-old leaves (b) out (the old run takes ~8 min on
   a 2-core machine).
2. Scaling: the --mix collection (FRAMES@WxH:SCENES per film; mixed lengths and sizes)
   with --mix-model (flow) on 1 and 2 workers: seconds, frames/s, ratio, CPU, 1->2.
3. S3: the same collection from and to S3 (tests/s3server.py's SeaweedFS started here;
   films, exemplars and manifest uploaded; outputs and run dir on S3) against the local
   2-worker run made just before it: seconds, ratio s3/local, outputs identical or not.
4. Driver SIGKILL at ~50% of the collection's frames durable in the journal, then the same
   command again: time lost against the uninterrupted 2-worker run, shards kept and
   recoloured, frames of shards with attempts > 1, outputs byte-identical (sha256).

Section 3 runs its own local run right before the S3 one; section 4 compares with the
latest local 2-worker run of this invocation (made for it if there is none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CACHE = os.path.join(ROOT, "bench", "out", "collection")
OLD_COMMIT = "8fc70e4"
OLD_TREE = "/tmp/filmcolor-old"
BUCKET = "filmcolor-bench-collection"
PY = sys.executable


# --- films --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FilmSpec:
    frames: int
    width: int
    height: int
    scenes: int
    seed: int = 0  # which photographs, which pans

    @property
    def name(self) -> str:
        return f"bw-{self.width}x{self.height}-{self.frames}f-{self.scenes}s-{self.seed}"


@dataclass
class Film:
    spec: FilmSpec
    path: str
    exemplars: list[tuple[str, int]]  # (png, frame)

    @property
    def frames(self) -> int:
        return self.spec.frames


def parse_mix(text: str) -> list[FilmSpec]:
    """'480@640x360:4,216@1280x720:3' -> FilmSpecs."""
    specs = []
    for k, item in enumerate(text.split(",")):
        frames, rest = item.split("@")
        size, scenes = rest.split(":") if ":" in rest else (rest, "4")
        w, h = (int(x) for x in size.split("x"))
        specs.append(FilmSpec(int(frames), w, h, int(scenes), seed=10 + k))
    return specs


def film(spec: FilmSpec) -> Film:
    """The film of `spec` from the cache, made there first if needed."""
    meta = os.path.join(CACHE, spec.name + ".json")
    if not os.path.exists(meta):
        _make_film(spec, meta)
    with open(meta) as f:
        m = json.load(f)
    return Film(spec, os.path.join(CACHE, m["film"]), [(os.path.join(CACHE, p), fr) for p, fr in m["exemplars"]])


def _make_film(spec: FilmSpec, meta: str) -> None:
    from pipeline.synth import PHOTOS, SynthScene, save_png, write_film

    os.makedirs(CACHE, exist_ok=True)
    t0 = time.perf_counter()
    n = spec.scenes
    lengths = [spec.frames // n] * (n - 1) + [spec.frames - (n - 1) * (spec.frames // n)]
    shots = [SynthScene(PHOTOS[(spec.seed * 3 + k) % len(PHOTOS)], m,
                        pan=((-1) ** k * (1.5 + 0.5 * (spec.seed % 3)), 0.5 + 0.25 * (k % 3)))
             for k, m in enumerate(lengths)]
    tmp = os.path.join(CACHE, spec.name + ".partial.mkv")
    made = write_film(tmp, shots, spec.width, spec.height, keep_colour=True)
    exemplars = []
    for k, start in enumerate([0] + made.cuts):
        png = f"{spec.name}-ex{k}.png"
        save_png(os.path.join(CACHE, png), made.colour[start + 2])
        exemplars.append((png, start + 2))
    os.replace(tmp, os.path.join(CACHE, spec.name + ".mkv"))
    with open(meta, "w") as f:
        json.dump({"film": spec.name + ".mkv", "exemplars": exemplars}, f)
    print(f"  made {spec.name}.mkv in {time.perf_counter() - t0:.0f}s", flush=True)


def films_of(specs: list[FilmSpec]) -> list[Film]:
    return [film(s) for s in specs]


def manifest(path: str, films: list[Film], outputs: list[str], model: str,
             inputs: list[str] | None = None, exemplars: list[list[str]] | None = None) -> str:
    """A JSON manifest; `inputs` / `exemplars` override the local paths (S3 URIs)."""
    docs = []
    for k, (f, out) in enumerate(zip(films, outputs)):
        ims = exemplars[k] if exemplars else [p for p, _ in f.exemplars]
        docs.append({"id": f"film{k + 1}", "input": inputs[k] if inputs else f.path, "output": out,
                     "model": model, "exemplars": [{"image": im, "frame": fr} for im, (_, fr) in
                                                   zip(ims, f.exemplars)]})
    with open(path, "w") as fh:
        json.dump({"version": 1, "films": docs}, fh, indent=1)
    return path


def outputs_in(d: str, tag: str, n: int) -> list[str]:
    os.makedirs(d, exist_ok=True)
    return [os.path.join(d, f"{tag}-film{k + 1}.mkv") for k in range(n)]


# --- CPU use of a run ------------------------------------------------------------------

class CpuMonitor(threading.Thread):
    """Samples the machine's CPU % and the CPU seconds of a process tree until stopped."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        import psutil

        self.psutil, self.root, self.interval = psutil, psutil.Process(pid), interval
        self.machine: list[float] = []
        self.seconds: dict = {}  # (pid, create_time) -> (cpu seconds, is ray worker)
        self.halt = threading.Event()
        self.t0 = time.perf_counter()
        psutil.cpu_percent(None)

    def run(self) -> None:
        while not self.halt.is_set():
            self.machine.append(self.psutil.cpu_percent(interval=self.interval))
            self._sample_tree()

    def _sample_tree(self) -> None:
        try:
            procs = [self.root] + self.root.children(recursive=True)
        except self.psutil.Error:
            return
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    cmd = " ".join(p.cmdline())
                    self.seconds[(p.pid, p.create_time())] = (t.user + t.system, cmd.startswith("ray::"))
            except self.psutil.Error:
                continue

    def stop(self) -> dict:
        """Mean % of all cores: machine, the run's tree, its Ray workers."""
        wall = time.perf_counter() - self.t0
        self.halt.set()
        self.join()
        cores = self.psutil.cpu_count() * wall / 100
        tree = sum(s for s, _ in self.seconds.values())
        ray_w = sum(s for s, r in self.seconds.values() if r)
        mean = sum(self.machine) / len(self.machine) if self.machine else float("nan")
        return {"machine": mean, "tree": tree / cores, "ray": ray_w / cores}


# --- runs of the CLI ----------------------------------------------------------------------

@dataclass
class Run:
    label: str
    seconds: float
    rc: int
    cpu: dict = field(default_factory=dict)
    stdout: str = ""
    outputs: list = field(default_factory=list)
    run_dir: str = ""


def clean_env(extra: dict | None = None, pythonpath: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(extra or {})
    return env


def new_cmd(manifest_path: str, run_dir: str, workers: int) -> list[str]:
    return [PY, "-m", "pipeline.cli", "run", manifest_path, "--workers", str(workers), "--run-dir", run_dir]


def start(cmd: list[str], cwd: str, env: dict, log: str) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=fh,
                                start_new_session=True)


def run_cli(label: str, cmd: list[str], cwd: str, env: dict, log: str, check: bool = True) -> Run:
    """Runs `cmd` to its end; wall seconds, exit status, CPU use and stdout."""
    t0 = time.perf_counter()
    proc = start(cmd, cwd, env, log)
    mon = CpuMonitor(proc.pid)
    mon.start()
    out = proc.stdout.read().decode()
    rc = proc.wait()
    run = Run(label, time.perf_counter() - t0, rc, mon.stop(), out)
    print(f"  {label}: {run.seconds:.1f}s, exit {rc}", flush=True)
    if check and rc != 0:
        raise SystemExit(f"{label} failed (exit {rc}); stderr tail:\n{tail(log)}")
    return run


def tail(path: str, n: int = 3000) -> str:
    with open(path, "rb") as f:
        return f.read()[-n:].decode(errors="replace")


def resolves_to(cwd: str, env: dict) -> str:
    """The `pipeline` package a subprocess with this cwd and env imports."""
    code = "import pipeline; print(pipeline.__file__)"
    return subprocess.run([PY, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def old_tree() -> str:
    """The project at OLD_COMMIT, extracted once (git archive: no worktree metadata)."""
    mark = os.path.join(OLD_TREE, ".commit")
    want = subprocess.run(["git", "-C", ROOT, "rev-parse", OLD_COMMIT], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not (os.path.exists(mark) and _read(mark).strip() == want):
        shutil.rmtree(OLD_TREE, ignore_errors=True)
        os.makedirs(OLD_TREE)
        archive = subprocess.run(["git", "-C", ROOT, "archive", want], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", OLD_TREE], input=archive, check=True)
        with open(mark, "w") as f:
            f.write(want + "\n")
    return OLD_TREE


# --- baseline, checks -----------------------------------------------------------------------

def baseline(films: list[Film], d: str) -> Run:
    """Decode + FFV1 encode of every film, one after another, in this process."""
    import psutil

    from bench.throughput import baseline as one

    os.makedirs(d, exist_ok=True)
    me, t0 = psutil.Process(), time.perf_counter()
    psutil.cpu_percent(None)
    c0 = sum(me.cpu_times()[:2])
    for k, f in enumerate(films):
        one(f.path, os.path.join(d, f"base-{k}.mkv"))
    wall = time.perf_counter() - t0
    tree = 100 * (sum(me.cpu_times()[:2]) - c0) / (wall * psutil.cpu_count())
    print(f"  baseline: {wall:.1f}s", flush=True)
    return Run("baseline", wall, 0, {"machine": psutil.cpu_percent(None), "tree": tree, "ray": 0.0})


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shas(paths: list[str]) -> list[str]:
    return [sha256(p) for p in paths]


def print_runs(title: str, runs: list[Run], frames: int, base: Run) -> None:
    print(f"\n{title}")
    print(f"{'run':>22} {'seconds':>8} {'frames/s':>9} {'ratio':>6} {'machine%':>9} {'run%':>6} {'ray::%':>7}")
    for r in runs:
        c = r.cpu
        print(f"{r.label:>22} {r.seconds:8.1f} {frames / r.seconds:9.1f} {base.seconds / r.seconds:6.2f} "
              f"{c['machine']:9.0f} {c['tree']:6.0f} {c['ray']:7.0f}")
    print("ratio = run frames/s / baseline frames/s (decode + FFV1 encode, same films, this invocation); "
          "CPU as mean % of all cores")


# --- 1. old vs new ---------------------------------------------------------------------------

def section1(args, d: str) -> None:
    specs = [FilmSpec(args.frames, args.w, args.h, args.scenes, seed=k) for k in range(args.films)]
    films = films_of(specs)
    frames = sum(f.frames for f in films)
    base = baseline(films, os.path.join(d, "s1-base"))
    new = _new_run(args, films, d)
    old = None if args.skip_old else _old_run(args, films, d)
    runs = [new] + ([old] if old else [])
    print_runs(f"1. old vs new: {len(films)} films x {args.frames} frames {args.size}, {args.scenes} scenes, "
               f"1 exemplar per scene, model {args.model}, 2 workers, wall time of the CLI (Ray start included)",
               [base] + runs, frames, base)
    if old:
        same = [a == b for a, b in zip(shas(new.outputs), shas(old.outputs))]
        print(f"new/old speed-up: {old.seconds / new.seconds:.2f}x (old {old.seconds:.1f}s, new {new.seconds:.1f}s);"
              f" outputs old == new: {sum(same)}/{len(same)} films byte-identical")
    _film_lines(runs)


def _new_run(args, films: list[Film], d: str) -> Run:
    env = clean_env()
    print(f"  new code: pipeline = {resolves_to(ROOT, env)}", flush=True)
    outs = outputs_in(os.path.join(d, "s1-new"), "new", len(films))
    m = manifest(os.path.join(d, "s1-new", "m.json"), films, outs, args.model)
    run_dir = os.path.join(d, "s1-new", "run")
    r = run_cli("new (one stream)", new_cmd(m, run_dir, 2), ROOT, env, os.path.join(d, "s1-new.log"))
    r.outputs, r.run_dir = outs, run_dir
    return r


def _old_run(args, films: list[Film], d: str) -> Run:
    tree = old_tree()
    env = clean_env(pythonpath=tree)
    where = resolves_to(tree, env)
    print(f"  old code ({OLD_COMMIT}): pipeline = {where}", flush=True)
    if not where.startswith(tree):
        raise SystemExit(f"old code does not resolve to {tree}: {where}")
    outs = outputs_in(os.path.join(d, "s1-old"), "old", len(films))
    m = manifest(os.path.join(d, "s1-old", "m.json"), films, outs, args.model)
    run_dir = os.path.join(d, "s1-old", "run")
    r = run_cli(f"old ({OLD_COMMIT}, per film)", new_cmd(m, run_dir, 2), tree, env, os.path.join(d, "s1-old.log"))
    r.outputs, r.run_dir = outs, run_dir
    return r


def _film_lines(runs: list[Run]) -> None:
    """When each film was published, from the run record: the new run's film rows count
    from the run's start, the old run's rows are per film (summed here)."""
    from pipeline.record import read_table

    print("films published at (s after the run record's start: new after Ray is up, old with Ray's start in film 1):")
    for r in runs:
        rows = read_table(r.run_dir, "films")
        at = [row["seconds"] for row in rows]
        if r.label.startswith("old"):
            at = [sum(at[:k + 1]) for k in range(len(at))]
        journal = os.path.isdir(os.path.join(r.run_dir, "journal"))
        shards = len(read_table(r.run_dir, "shards"))
        print(f"  {r.label:>22}: " + ", ".join(f"{row['film_id']} {t:.0f}" for row, t in zip(rows, at))
              + f"  ({shards} shards; run dir has a journal/: {'yes' if journal else 'no'})")


# --- 2. scaling and CPU use ------------------------------------------------------------------

@dataclass
class Ctx:
    """What sections 2-4 share: the mixed collection and its local 2-worker run."""
    args: argparse.Namespace
    d: str
    films: list[Film] = field(default_factory=list)
    base: Run | None = None
    local2: Run | None = None

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.films)

    def local(self, workers: int, tag: str) -> Run:
        """A local run of the mix; its outputs and run dir in run.outputs / run.run_dir."""
        d = os.path.join(self.d, tag)
        outs = outputs_in(d, tag, len(self.films))
        m = manifest(os.path.join(d, "m.json"), self.films, outs, self.args.mix_model)
        run_dir = os.path.join(d, "run")
        r = run_cli(f"local, {workers} worker{'s' * (workers > 1)}", new_cmd(m, run_dir, workers), ROOT,
                    clean_env(), os.path.join(d, "cli.log"))
        r.outputs, r.run_dir = outs, run_dir
        if workers == 2:
            self.local2 = r  # the latest: section 4's uninterrupted run
        return r

    def reference(self) -> Run:
        return self.local2 or self.local(2, "ref2")

    def baseline(self) -> Run:
        self.base = self.base or baseline(self.films, os.path.join(self.d, "mix-base"))
        return self.base


def describe_mix(ctx: Ctx) -> str:
    return ", ".join(f"{f.frames}@{f.spec.width}x{f.spec.height}:{f.spec.scenes}" for f in ctx.films) + \
        f" (frames@size:scenes; {ctx.frames} frames), model {ctx.args.mix_model}"


def section2(ctx: Ctx) -> None:
    base = ctx.baseline()
    one, two = ctx.local(1, "mix1"), ctx.local(2, "mix2")
    print_runs(f"2. scaling: {describe_mix(ctx)}", [base, one, two], ctx.frames, base)
    print(f"1 -> 2 workers: {one.seconds / two.seconds:.2f}x; outputs 1 worker == 2 workers: "
          f"{sum(a == b for a, b in zip(shas(one.outputs), shas(two.outputs)))}/{len(ctx.films)} films")


# --- 3. S3 -------------------------------------------------------------------------------------

def start_s3(root: str):
    import secrets

    from tests.s3server import INTERFERING_ENV, S3Server

    srv = S3Server(root, "FCBENCHCOLLECTION", "fc-bench-" + secrets.token_hex(12))
    srv.start()
    srv.client().create_bucket(Bucket=BUCKET)
    env = clean_env(srv.env())
    for k in INTERFERING_ENV:
        env.pop(k, None)
    return srv, env


def upload_mix(client, films: list[Film]) -> tuple[list[str], list[list[str]]]:
    inputs, exemplars = [], []
    for k, f in enumerate(films):
        key = f"in/film{k + 1}.mkv"
        client.upload_file(f.path, BUCKET, key)
        inputs.append(f"s3://{BUCKET}/{key}")
        ex = []
        for png, _ in f.exemplars:
            client.upload_file(png, BUCKET, f"in/{os.path.basename(png)}")
            ex.append(f"s3://{BUCKET}/in/{os.path.basename(png)}")
        exemplars.append(ex)
    return inputs, exemplars


def s3_sha(client, uri: str) -> str:
    key = uri.split("/", 3)[3]
    h = hashlib.sha256()
    for chunk in client.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def section3(ctx: Ctx) -> None:
    local = ctx.local(2, "s3-local")  # right before the S3 run: the load of a shared machine drifts
    srv, env = start_s3(os.path.join(ctx.d, "s3"))
    try:
        client = srv.client()
        t0 = time.perf_counter()
        inputs, exemplars = upload_mix(client, ctx.films)
        print(f"  uploaded {len(ctx.films)} films + exemplars in {time.perf_counter() - t0:.1f}s", flush=True)
        outs = [f"s3://{BUCKET}/out/film{k + 1}.mkv" for k in range(len(ctx.films))]
        m = manifest(os.path.join(ctx.d, "s3-m.json"), ctx.films, outs, ctx.args.mix_model, inputs, exemplars)
        client.upload_file(m, BUCKET, "m.json")
        cmd = new_cmd(f"s3://{BUCKET}/m.json", f"s3://{BUCKET}/run", 2)
        s3run = run_cli("s3 -> s3, 2 workers", cmd, ROOT, env, os.path.join(ctx.d, "s3-cli.log"))
        same = [s3_sha(client, o) == sha256(p) for o, p in zip(outs, local.outputs)]
    finally:
        srv.stop()
    print(f"\n3. S3: {describe_mix(ctx)}; input, exemplars, manifest, outputs and run dir on S3 "
          f"(SeaweedFS on this machine; read strategy {env.get('FILMCOLOR_S3_READ', 'default')})")
    print(f"{'run':>22} {'seconds':>8} {'frames/s':>9} {'s3/local':>9} {'machine%':>9} {'run%':>6} {'ray::%':>7}")
    for r in (local, s3run):
        print(f"{r.label:>22} {r.seconds:8.1f} {ctx.frames / r.seconds:9.1f} {r.seconds / local.seconds:9.2f} "
              f"{r.cpu['machine']:9.0f} {r.cpu['tree']:6.0f} {r.cpu['ray']:7.0f}")
    print(f"outputs s3 == local: {sum(same)}/{len(same)} films byte-identical")


# --- 4. driver SIGKILL at 50 %, then resume ---------------------------------------------------------

def durable_frames(run_dir: str, film_ids: list[str]) -> int:
    from pipeline.journal import Journal

    j = Journal(run_dir)
    try:
        return sum(r["frames"] for fid in film_ids for r in j.shard_rows(fid).values() if r["status"] == "done")
    except Exception:  # noqa: BLE001 - a table being rewritten: read again next time
        return -1


RAY_EXIT_WAIT = 30.0
AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _is_agent(p) -> bool:
    try:
        return any(a in " ".join(p.cmdline()) for a in AGENTS)
    except Exception:  # noqa: BLE001 - gone already
        return False


def report_survivors(alive: list, agents: list) -> None:
    """Ray's node agents outlive a SIGKILLed driver by ~60 s (they poll the raylet), and
    anything else still there after RAY_EXIT_WAIT: named, then ended (ours, by pid)."""
    import psutil

    left = [p for p in alive + agents if p.is_running()]
    names = []
    for p in left:
        try:
            names.append(f"{p.pid} {' '.join(p.cmdline())[:60].strip()}")
            p.kill()
        except psutil.Error:
            continue
    if names:
        print("  still alive after the driver's Ray workers, GCS and raylet were gone (killed now): "
              + ", ".join(names), flush=True)


def wait_gone(procs: list) -> tuple[float, list]:
    """Seconds until every process of `procs` has exited (at most RAY_EXIT_WAIT); the
    last to go is named. Returns (seconds, those still alive)."""
    import psutil

    names = {p.pid: _name(p) for p in procs}
    t0, last = time.perf_counter(), ("", 0.0)
    alive = list(procs)
    while alive and time.perf_counter() - t0 < RAY_EXIT_WAIT:
        _, alive_now = psutil.wait_procs(alive, timeout=0.1)
        for p in set(alive) - set(alive_now):
            last = (names[p.pid], time.perf_counter() - t0)
        alive = alive_now
    if last[0]:
        print(f"  after the SIGKILL: the last of the driver's {len(procs)} Ray processes ({last[0]}) exited "
              f"after {last[1]:.1f}s", flush=True)
    return time.perf_counter() - t0, alive


def _name(p) -> str:
    try:
        cmd = p.cmdline()
        return cmd[0].strip() if cmd[0].startswith("ray::") else \
            os.path.basename(next((a for a in cmd if a.endswith(".py")), cmd[0]))
    except Exception:  # noqa: BLE001
        return str(p.pid)


def kill_at(proc: subprocess.Popen, run_dir: str, film_ids: list[str], target: int) -> tuple[int, float]:
    """SIGKILL the driver once `target` frames are durable; (frames durable, seconds
    until its Ray processes were gone). (-1, 0) if it finished first."""
    import psutil

    while proc.poll() is None:
        seen = durable_frames(run_dir, film_ids)
        if seen >= target:
            kids = psutil.Process(proc.pid).children(recursive=True)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"  SIGKILL to the driver with {seen} frames durable", flush=True)
            agents = [k for k in kids if _is_agent(k)]
            gone, alive = wait_gone([k for k in kids if k not in agents])
            report_survivors(alive, agents)
            return durable_frames(run_dir, film_ids), gone
        time.sleep(0.2)
    return -1, 0.0


def section4(ctx: Ctx) -> None:
    from pipeline.record import read_table

    ref = ctx.reference()
    d = os.path.join(ctx.d, "crash")
    outs = outputs_in(d, "crash", len(ctx.films))
    m = manifest(os.path.join(d, "m.json"), ctx.films, outs, ctx.args.mix_model)
    run_dir = os.path.join(d, "run")
    cmd, log, ids = new_cmd(m, run_dir, 2), os.path.join(d, "cli.log"), [f"film{k + 1}" for k in range(len(outs))]
    t0 = time.perf_counter()
    proc = start(cmd, ROOT, clean_env(), log)
    durable, ray_exit = kill_at(proc, run_dir, ids, ctx.frames // 2)
    t_kill = time.perf_counter() - t0 - ray_exit
    if durable < 0:
        print(f"\n4. driver SIGKILL: the run finished before {ctx.frames // 2} frames were durable; nothing killed")
        return
    resumed = run_cli("resume", cmd, ROOT, clean_env(), log)
    shards = read_table(run_dir, "shards")
    again = [s for s in shards if s["attempts"] > 1]
    same = [a == b for a, b in zip(shas(outs), shas(ref.outputs))]
    total = t_kill + ray_exit + resumed.seconds
    print(f"\n4. driver SIGKILL at ~50%, then the same command again: {describe_mix(ctx)}, 2 workers")
    print(f"{'':>34} {'seconds':>8}")
    for label, s in (("uninterrupted run", ref.seconds), ("first run, until SIGKILL", t_kill),
                     ("its Ray processes gone after", ray_exit), ("resume (same command)", resumed.seconds),
                     ("crash + resume", total), ("time lost", total - ref.seconds)):
        print(f"{label:>34} {s:8.1f}")
    print("time lost = crash + resume - uninterrupted: a second Ray start and plan read, the work of the shards "
          "in flight at the kill, the wait for the killed run's Ray processes")
    print(f"killed with {durable}/{ctx.frames} frames durable ({100 * durable / ctx.frames:.0f}%); time lost = "
          f"{100 * (total - ref.seconds) / ref.seconds:.0f}% of the uninterrupted run")
    print(f"shards: {len(shards)}, recoloured (attempts > 1): {len(again)} = {sum(s['frames'] for s in again)} "
          f"frames; frames coloured by the resume: {ctx.frames - durable}")
    print(f"outputs == uninterrupted run: {sum(same)}/{len(same)} films byte-identical (sha256)")


# --- main ---------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="1,2,3,4")
    ap.add_argument("--films", type=int, default=4)
    ap.add_argument("--frames", type=int, default=960)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--model", default="memnet")
    ap.add_argument("--skip-old", action="store_true")
    ap.add_argument("--mix", default="480@640x360:4,216@1280x720:3,192@640x360:2",
                    help="sections 2-4: FRAMES@WxH:SCENES per film, comma-separated")
    ap.add_argument("--mix-model", default="flow")
    args = ap.parse_args(argv)
    args.w, args.h = (int(x) for x in args.size.split("x"))
    args.sections = {int(s) for s in args.sections.split(",")}
    return args


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fc-bench-collection-") as d:
        if 1 in args.sections:
            section1(args, d)
        ctx = Ctx(args, d)
        if args.sections & {2, 3, 4}:
            ctx.films = films_of(parse_mix(args.mix))
        for n, fn in ((2, section2), (3, section3), (4, section4)):
            if n in args.sections:
                fn(ctx)
    print(f"\n(bench/collection.py: {time.perf_counter() - t0:.0f}s in all; machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
