"""A per-node read-through cache of S3 objects (the alternative read strategy).

An object is downloaded once per node, keyed by URI + ETag (a replaced film is a new
entry), and shared by every actor on that node. Safe under concurrent actors: one holds
an exclusive `flock` on the entry's lock file while downloading to a private temp name
and renames it into place; the others wait on the lock and then find the entry. Readers
open the file before eviction can touch it (an unlinked open file stays readable on
POSIX). Entries are evicted least recently used first when the cache is over its size.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import tempfile

from pipeline import log
from pipeline.storage.rangeio import fetch, head

ENV_DIR = "FILMCOLOR_CACHE_DIR"
ENV_BYTES = "FILMCOLOR_CACHE_BYTES"
DEFAULT_BYTES = 200 << 30
DOWNLOAD_CHUNK = 32 << 20


def cache_dir() -> str:
    return os.environ.get(ENV_DIR) or os.path.join(tempfile.gettempdir(), "filmcolor-cache")


def cache_limit() -> int:
    return int(os.environ.get(ENV_BYTES) or DEFAULT_BYTES)


def open_cached(uri: str):
    """An open binary file with `uri`'s content, from this node's cache."""
    size, etag = head(uri)
    root = cache_dir()
    os.makedirs(root, exist_ok=True)
    name = hashlib.sha256(f"{uri}\0{etag}".encode()).hexdigest()[:32]
    path = os.path.join(root, name + ".obj")
    with open(os.path.join(root, name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            f = _open_entry(path, size)
            if f is None:
                for stale in glob.glob(glob.escape(path) + ".partial-*"):  # a killed downloader's
                    os.remove(stale)
                _download(uri, path, size, etag)
                f = open(path, "rb")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _evict(root, keep=path)
    return f


def _open_entry(path: str, size: int):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    if os.fstat(f.fileno()).st_size != size:
        f.close()
        os.remove(path)
        return None
    os.utime(path)  # recency for eviction
    return f


def _download(uri: str, path: str, size: int, etag: str) -> None:
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        # Large ranged GETs pinned to the ETag (same retries as RangeReader's).
        with open(tmp, "wb") as f:
            for start in range(0, size, DOWNLOAD_CHUNK):
                f.write(fetch(uri, start, min(size, start + DOWNLOAD_CHUNK), etag))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _evict(root: str, keep: str) -> None:
    entries = []
    for name in os.listdir(root):
        if name.endswith(".obj"):
            p = os.path.join(root, name)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
    total = sum(e[1] for e in entries)
    for _, size, p in sorted(entries):
        if total <= cache_limit():
            break
        if p == keep or not _try_remove(p):
            continue
        total -= size
        log.debug("cache: evicted %s", os.path.basename(p))


def _try_remove(path: str) -> bool:
    """Remove an entry unless another process holds its lock (it is about to open it)."""
    lock_path = path[: -len(".obj")] + ".lock"
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            os.remove(path)
            return True
        except FileNotFoundError:
            return False
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
