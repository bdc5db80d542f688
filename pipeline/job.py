"""Jobs as the command line sees them: `colorize` (a one-film collection), `run` (a
manifest), `reprocess` (part of a recorded run). All three check everything the user gave
before any work starts (bad input: InputError, exit 2, nothing written), then hand the
films to one streaming run (pipeline.collection). A film whose shards or assembly failed
raises ShardFailures (exit 1) at the end; the run record says which and why.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass, field

from pipeline import log, storage
from pipeline.codecs import codec_for
from pipeline.colorize import ColorizeConfig
from pipeline.collection import Collection, FilmOutcome
from pipeline.errors import InputError, ShardFailures
from pipeline.exemplar import ExemplarSpec, parse_spec, resolve_frame
from pipeline.guidance import HintSpec, flat_frame
from pipeline.hints import load_hints
from pipeline.io import probe
from pipeline.plan import PreparedFilm
from pipeline.record import default_run_dir, read_table
from pipeline.shard import PlanConfig

FilmResult = FilmOutcome


@dataclass(frozen=True)
class JobConfig:
    workers: int | None = None  # actors; default: the cluster's CPUs
    address: str | None = None  # existing Ray cluster; default: embedded local Ray
    codec: str | None = None  # default: from the output's extension
    plan: PlanConfig = field(default_factory=PlanConfig)
    colorize: ColorizeConfig = field(default_factory=ColorizeConfig)
    scenes: object | None = None  # pipeline.scenes.SceneConfig; None = defaults
    progress: bool = True
    report: bool = True  # write the review page (RUN_DIR/report/index.html) at the end


@dataclass
class FilmJob:
    film_id: str
    input: str
    output: str
    exemplars: list[ExemplarSpec]
    run_dir: str | None = None
    codec: str | None = None  # overrides JobConfig.codec (manifests: per film)
    force_scenes: frozenset[int] = frozenset()  # redo these scenes even if done (reprocess)
    model: str | None = None  # overrides JobConfig.colorize.model (manifests: per film)
    hints: list[ExemplarSpec] = field(default_factory=list)  # RGBA PNGs of colour dots @ frame
    outputs: list[str] = field(default_factory=list)  # every deliverable, master first ([] = [output])
    fps: str | None = None  # an image sequence's rate (--fps, manifest fps:)
    # Folders (or S3 prefixes) of painted keyframes / hints, placed by the frame in their
    # names (pipeline.keyframes); expanded into `exemplars` and `hints` once the film is probed.
    exemplar_dirs: list[str] = field(default_factory=list)
    hint_dirs: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.outputs = list(self.outputs or [self.output])
        self.output = self.outputs[0]


def film_id_of(path: str) -> str:
    """The film id `colorize` gives INPUT: its file (or sequence folder / pattern) name,
    made a safe name (it becomes part of run-directory paths)."""
    from pipeline.names import id_from_path

    return id_from_path(path)


def parse_exemplars(texts: list[str], what: str = "exemplar") -> list[ExemplarSpec]:
    return [parse_spec(t, what) for t in texts]


# --- checks before any work -----------------------------------------------------------

def output_codecs(job: FilmJob, cfg: JobConfig) -> list[str]:
    """The codec of each deliverable: `--codec` (or the manifest's) applies to the master,
    the others follow their extension."""
    return [codec_for(o, (job.codec or cfg.codec) if k == 0 else None) for k, o in enumerate(job.outputs)]


def check_output(job: FilmJob, cfg: JobConfig) -> None:
    """The outputs can be written and clobber neither the input nor each other; the
    input can be read."""
    from pipeline.codecs import is_sequence_output
    from pipeline.io.sequence import is_sequence

    output_codecs(job, cfg)
    seen = set()
    for out in job.outputs:
        where = _where(out)
        if where in seen:
            raise InputError(f"{out}: given twice as an output")
        seen.add(where)
        if storage.is_s3(out) == storage.is_s3(job.input) and (_same(out, job.input) or where == _where(job.input)):
            raise InputError(f"{out}: output would overwrite the input")
    if not is_sequence(job.input):
        storage.check_readable(job.input)
    for out in job.outputs:
        if is_sequence_output(out):
            _check_sequence_output(out)
        else:
            storage.check_writable(out)


def _where(path: str) -> str:
    """What an output occupies: its file, or for a sequence its folder."""
    from pipeline.codecs import is_sequence_output
    from pipeline.io.sequence import is_sequence

    if is_sequence_output(path) or (not storage.is_s3(path) and is_sequence(path)):
        folder = storage.parent(path) if not os.path.isdir(path) else path
        return folder.rstrip("/") if storage.is_s3(folder) else os.path.abspath(folder)
    return path if storage.is_s3(path) else os.path.abspath(path)


def _check_sequence_output(output: str) -> None:
    """A sequence deliverable gets a folder of its own: new, or one holding only an earlier
    delivery of the same sequence (which it replaces)."""

    folder = storage.parent(output)
    if storage.is_s3(output):
        storage.check_writable(storage.join(folder, os.path.basename(output) % 0))
        return
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        raise InputError(f"{output}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{output}: output directory {parent} is not writable")
    if os.path.exists(folder):
        from pipeline.io.sequence import pattern_regex

        rx = pattern_regex(os.path.basename(output))
        other = [n for n in sorted(os.listdir(folder)) if not rx.match(n)]
        if other:
            raise InputError(f"{output}: the folder {folder} holds other files ({other[0]}); a sequence "
                             "deliverable needs a folder of its own")


def _same(a: str, b: str) -> bool:
    return a == b if storage.is_s3(a) else os.path.abspath(a) == os.path.abspath(b)


def prepare(job: FilmJob, cfg: JobConfig, run_dir: str) -> PreparedFilm:
    """Everything about one film that can be known before work: raises InputError."""
    codecs = output_codecs(job, cfg)
    check_output(job, cfg)
    from pipeline.exemplar import check_exemplar
    from pipeline.names import check_id

    problem = check_id(job.film_id)
    if problem:
        raise InputError(f"film {problem}")
    from pipeline.io import parse_rate

    shas = [check_exemplar(spec.image) for spec in job.exemplars]
    hint_shas = [_hint_sha(spec, j) for j, spec in enumerate(job.hints)]
    info = probe(job.input, parse_rate(job.fps))
    if job.exemplar_dirs or job.hint_dirs:
        job = _with_painted(job, info)
        shas += [check_exemplar(spec.image) for spec in job.exemplars[len(shas):]]
        hint_shas += [_hint_sha(spec, j) for j, spec in enumerate(job.hints) if j >= len(hint_shas)]
    frames = [_frame(spec, info, f"exemplars[{j}]") for j, spec in enumerate(job.exemplars)]
    hints = []
    for j, (spec, sha) in enumerate(zip(job.hints, hint_shas)):
        frame = _frame(spec, info, f"hints[{j}]")
        if flat_frame(info, frame):
            exc = InputError(f"hints {spec.image}@{spec.at}: frame {frame} is black or flat (a low-variability "
                             "span, which is not coloured)")
            exc.where = f"hints[{j}]"
            raise exc
        hints.append(HintSpec(spec.image, frame, sha))
    if not job.exemplars and not job.hints:
        log.info("%s: no exemplar or hints given: automatic colours (a keyframe per scene coloured by the "
                 "automatic colorizer, carried through its scene)", job.film_id)
    return PreparedFilm(job.film_id, job.input, job.output, run_dir, info, codecs[0],
                        [e.image for e in job.exemplars], frames, shas, job.force_scenes,
                        model=job.model or cfg.colorize.model, hints=hints, auto_sha256=auto_info()["weights_sha256"],
                        outputs=list(job.outputs), codecs=codecs, fps=job.fps)


def _hint_sha(spec: ExemplarSpec, j: int) -> str:
    try:
        return load_hints(spec.image)[1]
    except InputError as exc:
        exc.where = f"hints[{j}]"
        raise


def _with_painted(job: FilmJob, info) -> FilmJob:
    """`job` with the painted pictures of its folders added to its exemplars and hints
    (checked against the film: size, frame, luminance)."""
    import dataclasses

    from pipeline import keyframes

    ex, hi = [], []
    for folder, hints_only in [(d, False) for d in job.exemplar_dirs] + [(d, True) for d in job.hint_dirs]:
        found = keyframes.collect(folder, job.film_id, info, hints_only=hints_only)
        e, h = keyframes.specs(found)
        ex += e
        hi += h
        log.info("%s: %d painted exemplar(s), %d hint picture(s) from %s", job.film_id, len(e), len(h), folder)
    return dataclasses.replace(job, exemplars=list(job.exemplars) + parse_exemplars(ex),
                               hints=list(job.hints) + parse_exemplars(hi, "hints"), exemplar_dirs=[], hint_dirs=[])


def _frame(spec: ExemplarSpec, info, where: str) -> int:
    try:
        return resolve_frame(spec.at, info)
    except InputError as exc:
        exc.where = where  # a manifest names the entry
        raise


@functools.lru_cache(maxsize=1)
def auto_info() -> dict:
    """The automatic colorizer of this build: name, version, weights sha256 (checked)."""
    from pipeline.model import auto_meta  # the network is built where it runs

    return auto_meta.info()


def _prepare_run_dir(run_dir: str) -> None:
    """Create the run directory (local) or check it can be written (S3)."""
    if storage.is_s3(run_dir):
        storage.check_writable(storage.join(run_dir, "films.parquet"))
        return
    try:
        storage.makedirs(run_dir)
    except OSError as exc:
        raise InputError(f"{run_dir}: cannot create the run directory ({exc.strerror})") from None


# --- runs -------------------------------------------------------------------------------

def run_films(films: list[PreparedFilm], cfg: JobConfig, run_dir: str) -> list[FilmResult]:
    """One streaming run over prepared films. Raises ShardFailures if any film failed."""
    from pipeline.cluster import init_ray
    from pipeline.model import info as model_info

    from pipeline.journal import Journal
    from pipeline.runlock import RunLock

    with RunLock(run_dir):  # before anything starts: a second run on this directory refuses
        Journal(run_dir).save_films([{"film_id": f.film_id, "input": f.input, "output": f.output,
                                      "outputs": f.outputs, "fps": f.fps,
                                      "codec": f.codec, "model": f.model, "exemplars": f.exemplar_images,
                                      "exemplar_frames": f.exemplar_frames, "hints": [h.image for h in f.hints],
                                      "hint_frames": [h.frame for h in f.hints]} for f in films])
        init_ray(cfg.address, cfg.workers, log_file=_ray_log(run_dir))
        infos = {}
        for name in sorted({f.model for f in films}):
            infos[name] = model_info(name)
        results = Collection(films, cfg, run_dir, infos, auto_info()).run()
        if cfg.report:
            _write_report(run_dir)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0]
        raise ShardFailures(f"{len(failed)} of {len(results)} film(s) failed (first: {first.film_id}: "
                            f"{first.error}); run record: {run_dir}")
    return results


def _write_report(run_dir: str) -> None:
    """The review page, also after failures (it shows them); a page that cannot be
    written is a warning, not a failed run."""
    from pipeline.report import write_report

    try:
        log.info("review page: %s", write_report(run_dir))
    except (OSError, storage.StorageError) as exc:
        log.warning("review page not written: %s", exc)


def _ray_log(run_dir: str) -> str:
    """Ray's own log lines go here, not to the terminal: the run directory when it is
    local, else this machine's temp dir."""
    if storage.is_s3(run_dir):
        return os.path.join(tempfile.gettempdir(), "filmcolor-logs", "ray.log")
    return os.path.join(run_dir, "logs", "ray.log")


def run_film(job: FilmJob, cfg: JobConfig) -> FilmResult:
    run_dir = job.run_dir or default_run_dir(job.output)
    film = prepare(job, cfg, run_dir)
    _prepare_run_dir(run_dir)
    return run_films([film], cfg, run_dir)[0]


def run_manifest(path: str, run_dir: str | None, cfg: JobConfig) -> list[FilmResult]:
    """Every film of a manifest, all checked before any work (every problem reported
    together, with its location), then one streaming run."""
    from pipeline import manifest

    m = manifest.load(path)
    run_dir = run_dir or manifest.default_run_dir(path)
    films, problems = [], []
    for i, f in enumerate(m.films):
        try:
            films.append(prepare(FilmJob(f.id, f.input, f.output, f.exemplars, run_dir, codec=f.codec,
                                         model=f.model, hints=f.hints, outputs=f.outputs, fps=f.fps,
                                         exemplar_dirs=[f.exemplars_dir] if f.exemplars_dir else [],
                                         hint_dirs=[f.hints_dir] if f.hints_dir else []), cfg, run_dir))
        except InputError as exc:
            where = getattr(exc, "where", "")
            problems.append(f"films[{i}].{where}: {exc}" if where else f"films[{i}]: {exc}")
    if problems:
        raise manifest.ManifestError(path, problems)
    _prepare_run_dir(run_dir)
    return run_films(films, cfg, run_dir)


def resume(run_dir: str, cfg: JobConfig) -> list[FilmResult]:
    """The films of an interrupted run, again: what is durable is kept (see collection)."""
    from pipeline.journal import Journal

    films = Journal(run_dir).films()
    if not films:
        raise InputError(f"{run_dir}: no run to resume here (no journal/run.json)")
    prepared = []
    for f in films:
        specs = [ExemplarSpec(img, str(fr)) for img, fr in zip(f["exemplars"], f["exemplar_frames"])]
        prepared.append(prepare(FilmJob(f["film_id"], f["input"], f["output"], specs, run_dir, codec=f["codec"],
                                        model=f["model"], hints=_hint_specs(f), outputs=f.get("outputs") or [],
                                        fps=f.get("fps")), cfg, run_dir))
    return run_films(prepared, cfg, run_dir)


def reprocess(run_dir: str, scenes: list[int], failed: bool, exemplars: list[str], cfg: JobConfig,
              film_id: str | None = None, hints: list[str] = ()) -> list[FilmResult]:
    """Redo part of a recorded run, then reassemble: named scenes, failed shards, and every
    scene whose guidance changed (a new --exemplar or --hints, or an exemplar or hint image
    edited in place: its sha256 no longer matches the record). Everything else is reused."""
    films = [f for f in read_table(run_dir, "films") if film_id in (None, f["film_id"])]
    if not films:
        raise InputError(f"{run_dir}: no run record" + (f" for film {film_id!r}" if film_id else ""))
    if not (scenes or failed or exemplars or hints):
        raise InputError("nothing to reprocess: give --scene N, --failed, --exemplar IMAGE@FRAME or "
                         "--hints IMAGE@FRAME")
    from pipeline.keyframes import is_folder_spec

    folders = [(e, False) for e in exemplars if is_folder_spec(e)] + [(h, True) for h in hints if is_folder_spec(h)]
    new_specs = parse_exemplars([e for e in exemplars if not is_folder_spec(e)])
    new_hints = parse_exemplars([h for h in hints if not is_folder_spec(h)], "hints")
    prepared = []
    for f in films:
        if failed and not scenes and not exemplars and not hints and f["status"] == "done":
            continue
        painted_ex, painted_hints = _painted_in(folders, f, run_dir)
        if folders and not (painted_ex or painted_hints or scenes or failed or new_specs or new_hints):
            continue  # nothing painted for this film
        specs = [ExemplarSpec(img, str(fr)) for img, fr in zip(f["exemplars"], f["exemplar_frames"])]
        specs = _replace_in_scenes(f, specs, new_specs + painted_ex, run_dir)
        hint_specs = _replace_in_scenes(f, _hint_specs(f), new_hints + painted_hints, run_dir)
        job = FilmJob(f["film_id"], f["input"], f["output"], specs, run_dir, codec=f["codec"],
                      force_scenes=frozenset(scenes), model=f["model"]["name"], hints=hint_specs,
                      outputs=f.get("outputs") or [], fps=_sequence_rate(f))
        prepared.append(prepare(job, cfg, run_dir))
    if not prepared:
        log.info("nothing to redo: no failed film in %s", run_dir)
        return []
    return run_films(prepared, cfg, run_dir)


def _painted_in(folders: list[tuple[str, bool]], film: dict, run_dir: str):
    """The painted exemplars and hints of `film` in the given folders, checked against the
    film (size, frame, luminance): (exemplar specs, hint specs)."""
    if not folders:
        return [], []
    from pipeline import keyframes
    from pipeline.plan import recorded_info

    info = recorded_info(run_dir, film)
    ex, hi = [], []
    for folder, hints_only in folders:
        e, h = keyframes.specs(keyframes.collect(folder, film["film_id"], info, hints_only=hints_only))
        ex += e
        hi += h
    if ex or hi:
        log.info("%s: %d painted exemplar(s), %d hint picture(s) brought back", film["film_id"], len(ex), len(hi))
    return parse_exemplars(ex), parse_exemplars(hi, "hints")


def _sequence_rate(film: dict) -> str | None:
    """The rate an image sequence was run at (the DPX header's or --fps), for probing it
    again; containers carry their own."""
    from pipeline.io.sequence import is_sequence

    return film.get("rate") if is_sequence(film["input"]) else None


def _hint_specs(film: dict) -> list[ExemplarSpec]:
    return [ExemplarSpec(img, str(fr)) for img, fr in zip(film.get("hints") or [], film.get("hint_frames") or [])]


def _replace_in_scenes(film: dict, specs: list[ExemplarSpec], new: list[ExemplarSpec], run_dir: str):
    """A new exemplar (or hint image) replaces the recorded one(s) of the scene its frame
    falls in; the others are kept."""
    if not new:
        return specs
    scenes = [s for s in read_table(run_dir, "scenes") if s["film_id"] == film["film_id"]]
    from pipeline.io import parse_rate

    info = probe(film["input"], parse_rate(_sequence_rate(film)))
    frames_new = [resolve_frame(s.at, info) for s in new]
    frames_old = [resolve_frame(s.at, info) for s in specs]

    def scene_of(frame):
        return next((s["scene"] for s in scenes if s["start_frame"] <= frame < s["end_frame"]), None)

    replaced = {scene_of(fr) for fr in frames_new}
    kept = [s for s, fr in zip(specs, frames_old) if scene_of(fr) not in replaced]
    return kept + [ExemplarSpec(s.image, str(fr)) for s, fr in zip(new, frames_new)]

