"""Manifests (input of `filmcolor run`): a collection of films with their exemplars.

Everything is checked before any work starts, and every problem is reported together,
each with its location in the manifest (`films[2].exemplars[0].image: no such file`), so
an overnight run does not stop at 3 a.m. on the fourth film's typo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import yaml

from pipeline import storage
from pipeline.codecs import CONTAINERS, codec_for
from pipeline.errors import FilmcolorError, InputError
from pipeline.exemplar import ExemplarSpec, load_rgb

TOP_KEYS = {"version", "defaults", "films"}
DEFAULT_KEYS = {"codec", "model", "workers"}
FILM_KEYS = {"id", "input", "output", "exemplars", "hints", "codec", "model"}
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
    output: str
    exemplars: list[ExemplarSpec]
    codec: str | None = None
    model: str | None = None
    hints: list[ExemplarSpec] = field(default_factory=list)


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
    films, seen = [], {}
    for i, f in enumerate(films_doc):
        entry = _film(f, f"films[{i}]", defaults, seen, problems)
        if entry:
            films.append(entry)
    if problems:
        raise ManifestError(path, problems)
    return Manifest(path, films, defaults)


def _unknown(d: dict, allowed: set, where: str, problems: list[str]) -> None:
    for k in d:
        if k not in allowed:
            problems.append(f"{where}{k}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _film(f, loc: str, defaults: dict, seen: dict, problems: list[str]) -> FilmEntry | None:
    if not isinstance(f, dict):
        problems.append(f"{loc}: expected a mapping")
        return None
    _unknown(f, FILM_KEYS, f"{loc}.", problems)
    for key in ("id", "input", "output"):
        if not isinstance(f.get(key), str) or not f.get(key):
            problems.append(f"{loc}.{key}: missing")
    if problems and any(p.startswith(f"{loc}.") and p.endswith("missing") for p in problems):
        return None
    if f["id"] in seen:
        problems.append(f"{loc}.id: duplicate id {f['id']!r} (also {seen[f['id']]})")
    seen[f["id"]] = loc
    codec = f.get("codec", defaults.get("codec"))
    try:
        codec_for(f["output"], codec)
    except InputError as exc:
        problems.append(f"{loc}.output: {exc}")
    for key, check in (("input", storage.check_readable), ("output", storage.check_writable)):
        try:
            check(f[key])
        except FilmcolorError as exc:
            problems.append(f"{loc}.{key}: {exc}")
    from pipeline.hints import load_hints

    exemplars = _guides(f, "exemplars", loc, load_rgb, problems)
    hints = _guides(f, "hints", loc, load_hints, problems)
    return FilmEntry(f["id"], f["input"], f["output"], exemplars, codec, f.get("model", defaults.get("model")),
                     hints)


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
