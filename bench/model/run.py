"""Quality / speed / memory benchmark of the propagation models.

    python bench/model/run.py                 # full quality set + memory check (~15 min)
    python bench/model/run.py --quick         # a short version (smoke)
    python bench/model/run.py --skip-memory   # quality set only
    python bench/model/run.py --real test --methods copy,flow,memnet,memnet@d1b6354
                                              # real footage (bench/model/footage.py), the
                                              # test split, against an earlier commit's memnet

Real footage (``--real test|validation``): the clips of bench/model/footage.py, each cut
into shots by the job's own scene detector; each shot's exemplar is its first frame in
colour (the same protocol as below), the input is the clip's own luma. Reported per clip
and as the mean over clips. ``METHOD@REV`` runs METHOD from a git worktree of REV (its
code and its committed weights) in the same run: today's model beside an earlier one.

The quality set is built in code from scikit-image's photographs (the 'bench' split of
pipeline.model.memnet_data: never used for training) at 640x360, with colour ground truth:
  pan_zoom   camera pan + zoom + rotation + shake, lighting change, grain     (120 frames)
  occlusion  slow pan, two textured occluders crossing (occlusion/disocclusion) (120)
  returning  camera away to another part of the scene and back (returning shot) (120)
  long       one long scene: slow wander, occluder, lighting drift, grain     (1000)
Each scene's exemplar is its frame 0 in colour (clean luma). The reference of a frame is
its input (grainy) luma with the true chroma, so the metrics judge only the chroma.

Every method runs through what the job does per frame: full-res luma -> working resolution
(pipeline.model.upsample.work_size / downsize, 320x180) -> model.step -> chroma back to
640x360 by pipeline.model.upsample.guided_upsample. Methods: exemplar chroma copied
unchanged ('copy'), 'flow', the untrained memnet floor ('memnet-floor': fixed keys,
fixed fusion; the default of create("memnet")), memnet with the committed trained weights
float and int8 ('memnet-trained', 'memnet-trained-int8'). Each method runs in its own
process (one thread, as a job actor) so that fps and peak memory are its own.
Metrics: pipeline.metrics.evaluate (PSNR, SSIM, CDC, colorfulness ratio), per scene.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
# METHOD@REV children import the pipeline (code + weights) of that revision's worktree
CODE = Path(os.environ.get("MEMNET_BENCH_CODE") or ROOT)
sys.path.insert(0, str(ROOT / "bench" / "model"))
sys.path.insert(0, str(CODE))

W, H = 640, 360
METHODS = ("copy", "flow", "memnet-floor", "memnet-trained", "memnet-trained-int8", "memnet")


def scene_specs(quick: bool):
    from pipeline.model.memnet_data import ClipSpec

    n = 30 if quick else 120
    long_n = 100 if quick else 1000
    ret = np.concatenate([np.arange(n // 3), 400 + np.arange(n // 3), np.arange(n - 2 * (n // 3))[::-1]])
    return [
        ("pan_zoom", "astronaut.png",
         ClipSpec(frames=n, height=H, width=W, pan=0.006, zoom=0.002, rotate=0.002, shake=0.002,
                  occluders=0, lighting=0.1, grain=0.015), None),
        ("occlusion", "coffee.png",
         ClipSpec(frames=n, height=H, width=W, pan=0.003, zoom=0.0, rotate=0.0, shake=0.001,
                  occluders=2, occluder_speed=0.012, lighting=0.05, grain=0.015), None),
        ("returning", "rocket.jpg",
         ClipSpec(frames=len(ret), height=H, width=W, pan=0.01, zoom=0.0, rotate=0.0, shake=0.002,
                  occluders=0, lighting=0.05, grain=0.015), {"times": ret}),
        ("long", "motorcycle_left.png",
         ClipSpec(frames=long_n, height=H, width=W, pan=0.0015, zoom=0.0005, rotate=0.0003,
                  shake=0.001, occluders=1, occluder_speed=0.002, lighting=0.2, grain=0.02), None),
    ]


class CopyPropagator:
    """Baseline: the exemplar's chroma, unchanged, for every frame."""

    name = "copy"

    def new_scene(self, exemplars):
        self.c = exemplars[0].chroma.astype(np.float32)

    def step(self, luma):
        return self.c

    def weights_sha256(self):
        return ""


def make_model(method: str):
    from pipeline.model import create

    method = method.split("@")[0]  # METHOD@REV: this process already imports REV's code
    w = os.environ.get("MEMNET_BENCH_WEIGHTS") or None  # --weights
    kw = json.loads(os.environ.get("MEMNET_BENCH_KWARGS") or "{}")  # --memnet-kwargs
    if method == "copy":
        return CopyPropagator()
    if method == "flow":
        return create("flow", threads=1)
    if method == "memnet":  # whatever create("memnet") gives (memnet.DEFAULT)
        return create("memnet", threads=1, **kw)
    if method == "memnet-trained":
        return create("memnet", threads=1, weights=w or "trained", **kw)
    if method == "memnet-trained-int8":
        return create("memnet", threads=1, quantize=True, weights=w or "trained", **kw)
    if method == "memnet-floor":
        return create("memnet", threads=1, weights="none", **kw)
    raise ValueError(method)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _drain(pending: deque):
    """References in step with the outputs: a frame's reference exists once its output
    was made (the output generator appends it)."""
    while pending:
        yield pending.popleft()


def run_method(method: str, quick: bool, seed: int = 0) -> dict:
    """Runs one method over the quality set in this process."""
    import cv2
    import torch

    from pipeline import metrics
    from pipeline.model import Exemplar
    from pipeline.model.memnet_data import Clip, load_images, rgb_to_ycbcr, to_u8, ycbcr_to_rgb
    from pipeline.model.upsample import downsize, guided_upsample, work_size

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    images = dict(load_images("bench", 1024))
    model = make_model(method)
    ws = work_size(W, H)
    specs = scene_specs(quick)
    pending: deque = deque()
    timing = {"model_s": 0.0, "step_s": 0.0, "frames": 0}
    peak = [rss_mb()]
    lengths = [len(p["times"]) if p else s.frames for _, _, s, p in specs]
    ranges = [(int(sum(lengths[:k])), int(sum(lengths[: k + 1]))) for k in range(len(lengths))]

    def outputs():
        for si, (name, img, spec, path) in enumerate(specs):
            others = [images[k] for k in images if k != img]
            clip = Clip(images[img], spec, np.random.default_rng([seed, si]), others, path)
            y0, c0 = rgb_to_ycbcr(clip.frame(0))
            ex = Exemplar(0, downsize(y0, ws), np.stack([downsize(c, ws) for c in c0]))
            model.new_scene([ex])
            for i in range(len(clip)):
                y, c = rgb_to_ycbcr(clip.frame(i))
                g = np.random.default_rng([seed, si, i]).normal(0, spec.grain, y.shape)
                luma = np.clip(y + g, 0, 1).astype(np.float32)
                pending.append(to_u8(ycbcr_to_rgb(luma, c)))
                t = time.perf_counter()
                lw = downsize(luma, ws)
                t1 = time.perf_counter()
                lo = model.step(lw)
                timing["step_s"] += time.perf_counter() - t1
                chroma = guided_upsample(lo, lw, luma)
                timing["model_s"] += time.perf_counter() - t
                timing["frames"] += 1
                if i % 50 == 0:
                    peak[0] = max(peak[0], rss_mb())
                yield to_u8(ycbcr_to_rgb(luma, chroma))
            print(f"  {method}: scene {name} done ({len(clip)} frames)", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    res = metrics.evaluate(outputs(), _drain(pending), scenes=ranges)
    for s, spec in zip(res["scenes"], specs):
        s["name"] = spec[0]
    res["fps"] = timing["frames"] / timing["model_s"]
    res["step_ms"] = 1000 * timing["step_s"] / timing["frames"]
    res["peak_rss_mb"] = max(peak[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    res["wall_s"] = time.perf_counter() - t0
    res["method"] = method
    res["weights_sha256"] = model.weights_sha256()
    return res


def real_shots(split: str) -> list[dict]:
    """The split's clips (prepared by bench/model/footage.py) with their shots, as the job's
    scene detector finds them: [{name, path, content, scenes: [(start, end)]}]."""
    import footage

    from pipeline.io import probe
    from pipeline.scenes import scan_scenes

    out = []
    for clip in footage.clips(split):
        path = str(footage.prepare(clip))
        info = probe(path)
        scenes = [(sc.start_frame, sc.end_frame) for sc in scan_scenes(path, info)]
        out.append({"name": clip.name, "path": path, "content": clip.content, "scenes": scenes})
    return out


def _clip_frames(path: str):
    """RGB float frames H x W x 3 in [0, 1] of a prepared clip, one at a time."""
    import av

    with av.open(path) as c:
        for fr in c.decode(video=0):
            yield fr.to_ndarray(format="rgb24").astype(np.float32) / 255.0


def run_real(method: str, shots: list[dict]) -> dict:
    """One method over real clips in this process: per clip metrics (each shot's exemplar
    is its first frame in colour) and the model step's own time at working resolution."""
    import cv2
    import torch

    from pipeline import metrics
    from pipeline.model import Exemplar
    from pipeline.model.memnet_data import rgb_to_ycbcr, to_u8, ycbcr_to_rgb
    from pipeline.model.upsample import downsize, guided_upsample, work_size

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    model = make_model(method)
    timing = {"step_s": 0.0, "model_s": 0.0, "frames": 0}
    clips = []
    t0 = time.perf_counter()
    for clip in shots:
        starts = {a for a, _ in clip["scenes"]}
        pending: deque = deque()

        def outputs():
            ws = None
            for i, rgb in enumerate(_clip_frames(clip["path"])):
                y, c = rgb_to_ycbcr(rgb)
                if ws is None:
                    ws = work_size(y.shape[1], y.shape[0])
                if i in starts:  # a shot begins: its first frame in colour is the exemplar
                    model.new_scene([Exemplar(0, downsize(y, ws), np.stack([downsize(x, ws) for x in c]))])
                    # (the model still steps it, as the job does; it is not scored: it is
                    # the colourist's own frame, and a copy of it would score infinity)
                    model.step(downsize(y, ws))
                    continue
                pending.append(to_u8(ycbcr_to_rgb(y, c)))
                t = time.perf_counter()
                lw = downsize(y, ws)
                t1 = time.perf_counter()
                lo = model.step(lw)
                timing["step_s"] += time.perf_counter() - t1
                chroma = guided_upsample(lo, lw, y)
                timing["model_s"] += time.perf_counter() - t
                timing["frames"] += 1
                yield to_u8(ycbcr_to_rgb(y, chroma))

        # shots in scored-frame numbering (each shot's exemplar frame left out)
        scored = [(a - k, b - k - 1) for k, (a, b) in enumerate(clip["scenes"])]
        r = metrics.evaluate(outputs(), _drain(pending), scenes=scored)
        r.pop("scenes", None)
        clips.append({"name": clip["name"], "shots": len(clip["scenes"]), **r})
        print(f"  {method}: {clip['name']} PSNR {r['psnr']:.2f}", file=sys.stderr, flush=True)
    keys = ("psnr", "ssim", "cdc", "colorfulness_ratio")
    res = {k: float(np.mean([c[k] for c in clips])) for k in keys}
    res.update(method=method, scenes=clips, wall_s=time.perf_counter() - t0,
               fps=timing["frames"] / timing["model_s"], step_ms=1000 * timing["step_s"] / timing["frames"],
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               weights_sha256=model.weights_sha256())
    return res


def memory_check(frames: int = 5000, at: int = 500, seed: int = 0) -> dict:
    """memnet over one long scene at working resolution: RSS after `at` frames vs peak."""
    import cv2
    import torch

    from pipeline.model import Exemplar, create
    from pipeline.model.memnet_data import Clip, ClipSpec, load_images, rgb_to_ycbcr
    from pipeline.model.upsample import work_size

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ww, hh = work_size(W, H)
    img = dict(load_images("bench", 1024))["motorcycle_left.png"]
    clip = Clip(img, ClipSpec(frames=frames, height=hh, width=ww, pan=0.002, zoom=0.0005, rotate=0.0003,
                              shake=0.001, occluders=1, occluder_speed=0.002, lighting=0.2, grain=0.0),
                np.random.default_rng(seed))
    model = create("memnet", threads=1, weights=os.environ.get("MEMNET_BENCH_WEIGHTS") or None,
                   **json.loads(os.environ.get("MEMNET_BENCH_KWARGS") or "{}"))
    y0, c0 = rgb_to_ycbcr(clip.frame(0))
    model.new_scene([Exemplar(0, y0, c0)])
    rss_at, peak_after, elems = None, 0.0, []
    t0 = time.perf_counter()
    for i in range(frames):
        y, _ = rgb_to_ycbcr(clip.frame(i))
        model.step(y)
        if i + 1 == at:
            rss_at = rss_mb()
            peak_at = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if i + 1 >= at and (i + 1) % 50 == 0:
            peak_after = max(peak_after, rss_mb())
            elems.append(model.mem.size)
    peak_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "frames": frames, "at": at,
        "rss_mb_at": rss_at, "rss_mb_max_after": peak_after,
        "peak_rss_mb_at": peak_at, "peak_rss_mb_end": peak_end,
        "peak_ratio": peak_end / peak_at,
        "memory_elements_at_end": model.mem.size, "memory_elements_max": max(elems),
        "memory_elements_bound": model.mem.bound, "compressions": model.mem.compressions,
        "fps_working_res": frames / (time.perf_counter() - t0),
        "model": "trained" if model.net.learned else "floor",
    }


def worktree(rev: str) -> Path:
    """A git worktree of REV under bench/out/rev-REV (made once): an earlier model's code
    and weights, to run beside today's in the same bench run."""
    path = ROOT / "bench" / "out" / f"rev-{rev}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def table(results: list[dict]) -> str:
    rows = ["| method | PSNR dB | SSIM | CDC | colorfulness ratio | model step ms (320x180) | "
            "fps (640x360, 1 thread) | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['cdc']:.5f} | "
                    f"{r['colorfulness_ratio']:.3f} | {r.get('step_ms', float('nan')):.1f} | {r['fps']:.1f} | "
                    f"{r['peak_rss_mb']:.0f} |")
    rows.append("")
    names = [s.get("name") or str(s.get("scene")) for s in results[0]["scenes"]]
    rows.append("| method | " + " | ".join(f"{n} PSNR / CDC" for n in names) + " |")
    rows.append("|---|" + "---|" * len(names))
    for r in results:
        rows.append(f"| {r['method']} | " + " | ".join(
            f"{s['psnr']:.2f} / {s['cdc']:.5f}" for s in r["scenes"]) + " |")
    if any("shots" in c for r in results for c in r["scenes"]):  # real footage: every metric per clip
        rows += ["", "| clip (shots) | method | PSNR dB | vs flow | SSIM | CDC | colorfulness ratio |",
                 "|---|---|---|---|---|---|---|"]
        flow = next((r for r in results if r["method"] == "flow"), None)
        for i, clip in enumerate(results[0]["scenes"]):
            for r in results:
                c = r["scenes"][i]
                d = f"{c['psnr'] - flow['scenes'][i]['psnr']:+.2f}" if flow else ""
                rows.append(f"| {clip['name']} ({clip['shots']}) | {r['method']} | {c['psnr']:.2f} | {d} | "
                            f"{c['ssim']:.4f} | {c['cdc']:.5f} | {c['colorfulness_ratio']:.3f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--methods", default=",".join(METHODS[:-1]))
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-frames", type=int, default=5000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "model"))
    ap.add_argument("--weights", default=None, help="memnet weights (default: the committed ones)")
    ap.add_argument("--append", action="store_true",
                    help="keep the other methods' results already in OUT/results.json")
    ap.add_argument("--memnet-kwargs", default=None, help="JSON of extra memnet arguments")
    ap.add_argument("--real", default=None, choices=("test", "validation"),
                    help="real footage of that split instead of the synthetic quality set")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shots", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:  # one method (or the memory check) in this process, JSON on stdout
        if args.child == "memory":
            res = memory_check(args.memory_frames, min(500, args.memory_frames // 2))
        elif args.shots:
            res = run_real(args.child, json.loads(Path(args.shots).read_text()))
        else:
            res = run_method(args.child, args.quick)
        print("RESULT " + json.dumps(res))
        return 0

    if args.weights:
        os.environ["MEMNET_BENCH_WEIGHTS"] = str(Path(args.weights).resolve())
    if args.memnet_kwargs:
        os.environ["MEMNET_BENCH_KWARGS"] = args.memnet_kwargs
    out = Path(args.out) / (f"real-{args.real}" if args.real else "")
    out.mkdir(parents=True, exist_ok=True)
    extra = []
    if args.real:
        shots = real_shots(args.real)
        (out / "shots.json").write_text(json.dumps(shots, indent=1))
        extra = ["--shots", str(out / "shots.json")]
        args.skip_memory = True
        print("clips: " + ", ".join(f"{c['name']} ({len(c['scenes'])} shots)" for c in shots), file=sys.stderr)
    children = [m for m in args.methods.split(",") if m] + ([] if args.skip_memory else ["memory"])
    results, mem = [], None
    for m in children:
        print(f"running {m} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--child", m, "--memory-frames", str(args.memory_frames), *extra]
        if args.quick:
            cmd.append("--quick")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if "@" in m:
            env["MEMNET_BENCH_CODE"] = str(worktree(m.split("@", 1)[1]))
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if p.returncode or not line:
            print(f"{m} failed (exit {p.returncode})", file=sys.stderr)
            continue
        r = json.loads(line[-1][7:])
        if m == "memory":
            mem = r
        else:
            results.append(r)
            print(f"  {m}: PSNR {r['psnr']:.2f}  SSIM {r['ssim']:.4f}  CDC {r['cdc']:.5f}  "
                  f"colorfulness {r['colorfulness_ratio']:.3f}  step {r['step_ms']:.1f} ms  {r['fps']:.1f} fps",
                  file=sys.stderr, flush=True)
    if args.append and (out / "results.json").exists():
        old = json.loads((out / "results.json").read_text())
        done = {r["method"] for r in results}
        results = [r for r in old["methods"] if r["method"] not in done] + results
        results.sort(key=lambda r: METHODS.index(r["method"]) if r["method"] in METHODS else 99)
        mem = mem or old.get("memory")
    text = table(results) if results else ""
    if mem:
        text += (f"\n\nmemory (memnet {mem.get('model', '')}, one scene of {mem['frames']} frames at working res): peak RSS "
                 f"{mem['peak_rss_mb_at']:.0f} MB after {mem['at']} frames, {mem['peak_rss_mb_end']:.0f} MB "
                 f"after {mem['frames']} (ratio {mem['peak_ratio']:.3f}); current RSS {mem['rss_mb_at']:.0f} MB "
                 f"at {mem['at']}, max {mem['rss_mb_max_after']:.0f} MB after; memory elements max "
                 f"{mem['memory_elements_max']} (bound {mem['memory_elements_bound']}), "
                 f"{mem['compressions']} compressions")
    print(text)
    (out / "results.json").write_text(json.dumps({"methods": results, "memory": mem}, indent=1))
    (out / "results.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
