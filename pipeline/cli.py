"""`filmcolor` command line (typer). Contracts in DESIGN.md: exit 0 ok, 1 shards failed,
2 bad input or usage, with one line on stderr and no traceback for expected errors."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import List, Optional

import typer

try:  # typer >= 0.26 vendors click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer
    from click import exceptions as click_exc

from pipeline import log
from pipeline.errors import FilmcolorError, InputError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Colorize black-and-white films from colour exemplars, on Ray.")


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("filmcolor: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def _setup(verbose: bool, endpoint_url: str | None) -> None:
    from pipeline import storage

    _setup_logging(verbose)
    storage.configure(endpoint_url=endpoint_url)


@app.command()
def colorize(
    input: str = typer.Argument(..., help="film (file, or DPX/TIFF sequence: folder, s3:// prefix ending in /, "
                                          "or pattern like reel_%08d.dpx): local path or s3:// URI"),
    outputs: List[str] = typer.Argument(..., metavar="OUTPUT...",
                                        help="deliverables, master first: .mkv (FFV1), .mov (ProRes 422 HQ), "
                                             ".mp4 (H.264), or a sequence pattern out/reel_%08d.dpx|.tif"),
    exemplar: List[str] = typer.Option([], "--exemplar", "-e", help="IMAGE@FRAME (index, HH:MM:SS:FF or 12.5s)"),
    hints: List[str] = typer.Option([], "--hints", help="RGBA PNG of colour dots/strokes @FRAME (transparent "
                                                        "elsewhere), or a folder of them named by frame"),
    exemplars: List[str] = typer.Option([], "--exemplars", help="folder or s3:// prefix of painted keyframes, placed "
                                                                "by the frame in their names (filmcolor keyframes)"),
    codec: Optional[str] = typer.Option(None, help="the master's codec: ffv1 | prores | prores4444 | h264 "
                                                   "(default: from its extension)"),
    fps: Optional[str] = typer.Option(None, "--fps", help="an image sequence's frame rate (18, 24, 24000/1001); "
                                                          "default: the DPX header's"),
    workers: Optional[int] = typer.Option(None, min=1, help="actors (default: the machine's cores)"),
    address: Optional[str] = typer.Option(None, help="existing Ray cluster (default: embedded local Ray)"),
    run_dir: Optional[str] = typer.Option(None, help="run record directory (default: next to OUTPUT)"),
    model: str = typer.Option("memnet", help="propagation model (memnet, flow)"),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0,
                                         help="GPU share each colorize actor requests; > 0 runs memnet on the GPU"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
    no_report: bool = typer.Option(False, "--no-report", help="do not write the review page"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Colorize INPUT into OUTPUT, with the original audio. Without --exemplar or --hints,
    automatic colours (a keyframe per scene coloured by the automatic colorizer)."""
    from pipeline.colorize import ColorizeConfig
    from pipeline.job import FilmJob, JobConfig, film_id_of, parse_exemplars, run_film
    from pipeline.model import available

    _setup(verbose, endpoint_url)
    if model not in available():
        raise InputError(f"unknown model {model!r} (available: {', '.join(available())})")
    from pipeline.keyframes import is_folder_spec

    job = FilmJob(film_id_of(input), input, outputs[0], parse_exemplars(exemplar), run_dir,
                  hints=parse_exemplars([h for h in hints if not is_folder_spec(h)], "hints"), outputs=outputs,
                  fps=fps, exemplar_dirs=list(exemplars), hint_dirs=[h for h in hints if is_folder_spec(h)])
    cfg = JobConfig(workers=workers, address=address, codec=codec,
                    colorize=ColorizeConfig(model=model, gpus=gpus_per_actor), report=not no_report)
    result = run_film(job, cfg)
    what = "already published, unchanged" if result.status == "skipped" else \
        f"{result.frames} frames in {result.seconds:.1f}s ({result.shards} shards)"
    typer.echo(f"{', '.join(outputs)}: {what}; run record: {result.run_dir}")


@app.command()
def run(
    manifest: str = typer.Argument(..., help="YAML or JSON manifest (local path or s3:// URI)"),
    run_dir: Optional[str] = typer.Option(None, help="run record directory (default: beside the manifest)"),
    workers: Optional[int] = typer.Option(None, min=1, help="actors (default: the machine's cores)"),
    address: Optional[str] = typer.Option(None, help="existing Ray cluster (default: embedded local Ray)"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
    no_report: bool = typer.Option(False, "--no-report", help="do not write the review page"),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0,
                                         help="GPU share each colorize actor requests; > 0 runs memnet on the GPU"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Colorize every film of a manifest (all of it checked before any work starts)."""
    from pipeline.colorize import ColorizeConfig
    from pipeline.job import JobConfig, run_manifest

    _setup(verbose, endpoint_url)
    cfg = JobConfig(workers=workers, address=address, report=not no_report,
                    colorize=ColorizeConfig(gpus=gpus_per_actor))
    for r in run_manifest(manifest, run_dir, cfg):
        typer.echo(f"{r.film_id}: {r.output} ({r.status}, {r.frames} frames, {r.seconds:.1f}s)")


@app.command()
def resume(
    run_dir: str = typer.Argument(..., help="run directory of an interrupted run"),
    workers: Optional[int] = typer.Option(None, min=1, help="actors (default: the machine's cores)"),
    address: Optional[str] = typer.Option(None, help="existing Ray cluster (default: embedded local Ray)"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Finish an interrupted run: only what has no durable record is redone."""
    from pipeline.job import JobConfig, resume as again

    _setup(verbose, endpoint_url)
    for r in again(run_dir, JobConfig(workers=workers, address=address)):
        typer.echo(f"{r.film_id}: {r.output} ({r.status}, {r.frames} frames, {r.seconds:.1f}s)")


@app.command()
def reprocess(
    run_dir: str = typer.Argument(..., help="run record directory of an earlier run"),
    scene: List[int] = typer.Option([], "--scene", help="redo this scene (repeatable)"),
    failed: bool = typer.Option(False, "--failed", help="redo failed shards"),
    exemplar: List[str] = typer.Option([], "--exemplar", "-e", help="new IMAGE@FRAME for the scene at FRAME"),
    hints: List[str] = typer.Option([], "--hints", help="new hint PNG @FRAME for the scene at FRAME, or a folder "
                                                        "of them named by frame"),
    exemplars: List[str] = typer.Option([], "--exemplars", help="folder or s3:// prefix of painted keyframes "
                                                                "(filmcolor keyframes): their scenes are redone"),
    film: Optional[str] = typer.Option(None, "--film", help="only this film id"),
    workers: Optional[int] = typer.Option(None, min=1),
    address: Optional[str] = typer.Option(None),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Redo chosen scenes / failed shards / changed exemplars or hints of a run, then reassemble."""
    from pipeline.job import JobConfig, reprocess as redo

    _setup(verbose, endpoint_url)
    for r in redo(run_dir, scene, failed, list(exemplar) + list(exemplars), JobConfig(workers=workers, address=address),
                  film, hints):
        typer.echo(f"{r.film_id}: {r.output} ({r.frames} frames, {r.seconds:.1f}s)")


@app.command()
def report(
    run_dir: str = typer.Argument(..., help="run record directory (local or s3://)"),
    out: Optional[str] = typer.Option(None, "--out", help="folder for index.html (default: RUN_DIR/report)"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write the review page of a run: films, scenes, thumbnails, a redo command."""
    from pipeline import storage
    from pipeline.report import write_report

    _setup(verbose, endpoint_url)
    if not storage.exists(storage.join(run_dir, "films.parquet")):
        raise InputError(f"{run_dir}: no run record here (no films.parquet)")
    typer.echo(write_report(run_dir, out))


@app.command()
def scenes(
    input: str = typer.Argument(..., help="film: local path or s3:// URI"),
    out: Optional[str] = typer.Option(None, "--out", help=".csv .parquet .json .edl .otio (default: CSV on stdout)"),
    fps: Optional[str] = typer.Option(None, "--fps", help="an image sequence's frame rate (default: the DPX header's)"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
) -> None:
    """Detect scenes and write the scene list."""
    from pipeline import storage
    from pipeline.io import parse_rate, probe
    from pipeline.io.sequence import is_sequence
    from pipeline.scenes import scan_scenes, write_scenes

    _setup(False, endpoint_url)
    if not is_sequence(input):
        storage.check_readable(input)
    if out:
        storage.check_writable(out)
    info = probe(input, parse_rate(fps))
    found = scan_scenes(input, info)
    if out:
        write_scenes(found, info, out)
        typer.echo(f"{len(found)} scenes -> {out}")
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "scenes.csv")
            write_scenes(found, info, p)
            sys.stdout.write(open(p).read())


@app.command(name="eval")
def eval_(
    output: str = typer.Argument(..., help="colorized film"),
    reference: str = typer.Argument(..., help="colour reference film"),
    json_out: Optional[str] = typer.Option(None, "--json", help="also write the figures as JSON"),
    scenes_from: Optional[str] = typer.Option(None, "--scenes", help="scene list (.csv/.parquet/.json) or a "
                                              "run directory; default: scan OUTPUT (its luma is the film's)"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
) -> None:
    """PSNR, SSIM, CDC and colorfulness of OUTPUT against REFERENCE, per scene and overall."""
    from pipeline import storage
    from pipeline.io import probe
    from pipeline.metrics import evaluate_files
    from pipeline.scenes import scan_scenes

    _setup(False, endpoint_url)
    storage.check_readable(output)
    storage.check_readable(reference)
    with storage.local_copy(output) as out_path, storage.local_copy(reference) as ref_path:
        if scenes_from:
            ranges = _read_scene_ranges(scenes_from)
        else:
            ranges = [(s.start_frame, s.end_frame) for s in scan_scenes(out_path, probe(out_path))]
        figures = evaluate_files(out_path, ref_path, ranges)
    # Strict JSON: identical pictures have infinite PSNR, written as the string "inf".
    text = json.dumps(_finite(figures), indent=2)
    typer.echo(text)
    if json_out:
        with open(json_out, "w") as f:
            f.write(text + "\n")


def _finite(x):
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _read_scene_ranges(src: str) -> list[tuple[int, int]]:
    import csv

    import pyarrow.parquet as pq

    if os.path.isdir(src):
        src = os.path.join(src, "scenes.parquet")
    if not os.path.exists(src):
        raise InputError(f"{src}: no such scene list")
    if src.endswith(".parquet"):
        rows = pq.read_table(src).to_pylist()
    elif src.endswith(".json"):
        data = json.load(open(src))
        rows = data["scenes"] if isinstance(data, dict) else data
    elif src.endswith(".csv"):
        rows = list(csv.DictReader(open(src)))
    else:
        raise InputError(f"{src}: scene list must be .csv, .parquet, .json or a run directory")
    return [(int(r["start_frame"]), int(r["end_frame"])) for r in rows]


@app.command()
def keyframes(
    source: str = typer.Argument(..., metavar="INPUT|RUN_DIR", help="a film (scanned for its scenes first) or a "
                                                                    "run directory"),
    out: str = typer.Option(..., "--out", help="folder or s3:// prefix for the pictures"),
    scene: List[int] = typer.Option([], "--scene", help="only this scene (repeatable)"),
    film: Optional[str] = typer.Option(None, "--film", help="only this film id (a run directory)"),
    coloured: bool = typer.Option(False, "--coloured", help="also the scene's current colours (a run directory's "
                                                            "master), as a starting point to correct"),
    fps: Optional[str] = typer.Option(None, "--fps", help="an image sequence's frame rate"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write each scene's keyframe to paint (grey, full resolution and depth) and a
    transparent hints template, named FILM_sSCENE_fFRAME_TIMECODE; bring them back painted
    with --exemplars DIR / --hints DIR."""
    import time

    from pipeline import keyframes as kf
    from pipeline import storage
    from pipeline.fixity import is_run_dir
    from pipeline.io import parse_rate
    from pipeline.job import film_id_of
    from pipeline.io.sequence import is_sequence

    _setup(verbose, endpoint_url)
    t0 = time.perf_counter()
    if is_run_dir(source):
        jobs = [(info, keys, (f.get("outputs") or [f["output"]])[0] if coloured else None)
                for f, info, keys in kf.keyframes_of_run(source, scene, film)]
    else:
        if coloured:
            raise InputError("--coloured needs a run directory (the colours are its master's)")
        if not is_sequence(source):
            storage.check_readable(source)
        info, keys = kf.keyframes_of_film(source, scene, film or film_id_of(source), parse_rate(fps))
        jobs = [(info, keys, None)]
    storage.check_writable(storage.join(out, "probe.png")) if storage.is_s3(out) else storage.makedirs(out)
    n = 0
    for info, keys, master in jobs:
        n += len(kf.export(keys, info, out, master))
    typer.echo(f"{sum(len(k) for _, k, _ in jobs)} keyframe(s), {n} file(s) -> {out} "
               f"({time.perf_counter() - t0:.1f}s)")


@app.command()
def verify(
    paths: List[str] = typer.Argument(..., metavar="PATH...", help="deliverables (files, sequence folders) or run "
                                                                   "directories (all their films): local or s3://"),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)"),
) -> None:
    """Re-check deliverables against their NAME.sha256 and NAME.framemd5 sidecars: exit 0
    when all match, else 1 with one line per file naming the first frame that differs."""
    from pipeline import fixity

    _setup(False, endpoint_url)
    checked, problems = fixity.verify_paths(paths)
    for line in problems:
        print(f"filmcolor: {line}", file=sys.stderr)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{checked} deliverable(s) verified: sha256 and framemd5 match")


@app.command()
def demo(
    out_dir: str = typer.Option("demo-out", "--out-dir", help="where the demo film and results go"),
    workers: Optional[int] = typer.Option(None, min=1),
) -> None:
    """Make a small black-and-white film with audio, colorize it, write a contact sheet."""
    from pipeline.demo import run_demo

    _setup_logging(False)
    run_demo(out_dir, workers)


def main() -> None:
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(N) comes back as N here
        if isinstance(code, int) and code:
            sys.exit(code)
    except FilmcolorError as exc:
        print(f"filmcolor: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("filmcolor: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_exc.ClickException as exc:
        print(f"filmcolor: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("filmcolor: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - storage errors that escaped a stage: words, not a traceback
        from pipeline.storage import s3

        if not s3.is_boto_error(exc):
            raise
        print(f"filmcolor: error: storage: {s3.describe(exc)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
