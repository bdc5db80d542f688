"""Where bytes live: local paths and s3:// URIs behind one small interface.

Every other module reads and writes through here, so object storage slots in without
touching the stages. Writes to a destination are always atomic: staged beside it (local)
or uploaded whole (S3, where a PUT is atomic), never visible half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from typing import Iterator


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def join(base: str, *parts: str) -> str:
    if is_s3(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def parent(uri: str) -> str:
    if is_s3(uri):
        return uri.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(uri))


def exists(uri: str) -> bool:
    if is_s3(uri):
        import botocore.exceptions

        bucket, key = _split(uri)
        try:
            _client().head_object(Bucket=bucket, Key=key)
            return True
        except botocore.exceptions.ClientError:
            return False
    return os.path.exists(uri)


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        import botocore.exceptions

        bucket, key = _split(uri)
        try:
            return _client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            raise FileNotFoundError(uri) from exc
    with open(uri, "rb") as f:
        return f.read()


def writable_dir(uri: str) -> bool:
    """Whether `uri`'s directory exists (we never create an output's directory for the user)."""
    if is_s3(uri):
        bucket, _ = _split(uri)
        try:
            _client().head_bucket(Bucket=bucket)
            return True
        except Exception:  # noqa: BLE001 - any failure means we cannot write there
            return False
    return os.path.isdir(parent(uri))


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path holding `uri`'s content (the path itself for local files)."""
    if not is_s3(uri):
        yield uri
        return
    bucket, key = _split(uri)
    suffix = os.path.splitext(key)[1]
    with tempfile.TemporaryDirectory(prefix="filmcolor-") as tmp:
        path = os.path.join(tmp, "input" + suffix)
        _client().download_file(bucket, key, path)
        yield path


def publish(local_path: str, dest: str) -> None:
    """Move a finished local file to `dest` atomically (rename on the same filesystem)."""
    if is_s3(dest):
        bucket, key = _split(dest)
        _client().upload_file(local_path, bucket, key)
        os.remove(local_path)
        return
    tmp = os.path.join(os.path.dirname(os.path.abspath(dest)), f".{os.path.basename(dest)}.partial-{os.getpid()}")
    if os.path.dirname(os.path.abspath(local_path)) != os.path.dirname(tmp):
        shutil.copyfile(local_path, tmp)
        os.remove(local_path)
    else:
        os.replace(local_path, tmp)
    os.replace(tmp, dest)


def staging_path(dest: str, suffix: str) -> str:
    """A local path for building `dest`: beside it for local files (same filesystem, so the
    final rename is atomic), in the temp dir for S3."""
    if is_s3(dest):
        fd, path = tempfile.mkstemp(prefix="filmcolor-", suffix=suffix)
        os.close(fd)
        return path
    d = os.path.dirname(os.path.abspath(dest))
    fd, path = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".partial" + suffix, dir=d)
    os.close(fd)
    return path


def makedirs(uri: str) -> None:
    if not is_s3(uri):
        os.makedirs(uri, exist_ok=True)


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        bucket, key = _split(uri)
        _client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    tmp = uri + f".partial-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, uri)


def file_sha256(path: str) -> str:
    """sha256 of a local file, read in 1 MiB blocks (segments and films are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
