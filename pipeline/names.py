"""Names that users give and that end up in paths: film ids, and where they may lead.

A film id names folders and files inside the run directory (`segments/ID/`, `thumbs/ID/`,
`journal/ID/`, `exemplars/ID/`), so it must be one plain path component: `../../x` in a
manifest would otherwise make a run write its segments beside the manifest. Ids are
checked where they come in (`check_id`: manifests; `id_from_path`: the id `colorize`
derives from its input), and every path built from one is checked again where it is made
(`join_inside`), for ids that come back from a journal or a run record written by hand.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import unicodedata

from pipeline import storage
from pipeline.errors import InputError

MAX_ID = 128
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_ID)  # fullmatch; '.' and '..' excluded apart
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A printf frame-number pattern in an image sequence's name (`reel1_%08d.dpx`).
_PRINTF = re.compile(r"%0?\d*d")
DEFAULT_ID = "film"


def check_id(value) -> str | None:
    """The problem with `value` as a film id, in words, or None if it is a safe id:
    ASCII letters, digits, '.', '_', '-'; 1 to 128 characters; not '.' or '..'."""
    if not isinstance(value, str):
        return f"expected a string id, got {value!r}"
    if not value:
        return "empty id"
    if len(value) > MAX_ID:
        return f"unsafe id {value[:40]!r}... ({len(value)} characters; at most {MAX_ID})"
    if not ID_RE.fullmatch(value):
        return f"unsafe id {value!r} (letters, digits, '.', '_', '-' only)"
    if value in (".", ".."):
        return f"unsafe id {value!r} (not '.' or '..')"
    return None


def id_from_path(path: str) -> str:
    """The film id `colorize` derives from its input: the file name without extension
    (`s3://in/reel1.mkv` -> `reel1`), the folder's name for a sequence folder, the name
    without its frame-number pattern for a printf pattern (`scans/reel1_%08d.dpx` ->
    `reel1`). Made safe: each run of other characters becomes one '_' (accents are
    dropped first: `réel 1.mkv` -> `reel_1`), a name with nothing left becomes
    `film-` and a digest of the name, a name over 128 characters is cut and given one; a
    name that is already a safe id is kept as it is, so that run directories made before
    keep their ids. Never empty, '.' or '..'."""
    trimmed = path.rstrip("/")
    stem = os.path.splitext(os.path.basename(trimmed))[0]
    if _PRINTF.search(stem):
        stem = _PRINTF.sub("", stem).rstrip("_-. ")
        if not stem:  # `scans/reel1/%08d.dpx`: the folder names the film
            stem = os.path.basename(os.path.dirname(trimmed)).rstrip("_-. ")
    return _safe(stem)


def _safe(name: str) -> str:
    if check_id(name) is None:
        return name
    if name in ("", ".", ".."):
        return DEFAULT_ID
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE.sub("_", ascii_name).strip("_")
    if safe in ("", ".", ".."):  # nothing left (`日本.mkv`): still one id per name
        return f"{DEFAULT_ID}-{digest}"
    if len(safe) > MAX_ID:  # keep long names apart: a prefix and a digest of the whole name
        safe = safe[:MAX_ID - 9] + "-" + digest
    return safe


def _normal(uri: str) -> tuple[str, str]:
    """(bucket or '', absolute normalised path or key) of a local path or s3:// URI.
    S3 keys are literal for S3 itself, but tools that mirror a prefix to disk (and some
    S3-compatible stores) resolve '..' and '//': compared after normalising, like paths."""
    if storage.is_s3(uri):
        bucket, _, key = uri[len("s3://"):].partition("/")
        return bucket, posixpath.normpath("/" + key)
    return "", os.path.normpath(os.path.abspath(uri))


def inside(base: str, path: str) -> bool:
    """Whether `path` is `base` or lies under it, after resolving '.' and '..' (lexically:
    a symbolic link inside `base` is the user's own doing). A local path is never inside
    an s3:// base, nor the other way round."""
    if storage.is_s3(base) != storage.is_s3(path):
        return False
    b_bucket, b = _normal(base)
    p_bucket, p = _normal(path)
    if b_bucket != p_bucket:
        return False
    sep = "/" if storage.is_s3(base) else os.sep
    return p == b or p.startswith(b.rstrip(sep) + sep)


def join_inside(base: str, *parts: str) -> str:
    """`storage.join(base, *parts)`, unchanged, after checking it stays inside `base`;
    InputError (exit 2) if a part leads out of it (`..`, an absolute path)."""
    path = storage.join(base, *parts)
    if not inside(base, path):
        shown = "/".join(parts)
        raise InputError(f"{shown!r} leads outside {base} (names in a run directory are letters, digits, "
                         "'.', '_', '-')")
    return path
