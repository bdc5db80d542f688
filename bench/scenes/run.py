"""Scene-detection benchmark: filmcolor vs PySceneDetect 0.7.2 on generated B/W films.

    python bench/scenes/run.py                # generate (cached) + score + speed
    python bench/scenes/run.py --no-peers     # ours only
    python bench/scenes/run.py --no-speed

Scoring (shot-boundary F1): a hard cut matches a predicted boundary within +-1 frame; a
gradual transition (fade, dissolve) matches a prediction inside its span (inclusive); each
truth and each prediction match at most once (closest first). An unmatched prediction is a
false positive; its cause is the truth transition it duplicates (within 2 frames of its span)
or the within-shot event it falls on (flash, whip_pan, fast_pan, occluder, +-2 frames), else
'flat' (inside a black/white hold) or 'other' (grain, flicker, weave, scratches, motion).
Per-type precision counts an FP against the type it duplicates, else its predicted label
(PySceneDetect's boundaries are all 'cut').

Speed: the 720p and 1080p H.264 films are decoded in the same run (a) plain PyAV decode,
(b) decode + luma plane (iter_luma, full size) = "decode-only", (c) the full sequential
detection (decode + downscale + features + decision); fps and the ratio (c)/(b), (c)/(a).
Outputs go to bench/out/scenes/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(__file__))

import gen  # noqa: E402

from pipeline.io import iter_luma, probe  # noqa: E402
from pipeline.scenes import SceneConfig, scan_scenes  # noqa: E402

TYPES = ("cut", "fade", "dissolve")


def match(truth: list[dict], preds: list[tuple[int, str]]):
    pairs = []
    for ti, t in enumerate(truth):
        for pi, (p, _) in enumerate(preds):
            if t["kind"] == "cut":
                ok = abs(p - t["frame"]) <= 1
            else:
                ok = t["span"][0] <= p <= t["span"][1]
            if ok:
                pairs.append((abs(p - t["frame"]), ti, pi))
    pairs.sort()
    tm, pm = {}, {}
    for _, ti, pi in pairs:
        if ti in tm or pi in pm:
            continue
        tm[ti], pm[pi] = pi, ti
    return tm, pm


def fp_cause(p: int, truth: dict) -> tuple[str, str | None]:
    for t in truth["boundaries"]:
        lo, hi = t["span"]
        if lo - 2 <= p <= hi + 2:
            return f"dup_{t['kind']}", t["kind"]
    for ev in truth["events"]:
        lo, hi = ev["span"]
        if lo - 2 <= p <= hi + 2:
            return ev["cause"], None
    for lo, hi in truth["flat_spans"]:
        if lo <= p < hi:
            return "flat", None
    return "other", None


class Tally:
    def __init__(self):
        self.tp = Counter()
        self.fn = Counter()
        self.fp = Counter()
        self.causes = Counter()
        self.misses = []

    def add(self, truth: dict, preds: list[tuple[int, str]], film: str):
        tb = truth["boundaries"]
        tm, pm = match(tb, preds)
        for ti, t in enumerate(tb):
            if ti in tm:
                self.tp[t["kind"]] += 1
            else:
                self.fn[t["kind"]] += 1
                self.misses.append((film, t["kind"], t["frame"], t["note"]))
        for pi, (p, label) in enumerate(preds):
            if pi in pm:
                continue
            cause, kind = fp_cause(p, truth)
            self.causes[cause] += 1
            self.fp[kind or (label if label in TYPES else "cut")] += 1

    def prf(self, kinds) -> tuple[float, float, float, int, int, int]:
        tp = sum(self.tp[k] for k in kinds)
        fn = sum(self.fn[k] for k in kinds)
        fp = sum(self.fp[k] for k in kinds)
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f, tp, fp, fn


GROUPS = [("cut", ("cut",)), ("fade", ("fade",)), ("dissolve", ("dissolve",)),
          ("gradual", ("fade", "dissolve")), ("overall", TYPES)]


def ours(path: str, info, config: SceneConfig) -> list[tuple[int, str]]:
    scenes = scan_scenes(path, info, config)
    return [(s.start_frame, s.transition) for s in scenes[1:]]


def peer_detectors():
    from scenedetect import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector

    return {
        "PySD Content": lambda: ContentDetector(),
        "PySD Content luma": lambda: ContentDetector(luma_only=True),
        "PySD Adaptive luma": lambda: AdaptiveDetector(luma_only=True),
        "PySD Histogram": lambda: HistogramDetector(),
        "PySD Hash": lambda: HashDetector(),
    }


def peer(path: str, make) -> list[tuple[int, str]]:
    from scenedetect import detect

    scenes = detect(path, make(), backend="pyav")
    return [(int(s[0].frame_num), "cut") for s in scenes[1:]]


def print_table(results: dict[str, Tally]) -> None:
    head = f"{'detector':<20}" + "".join(f"{g:>22}" for g, _ in GROUPS)
    print(head)
    print(f"{'':<20}" + "".join(f"{'P    R    F1':>22}" for _ in GROUPS))
    for name, t in results.items():
        cells = []
        for _, kinds in GROUPS:
            p, r, f, *_ = t.prf(kinds)
            cells.append(f"{p:.3f} {r:.3f} {f:.3f}")
        print(f"{name:<20}" + "".join(f"{c:>22}" for c in cells))
    print()
    print("false positives by cause:")
    causes = sorted({c for t in results.values() for c in t.causes})
    print(f"{'detector':<20}" + "".join(f"{c:>13}" for c in causes) + f"{'total':>8}")
    for name, t in results.items():
        print(f"{name:<20}" + "".join(f"{t.causes[c]:>13}" for c in causes) + f"{sum(t.causes.values()):>8}")


def speed(out_dir: str, config: SceneConfig, repeats: int = 2) -> list[dict]:
    import av

    from pipeline.scenes.detect import decide
    from pipeline.scenes.detect import Features
    from pipeline.scenes.features import feature_columns
    from pipeline.scenes.scan import range_features

    rows = []
    for w, h in ((1280, 720), (1920, 1080)):
        path = gen.speed_film(out_dir, w, h)
        info = probe(path)
        n = info.frame_count
        best = defaultdict(lambda: float("inf"))
        for _ in range(repeats):
            t = time.perf_counter()
            with av.open(path) as c:
                vs = c.streams.video[0]
                vs.thread_type = "AUTO"
                for _f in c.decode(vs):
                    pass
            best["decode"] = min(best["decode"], time.perf_counter() - t)
            t = time.perf_counter()
            for _i, _y in iter_luma(info, 0, n):
                pass
            best["decode_luma"] = min(best["decode_luma"], time.perf_counter() - t)
            t = time.perf_counter()
            idx, mat = range_features(info, 0, n, config)
            decide(Features(feature_columns(config), mat), config)
            best["detect"] = min(best["detect"], time.perf_counter() - t)
        row = {"size": f"{h}p", "frames": n}
        for k, v in best.items():
            row[f"{k}_fps"] = n / v
        row["ratio_vs_decode_luma"] = best["decode_luma"] / best["detect"]
        row["ratio_vs_plain_decode"] = best["decode"] / best["detect"]
        rows.append(row)
    print(f"{'film':<8}{'frames':>8}{'plain decode fps':>18}{'decode+luma fps':>17}{'detection fps':>15}"
          f"{'det/decode+luma':>17}{'det/plain':>11}")
    for r in rows:
        print(f"{r['size']:<8}{r['frames']:>8}{r['decode_fps']:>18.1f}{r['decode_luma_fps']:>17.1f}"
              f"{r['detect_fps']:>15.1f}{r['ratio_vs_decode_luma']:>17.2f}{r['ratio_vs_plain_decode']:>11.2f}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "scenes"))
    ap.add_argument("--films", type=int, default=8)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--skimage-only", action="store_true", help="photographs from scikit-image only")
    ap.add_argument("--misses", action="store_true", help="list our missed truths and FPs")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    paths = gen.generate(args.out, n_films=args.films, skimage_only=args.skimage_only)
    print(f"{len(paths)} films in {args.out} (generated/cached in {time.perf_counter() - t0:.1f}s)")
    truths = [json.load(open(p + ".truth.json")) for p in paths]
    kinds = Counter(b["kind"] for t in truths for b in t["boundaries"])
    events = Counter(e["cause"] for t in truths for e in t["events"])
    print(f"frames: {sum(t['frames'] for t in truths)}; boundaries: {dict(kinds)}; events: {dict(events)}")
    config = SceneConfig()
    results: dict[str, Tally] = {}
    timing = {}
    t = time.perf_counter()
    tally = Tally()
    fps_list = []
    for p, truth in zip(paths, truths):
        info = probe(p)
        preds = ours(p, info, config)
        tally.add(truth, preds, os.path.basename(p))
        if args.misses:
            tm, pm = match(truth["boundaries"], preds)
            for pi, (f, lab) in enumerate(preds):
                if pi not in pm:
                    print(f"  FP {os.path.basename(p)} frame {f} {lab}: {fp_cause(f, truth)[0]}")
    results["filmcolor"] = tally
    timing["filmcolor"] = time.perf_counter() - t
    if args.misses:
        for m in tally.misses:
            print("  MISS", *m)
    if not args.no_peers:
        for name, make in peer_detectors().items():
            t = time.perf_counter()
            tally = Tally()
            for p, truth in zip(paths, truths):
                tally.add(truth, peer(p, make), os.path.basename(p))
            results[name] = tally
            timing[name] = time.perf_counter() - t
    print()
    print_table(results)
    print()
    print("seconds per detector over the set:", {k: round(v, 1) for k, v in timing.items()})
    speed_rows = []
    if not args.no_speed:
        print()
        speed_rows = speed(args.out, config)
    out = {
        "scores": {name: {g: dict(zip(("precision", "recall", "f1", "tp", "fp", "fn"), t.prf(k)))
                          for g, k in GROUPS} for name, t in results.items()},
        "fp_causes": {name: dict(t.causes) for name, t in results.items()},
        "misses": results["filmcolor"].misses,
        "speed": speed_rows,
    }
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"\nresults: {os.path.join(args.out, 'results.json')}  (total {time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
