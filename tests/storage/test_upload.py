"""Writes to a real S3 server: whole or nothing, sha256 as metadata, no orphaned parts."""

from __future__ import annotations

import hashlib
import os

import pytest

from pipeline import storage

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


def _uploads(client, bucket):
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) or []


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "film.mkv"
    path.write_bytes(os.urandom(12 * MiB + 12345))
    return str(path)


def test_multipart_upload_is_whole_with_sha256(s3_server, s3_bucket, big_file, monkeypatch):
    monkeypatch.setenv("FILMCOLOR_S3_PART_SIZE", str(5 * MiB))  # 3 parts
    uri = f"s3://{s3_bucket}/out/film.mkv"
    sha = storage.put_file(big_file, uri)
    c = s3_server.client()
    head = c.head_object(Bucket=s3_bucket, Key="out/film.mkv", ChecksumMode="ENABLED")
    data = c.get_object(Bucket=s3_bucket, Key="out/film.mkv")["Body"].read()
    assert data == open(big_file, "rb").read()
    assert sha == hashlib.sha256(data).hexdigest() == head["Metadata"]["sha256"] == storage.stored_sha256(uri)
    assert head.get("ChecksumSHA256", "").endswith("-3")  # S3 verified every part
    assert _uploads(c, s3_bucket) == []


def test_failed_multipart_upload_leaves_nothing(s3_server, s3_bucket, big_file, monkeypatch):
    # Parts under 5 MiB are refused when the upload is completed (EntityTooSmall).
    monkeypatch.setenv("FILMCOLOR_S3_PART_SIZE", str(1 * MiB))
    uri = f"s3://{s3_bucket}/out/film.mkv"
    with pytest.raises(storage.StorageError, match="part too small"):
        storage.publish(big_file, uri)
    assert not storage.exists(uri)
    assert _uploads(s3_server.client(), s3_bucket) == []
    assert os.path.exists(big_file)  # the local file is kept for a retry


def test_leftover_uploads_of_a_crashed_run_are_aborted(s3_server, s3_bucket, big_file, monkeypatch):
    monkeypatch.setenv("FILMCOLOR_S3_PART_SIZE", str(5 * MiB))
    c = s3_server.client()
    c.create_multipart_upload(Bucket=s3_bucket, Key="out/film.mkv")
    c.create_multipart_upload(Bucket=s3_bucket, Key="out/film.mkv.other")  # not ours: kept
    storage.put_file(big_file, f"s3://{s3_bucket}/out/film.mkv")
    assert [u["Key"] for u in _uploads(c, s3_bucket)] == ["out/film.mkv.other"]


def test_small_writes_are_single_puts_with_checksum(s3_server, s3_bucket):
    uri = f"s3://{s3_bucket}/run/films.parquet"
    storage.write_bytes(uri, b"abc")
    assert storage.read_bytes(uri) == b"abc"
    assert storage.stored_sha256(uri) == hashlib.sha256(b"abc").hexdigest()


def test_check_writable_leaves_nothing_visible(s3_server, s3_bucket):
    storage.check_writable(f"s3://{s3_bucket}/out/film.mkv")
    c = s3_server.client()
    assert c.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    assert _uploads(c, s3_bucket) == []


def test_part_size_fits_films_of_a_terabyte():
    from pipeline.storage.s3 import MAX_PARTS, part_size

    for total in (1, 100 * 10**9, 10**12, 5 * 10**12):
        p = part_size(total)
        assert p >= 5 * MiB and -(-total // p) <= MAX_PARTS
    assert part_size(100 * 10**9) == 64 * MiB
