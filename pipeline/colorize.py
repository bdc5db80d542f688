"""The colorize stage: one shard in, one encoded segment out. No Ray in here.

`ColorizeStage.setup()` loads the model once per actor; `process(row)` colours one shard:
pass 1 decodes the shard (plus warm-up) at working resolution and runs the propagation
runs; pass 2 decodes it again at full resolution, brings chroma up guided by the luma,
keeps the input luma as is, and encodes the segment. Exceptions never leave `process`:
the shard comes back `failed` with its error, so one bad shard cannot sink the dataset.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pipeline import log
from pipeline.codecs import SegmentWriter, chroma_to_code, convert_luma, output_spec
from pipeline.exemplar import load_rgb, make_exemplar
from pipeline.io import FilmInfo, iter_luma, luma_to_float, probe
from pipeline.model import create
from pipeline.model.upsample import downsize, guided_upsample, work_size
from pipeline.shard import Shard, propagation_runs

ProgressFn = Callable[[str, int], None]  # (film_id, frames done since last call)


@dataclass(frozen=True)
class ColorizeConfig:
    model: str = "flow"
    max_side: int = 320  # working resolution: longest side in pixels
    warmup: int = 24
    threads: int = 1  # per actor; parallelism comes from the actor pool
    fault_scenes: tuple[int, ...] = field(default=())  # drills/tests: these scenes fail on purpose


def shard_row(shard: Shard, *, input_path: str, codec: str, exemplar_images: list[str],
              exemplar_frames: list[int], segment_path: str) -> dict:
    """A shard as a flat row (Arrow-friendly) with what an actor needs to colour it."""
    return {
        "shard_id": shard.shard_id, "film_id": shard.film_id, "index": shard.index, "scene": shard.scene,
        "start_frame": shard.start_frame, "end_frame": shard.end_frame,
        "scene_start": shard.scene_start, "scene_end": shard.scene_end,
        "exemplars": list(shard.exemplars), "low_variability": shard.low_variability,
        "input": input_path, "codec": codec, "exemplar_images": list(exemplar_images),
        "exemplar_frames": list(exemplar_frames), "segment_path": segment_path,
    }


class ColorizeStage:
    def __init__(self, cfg: ColorizeConfig, progress: ProgressFn | None = None):
        self.cfg = cfg
        self.progress = progress or (lambda film, n: None)
        self.model = None
        self._films: dict[str, FilmInfo] = {}
        self._images: dict[str, tuple[np.ndarray, str]] = {}

    def setup(self) -> None:
        self.model = create(self.cfg.model, threads=self.cfg.threads)

    def process(self, row: dict) -> dict:
        t0 = time.perf_counter()
        result = {"shard_id": row["shard_id"], "status": "failed", "error": "", "segment_sha256": "",
                  "frames": 0, "seconds": 0.0}
        try:
            if row["scene"] in self.cfg.fault_scenes:
                raise RuntimeError(f"injected fault in scene {row['scene']}")
            frames = self._colour_shard(row)
            result.update(status="done", frames=frames, segment_sha256=_sha256(row["segment_path"]))
        except Exception as exc:  # noqa: BLE001 - recorded in the run record, never raised to Ray
            log.error("shard %s (scene %d) failed: %s", row["shard_id"], row["scene"], exc)
            log.debug("%s", traceback.format_exc())
            result["error"] = f"{type(exc).__name__}: {exc}"
            if os.path.exists(row["segment_path"]):
                os.remove(row["segment_path"])
        result["seconds"] = round(time.perf_counter() - t0, 3)
        return result

    def _film(self, path: str) -> FilmInfo:
        if path not in self._films:
            self._films[path] = probe(path)
        return self._films[path]

    def _image(self, uri: str) -> tuple[np.ndarray, str]:
        if uri not in self._images:
            self._images[uri] = load_rgb(uri)
        return self._images[uri]

    def _colour_shard(self, row: dict) -> int:
        info = self._film(row["input"])
        spec = output_spec(info, row["codec"])
        size = work_size(info.width, info.height, self.cfg.max_side)
        shard = Shard(row["shard_id"], row["film_id"], row["index"], row["scene"], row["start_frame"],
                      row["end_frame"], row["scene_start"], row["scene_end"], tuple(row["exemplars"]),
                      row["low_variability"])
        chroma = self._propagate(info, shard, row, size, spec.matrix)
        return self._encode(info, spec, shard, chroma, size, row["segment_path"])

    def _propagate(self, info, shard, row, size, matrix) -> dict[int, np.ndarray]:
        """Pass 1: frame index -> chroma (2 x h x w) at working resolution."""
        frames_ex = list(row["exemplar_frames"])
        if shard.low_variability or not shard.exemplars:
            return {}  # neutral chroma: black leader, flat frames, or no exemplar at all
        runs = propagation_runs(shard, frames_ex, self.cfg.warmup)
        first = min(min(r.frames) for r in runs)
        last = max(max(r.frames) for r in runs)
        # Code values at working resolution (small); float only when the model needs them.
        lumas = dict(iter_luma(info, first, last + 1, size))
        out: dict[int, np.ndarray] = {}
        for run in runs:
            exemplars = []
            for ex in run.exemplars:
                rgb, sha = self._image(row["exemplar_images"][ex])
                exemplars.append(make_exemplar(rgb, sha, frames_ex[ex], size, matrix))
            self.model.new_scene(exemplars)
            for i in run.frames:
                c = self.model.step(luma_to_float(lumas[i], info))
                if shard.start_frame <= i < shard.end_frame and i not in out:
                    out[i] = c.astype(np.float16)  # 2 x h x w; half the memory, ample precision
        return out

    def _encode(self, info, spec, shard, chroma, size, path) -> int:
        """Pass 2: full-resolution luma kept as is, chroma guided up to the chroma planes."""
        cw, ch = spec.chroma_size(info.width, info.height)
        neutral = np.zeros((2, ch, cw), np.float32)
        writer = SegmentWriter(path, spec, info.width, info.height, threads=self.cfg.threads)
        try:
            pending = 0
            for i, y in iter_luma(info, shard.start_frame, shard.end_frame):
                if i in chroma:
                    y_hi = luma_to_float(y, info)
                    y_c = downsize(y_hi, (cw, ch))
                    c = guided_upsample(chroma.pop(i).astype(np.float32), downsize(y_hi, size), y_c)
                else:
                    c = neutral
                code = chroma_to_code(c, spec)
                writer.write(convert_luma(y, info, spec), code[0], code[1])
                pending += 1
                if pending == 25:
                    self.progress(shard.film_id, pending)
                    pending = 0
            writer.close()
            self.progress(shard.film_id, pending)
        except BaseException:
            writer.abort()
            raise
        if writer.frames != shard.frames:
            raise RuntimeError(f"segment has {writer.frames} frames, expected {shard.frames}")
        return writer.frames


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
