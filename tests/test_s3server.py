"""The test S3 server (SeaweedFS weed mini, tests/s3server.py) behaves like S3 where we rely
on it: put/get, ranged get, error codes, multipart, persistence across a restart."""

from __future__ import annotations

import os
import time

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


def _code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def test_put_get_ranged(s3_server, s3_bucket):
    s3 = s3_server.client()
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=s3_bucket, Key="a/b.bin", Body=data)
    assert s3.get_object(Bucket=s3_bucket, Key="a/b.bin")["Body"].read() == data
    r = s3.get_object(Bucket=s3_bucket, Key="a/b.bin", Range="bytes=100-1099")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes 100-1099/{len(data)}"
    assert r["Body"].read() == data[100:1100]


def test_env_points_default_client_at_server(s3_server, s3_bucket):
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server.endpoint
    assert os.environ["AWS_REGION"] == "us-east-1"
    s3 = boto3.client("s3")  # endpoint, keys and region from the environment only
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"via env")
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"via env"


def test_error_codes(s3_server, s3_bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    ro = s3_server.readonly_client()
    assert ro.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"x"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ro.put_object(Bucket=s3_bucket, Key="k2", Body=b"y")
    assert _code(e) == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3_server.client(secret_key="wrong").get_object(Bucket=s3_bucket, Key="k")
    assert _code(e) == "SignatureDoesNotMatch"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=s3_bucket, Key="missing")
    assert _code(e) == "404"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=s3_bucket, Key="missing")
    assert _code(e) == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=s3_bucket + "-nope", Key="k", Body=b"x")  # no auto-create
    assert _code(e) == "NoSuchBucket"


def test_multipart(s3_server, s3_bucket):
    s3 = s3_server.client()
    parts_data = [os.urandom(5 * MiB), b"tail"]
    up = s3.create_multipart_upload(Bucket=s3_bucket, Key="mp")["UploadId"]
    parts = []
    for n, d in enumerate(parts_data, 1):
        r = s3.upload_part(Bucket=s3_bucket, Key="mp", UploadId=up, PartNumber=n, Body=d,
                           ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"]
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]] == [up]
    s3.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=s3_bucket, Key="mp")["Body"].read() == b"".join(parts_data)
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    # non-last parts under 5 MiB are refused at completion; abort leaves nothing behind
    up = s3.create_multipart_upload(Bucket=s3_bucket, Key="small")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=s3_bucket, Key="small", UploadId=up,
                                                      PartNumber=n, Body=b"z" * MiB)["ETag"]}
             for n in (1, 2)]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=s3_bucket, Key="small", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    assert _code(e) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=s3_bucket, Key="small", UploadId=up)
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


def test_stop_start_restart_persist(s3_server, s3_bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_bucket, Key="persist", Body=b"still here")
    endpoint = s3_server.endpoint
    s3_server.stop()
    try:
        fast = s3_server.client(config=Config(retries={"mode": "standard", "max_attempts": 3},
                                              connect_timeout=2, read_timeout=10))
        t0 = time.monotonic()
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            fast.get_object(Bucket=s3_bucket, Key="persist")
        assert time.monotonic() - t0 < 10
    finally:
        s3_server.start()
    assert s3_server.endpoint == endpoint
    assert s3.get_object(Bucket=s3_bucket, Key="persist")["Body"].read() == b"still here"
    s3_server.restart()
    assert s3_server.endpoint == endpoint
    assert s3.get_object(Bucket=s3_bucket, Key="persist")["Body"].read() == b"still here"
    s3.put_object(Bucket=s3_bucket, Key="after", Body=b"new")
    assert s3.get_object(Bucket=s3_bucket, Key="after")["Body"].read() == b"new"
