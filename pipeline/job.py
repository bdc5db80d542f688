"""The whole job for one film: probe, scan, plan, colorize, assemble, run record.

Everything the user gave is validated before any work starts (bad input: InputError,
nothing written). Shard failures do not stop the other shards; the film is assembled
only if every shard is done, and the run record says which failed and why.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass, field

from pipeline import log, storage
from pipeline.assemble import Segment, assemble
from pipeline.codecs import codec_for, muxer_for, output_spec
from pipeline.colorize import ColorizeConfig, ColorizeStage, shard_row
from pipeline.errors import FilmcolorError, InputError, ShardFailures
from pipeline.exemplar import ExemplarSpec, load_rgb, parse_spec, resolve_frame
from pipeline.io import FilmInfo, frame_time, probe, save_info
from pipeline.model import create
from pipeline.progress import Progress
from pipeline.record import default_run_dir, merge_rows, read_table, write_table
from pipeline.shard import PlanConfig, Shard, plan_shards


@dataclass(frozen=True)
class JobConfig:
    workers: int | None = None  # actors; default: the cluster's CPUs
    address: str | None = None  # existing Ray cluster; default: embedded local Ray
    codec: str | None = None  # default: from the output's extension
    plan: PlanConfig = field(default_factory=PlanConfig)
    colorize: ColorizeConfig = field(default_factory=ColorizeConfig)
    scenes: object | None = None  # pipeline.scenes.SceneConfig; None = defaults
    progress: bool = True


@dataclass
class FilmJob:
    film_id: str
    input: str
    output: str
    exemplars: list[ExemplarSpec]
    run_dir: str | None = None
    codec: str | None = None  # overrides JobConfig.codec (manifests: per film)
    force_scenes: frozenset[int] = frozenset()  # redo these scenes even if done (reprocess)


@dataclass
class FilmResult:
    film_id: str
    output: str
    run_dir: str
    status: str
    shards: int
    failed: int
    frames: int
    seconds: float
    warnings: list[str]


def film_id_of(path: str) -> str:
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0] or "film"


def validate(job: FilmJob, cfg: JobConfig, info: FilmInfo) -> tuple[str, list[int], list[str]]:
    """Check everything the user gave against the film; returns (codec, frames, shas)."""
    codec = codec_for(job.output, job.codec or cfg.codec)
    if not job.exemplars:
        raise InputError("at least one --exemplar IMAGE@FRAME is needed")
    frames, shas = [], []
    for spec in job.exemplars:
        frames.append(resolve_frame(spec.at, info))
        _, sha = load_rgb(spec.image)
        shas.append(sha)
    return codec, frames, shas


def check_output(job: FilmJob, cfg: JobConfig) -> None:
    """The output can be written and does not clobber the input; the input can be read.
    All before any work, each failure one exit-2 line naming the URI."""
    codec_for(job.output, job.codec or cfg.codec)
    if storage.is_s3(job.output) == storage.is_s3(job.input) and _same(job.output, job.input):
        raise InputError(f"{job.output}: output would overwrite the input")
    storage.check_readable(job.input)
    storage.check_writable(job.output)


def _same(a: str, b: str) -> bool:
    return a == b if storage.is_s3(a) else os.path.abspath(a) == os.path.abspath(b)


def _prepare_run_dir(run_dir: str) -> None:
    """Create the run directory (local) or check it can be written (S3), before any work."""
    if storage.is_s3(run_dir):
        storage.check_writable(storage.join(run_dir, "films.parquet"))
    else:
        try:
            storage.makedirs(run_dir)
        except OSError as exc:
            raise InputError(f"{run_dir}: cannot create the run directory ({exc.strerror})") from None


def run_film(job: FilmJob, cfg: JobConfig) -> FilmResult:
    from pipeline.raydata import cluster_cpus, init_ray, run_stage
    from pipeline.scenes import scan_scenes

    t0 = time.perf_counter()
    check_output(job, cfg)
    # Every stage reads the film by its URI (ranged GETs for S3): no driver-only copy.
    path = job.input
    info = probe(path)
    codec, ex_frames, ex_shas = validate(job, cfg, info)
    spec = dataclasses.replace(output_spec(info, codec), container=muxer_for(job.output))
    run_dir = job.run_dir or default_run_dir(job.output)
    _prepare_run_dir(run_dir)
    seg_dir = storage.join(run_dir, "segments", job.film_id)
    storage.makedirs(seg_dir)
    init_ray(cfg.address, cfg.workers)
    workers = cfg.workers or cluster_cpus()
    log.info("%s: %d frames %dx%d %s; scanning scenes", job.film_id, info.frame_count, info.width,
             info.height, info.pix_fmt)
    t_scan = time.perf_counter()
    scenes = scan_scenes(path, info, cfg.scenes)
    timings = {"scan": time.perf_counter() - t_scan}
    similarity = _similarities(info, scenes, job.exemplars, ex_frames, spec.matrix)
    shards = plan_shards(job.film_id, scenes, ex_frames, cfg.plan, similarity)
    log.info("%s: %d scenes, %d shards, %d workers", job.film_id, len(scenes), len(shards), workers)
    model = create(cfg.colorize.model)
    model_info = {"name": model.name, "version": model.version, "weights_sha256": model.weights_sha256()}
    prior = {r["shard_id"]: r for r in read_table(run_dir, "shards") if r["film_id"] == job.film_id}
    reusable = {k: v for k, v in prior.items() if v["scene"] not in job.force_scenes}
    todo, reused = _split_done(shards, reusable, seg_dir, model_info, ex_shas)
    info_path = storage.join(seg_dir, "film-info.json")
    save_info(info, info_path)
    rows = [shard_row(s, input_path=path, codec=codec, exemplar_images=[e.image for e in job.exemplars],
                      exemplar_frames=ex_frames, segment_path=_segment_path(seg_dir, s), info_path=info_path)
            for s in todo]
    progress = Progress({job.film_id: info.frame_count}) if cfg.progress else None
    if progress:
        progress.set(job.film_id, sum(s.frames for s in shards if s.shard_id in reused))
    # Threads per actor: the CPUs the pool leaves over (1 worker on 2 cores encodes on 2).
    col_cfg = cfg.colorize
    if col_cfg.threads <= 0:
        col_cfg = dataclasses.replace(col_cfg, threads=max(1, cluster_cpus() // max(1, min(workers, len(rows) or 1))))
    factory = functools.partial(ColorizeStage, col_cfg)
    t_col = time.perf_counter()
    results = {r["shard_id"]: r for r in run_stage(rows, factory, workers, progress)}
    timings["colorize"] = time.perf_counter() - t_col
    if progress:
        progress.close()
    shard_rows = []
    for s in shards:
        if s.shard_id in reused:
            shard_rows.append(reused[s.shard_id])
            continue
        r = results.get(s.shard_id) or {"status": "failed", "error": "no result came back from Ray",
                                          "segment_sha256": "", "frames": 0, "seconds": 0.0, "peak_rss_mb": None}
        attempts = (prior.get(s.shard_id) or {}).get("attempts", 0) + 1
        shard_rows.append(_shard_record(s, r, attempts, model_info, ex_shas, _segment_path(seg_dir, s)))
    write_table(run_dir, "shards", merge_rows(read_table(run_dir, "shards"), shard_rows, "shard_id",
                                              ("film_id", job.film_id)))
    write_table(run_dir, "scenes", merge_rows(read_table(run_dir, "scenes"),
                                              _scene_rows(job.film_id, info, scenes, ex_frames, similarity),
                                              "scene", ("film_id", job.film_id)))
    failed = [r for r in shard_rows if r["status"] != "done"]
    warnings: list[str] = []
    status, error, out_sha = "failed", "", ""
    if failed:
        error = f"{len(failed)} of {len(shards)} shards failed (first: scene {failed[0]['scene']}: {failed[0]['error']})"
    else:
        segments = [Segment(s, _segment_path(seg_dir, s)) for s in shards]
        t_asm = time.perf_counter()
        try:
            warnings, out_sha = _assemble_and_publish(info, spec, segments, job.output)
            status = "done"
        except FilmcolorError as exc:
            error = f"assembly: {exc}"
            log.error("%s: %s", job.film_id, error)
        timings["assemble"] = time.perf_counter() - t_asm
    seconds = time.perf_counter() - t0
    film_row = {
        "film_id": job.film_id, "input": job.input, "output": job.output, "status": status, "error": error,
        "frames": info.frame_count, "width": info.width, "height": info.height, "pix_fmt": info.pix_fmt,
        "codec": codec, "model": model_info, "exemplars": [e.image for e in job.exemplars],
        "exemplar_frames": ex_frames, "warnings": warnings, "output_sha256": out_sha, "seconds": round(seconds, 3),
        **{f"{k}_seconds": round(v, 3) for k, v in timings.items()},
    }
    log.info("%s: %s in %.1fs (%s)", job.film_id, status, seconds,
             ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    write_table(run_dir, "films", merge_rows(read_table(run_dir, "films"), [film_row], "film_id"))
    result = FilmResult(job.film_id, job.output, run_dir, status, len(shards), len(failed), info.frame_count,
                        seconds, warnings)
    if status != "done":
        raise ShardFailures(f"{job.film_id}: {error}; run record: {run_dir}")
    return result


def _assemble_and_publish(info, spec, segments, output: str) -> tuple[list[str], str]:
    """Build the film in staging (beside a local output, node scratch for S3), then make
    it visible at `output` whole. Nothing is left at `output` or in scratch on failure."""
    staging = storage.staging_path(output, os.path.splitext(output)[1])
    try:
        warnings = assemble(info, spec, segments, staging)
        sha = storage.file_sha256(staging)
        storage.publish(staging, output, sha)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return warnings, sha


def _segment_path(seg_dir: str, s: Shard) -> str:
    return storage.join(seg_dir, f"{s.index:05d}-{s.shard_id}.mkv")


def _split_done(shards, prior, seg_dir, model_info, ex_shas):
    """Shards a previous run finished with the same model and exemplars, segment intact."""
    reused = {}
    for s in shards:
        old = prior.get(s.shard_id)
        path = _segment_path(seg_dir, s)
        if (old and old["status"] == "done" and old["model"] == model_info
                and old["exemplar_sha256"] == [ex_shas[i] for i in s.exemplars]
                and storage.stored_sha256(path) == old["segment_sha256"]):
            reused[s.shard_id] = old
    if reused:
        log.info("skipping %d shards finished by an earlier run", len(reused))
    return [s for s in shards if s.shard_id not in reused], reused


def _shard_record(s: Shard, r: dict, attempts: int, model_info: dict, ex_shas: list[str], seg: str) -> dict:
    return {
        "shard_id": s.shard_id, "film_id": s.film_id, "index": s.index, "scene": s.scene,
        "start_frame": s.start_frame, "end_frame": s.end_frame, "status": r["status"], "error": r["error"],
        "attempts": attempts, "model": model_info, "exemplar_sha256": [ex_shas[i] for i in s.exemplars],
        "segment_uri": seg if r["status"] == "done" else "", "segment_sha256": r["segment_sha256"],
        "frames": r["frames"], "seconds": r["seconds"], "peak_rss_mb": r.get("peak_rss_mb"),
    }


def _similarities(info, scenes, exemplars, ex_frames, matrix) -> dict | None:
    """Luminance similarity of each scene lacking an exemplar to each exemplar image."""
    from pipeline.exemplar import exemplar_luma, scene_similarities

    lacking = [s for s in scenes if not getattr(s, "low_variability", False)
               and not any(s.start_frame <= f < s.end_frame for f in ex_frames)]
    if not lacking:
        return None
    lumas = [exemplar_luma(load_rgb(e.image)[0], matrix=matrix) for e in exemplars]
    sims = scene_similarities(info, lacking, lumas)
    return {s.scene: sims.get(s.scene, [0.0] * len(exemplars)) for s in scenes}


def _scene_rows(film_id, info, scenes, ex_frames, similarity) -> list[dict]:
    from pipeline.scenes.export import timecode_of
    from pipeline.shard import assign_exemplars

    assigned = assign_exemplars(scenes, ex_frames, similarity)
    rows = []
    for sc in scenes:
        a = assigned[sc.scene]
        rows.append({
            "film_id": film_id, "scene": sc.scene, "start_frame": sc.start_frame, "end_frame": sc.end_frame,
            "start_time": float(frame_time(info, sc.start_frame)), "end_time": float(frame_time(info, sc.end_frame)),
            "start_timecode": timecode_of(info, sc.start_frame), "transition": sc.transition, "score": float(sc.score),
            "low_variability": bool(getattr(sc, "low_variability", False)), "exemplars": list(a.exemplars),
            "exemplar_source": a.source, "exemplar_similarity": a.similarity,
        })
    return rows


def parse_exemplars(texts: list[str]) -> list[ExemplarSpec]:
    return [parse_spec(t) for t in texts]


def run_manifest(path: str, run_dir: str | None, cfg: JobConfig) -> list[FilmResult]:
    """Every film of a manifest, checked together first; one film's failure does not stop
    the others. Raises ShardFailures (exit 1) at the end if any film failed."""
    from pipeline import manifest

    m = manifest.load(path)
    manifest.check_frames(m)
    run_dir = run_dir or manifest.default_run_dir(path)
    results, failures = [], []
    for film in m.films:
        fcfg = cfg
        if film.model:
            fcfg = dataclasses.replace(cfg, colorize=dataclasses.replace(cfg.colorize, model=film.model))
        try:
            results.append(run_film(FilmJob(film.id, film.input, film.output, film.exemplars, run_dir,
                                            codec=film.codec), fcfg))
        except FilmcolorError as exc:
            log.error("%s", exc)
            failures.append(f"{film.id}: {exc}")
    if failures:
        raise ShardFailures(f"{len(failures)} of {len(m.films)} films failed; run record: {run_dir}")
    return results


def reprocess(run_dir: str, scenes: list[int], failed: bool, exemplars: list[str], cfg: JobConfig,
              film_id: str | None = None) -> list[FilmResult]:
    """Redo part of a recorded run, then reassemble: named scenes, failed shards, and every
    scene whose exemplar changed (a new --exemplar, or an exemplar image edited in place:
    its sha256 no longer matches the record). Everything else is reused."""
    films = [f for f in read_table(run_dir, "films") if film_id in (None, f["film_id"])]
    if not films:
        raise InputError(f"{run_dir}: no run record" + (f" for film {film_id!r}" if film_id else ""))
    if not (scenes or failed or exemplars):
        raise InputError("nothing to reprocess: give --scene N, --failed or --exemplar IMAGE@FRAME")
    new_specs = parse_exemplars(exemplars)
    results = []
    for f in films:
        if failed and not scenes and not new_specs and f["status"] == "done":
            continue
        specs = [ExemplarSpec(img, str(fr)) for img, fr in zip(f["exemplars"], f["exemplar_frames"])]
        specs = _apply_new_exemplars(f, specs, new_specs, run_dir)
        fcfg = dataclasses.replace(cfg, colorize=dataclasses.replace(cfg.colorize, model=f["model"]["name"]))
        job = FilmJob(f["film_id"], f["input"], f["output"], specs, run_dir, codec=f["codec"],
                      force_scenes=frozenset(scenes))
        results.append(run_film(job, fcfg))
    return results


def _apply_new_exemplars(film: dict, specs: list[ExemplarSpec], new: list[ExemplarSpec], run_dir: str):
    """A new exemplar replaces the recorded exemplar(s) of the scene its frame falls in."""
    if not new:
        return specs
    scenes = [s for s in read_table(run_dir, "scenes") if s["film_id"] == film["film_id"]]
    info = probe(film["input"])
    frames_new = [resolve_frame(s.at, info) for s in new]
    frames_old = [resolve_frame(s.at, info) for s in specs]

    def scene_of(frame):
        return next((s["scene"] for s in scenes if s["start_frame"] <= frame < s["end_frame"]), None)

    replaced = {scene_of(fr) for fr in frames_new}
    kept = [s for s, fr in zip(specs, frames_old) if scene_of(fr) not in replaced]
    return kept + [ExemplarSpec(s.image, str(fr)) for s, fr in zip(new, frames_new)]
