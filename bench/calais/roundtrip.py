"""The colourist's round trip on a real archival film, timed step by step: Shepard's
"Calais 1906 French Grand Prix" (Debian's python-nbsphinx-doc) coloured automatically,
its keyframe exported, painted (hint strokes drawn by code on the exported template, as
a colourist would in any paint program), brought back, and the review page written.

    apt-get install python-nbsphinx-doc
    .venv/bin/python bench/calais/roundtrip.py [--out calais-out/roundtrip] [--screenshot bench/calais/roundtrip.jpg]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import cv2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CALAIS = "/usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv"


def step(what: str, *args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{what} failed ({r.returncode}): {r.stderr[-1500:]}")
    print(f"{what:58s} {secs:6.1f} s   {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''}", flush=True)
    return secs


def paint(folder: str) -> list[str]:
    """Hint strokes on every exported template, the strokes of the nearer of the two
    frames bench/calais/make_hints.py painted (the same shot: the track, the verge, the sky
    and the car sit in the same places)."""
    from make_hints import STROKES

    from pipeline.keyframes import parse_name

    painted = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith("_hints.png"):
            continue
        frame = parse_name(name)[2]
        strokes = STROKES[min(STROKES, key=lambda f: abs(f - frame))]
        path = os.path.join(folder, name)
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # H x W x 4, transparent
        for colour, (a, b) in strokes:
            cv2.line(img, a, b, (*colour[::-1], 255), 3)
        cv2.imwrite(path, img)
        painted.append(name)
    return painted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "calais-out", "roundtrip"))
    ap.add_argument("--screenshot", default="")
    a = ap.parse_args()
    if not os.path.exists(CALAIS):
        raise SystemExit(f"{CALAIS}: missing (apt-get install python-nbsphinx-doc)")
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    film = os.path.join(a.out, "calais-1906.mkv")
    run_dir = os.path.join(a.out, "calais-1906.filmcolor-run")
    paint_dir = os.path.join(a.out, "to-paint")
    total = step("1. colorize, automatic colours (+ review page)", "colorize", CALAIS, film)
    total += step("2. keyframes RUN_DIR --out to-paint --coloured", "keyframes", run_dir, "--out", paint_dir,
                  "--coloured")
    t0 = time.perf_counter()
    painted = paint(paint_dir)
    print(f"{'3. paint (strokes on ' + ', '.join(painted) + ')':58s} {time.perf_counter() - t0:6.1f} s")
    total += step("4. reprocess RUN_DIR --hints to-paint (+ review page)", "reprocess", run_dir, "--hints",
                  paint_dir)
    total += step("5. report RUN_DIR", "report", run_dir)
    print(f"{'round trip, the machine part':58s} {total:6.1f} s")
    if a.screenshot:
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "calais", "screenshot.py"),
                        os.path.join(run_dir, "report", "index.html"), a.screenshot], check=True)


if __name__ == "__main__":
    main()
