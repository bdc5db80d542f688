"""The colorize stage: one shard in, one encoded segment out. No Ray in here.

`ColorizeStage.setup()` loads the model once per actor; `process(row)` colours one shard:
pass 1 decodes the shard (plus warm-up) at working resolution and runs the propagation
runs; pass 2 decodes it again at full resolution, brings chroma up guided by the luma,
keeps the input luma as is, and encodes the segment. Exceptions never leave `process`:
the shard comes back `failed` with its error, so one bad shard cannot sink the dataset.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pipeline import log
from pipeline import storage
from pipeline.codecs import SegmentWriter, chroma_to_code, convert_luma, convert_planes, segment_spec
from pipeline.exemplar import load_rgb, make_exemplar
from pipeline.io import FilmInfo, iter_luma, load_info, luma_to_float, probe
from pipeline.model import create
from pipeline.model.upsample import downsize, guided_upsample, work_size
from pipeline.shard import Run, Shard, propagation_runs

ProgressFn = Callable[[str, str, int], None]  # (film_id, shard_id, frames of the shard done so far)


@dataclass(frozen=True)
class ColorizeConfig:
    model: str = "memnet"  # the default chosen by bench/model (beats flow by > 1 dB)
    max_side: int = 320  # working resolution: longest side in pixels
    warmup: int = 24
    threads: int = 0  # per actor; 0 = the cluster's CPUs shared out among the actors
    gpus: float = 0.0  # per actor: > 0 requests that share of a GPU and runs the model there
    fault_scenes: tuple[int, ...] = field(default=())  # drills/tests: these scenes fail on purpose
    # Drills/tests: the actor process is killed (SIGKILL) halfway through its first attempt
    # at these scenes; `drill_dir` (shared by the nodes) remembers which attempt was first.
    crash_scenes: tuple[int, ...] = field(default=())
    drill_dir: str = ""


def shard_row(shard: Shard, *, input_path: str, codec: str, exemplar_images: list[str],
              exemplar_frames: list[int], segment_path: str, info_path: str = "") -> dict:
    """A shard as a flat row (Arrow-friendly) with what an actor needs to colour it."""
    return {
        "shard_id": shard.shard_id, "film_id": shard.film_id, "index": shard.index, "scene": shard.scene,
        "start_frame": shard.start_frame, "end_frame": shard.end_frame,
        "scene_start": shard.scene_start, "scene_end": shard.scene_end,
        "exemplars": list(shard.exemplars), "low_variability": shard.low_variability,
        "input": input_path, "codec": codec, "exemplar_images": list(exemplar_images),
        "exemplar_frames": list(exemplar_frames), "segment_path": segment_path, "info_path": info_path,
    }


class ColorizeStage:
    def __init__(self, cfg: ColorizeConfig, progress: ProgressFn | None = None):
        self.cfg = cfg
        self.progress = progress or (lambda film, shard, n: None)
        self.model = None
        self._models: dict = {}
        self._films: dict[str, FilmInfo] = {}
        self._images: dict[str, tuple[np.ndarray, str]] = {}
        self._md5s: list[str] = []  # of the last segment's frames (lossless segments only)

    def setup(self) -> None:
        storage.sweep_scratch()  # what killed actors on this node left behind
        self.model = self._models[self.cfg.model] = self._create(self.cfg.model)

    def process(self, row: dict) -> dict:
        """Colour one shard. With `row["record"]` and `row["journal_uri"]` (a run), the
        outcome is written to the journal here, right after the segment is stored: the
        shard is durable even if the driver dies before it hears back."""
        t0 = time.perf_counter()
        result = {"shard_id": row["shard_id"], "status": "failed", "error": "", "segment_sha256": "",
                  "frames": 0, "seconds": 0.0}
        try:
            if row["scene"] in self.cfg.fault_scenes:
                raise RuntimeError(f"injected fault in scene {row['scene']}")
            # Built in local scratch (or beside a local run dir), checksummed, then stored
            # at its URI whole: a segment is either complete in the run dir or absent.
            staging = storage.staging_path(row["segment_path"], ".mkv")
            extra = row.get("extra_segments") or {}  # the film's other deliverable formats
            extra_staging = {k: storage.staging_path(uri, ".mkv") for k, uri in extra.items()}
            try:
                frames = self._colour_shard(row, staging, extra_staging)
                # the others first: a durable master segment (the journal's row) means all are
                extras = [f"{k}={storage.publish(extra_staging[k], uri)}" for k, uri in extra.items()]
                if self._md5s:  # the frames' hashes, for the master's framemd5 (no decoding again)
                    storage.write_bytes(row["segment_path"] + ".md5", "\n".join(self._md5s).encode())
                sha = storage.publish(staging, row["segment_path"])
            finally:
                for path in [staging, *extra_staging.values()]:
                    if os.path.exists(path):
                        os.remove(path)
            result.update(status="done", frames=frames, segment_sha256=sha, segment_extras=extras)
        except Exception as exc:  # noqa: BLE001 - recorded in the run record, never raised to Ray
            log.debug("shard %s failed: %s", row["shard_id"], traceback.format_exc())
            result["error"] = error_text(exc)
        result["seconds"] = round(time.perf_counter() - t0, 3)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if "record" not in row:
            return result
        record = {**row["record"], **{k: v for k, v in result.items() if k != "shard_id"}}
        try:
            _journal(row["journal_uri"], record)
        except Exception as exc:  # noqa: BLE001 - the driver writes the row instead
            record["error"] = record["error"] or f"journal: {error_text(exc)}"
        return record

    def _drill_crash(self, shard: Shard) -> None:
        if shard.scene not in self.cfg.crash_scenes or not self.cfg.drill_dir:
            return
        marker = os.path.join(self.cfg.drill_dir, f"crashed-{shard.shard_id}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), 9)

    def _film(self, row: dict) -> FilmInfo:
        """The driver's probe result (saved beside the segments), else a fresh probe."""
        key = row.get("info_path") or row["input"]
        if key not in self._films:
            self._films[key] = load_info(key) if row.get("info_path") else probe(row["input"])
        return self._films[key]

    def _create(self, name: str):
        # an actor that holds a GPU share runs the model's networks there (memnet; the
        # classical flow model has none and ignores it)
        return create(name, threads=self.cfg.threads, **({"device": "cuda"} if self.cfg.gpus > 0 else {}))

    def _image(self, uri: str) -> tuple[np.ndarray, str]:
        if uri not in self._images:
            self._images[uri] = load_rgb(uri)
        return self._images[uri]

    def _colour_shard(self, row: dict, segment_file: str, extra_files: dict[str, str]) -> int:
        name = row.get("model") or self.cfg.model  # a manifest may give a film its own model
        if name not in self._models:
            self._models[name] = self._create(name)
        self.model = self._models[name]
        info = self._film(row)
        spec = segment_spec(info, row["codec"])  # the master's format
        size = work_size(info.width, info.height, self.cfg.max_side)
        shard = Shard(row["shard_id"], row["film_id"], row["index"], row["scene"], row["start_frame"],
                      row["end_frame"], row["scene_start"], row["scene_end"], tuple(row["exemplars"]),
                      row["low_variability"])
        runs = []
        if not shard.low_variability and shard.exemplars:  # else neutral chroma: leader, flat frames
            runs = propagation_runs(shard, list(row["exemplar_frames"]), self.cfg.warmup)
        forward = [r for r in runs if _ascending(r.frames)]
        ahead = {f for r in forward for f in r.frames if shard.start_frame <= f < shard.end_frame}
        chroma = self._backward(info, shard, row, [r for r in runs if not _ascending(r.frames)], ahead, size,
                                spec.matrix)
        return self._encode(info, spec, shard, row, forward, chroma, size, segment_file, extra_files)

    def _exemplars(self, row: dict, run: Run, size, matrix) -> list:
        out = []
        for ex in run.exemplars:
            rgb, sha = self._image(row["exemplar_images"][ex])
            out.append(make_exemplar(rgb, sha, row["exemplar_frames"][ex], size, matrix))
        return out

    def _backward(self, info, shard, row, runs, skip, size, matrix) -> dict[int, np.ndarray]:
        """Pass 1, only for frames coloured backwards from an exemplar: frame -> chroma
        (2 x h x w, float16) at working resolution. Forward runs stream in pass 2."""
        if not runs:
            return {}
        first = min(min(r.frames) for r in runs)
        last = max(max(r.frames) for r in runs)
        # Working-resolution code values (small); made float only when stepped.
        lumas = {i: downsize(y, size) for i, y in iter_luma(info, first, last + 1)}
        out: dict[int, np.ndarray] = {}
        for run in runs:
            self.model.new_scene(self._exemplars(row, run, size, matrix))
            for i in run.frames:
                c = self.model.step(luma_to_float(lumas[i], info))
                if shard.start_frame <= i < shard.end_frame and i not in skip and i not in out:
                    out[i] = c.astype(np.float16)  # half the memory, ample precision
        return out

    def _encode(self, info, spec, shard, row, forward: list[Run], chroma, size, segment_file: str,
                extra_files: dict[str, str]) -> int:
        """Pass 2: decode once at full resolution; forward runs step the model live; the
        input luma is kept as is and chroma is guided up to the chroma planes. Each frame
        is encoded into the master's segment and, converted from the master's planes, into
        one segment per other deliverable format (`extra_files`: key -> staging path)."""
        cw, ch = spec.chroma_size(info.width, info.height)
        neutral = np.zeros((2, ch, cw), np.float32)
        starts = {r.frames[0]: r for r in forward}
        thumbs = _thumb_frames(shard) if row.get("thumb_dir") else set()
        covered = {f for r in forward for f in r.frames}
        first = min([shard.start_frame] + list(starts))
        writer = SegmentWriter(segment_file, spec, info.width, info.height, threads=self.cfg.threads)
        others = {}
        try:
            for k, path in extra_files.items():
                others[k] = SegmentWriter(path, segment_spec(info, k), info.width, info.height, threads=self.cfg.threads)
            pending = 0
            for i, y in iter_luma(info, first, shard.end_frame):
                lo = None
                if i in starts:
                    self.model.new_scene(self._exemplars(row, starts[i], size, spec.matrix))
                if i in covered:
                    lo = work_luma(y, info, size)
                    c_lo = self.model.step(lo)
                elif i in chroma:
                    c_lo = chroma.pop(i).astype(np.float32)
                else:
                    c_lo = None
                if i < shard.start_frame:
                    continue  # warm-up frame: state only
                if c_lo is None:
                    c = neutral
                else:
                    if lo is None:
                        lo = work_luma(y, info, size)
                    c = guided_upsample(c_lo, lo, downsize(luma_to_float(y, info), (cw, ch)))
                code = chroma_to_code(c, spec)
                y_out = convert_luma(y, info, spec)
                writer.write(y_out, code[0], code[1])
                for w in others.values():
                    w.write(*convert_planes(y_out, code[0], code[1], spec, w.spec))
                if i in thumbs:
                    try:
                        write_thumbs(row["thumb_dir"], i, luma_to_float(y, info), c, spec.matrix)
                    except (OSError, storage.StorageError) as exc:  # the review page shows a placeholder
                        log.debug("thumbnail of frame %d not written: %s", i, exc)
                pending += 1
                if pending == max(1, shard.frames // 2):
                    self._drill_crash(shard)
                if pending % 25 == 0:
                    self.progress(shard.film_id, shard.shard_id, pending)
            writer.close()
            for w in others.values():
                w.close()
            self._md5s = writer.md5s
            self.progress(shard.film_id, shard.shard_id, pending)
        except BaseException:
            for w in [writer, *others.values()]:
                w.abort()
            raise
        if writer.frames != shard.frames:
            raise RuntimeError(f"segment has {writer.frames} frames, expected {shard.frames}")
        return writer.frames


def error_text(exc: BaseException) -> str:
    """One line for the run record: our own errors as they are, a full disk in words,
    others with their type."""
    import errno

    from pipeline.errors import FilmcolorError

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = getattr(exc, "filename", None)
        return f"no space left on device{f' ({where})' if where else ''}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, FilmcolorError) else f"{type(exc).__name__}: {text}"


def _journal(uri: str, record: dict) -> None:
    import json

    storage.makedirs(storage.parent(uri))
    storage.write_bytes(uri, json.dumps(record, sort_keys=True).encode())


def _thumb_frames(shard: Shard) -> set[int]:
    from pipeline.report import thumb_frames

    return {f for f in thumb_frames(shard.scene_start, shard.scene_end) if shard.start_frame <= f < shard.end_frame}


def write_thumbs(folder: str, frame: int, luma: np.ndarray, chroma: np.ndarray, matrix: str) -> None:
    """The review page's thumbnails of one frame, made while it is coloured (no decoding
    of the output again): input (grey) and output, small JPEGs (pipeline.report)."""
    import cv2

    from pipeline.colour import ycbcr_to_rgb
    from pipeline.report import THUMB_WIDTH, encode_thumb

    h, w = luma.shape
    size = (THUMB_WIDTH, max(2, round(h * THUMB_WIDTH / w)))
    y = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
    c = np.stack([cv2.resize(ch, size, interpolation=cv2.INTER_AREA) for ch in chroma])
    rgb = ycbcr_to_rgb(np.concatenate([y[None], c]), matrix)
    storage.makedirs(folder)
    for kind, img in (("in", y), ("out", rgb[..., ::-1])):  # encode_thumb takes gray or BGR
        u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        storage.write_bytes(storage.join(folder, f"{frame:07d}-{kind}.jpg"), encode_thumb(np.ascontiguousarray(u8)))


def work_luma(y: np.ndarray, info: FilmInfo, size: tuple[int, int]) -> np.ndarray:
    """Full-resolution luma code values -> H x W float32 [0, 1] at working resolution.
    The one conversion both passes use, so a frame looks the same to the model either way."""
    return luma_to_float(downsize(y, size), info)


def _ascending(frames: tuple[int, ...]) -> bool:
    return len(frames) < 2 or frames[1] > frames[0]
