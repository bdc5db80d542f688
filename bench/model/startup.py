"""Actor start-up of the memnet model, each variant in a fresh process (as an actor
starts), side by side in one run:

    .venv/bin/python bench/model/startup.py [--repeat 3]

- `quantize here`: load the float weights, FX-prepare, calibrate and convert to int8
  (what every actor did before the prepared archive).
- `default`: `create("memnet")` — memnet.DEFAULT (the floor: no learned weights to load)
- `shipped int8`: `create("memnet", weights="trained")` — the float weights plus the int8 parts prepared at
  build time (weights/memnet_int8.pt, TorchScript, sha256-checked).
Prints `import torch` and "model ready after import" (median of the repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
if sys.argv[1] == "here":
    from pipeline.model.memnet import load_net
    from pipeline.model.memnet_quant import quantize_net
    net, _ = load_net("trained")
    quantize_net(net)
elif sys.argv[1] == "shipped":
    from pipeline.model import create
    create("memnet", threads=1, weights="trained")
else:  # the default model (memnet.DEFAULT)
    from pipeline.model import create
    create("memnet", threads=1)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "ready": t2 - t1}))
"""


def measure(kind: str) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = {"quantize here": [], "shipped int8": [], "default": []}
    for _ in range(args.repeat):  # interleaved: all see the same machine load
        runs["quantize here"].append(measure("here"))
        runs["shipped int8"].append(measure("shipped"))
        runs["default"].append(measure("default"))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("import", "ready")} for k, v in runs.items()}
    for k, v in med.items():
        print(f"{k:14s} import torch {v['import']:.2f} s   model ready after import {v['ready']:.2f} s")
    print(f"start-up ratio (quantize here / shipped): {med['quantize here']['ready'] / med['shipped int8']['ready']:.0f}x; "
          f"target: ready <= 1 s after import")


if __name__ == "__main__":
    main()
