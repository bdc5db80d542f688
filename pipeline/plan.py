"""The plan stage: one film's scene scan and shard plan. No Ray in here.

Input: a `PreparedFilm` (the driver's probe result and checked exemplars). Output: the
film's `FilmPlan` — scenes, shards, scene rows for the run record — saved in the journal,
so a resumed run does not scan a film again when its input and exemplars are unchanged.
The scan itself fans out over the film's time ranges as Ray tasks when Ray is up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from pipeline import log, storage
from pipeline.io import FilmInfo, frame_time, save_info
from pipeline.journal import Journal
from pipeline.shard import PlanConfig, Shard, assign_exemplars, plan_shards


@dataclass
class PreparedFilm:
    """A film checked by the driver before any work: everything the stages need to know."""

    film_id: str
    input: str
    output: str
    run_dir: str
    info: FilmInfo
    codec: str
    exemplar_images: list[str]
    exemplar_frames: list[int]
    exemplar_shas: list[str]
    force_scenes: frozenset[int] = frozenset()
    model: str = "memnet"


@dataclass
class FilmPlan:
    film_id: str
    info_path: str  # the probe result beside the segments: actors load it, never demux again
    shards: list[Shard]
    scene_rows: list[dict]
    scan_seconds: float = 0.0
    reused: bool = False  # the plan came from the journal (no rescan)
    warnings: list[str] = field(default_factory=list)


def segment_dir(run_dir: str, film_id: str) -> str:
    return storage.join(run_dir, "segments", film_id)


def plan_key(film: PreparedFilm, scene_cfg, plan_cfg: PlanConfig) -> str:
    """What the plan depends on: the film's frames, the exemplars, the scan and plan settings."""
    ident = {"pts": hashlib.sha256(json.dumps(film.info.frame_pts).encode()).hexdigest(),
             "size": [film.info.width, film.info.height, film.info.pix_fmt],
             "exemplars": [film.exemplar_frames, film.exemplar_shas],
             "scene_cfg": repr(scene_cfg), "plan_cfg": repr(plan_cfg)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


class PlanStage:
    def __init__(self, scene_cfg=None, plan_cfg: PlanConfig | None = None, task_cpus: float = 0):
        self.scene_cfg = scene_cfg
        self.plan_cfg = plan_cfg or PlanConfig()
        self.task_cpus = task_cpus

    def setup(self) -> None:
        pass

    def process(self, film: PreparedFilm) -> FilmPlan:
        import time

        journal = Journal(film.run_dir)
        key = plan_key(film, self.scene_cfg, self.plan_cfg)
        info_path = storage.join(segment_dir(film.run_dir, film.film_id), "film-info.json")
        old = journal.plan(film.film_id)
        if old and old.get("key") == key and storage.exists(info_path):
            log.info("%s: plan from the journal (no rescan)", film.film_id)
            return FilmPlan(film.film_id, info_path, [Shard(**{**s, "exemplars": tuple(s["exemplars"])})
                                                       for s in old["shards"]], old["scene_rows"], reused=True)
        from pipeline.scenes import scan_scenes

        t0 = time.perf_counter()
        storage.makedirs(segment_dir(film.run_dir, film.film_id))
        save_info(film.info, info_path)
        scenes = scan_scenes(film.input, film.info, self.scene_cfg, task_cpus=self.task_cpus)
        scan_s = time.perf_counter() - t0
        similarity = _similarities(film, scenes)
        shards = plan_shards(film.film_id, scenes, film.exemplar_frames, self.plan_cfg, similarity)
        rows = _scene_rows(film, scenes, similarity)
        journal.save_plan(film.film_id, {"key": key, "scene_rows": rows,
                                         "shards": [dataclasses.asdict(s) for s in shards]})
        return FilmPlan(film.film_id, info_path, shards, rows, scan_seconds=scan_s)


def _similarities(film: PreparedFilm, scenes) -> dict | None:
    """Luminance similarity of each scene lacking an exemplar to each exemplar image."""
    from pipeline.codecs import output_spec
    from pipeline.exemplar import exemplar_luma, load_rgb, scene_similarities

    lacking = [s for s in scenes if not getattr(s, "low_variability", False)
               and not any(s.start_frame <= f < s.end_frame for f in film.exemplar_frames)]
    if not lacking:
        return None
    matrix = output_spec(film.info, film.codec).matrix
    lumas = [exemplar_luma(load_rgb(img)[0], matrix=matrix) for img in film.exemplar_images]
    sims = scene_similarities(film.info, lacking, lumas)
    return {s.scene: sims.get(s.scene, [0.0] * len(lumas)) for s in scenes}


def _scene_rows(film: PreparedFilm, scenes, similarity) -> list[dict]:
    from pipeline.scenes.export import timecode_of

    info = film.info
    assigned = assign_exemplars(scenes, film.exemplar_frames, similarity)
    rows = []
    for sc in scenes:
        a = assigned[sc.scene]
        rows.append({
            "film_id": film.film_id, "scene": sc.scene, "start_frame": sc.start_frame, "end_frame": sc.end_frame,
            "start_time": float(frame_time(info, sc.start_frame)), "end_time": float(frame_time(info, sc.end_frame)),
            "start_timecode": timecode_of(info, sc.start_frame), "transition": sc.transition, "score": float(sc.score),
            "low_variability": bool(getattr(sc, "low_variability", False)), "exemplars": list(a.exemplars),
            "exemplar_source": a.source, "exemplar_similarity": a.similarity,
        })
    return rows
