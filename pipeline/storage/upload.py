"""Multipart upload of a finished film: visible at its key only when complete.

Parts are uploaded in order with an S3 additional checksum (SHA256) each where the server
accepts it; the object carries the whole file's sha256 as metadata. Any failure aborts
the upload, so no half film and no orphaned parts stay behind. If even the abort cannot
reach the server, the next upload to the same key aborts the leftovers first.
"""

from __future__ import annotations

import base64
import hashlib

from pipeline import log
from pipeline.storage import s3


def multipart_upload(local_path: str, uri: str, size: int, sha256: str, psize: int | None = None) -> None:
    bucket, key = s3.split(uri)
    c = s3.client()
    _abort_leftovers(c, bucket, key)
    use_checksum = s3.checksums_enabled()
    extra = {"ChecksumAlgorithm": "SHA256"} if use_checksum else {}
    try:
        upload = c.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"sha256": sha256}, **extra)["UploadId"]
    except Exception as exc:  # noqa: BLE001
        if use_checksum and _checksum_refused(exc):
            log.debug("%s: server refuses additional checksums; uploading without", uri)
            upload = _create(c, bucket, key, sha256, uri)
            use_checksum = False
        else:
            raise s3.wrap(exc, uri) from None
    psize = psize or s3.part_size(size)
    parts = []
    try:
        with open(local_path, "rb") as f:
            number = 1
            while True:
                data = f.read(psize)
                if not data:
                    break
                kw = {}
                if use_checksum:
                    kw["ChecksumSHA256"] = base64.b64encode(hashlib.sha256(data).digest()).decode()
                r = c.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data, **kw)
                part = {"PartNumber": number, "ETag": r["ETag"]}
                if use_checksum and r.get("ChecksumSHA256"):
                    part["ChecksumSHA256"] = r["ChecksumSHA256"]
                parts.append(part)
                number += 1
        c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
        log.debug("%s: uploaded in %d parts of %d MiB", uri, len(parts), psize >> 20)
    except BaseException as exc:
        _abort(c, bucket, key, upload, uri)
        if isinstance(exc, Exception):
            raise s3.wrap(exc, uri) from None
        raise


def _create(c, bucket, key, sha256, uri) -> str:
    try:
        return c.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"sha256": sha256})["UploadId"]
    except Exception as exc:  # noqa: BLE001
        raise s3.wrap(exc, uri) from None


def _checksum_refused(exc: BaseException) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NotImplemented", "InvalidArgument", "InvalidRequest")


def _abort(c, bucket: str, key: str, upload: str, uri: str) -> None:
    try:
        c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
    except Exception:  # noqa: BLE001 - cleaned up by the next upload to this key
        log.warning("%s: could not abort the failed upload; the next run to this key removes it", uri)


def _abort_leftovers(c, bucket: str, key: str) -> None:
    """Abort earlier failed uploads to exactly this key (a crashed run's parts)."""
    try:
        r = c.list_multipart_uploads(Bucket=bucket, Prefix=key)
    except Exception:  # noqa: BLE001 - best effort; the upload itself reports real errors
        return
    for u in r.get("Uploads", []) or []:
        if u.get("Key") == key:
            try:
                c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=u["UploadId"])
                log.debug("s3://%s/%s: aborted a leftover upload", bucket, key)
            except Exception:  # noqa: BLE001
                pass
