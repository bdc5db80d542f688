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
from pipeline.guidance import GuidanceConfig, Guide, HintSpec, plan_guides
from pipeline.shard import PlanConfig, Shard, plan_shards


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
    hints: list[HintSpec] = field(default_factory=list)
    auto_sha256: str = ""  # of the automatic colorizer's weights (part of what the plan depends on)
    outputs: list[str] = field(default_factory=list)  # every deliverable, the master (`output`) first
    codecs: list[str] = field(default_factory=list)  # one per output; codecs[0] == codec
    fps: str | None = None  # an image sequence's rate as given (--fps / manifest fps:)

    def __post_init__(self):
        self.outputs = self.outputs or [self.output]
        self.codecs = self.codecs or [self.codec]


@dataclass
class FilmPlan:
    film_id: str
    info_path: str  # the probe result beside the segments: actors load it, never demux again
    shards: list[Shard]
    scene_rows: list[dict]
    scan_seconds: float = 0.0
    reused: bool = False  # the plan came from the journal (no rescan)
    warnings: list[str] = field(default_factory=list)
    # Every exemplar the shards refer to (by index): painted, derived from hints, automatic.
    guides: list[Guide] = field(default_factory=list)

    @property
    def uses_auto(self) -> bool:
        return any(g.source == "auto" for g in self.guides)


def segment_dir(run_dir: str, film_id: str) -> str:
    from pipeline.names import join_inside

    return join_inside(run_dir, "segments", film_id)


def recorded_info(run_dir: str, film: dict) -> FilmInfo:
    """A recorded film's probe result: the one its plan saved beside the segments, else
    the input probed again (at the rate an image sequence was run at)."""
    from pipeline.io import load_info, parse_rate, probe
    from pipeline.io.sequence import is_sequence

    uri = storage.join(segment_dir(run_dir, film["film_id"]), "film-info.json")
    if storage.exists(uri):
        return load_info(uri)
    return probe(film["input"], parse_rate(film.get("rate") if is_sequence(film["input"]) else None))


def plan_key(film: PreparedFilm, scene_cfg, plan_cfg: PlanConfig, guidance: GuidanceConfig) -> str:
    """What the plan depends on: the film's frames, the exemplars, the scan and plan settings."""
    ident = {"pts": hashlib.sha256(json.dumps(film.info.frame_pts).encode()).hexdigest(),
             "size": [film.info.width, film.info.height, film.info.pix_fmt],
             "exemplars": [film.exemplar_frames, film.exemplar_shas],
             "hints": [[h.frame, h.sha256] for h in film.hints], "auto": film.auto_sha256,
             "scene_cfg": repr(scene_cfg), "plan_cfg": repr(plan_cfg), "guidance": repr(guidance)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


class PlanStage:
    def __init__(self, scene_cfg=None, plan_cfg: PlanConfig | None = None, task_cpus: float = 0,
                 guidance: GuidanceConfig | None = None):
        self.scene_cfg = scene_cfg
        self.plan_cfg = plan_cfg or PlanConfig()
        self.guidance = guidance or GuidanceConfig()
        self.task_cpus = task_cpus

    def setup(self) -> None:
        pass

    def process(self, film: PreparedFilm) -> FilmPlan:
        import time

        journal = Journal(film.run_dir)
        key = plan_key(film, self.scene_cfg, self.plan_cfg, self.guidance)
        info_path = storage.join(segment_dir(film.run_dir, film.film_id), "film-info.json")
        old = journal.plan(film.film_id)
        if old and old.get("key") == key and storage.exists(info_path):
            log.info("%s: plan from the journal (no rescan)", film.film_id)
            return FilmPlan(film.film_id, info_path, [Shard(**{**s, "exemplars": tuple(s["exemplars"])})
                                                       for s in old["shards"]], old["scene_rows"], reused=True,
                            guides=[Guide(**g) for g in old["guides"]])
        from pipeline.scenes import scan_scenes

        t0 = time.perf_counter()
        storage.makedirs(segment_dir(film.run_dir, film.film_id))
        save_info(film.info, info_path)
        scenes = scan_scenes(film.input, film.info, self.scene_cfg, task_cpus=self.task_cpus)
        scan_s = time.perf_counter() - t0
        guides, assigned = plan_guides(film, scenes, self.guidance)
        shards = plan_shards(film.film_id, scenes, [g.frame for g in guides], self.plan_cfg, assigned=assigned)
        rows = _scene_rows(film, scenes, guides, assigned)
        journal.save_plan(film.film_id, {"key": key, "scene_rows": rows, "guides": [dataclasses.asdict(g) for g in guides],
                                         "shards": [dataclasses.asdict(s) for s in shards]})
        return FilmPlan(film.film_id, info_path, shards, rows, scan_seconds=scan_s, guides=guides)


def _scene_rows(film: PreparedFilm, scenes, guides: list[Guide], assigned) -> list[dict]:
    from pipeline.scenes.export import timecode_of

    info = film.info
    rows = []
    for sc in scenes:
        a = assigned[sc.scene]
        rows.append({
            "film_id": film.film_id, "scene": sc.scene, "start_frame": sc.start_frame, "end_frame": sc.end_frame,
            "start_time": float(frame_time(info, sc.start_frame)), "end_time": float(frame_time(info, sc.end_frame)),
            "start_timecode": timecode_of(info, sc.start_frame), "transition": sc.transition, "score": float(sc.score),
            "low_variability": bool(getattr(sc, "low_variability", False)), "exemplars": list(a.exemplars),
            "exemplar_source": a.source, "exemplar_similarity": a.similarity,
            # the guide the scene is coloured from (the first, when it has several)
            "exemplar_image": guides[a.exemplars[0]].image if a.exemplars else "",
            "exemplar_frame": guides[a.exemplars[0]].frame if a.exemplars else -1,
            "end_timecode": timecode_of(info, sc.end_frame - 1),
        })
    return rows
