"""Where bytes live: local paths and s3:// URIs behind one small interface.

Every other module reads and writes through here, so no stage depends on a file that
exists only on the driver's machine: actors open the film, the exemplars, the probe
result and the segments by URI themselves.

- Reads: `open_read(uri)` gives a seekable file object PyAV can read. For S3 the default
  is ranged GETs (`rangeio.RangeReader`); `FILMCOLOR_S3_READ=cache` switches to a per-node
  read-through cache (`cache.open_cached`). Chosen by measurement: bench/storage.py.
- Writes are atomic: staged beside the destination and renamed (local), or uploaded whole
  and visible only when complete (S3: one PUT, or a multipart upload that is completed
  last and aborted on any failure). Uploads carry the file's sha256 as object metadata
  (`x-amz-meta-sha256`) and an S3 additional checksum (SHA256) where the server takes it.
- Errors come back as `StorageError` naming the URI and the reason in words
  (`s3://in/f/nope.mkv: no such key`); never a botocore traceback, never a credential.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from typing import BinaryIO

from pipeline import log
from pipeline.storage import s3
from pipeline.storage.s3 import StorageError

__all__ = ["StorageError", "is_s3", "join", "parent", "exists", "read_bytes", "write_bytes", "open_read",
           "put_file", "publish", "staging_path", "makedirs", "file_sha256", "stored_sha256", "check_readable",
           "check_writable", "configure", "scratch_dir", "sweep_scratch", "remove", "listdir", "list_files"]

ENV_READ = "FILMCOLOR_S3_READ"  # "range" (default) | "cache"
SHA_META = "sha256"


def configure(endpoint_url: str | None = None) -> None:
    """Apply CLI options that must reach every process of the job: set in the environment,
    which local Ray workers inherit and `init_ray` passes on to a remote cluster."""
    if endpoint_url:
        os.environ[s3.ENV_ENDPOINT] = endpoint_url


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(base: str, *parts: str) -> str:
    if is_s3(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def parent(uri: str) -> str:
    if is_s3(uri):
        return uri.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(uri))


def _check_uri(uri: str, user_input: bool = False) -> tuple[str, str]:
    bucket, key = s3.split(uri)
    if not bucket:
        raise StorageError(uri, "no bucket in the URI (expected s3://bucket/key)", user_input)
    return bucket, key


# --- reading ------------------------------------------------------------------------

def exists(uri: str) -> bool:
    """Whether the object / file exists. A missing key is False; any other failure
    (access denied, no such bucket, unreachable) raises StorageError."""
    if not is_s3(uri):
        return os.path.exists(uri)
    from pipeline.storage.rangeio import head

    _check_uri(uri)
    try:
        head(uri)
        return True
    except StorageError as err:
        if err.reason == "no such key":
            return False
        raise


def check_readable(uri: str) -> None:
    """Raise an exit-2 error naming `uri` if it cannot be read (before any work)."""
    from pipeline.errors import InputError

    if not is_s3(uri):
        if not os.path.exists(uri):
            raise InputError(f"{uri}: no such file")
        if not os.access(uri, os.R_OK):
            raise InputError(f"{uri}: not readable (permission denied)")
        return
    from pipeline.storage.rangeio import head

    _check_uri(uri, True)
    head(uri, user_input=True)


def read_bytes(uri: str) -> bytes:
    """The whole content. Missing local file: FileNotFoundError; S3: StorageError."""
    if not is_s3(uri):
        with open(uri, "rb") as f:
            return f.read()
    from pipeline.storage.rangeio import fetch, head

    _check_uri(uri)
    size, etag = head(uri)
    return fetch(uri, 0, size, etag) if size else b""


def read_strategy() -> str:
    mode = os.environ.get(ENV_READ, "range")
    if mode not in ("range", "cache"):
        raise StorageError(ENV_READ, f"unknown read strategy {mode!r} (range, cache)", True)
    return mode


def open_read(uri: str) -> BinaryIO:
    """A seekable binary file object with `uri`'s content (local file, ranged GETs, or
    this node's cache)."""
    if not is_s3(uri):
        return open(uri, "rb")
    _check_uri(uri)
    if read_strategy() == "cache":
        from pipeline.storage.cache import open_cached

        return open_cached(uri)
    from pipeline.storage.rangeio import RangeReader

    return RangeReader(uri)


def stored_sha256(uri: str) -> str | None:
    """sha256 of a stored file: computed for local files, from the object's metadata
    (written by `put_file`, checked by S3's own checksum on upload) for S3; None if absent."""
    if not is_s3(uri):
        return file_sha256(uri) if os.path.exists(uri) else None
    bucket, key = _check_uri(uri)
    try:
        r = s3.client().head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        if s3.is_not_found(exc):
            return None
        raise s3.wrap(exc, uri) from None
    return (r.get("Metadata") or {}).get(SHA_META)


# --- writing ------------------------------------------------------------------------

def check_writable(uri: str) -> None:
    """Raise an exit-2 error if nothing could be written at `uri` (before any work).

    S3: a multipart upload is created at the key and aborted at once: it needs the same
    permission as the final upload and leaves nothing visible at the key."""
    from pipeline.errors import InputError

    if not is_s3(uri):
        d = os.path.dirname(os.path.abspath(uri))
        if not os.path.isdir(d):
            raise InputError(f"{uri}: output directory does not exist")
        if not os.access(d, os.W_OK):
            raise InputError(f"{uri}: output directory is not writable")
        return
    bucket, key = _check_uri(uri, True)
    if not key or key.endswith("/"):
        raise StorageError(uri, "needs a key (s3://bucket/path/film.mkv)", True)
    c = s3.client()
    try:
        upload = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    except Exception as exc:  # noqa: BLE001
        if s3.is_not_found(exc) or _code(exc) == "NoSuchBucket":
            raise StorageError(f"s3://{bucket}/", "no such bucket", True) from None
        raise s3.wrap(exc, f"s3://{bucket}/" if _is_denied(exc) else uri, True) from None
    try:
        c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
    except Exception as exc:  # noqa: BLE001
        raise s3.wrap(exc, uri, True) from None


def _code(exc: BaseException) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def _is_denied(exc: BaseException) -> bool:
    return _code(exc) in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def makedirs(uri: str) -> None:
    if not is_s3(uri):
        os.makedirs(uri, exist_ok=True)


def write_bytes(uri: str, data: bytes) -> None:
    """Replace `uri` with `data` atomically."""
    if is_s3(uri):
        bucket, key = _check_uri(uri)
        sha = hashlib.sha256(data).hexdigest()
        kwargs = _checksum_args(sha)
        try:
            s3.client().put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA_META: sha}, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _write_error(exc, uri) from None
        return
    tmp = uri + f".partial-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, uri)


def _write_error(exc: BaseException, uri: str) -> StorageError:
    if s3.is_not_found(exc) or _code(exc) == "NoSuchBucket":
        bucket, _ = s3.split(uri)
        return StorageError(f"s3://{bucket}/", "no such bucket")
    return s3.wrap(exc, uri)


def _checksum_args(sha_hex: str | None = None) -> dict:
    """S3 additional checksum for a single PUT (the server verifies the bytes it got)."""
    if not s3.checksums_enabled() or sha_hex is None:
        return {}
    return {"ChecksumSHA256": base64.b64encode(bytes.fromhex(sha_hex)).decode()}


def put_file(local_path: str, dest: str, sha256: str | None = None, part_size: int | None = None) -> str:
    """Store a finished local file at `dest`, visible only when whole; returns its sha256.
    The local file is left in place (see `publish`). `part_size`: multipart part size
    (default: s3.part_size for the file's size)."""
    sha256 = sha256 or file_sha256(local_path)
    if not is_s3(dest):
        tmp = os.path.join(os.path.dirname(os.path.abspath(dest)), f".{os.path.basename(dest)}.partial-{os.getpid()}")
        try:
            shutil.copyfile(local_path, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return sha256
    size = os.path.getsize(local_path)
    part_size = part_size or s3.part_size(size)
    if size <= part_size:
        bucket, key = _check_uri(dest)
        try:
            with open(local_path, "rb") as f:
                s3.client().put_object(Bucket=bucket, Key=key, Body=f, Metadata={SHA_META: sha256},
                                       **_checksum_args(sha256))
        except Exception as exc:  # noqa: BLE001
            raise _write_error(exc, dest) from None
    else:
        from pipeline.storage.upload import multipart_upload

        multipart_upload(local_path, dest, size, sha256, part_size)
    return sha256


def publish(local_path: str, dest: str, sha256: str | None = None, part_size: int | None = None) -> str:
    """Move a finished local file to `dest` atomically; returns its sha256. Local: a rename
    on the same filesystem (staging_path puts it there). S3: uploaded whole."""
    sha256 = sha256 or file_sha256(local_path)
    if is_s3(dest):
        put_file(local_path, dest, sha256, part_size)
        os.remove(local_path)
        return sha256
    if os.path.dirname(os.path.abspath(local_path)) == os.path.dirname(os.path.abspath(dest)):
        with open(local_path, "rb+") as f:
            os.fsync(f.fileno())
        published_mode(local_path)
        os.replace(local_path, dest)
    else:
        put_file(local_path, dest, sha256)
        os.remove(local_path)
    return sha256


def published_mode(path: str) -> None:
    """The permissions a new file or folder gets under this process's umask (0644 / 0755
    usually): staging files are made private by mkstemp/mkdtemp (0600 / 0700), and a
    deliverable renamed into place must not stay readable by its owner alone."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


def listdir(uri: str) -> list[str]:
    """Names of the files directly under `uri` (a directory or an S3 prefix); [] if none."""
    if not is_s3(uri):
        try:
            return sorted(n for n in os.listdir(uri) if os.path.isfile(os.path.join(uri, n)))
        except (FileNotFoundError, NotADirectoryError):
            return []
    bucket, key = _check_uri(uri)
    prefix = key.rstrip("/") + "/"
    names = []
    try:
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                          Delimiter="/"):
            names += [o["Key"][len(prefix):] for o in page.get("Contents", []) or []]
    except Exception as exc:  # noqa: BLE001
        raise _write_error(exc, uri) from None
    return sorted(names)


def list_files(uri: str) -> list[tuple[str, int, str]]:
    """(name, size, etag) of every file directly under `uri` (a directory or an S3
    prefix), sorted by name; [] if none. S3 listings are paginated (1,000 keys a page), so a
    prefix of 100,000 frames is 100 requests, not one per object."""
    if not is_s3(uri):
        try:
            names = sorted(os.listdir(uri))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for n in names:
            p = os.path.join(uri, n)
            if os.path.isfile(p):
                out.append((n, os.path.getsize(p), ""))
        return out
    bucket, key = _check_uri(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    out = []
    try:
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                          Delimiter="/"):
            out += [(o["Key"][len(prefix):], int(o["Size"]), o.get("ETag", ""))
                    for o in page.get("Contents", []) or []]
    except Exception as exc:  # noqa: BLE001
        raise _write_error(exc, uri) from None
    return sorted(out)


def remove(uri: str) -> None:
    if is_s3(uri):
        bucket, key = _check_uri(uri)
        try:
            s3.client().delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise s3.wrap(exc, uri) from None
    elif os.path.exists(uri):
        os.remove(uri)


# --- scratch ------------------------------------------------------------------------

SCRATCH_PREFIX = "filmcolor-scratch-"


def scratch_dir() -> str:
    """This process's scratch directory on this node (segments and films being built for
    S3); removed with `sweep_scratch` once its process is gone."""
    d = os.path.join(os.environ.get("FILMCOLOR_SCRATCH") or tempfile.gettempdir(), f"{SCRATCH_PREFIX}{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    return d


def sweep_scratch() -> None:
    """Remove scratch directories of processes that no longer exist (a killed actor's)."""
    root = os.environ.get("FILMCOLOR_SCRATCH") or tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(SCRATCH_PREFIX):
            continue
        try:
            pid = int(name[len(SCRATCH_PREFIX):])
        except ValueError:
            continue
        if pid != os.getpid() and not process_alive(pid):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            log.debug("removed stale scratch of process %d", pid)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (scratch sweep, stale run locks)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_path(dest: str, suffix: str) -> str:
    """A local path for building `dest`: beside it for local files (same filesystem, so the
    final rename is atomic), in this process's scratch directory for S3."""
    if is_s3(dest):
        fd, path = tempfile.mkstemp(prefix="stage-", suffix=suffix, dir=scratch_dir())
        os.close(fd)
        return path
    d = os.path.dirname(os.path.abspath(dest))
    fd, path = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".partial" + suffix, dir=d)
    os.close(fd)
    return path


def file_sha256(path: str) -> str:
    """sha256 of a local file, read in 1 MiB blocks (segments and films are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def local_copy(uri: str):
    """Context manager: a local path with `uri`'s content (for driver-only commands such
    as `eval`; stages read by URI with `open_read`)."""
    import contextlib

    @contextlib.contextmanager
    def _cm():
        if not is_s3(uri):
            yield uri
            return
        with tempfile.TemporaryDirectory(prefix="filmcolor-", dir=scratch_dir()) as tmp:
            path = os.path.join(tmp, "input" + os.path.splitext(uri)[1])
            with open_read(uri) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
            yield path

    return _cm()
