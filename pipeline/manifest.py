"""Manifests (input of `filmcolor run`): a collection of films with their exemplars.

Everything is checked before any work starts, and every problem is reported together,
each with its location in the manifest (`films[2].exemplars[0].image: no such file`), so
an overnight run does not stop at 3 a.m. on the fourth film's typo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction

import yaml

from pipeline import storage
from pipeline.codecs import CONTAINERS, codec_for, is_sequence_output
from pipeline.errors import FilmcolorError, InputError
from pipeline.exemplar import ExemplarSpec, load_rgb
from pipeline.io.sequence import is_sequence
from pipeline.names import check_id

TOP_KEYS = {"version", "defaults", "films"}
DEFAULT_KEYS = {"codec", "model", "workers"}
FILM_KEYS = {"id", "input", "output", "exemplars", "hints", "codec", "model", "fps", "exemplars_dir", "hints_dir"}
EXEMPLAR_KEYS = {"image", "frame", "timecode", "seconds"}


class ManifestError(InputError):
    """All the problems of a manifest, one per line."""

    def __init__(self, path: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class FilmEntry:
    id: str
    input: str
    output: str  # the master: outputs[0]
    exemplars: list[ExemplarSpec]
    codec: str | None = None
    model: str | None = None
    hints: list[ExemplarSpec] = field(default_factory=list)
    # Every deliverable, master first (`output:` as a string or a list).
    outputs: list[str] = field(default_factory=list)
    fps: str | None = None  # as given: '24', '23.976', '24000/1001' (checked positive)
    # Folders of painted keyframes / hints named by frame (filmcolor keyframes), checked
    # against the film when it is probed.
    exemplars_dir: str | None = None
    hints_dir: str | None = None

    def __post_init__(self):
        if not self.outputs:
            self.outputs = [self.output]


@dataclass
class Manifest:
    path: str
    films: list[FilmEntry]
    defaults: dict = field(default_factory=dict)


def load(path: str) -> Manifest:
    """Parse and check a manifest; raises ManifestError listing every problem."""
    try:
        text = storage.read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except storage.StorageError as exc:
        raise InputError(f"manifest {exc}") from None
    try:
        doc = json.loads(text) if path.lower().endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise ManifestError(path, ["top level: expected a mapping with version, defaults, films"])
    _unknown(doc, TOP_KEYS, "", problems)
    if doc.get("version") != 1:
        problems.append(f"version: expected 1, got {doc.get('version')!r}")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("defaults: expected a mapping")
        defaults = {}
    _unknown(defaults, DEFAULT_KEYS, "defaults.", problems)
    if "codec" in defaults and defaults["codec"] not in CONTAINERS:
        problems.append(f"defaults.codec: unknown codec {defaults['codec']!r}")
    films_doc = doc.get("films")
    if not isinstance(films_doc, list) or not films_doc:
        problems.append("films: expected a non-empty list")
        films_doc = []
    films, seen, written = [], {}, {}
    for i, f in enumerate(films_doc):
        entry = _film(f, f"films[{i}]", defaults, seen, written, problems)
        if entry:
            films.append(entry)
    if problems:
        raise ManifestError(path, problems)
    return Manifest(path, films, defaults)


def _unknown(d: dict, allowed: set, where: str, problems: list[str]) -> None:
    for k in d:
        if k not in allowed:
            problems.append(f"{where}{k}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _film(f, loc: str, defaults: dict, seen: dict, written: dict, problems: list[str]) -> FilmEntry | None:
    if not isinstance(f, dict):
        problems.append(f"{loc}: expected a mapping")
        return None
    _unknown(f, FILM_KEYS, f"{loc}.", problems)
    broken = False
    for key in ("id", "input"):
        if f.get(key) in (None, ""):
            problems.append(f"{loc}.{key}: missing")
            broken = True
        elif not isinstance(f[key], str):
            problems.append(f"{loc}.{key}: " + (check_id(f[key]) if key == "id" else
                                                f"expected a path or s3:// URI, got {f[key]!r}"))
            broken = True
    outputs = _outputs(f.get("output"), loc, problems)
    if broken or outputs is None:
        return None
    fid = f["id"]
    problem = check_id(fid)
    if problem:  # it names folders of the run directory: `../../x` would write beside the manifest
        problems.append(f"{loc}.id: {problem}")
    # Ids that differ only in case share a folder on case-insensitive file systems.
    elif fid.lower() in seen:
        other_loc, other = seen[fid.lower()]
        also = f"also {other_loc}" + ("" if other == fid else f" as {other!r}")
        problems.append(f"{loc}.id: duplicate id {fid!r} ({also})")
    else:
        seen[fid.lower()] = (loc, fid)
    codec = f.get("codec", defaults.get("codec"))
    try:
        if not is_sequence(f["input"]):  # a sequence (folder, pattern) is checked when probed
            storage.check_readable(f["input"])
    except FilmcolorError as exc:
        problems.append(f"{loc}.input: {exc}")
    for k, out in enumerate(outputs):
        oloc = f"{loc}.output" + (f"[{k}]" if isinstance(f["output"], list) else "")
        try:
            # `codec` is the master's; further deliverables follow their extension
            # (.mkv FFV1, .mov ProRes, .mp4 H.264), as `defaults: codec: ffv1` must not
            # turn an access .mp4 into an error.
            codec_for(out, codec if k == 0 else None)
        except InputError as exc:
            problems.append(f"{oloc}: {exc}")
        try:
            if not is_sequence_output(out):  # a sequence's own folder is checked by job.prepare
                storage.check_writable(out)
        except FilmcolorError as exc:
            problems.append(f"{oloc}: {exc}")
        key = out if storage.is_s3(out) else os.path.abspath(out)
        if key in written:
            problems.append(f"{oloc}: {out} is also written by {written[key]}")
        elif _same_file(out, f["input"]):
            problems.append(f"{oloc}: {out}: output would overwrite the input")
        else:
            written[key] = oloc
    fps = _fps(f.get("fps"), loc, problems) if "fps" in f else None
    from pipeline.hints import load_hints

    exemplars = _guides(f, "exemplars", loc, load_rgb, problems)
    hints = _guides(f, "hints", loc, load_hints, problems)
    dirs = {}
    for key in ("exemplars_dir", "hints_dir"):
        if key in f:
            d = f[key]
            if not isinstance(d, str) or not d:
                problems.append(f"{loc}.{key}: expected a folder or s3:// prefix")
            elif not storage.is_s3(d) and not os.path.isdir(d):
                problems.append(f"{loc}.{key}: {d}: no such folder")
            else:
                dirs[key] = d
    return FilmEntry(fid, f["input"], outputs[0], exemplars, codec, f.get("model", defaults.get("model")),
                     hints, outputs=outputs, fps=fps, **dirs)


def _outputs(doc, loc: str, problems: list[str]) -> list[str] | None:
    """`output:` as one string or a non-empty list of strings (master first)."""
    if isinstance(doc, str) and doc:
        return [doc]
    if isinstance(doc, list) and doc:
        bad = [k for k, o in enumerate(doc) if not isinstance(o, str) or not o]
        for k in bad:
            problems.append(f"{loc}.output[{k}]: expected a path or s3:// URI, got {doc[k]!r}")
        return None if bad else list(doc)
    if doc is None or doc == "" or doc == []:
        problems.append(f"{loc}.output: missing")
    else:
        problems.append(f"{loc}.output: expected a path or s3:// URI, or a list of them (master first)")
    return None


def _fps(value, loc: str, problems: list[str]) -> str | None:
    """A positive frame rate as a number or a string (`24`, `23.976`, `"24000/1001"`)."""
    text = None if isinstance(value, bool) else str(value).strip() if isinstance(value, (int, float, str)) else None
    try:
        if text is not None and Fraction(text) > 0:
            return text
    except (ValueError, ZeroDivisionError):
        pass
    problems.append(f"{loc}.fps: expected a positive frame rate like 24, 23.976 or \"24000/1001\", got {value!r}")
    return None


def _same_file(a: str, b: str) -> bool:
    if storage.is_s3(a) or storage.is_s3(b):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)


def _guides(f: dict, key: str, loc: str, load, problems: list[str]) -> list[ExemplarSpec]:
    """`exemplars:` or `hints:` of a film (optional: neither means automatic colours)."""
    doc = f.get(key)
    if doc is None:
        return []
    if not isinstance(doc, list):
        problems.append(f"{loc}.{key}: expected a list of {{image, frame|timecode|seconds}}")
        return []
    out = []
    for j, e in enumerate(doc):
        eloc = f"{loc}.{key}[{j}]"
        if not isinstance(e, dict) or not isinstance(e.get("image"), str):
            problems.append(f"{eloc}.image: missing")
            continue
        _unknown(e, EXEMPLAR_KEYS, f"{eloc}.", problems)
        at_keys = [k for k in ("frame", "timecode", "seconds") if k in e]
        if len(at_keys) != 1:
            problems.append(f"{eloc}: give exactly one of frame, timecode, seconds")
            continue
        at = str(e[at_keys[0]]) + ("s" if at_keys[0] == "seconds" else "")
        try:
            load(e["image"])
        except InputError as exc:
            problems.append(f"{eloc}.image: {exc}")
        out.append(ExemplarSpec(e["image"], at))
    return out


def default_run_dir(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return storage.join(storage.parent(path), f"{stem}.filmcolor-run")
