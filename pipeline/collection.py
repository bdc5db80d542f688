"""A run: every film of a collection through the stages, in data-flow order, as one stream.

    prepared films ─ plan (Ray task per film: scan + shard plan, journaled)
                   ─ colorize (one actor pool for the whole run; shards of all films)
                   ─ assemble (Ray task per film, as soon as its last shard is durable)
                   ─ record (journal rows as units finish; tables compacted per film)

Film k+1 is scanned while film k is coloured; a film is published while the others go
on; one film failing does not stop the rest. Everything durable is in the journal, so
the same command after a crash redoes only what has no durable row: published films are
skipped (sha256 checked), planned films are not scanned again, finished shards are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import time
from dataclasses import dataclass, field

from pipeline import cluster, log, storage
from pipeline.storage import s3
from pipeline.assemble import publish_deliverable
from pipeline.codecs import extra_segment_keys, segment_key
from pipeline.colorize import ColorizeStage, error_text, shard_row
from pipeline.errors import FilmcolorError
from pipeline.journal import Journal
from pipeline.plan import FilmPlan, PlanStage, PreparedFilm, segment_dir
from pipeline.progress import Progress
from pipeline.shard import Shard

class RecordError(FilmcolorError):
    """The run record could not be kept (exit 1; what is durable stays durable)."""


# Drills/tests: the driver kills itself (SIGKILL) at this point of the run ("planned": a
# film's plan is journaled, no shard handed out; "published": a film's output is published,
# its row not yet written), to prove a resume from there.
DRILL_ENV = "FILMCOLOR_DRILL_DRIVER_KILL"
PLAN_AHEAD = 2  # films planned ahead of the colouring (bounded: plans hold frame tables)


@dataclass
class FilmOutcome:
    film_id: str
    output: str
    run_dir: str
    status: str  # done | failed | skipped (already published)
    shards: int
    failed: int
    frames: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class _Film:
    prep: PreparedFilm
    t0: float = field(default_factory=time.perf_counter)
    plan: FilmPlan | None = None
    records: dict = field(default_factory=dict)  # shard_id -> latest durable row
    waiting: set = field(default_factory=set)  # shard ids still being coloured
    status: str = "queued"
    error: str = ""
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    out_sha: str = ""
    delivered: dict = field(default_factory=dict)  # output index -> publish_deliverable's result
    assembling: int = 0  # deliverables still being made
    seconds: float = 0.0  # wall time from the run's start to this film's end (0: skipped)


def shard_record(s: Shard, model_info: dict, ex_shas: list[str], seg: str, attempts: int) -> dict:
    """A shard's run-record row before colouring; the actor fills in the outcome."""
    return {
        "shard_id": s.shard_id, "film_id": s.film_id, "index": s.index, "scene": s.scene,
        "start_frame": s.start_frame, "end_frame": s.end_frame, "status": "pending", "error": "",
        "attempts": attempts, "model": model_info, "exemplar_sha256": [ex_shas[i] for i in s.exemplars],
        "segment_uri": seg, "segment_sha256": "", "frames": 0, "seconds": 0.0, "peak_rss_mb": None,
        "segment_extras": [],
    }


def thumb_dir(run_dir: str, film_id: str) -> str:
    """Review thumbnails the actors make while they colour (see pipeline.report)."""
    from pipeline.names import join_inside

    return join_inside(run_dir, "thumbs", film_id)


def _shas(plan: FilmPlan) -> list[str]:
    return [g.sha256 for g in plan.guides]


def segment_uri(run_dir: str, s: Shard) -> str:
    return storage.join(segment_dir(run_dir, s.film_id), f"{s.index:05d}-{s.shard_id}.mkv")


def extra_uri(segment: str, key: str) -> str:
    """The segment of another deliverable format, beside the master's."""
    return segment[:-len(".mkv")] + f".{key}.mkv"


class Collection:
    """One run over `films` (already checked) with `cfg` (a job.JobConfig)."""

    def __init__(self, films: list[PreparedFilm], cfg, run_dir: str, model_infos: dict[str, dict],
                 auto_info: dict | None = None):
        self.films = {f.film_id: _Film(f) for f in films}
        self.auto_info = auto_info  # the automatic colorizer (name, version, weights sha256)
        self.order = [f.film_id for f in films]
        self.cfg, self.run_dir, self.model_infos = cfg, run_dir, model_infos
        self.journal = Journal(run_dir)
        self.refs: dict = {}  # ref -> (kind, film_id)
        self.progress: Progress | None = None
        self.record_error = ""

    # --- the run ----------------------------------------------------------------------
    def run(self) -> list[FilmOutcome]:
        """The caller holds the run directory's lock (pipeline.runlock)."""
        todo = [fid for fid in self.order if not self._published(self.films[fid])]
        if todo:
            self._stream(todo)
        self._record(self.journal.compact, self.order)
        if self.record_error:
            raise RecordError(f"{self.run_dir}: the run record could not be written ({self.record_error}); "
                              "free the space or fix access, then run the same command again to resume")
        return [self._outcome(self.films[fid]) for fid in self.order]

    def _record(self, fn, *args) -> bool:
        """Write to the run record; a failure (disk full, storage gone) is remembered and
        reported at the end, while the run goes on with what it has in memory."""
        try:
            fn(*args)
            return True
        except (OSError, FilmcolorError) as exc:
            self.record_error = self.record_error or error_text(exc)
            log.error("run record: %s", error_text(exc))
            return False

    def _stream(self, todo: list[str]) -> None:
        cfg = self.cfg
        workers = cfg.workers or cluster.cluster_cpus()
        col_cfg = cfg.colorize
        if col_cfg.threads <= 0:  # the CPUs the pool leaves over (1 worker on 2 cores codes on 2)
            col_cfg = dataclasses.replace(col_cfg, threads=max(1, cluster.cluster_cpus() // workers))
        sink = cluster.make_sink() if cfg.progress else None
        pool = cluster.StagePool(functools.partial(ColorizeStage, col_cfg), workers, sink,
                                 num_gpus=col_cfg.gpus)
        self.progress = Progress({fid: self.films[fid].prep.info.frame_count for fid in todo},
                                 rates={fid: float(self.films[fid].prep.info.avg_rate) for fid in todo}) \
            if cfg.progress else None
        queue = list(todo)
        planner = PlanStage(cfg.scenes, cfg.plan, task_cpus=0)
        log.info("%d film(s), %d colour actors", len(todo), workers)
        try:
            while queue or self.refs or pool.busy:
                while queue and sum(1 for k, _ in self.refs.values() if k == "plan") < PLAN_AHEAD:
                    fid = queue.pop(0)
                    self.films[fid].status = "planning"
                    self.refs[cluster.run_task(_plan, planner, self.films[fid].prep)] = ("plan", fid)
                # In flight, durably, before it starts: a resume after a crash counts it as an
                # attempt (the actor's own row replaces this one when the shard is done).
                for ref, _ in pool.dispatch(before=lambda row: self._record(self.journal.record_shard,
                                                                             row["record"])):
                    self.refs[ref] = ("shard", None)
                for ref in cluster.wait(list(self.refs), timeout=0.5):
                    kind, fid = self.refs.pop(ref)
                    if kind == "plan":
                        self._planned(fid, ref, pool)
                    elif kind == "shard":
                        row, result, error = pool.finish(ref)
                        if error != "retry":
                            self._coloured(row, result, error)
                    else:
                        self._assembled(fid[0], fid[1], ref)
                for row in pool.fail_queued():
                    self._coloured(row, None, "no colour actor is left (every one died)")
                self._show(sink)
        finally:
            pool.shutdown()
            if self.progress:
                self._show(sink)
                self.progress.close()
            if sink is not None:
                cluster.kill(sink)

    # --- stage transitions --------------------------------------------------------------
    def _planned(self, fid: str, ref, pool) -> None:
        film = self.films[fid]
        try:
            film.plan = cluster.get(ref)
        except Exception as exc:  # noqa: BLE001 - the film fails, the others go on
            self._fail(film, f"plan: {_reason(exc)}")
            return
        film.timings["scan"] = film.plan.scan_seconds
        self._drill("planned")
        prior = self.journal.shard_rows(fid)
        prep = film.prep
        for s in film.plan.shards:
            seg = segment_uri(self.run_dir, s)
            old = prior.get(s.shard_id)
            if s.scene not in prep.force_scenes and self._reusable(old, s, film, seg):
                film.records[s.shard_id] = old
                continue
            rec = shard_record(s, self.model_infos[prep.model], _shas(film.plan), seg,
                               (old or {}).get("attempts", 0) + 1)
            film.records[s.shard_id] = rec
            film.waiting.add(s.shard_id)
            pool.submit(self._row(film, s, rec))
        done = sum(r["frames"] for r in film.records.values() if r["status"] == "done")
        if done:
            log.info("%s: %d shard(s) finished by an earlier run kept", fid,
                     len(film.plan.shards) - len(film.waiting))
        film.status = "colouring"
        film.t_col = time.perf_counter()
        if self.progress:
            self.progress.keep(fid, done)
        if not film.waiting:
            self._assemble(film)

    def _row(self, film: _Film, s: Shard, rec: dict) -> dict:
        p, guides = film.prep, film.plan.guides
        row = shard_row(s, input_path=p.input, codec=p.codec, exemplar_images=[g.image for g in guides],
                        exemplar_frames=[g.frame for g in guides], segment_path=rec["segment_uri"],
                        info_path=film.plan.info_path)
        row["thumb_dir"] = thumb_dir(self.run_dir, s.film_id)
        row["extra_segments"] = {k: extra_uri(rec["segment_uri"], k) for k in extra_segment_keys(p.codecs)}
        row["record"] = rec
        row["model"] = p.model
        row["journal_uri"] = self.journal.shard_uri(s.film_id, s.shard_id)
        return row

    def _reusable(self, old, s: Shard, film: _Film, seg: str) -> bool:
        shas = _shas(film.plan)
        extras = dict(e.split("=", 1) for e in (old or {}).get("segment_extras") or [])
        return bool(old and old["status"] == "done" and old["model"] == self.model_infos[film.prep.model]
                    and old["exemplar_sha256"] == [shas[i] for i in s.exemplars]
                    and storage.stored_sha256(seg) == old["segment_sha256"]
                    and all(k in extras and storage.stored_sha256(extra_uri(seg, k)) == extras[k]
                            for k in extra_segment_keys(film.prep.codecs)))

    def _coloured(self, row: dict, result: dict | None, error: str) -> None:
        film = self.films[row["film_id"]]
        rec = result if result is not None else {**row["record"], "status": "failed", "error": error}
        if result is None:  # the actor could not write its row: the driver does
            self._record(self.journal.record_shard, rec)
        film.records[rec["shard_id"]] = rec
        film.waiting.discard(rec["shard_id"])
        if rec["status"] != "done":
            log.error("%s: scene %d (frames %d-%d) failed: %s", film.prep.film_id, rec["scene"],
                      rec["start_frame"], rec["end_frame"], rec["error"])
        if not film.waiting and film.status == "colouring":
            film.timings["colorize"] = time.perf_counter() - film.t_col
            failed = [r for r in film.records.values() if r["status"] != "done"]
            if failed:
                self._fail(film, f"{len(failed)} of {len(film.records)} shards failed "
                                 f"(first: scene {failed[0]['scene']}: {failed[0]['error']})")
            else:
                self._assemble(film)

    def _assemble(self, film: _Film) -> None:
        """Every deliverable from the same segments, each its own task (they encode in
        parallel, beside the colouring of the next films)."""
        film.status = "assembling"
        film.t_asm = time.perf_counter()
        shards = sorted(film.plan.shards, key=lambda s: s.index)
        master = [(s, film.records[s.shard_id]["segment_uri"]) for s in shards]
        # The driver's part-size setting, as data: the task's process has the run's env.
        forced = os.environ.get(s3.ENV_PART_SIZE)
        p = film.prep
        film.delivered, film.assembling = {}, len(p.outputs)
        master_key = segment_key(p.codec)
        for k, (output, codec) in enumerate(zip(p.outputs, p.codecs)):
            key = segment_key(codec)
            # the master's segments, or those the actors encoded in this deliverable's format
            seg_codec, segs = (p.codec, master) if key == master_key else \
                (key, [(s, extra_uri(uri, key)) for s, uri in master])
            self.refs[cluster.run_task(publish_deliverable, p.info, seg_codec, codec, segs, output,
                                       int(forced) if forced else None, here=True)] = ("assemble", (p.film_id, k))

    def _assembled(self, fid: str, k: int, ref) -> None:
        film = self.films[fid]
        film.assembling -= 1
        try:
            film.delivered[k] = cluster.get(ref)
        except Exception as exc:  # noqa: BLE001
            film.delivered[k] = {"error": f"assembly of {film.prep.outputs[k]}: {_reason(exc)}"}
        if film.assembling:
            return
        film.timings["assemble"] = time.perf_counter() - film.t_asm
        errors = [d["error"] for _, d in sorted(film.delivered.items()) if "error" in d]
        if errors:
            self._fail(film, errors[0])
            return
        film.warnings = [w for _, d in sorted(film.delivered.items()) for w in d["warnings"]]
        film.out_sha = film.delivered[0]["sha256"]
        film.status = "done"
        self._drill("published")
        self._finish(film)

    def _fail(self, film: _Film, error: str) -> None:
        film.status, film.error = "failed", error
        log.error("%s: %s", film.prep.film_id, error)
        self._finish(film)

    def _finish(self, film: _Film) -> None:
        """The film's row is durable, then the readable tables are compacted."""
        film.seconds = time.perf_counter() - film.t0
        if self._record(self.journal.record_film, self._film_row(film)):
            self._record(self.journal.compact, [film.prep.film_id])
        secs = time.perf_counter() - film.t0
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in film.timings.items())
        log.info("%s: %s in %.1fs%s", film.prep.film_id, film.status, secs, f" ({parts})" if parts else "")

    # --- bookkeeping ---------------------------------------------------------------------
    def _drill(self, point: str) -> None:
        if os.environ.get(DRILL_ENV) == point:
            os.kill(os.getpid(), signal.SIGKILL)

    def _published(self, film: _Film) -> bool:
        """Published by an earlier run with the same inputs, and the output still matches."""
        p = film.prep
        if p.force_scenes:
            return False
        row = self.journal.film_row(p.film_id)
        ok = bool(row and row["status"] == "done" and row.get("output") == p.output
                  and row.get("model") == self.model_infos[p.model] and row.get("exemplar_sha256") == p.exemplar_shas
                  and row.get("exemplar_frames") == p.exemplar_frames
                  and (row.get("hint_sha256") or []) == [h.sha256 for h in p.hints]
                  and (row.get("hint_frames") or []) == [h.frame for h in p.hints]
                  and row.get("auto_model") in (None, self.auto_info)
                  and (row.get("outputs") or [row.get("output")]) == p.outputs
                  and (row.get("codecs") or [row.get("codec")]) == p.codecs
                  and row.get("output_sha256")
                  and storage.stored_sha256(p.output if not _is_seq(p.output) else
                                            fixity_uri(p.output)) == row["output_sha256"])
        if ok:
            film.status, film.out_sha = "skipped", row["output_sha256"]
            film.warnings = list(row.get("warnings") or [])
            log.info("%s: already published by an earlier run (sha256 matches); skipped", p.film_id)
        return ok

    def _film_row(self, film: _Film) -> dict:
        p, info = film.prep, film.prep.info
        return {
            "film_id": p.film_id, "input": p.input, "output": p.output, "status": film.status, "error": film.error,
            "frames": info.frame_count, "width": info.width, "height": info.height, "pix_fmt": info.pix_fmt,
            "codec": p.codec, "model": self.model_infos[p.model], "exemplars": p.exemplar_images,
            "exemplar_frames": p.exemplar_frames, "exemplar_sha256": p.exemplar_shas, "warnings": film.warnings,
            "hints": [h.image for h in p.hints], "hint_frames": [h.frame for h in p.hints],
            "hint_sha256": [h.sha256 for h in p.hints], "fps": float(info.avg_rate),
            "auto_model": self.auto_info if film.plan is not None and film.plan.uses_auto else None,
            "output_sha256": film.out_sha, "seconds": round(time.perf_counter() - film.t0, 3),
            "outputs": p.outputs, "codecs": p.codecs,
            "output_sha256s": [film.delivered.get(k, {}).get("sha256", "") for k in range(len(p.outputs))],
            "framemd5_uris": [film.delivered.get(k, {}).get("framemd5_uri", "") for k in range(len(p.outputs))],
            "sha256_uris": [film.delivered.get(k, {}).get("sha256_uri", "") for k in range(len(p.outputs))],
            "qc": [film.delivered.get(k, {}).get("qc", "") for k in range(len(p.outputs))],
            "start_timecode": info.start_timecode, "rate": str(info.avg_rate),
            **{f"{k}_seconds": round(v, 3) for k, v in film.timings.items()},
        }

    def _outcome(self, film: _Film) -> FilmOutcome:
        recs = film.records.values()
        return FilmOutcome(film.prep.film_id, film.prep.output, self.run_dir, film.status, len(film.records),
                           sum(1 for r in recs if r["status"] != "done"), film.prep.info.frame_count,
                           round(film.seconds, 3), film.warnings, film.error)

    def _show(self, sink) -> None:
        if not self.progress or sink is None:
            return
        try:
            live = cluster.get_nowait(sink.totals.remote())
        except Exception:  # noqa: BLE001 - progress is best effort
            return
        for fid, f in self.films.items():
            if fid not in self.progress.totals:
                continue
            kept = sum(r["frames"] for r in f.records.values() if r["status"] == "done"
                       and r["shard_id"] not in f.waiting)
            frames = f.prep.info.frame_count if f.status == "done" else min(f.prep.info.frame_count,
                                                                             kept + live.get(fid, 0))
            self.progress.set(fid, frames, status=f.status)


def _is_seq(output: str) -> bool:
    from pipeline.codecs import is_sequence_output

    return is_sequence_output(output)


def fixity_uri(output: str) -> str:
    """Where a sequence deliverable's checksum list lives (its sha256 stands for the
    sequence in the run record)."""
    from pipeline import fixity

    folder = storage.parent(output)
    return fixity.sidecar_uris(folder)[1]


def _plan(stage: PlanStage, film: PreparedFilm) -> FilmPlan:
    stage.setup()
    return stage.process(film)


def _reason(exc: BaseException) -> str:
    """The error a stage raised, without Ray's wrapping (a task's exception arrives as
    RayTaskError(OriginalType))."""
    return error_text(getattr(exc, "cause", None) or exc)
