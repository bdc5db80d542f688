"""A seekable, read-only file object over an S3 object, made of ranged GETs.

PyAV reads it like a local file (`av.open(RangeReader(uri))`). Reads are served from a
few cached chunks; a read just past the last chunk fetched doubles the next chunk (1 MiB
up to 16 MiB: a demuxer reading a shard sequentially makes few, large requests), any
other seek starts small again (a seek to a shard in the middle of a film, or the
demuxer's jump to the index at the end of a Matroska file, fetches little). Every GET
carries the object's ETag (`If-Match`): a film replaced while being read is an error,
never a silent mix of two versions. A body that breaks off mid-transfer is fetched
again (botocore retries only the request, not the streaming body).
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections import OrderedDict

from pipeline.storage import s3

MIN_CHUNK = 1 << 20
MAX_CHUNK = 16 << 20
CACHE_BYTES = 48 << 20  # per open file: a few chunks (the index + the current position)


class ReadStats:
    """Bytes and requests this process fetched (for the benchmark's comparison)."""

    lock = threading.Lock()
    bytes = 0
    requests = 0

    @classmethod
    def add(cls, n: int) -> None:
        with cls.lock:
            cls.bytes += n
            cls.requests += 1

    @classmethod
    def reset(cls) -> tuple[int, int]:
        with cls.lock:
            out = (cls.bytes, cls.requests)
            cls.bytes = cls.requests = 0
            return out


class RangeReader(io.RawIOBase):
    def __init__(self, uri: str, size: int | None = None, etag: str | None = None,
                 min_chunk: int = MIN_CHUNK, max_chunk: int = MAX_CHUNK):
        super().__init__()
        self.uri = uri
        self.bucket, self.key = s3.split(uri)
        if size is None or etag is None:
            size, etag = head(uri)
        self.size, self.etag = size, etag
        self.min_chunk, self.max_chunk = min_chunk, max_chunk
        self._pos = 0
        self._chunks: OrderedDict[int, bytes] = OrderedDict()  # start offset -> bytes (LRU)
        self._cached = 0
        self._next_chunk = min_chunk
        self._last_end = -1

    # --- io.RawIOBase ---------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"unsupported whence {whence}")
        self._pos = max(0, pos)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self._pos
        out = []
        while n > 0 and self._pos < self.size:
            start, data = self._chunk_at(self._pos)
            off = self._pos - start
            piece = data[off:off + n]
            out.append(piece)
            self._pos += len(piece)
            n -= len(piece)
        return b"".join(out)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    # --- chunks -----------------------------------------------------------------------
    def _chunk_at(self, pos: int) -> tuple[int, bytes]:
        for start, data in reversed(self._chunks.items()):
            if start <= pos < start + len(data):
                self._chunks.move_to_end(start)
                return start, data
        # Sequential read: grow the window; a jump elsewhere: start small again.
        if pos == self._last_end:
            self._next_chunk = min(self.max_chunk, self._next_chunk * 2)
        else:
            self._next_chunk = self.min_chunk
        end = min(self.size, pos + self._next_chunk)
        data = fetch(self.uri, pos, end, self.etag)
        self._last_end = end
        self._chunks[pos] = data
        self._cached += len(data)
        while self._cached > CACHE_BYTES and len(self._chunks) > 1:
            _, old = self._chunks.popitem(last=False)
            self._cached -= len(old)
        return pos, data


def head(uri: str, user_input: bool = False) -> tuple[int, str]:
    """(size, ETag) of an S3 object; StorageError in words if it cannot be had."""
    bucket, key = s3.split(uri)
    try:
        r = s3.client().head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001 - described in words
        if s3.is_not_found(exc):
            raise s3.refine_not_found(uri, user_input) from None
        raise s3.wrap(_with_body(exc, bucket, key), uri, user_input) from None
    return int(r["ContentLength"]), r.get("ETag", "")


def _with_body(exc: BaseException, bucket: str, key: str) -> BaseException:
    """A HEAD error has no body, so a 403 cannot say whether the key is unknown, the
    secret wrong or access denied: ask again with a 1-byte GET, whose error has a code."""
    if (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") != "403":
        return exc
    try:
        s3.client().get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
    except Exception as detailed:  # noqa: BLE001
        return detailed
    return exc


def fetch(uri: str, start: int, end: int, etag: str | None = None, attempts: int | None = None) -> bytes:
    """Bytes [start, end) of an object. The request is retried by botocore; a body that
    breaks off is fetched again here, a bounded number of times with backoff."""
    bucket, key = s3.split(uri)
    attempts = attempts or s3.ClientSettings.from_env().attempts
    kwargs = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
    if etag:
        kwargs["IfMatch"] = etag
    for attempt in range(attempts):
        try:
            body = s3.client().get_object(**kwargs)["Body"]
            data = body.read()
            if len(data) != end - start:
                raise ConnectionError(f"short read: {len(data)} of {end - start} bytes")
            ReadStats.add(len(data))
            return data
        except Exception as exc:  # noqa: BLE001
            if s3.is_boto_error(exc) and not _streaming_error(exc):
                if s3.is_not_found(exc):
                    raise s3.refine_not_found(uri, False) from None
                raise s3.wrap(exc, uri) from None  # botocore already retried the request
            if attempt == attempts - 1:
                raise s3.wrap(exc, uri) from None
            time.sleep(min(20.0, random.random() * 2 ** attempt))
    raise AssertionError("unreachable")


def _streaming_error(exc: BaseException) -> bool:
    import botocore.exceptions as bx

    return isinstance(exc, (bx.ResponseStreamingError, bx.ReadTimeoutError, bx.ConnectionClosedError))
