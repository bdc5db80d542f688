"""`filmcolor demo`: a small black-and-white film, colorized end to end, with a contact sheet.

The film is made from scikit-image's sample photographs: four shots with camera motion,
a fade-in, hard cuts and a stereo audio track. Exemplars are the colour originals of one
frame per shot (one in the middle of its shot); the last shot has none and borrows the
nearest shot's exemplar.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from pipeline.io import iter_frames, probe
from pipeline.synth import SynthScene, save_png, write_film

SHOTS = [
    SynthScene("astronaut", 40, pan=(2.0, 0.8), fade_in=8),
    SynthScene("coffee", 36, pan=(-2.5, 0.5)),
    SynthScene("chelsea", 40, pan=(1.5, -0.6), zoom=0.004),
    SynthScene("rocket", 30, pan=(0.0, 1.5)),
    SynthScene("astronaut", 24, pan=(-1.0, 0.0)),  # the first shot returns, no exemplar of its own
]
EXEMPLAR_AT = [12, 0, 20, 0]  # frame within each of the first four shots


def run_demo(out_dir: str, workers: int | None = None, width: int = 480, height: int = 270) -> dict:
    from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film

    os.makedirs(out_dir, exist_ok=True)
    film_path = os.path.join(out_dir, "demo-bw.mkv")
    film = write_film(film_path, SHOTS, width, height, pix_fmt="gray", keep_colour=True, timecode="01:00:00:00")
    starts = [0] + film.cuts
    specs = []
    for shot, (start, at) in enumerate(zip(starts, EXEMPLAR_AT)):
        png = os.path.join(out_dir, f"exemplar-shot{shot}.png")
        save_png(png, film.colour[start + at])
        specs.append(f"{png}@{start + at}")
    output = os.path.join(out_dir, "demo-colour.mkv")
    result = run_film(FilmJob("demo", film_path, output, parse_exemplars(specs)), JobConfig(workers=workers))
    sheet = os.path.join(out_dir, "contact-sheet.png")
    contact_sheet(output, film_path, starts, [s.image for s in parse_exemplars(specs)], sheet)
    print(f"input film:    {film_path}")
    print(f"exemplars:     {', '.join(s.split('@')[0] for s in specs)}")
    print(f"output film:   {output}  ({result.frames} frames, {result.shards} shards, {result.seconds:.1f}s)")
    print(f"run record:    {result.run_dir}")
    print(f"contact sheet: {sheet}")
    from pipeline import storage

    report = storage.join(result.run_dir, "report", "index.html")  # the run printed its path
    return {"input": film_path, "output": output, "sheet": sheet, "run_dir": result.run_dir, "report": report}


def contact_sheet(output: str, film: str, starts: list[int], exemplars: list[str], path: str) -> None:
    """Per shot, a row: input frame (B/W), exemplar (or blank), output frame."""
    out_info, in_info = probe(output), probe(film)
    rows = []
    for shot, start in enumerate(starts):
        mid = min(start + 10, out_info.frame_count - 1)
        bw = _rgb_at(in_info, mid)
        col = _rgb_at(out_info, mid)
        ex = cv2.cvtColor(cv2.imread(exemplars[shot]), cv2.COLOR_BGR2RGB) if shot < len(exemplars) else np.zeros_like(bw)
        ex = cv2.resize(ex, (bw.shape[1], bw.shape[0]))
        rows.append(np.concatenate([bw, ex, col], axis=1))
    save_png(path, np.concatenate(rows, axis=0))


def _rgb_at(info, index: int) -> np.ndarray:
    for _, frame in iter_frames(info, index, index + 1):
        return frame.to_ndarray(format="rgb24")
    raise RuntimeError(f"frame {index} not found")
