"""The per-node read-through cache: one download per node, shared by concurrent actors."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

pytestmark = pytest.mark.timeout(120)


def _read_cached(uri: str, cache: str, q) -> None:
    os.environ["FILMCOLOR_CACHE_DIR"] = cache
    from pipeline.storage.cache import open_cached
    from pipeline.storage.rangeio import ReadStats

    with open_cached(uri) as f:
        data = f.read()
    q.put((len(data), ReadStats.reset()[0]))


def test_concurrent_readers_download_once(s3_server, s3_bucket, film3, tmp_path):
    s3_server.client().upload_file(film3.path, s3_bucket, "bw.mkv")
    uri, size = f"s3://{s3_bucket}/bw.mkv", os.path.getsize(film3.path)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_read_cached, args=(uri, str(tmp_path), q)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(n == size for n, _ in got)
    assert sum(fetched for _, fetched in got) == size  # downloaded by one, shared by all
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".obj")]) == 1
    assert not [f for f in os.listdir(tmp_path) if "partial" in f]


def test_a_replaced_object_is_a_new_entry_and_old_ones_are_evicted(s3_server, s3_bucket, tmp_path, monkeypatch):
    from pipeline.storage.cache import open_cached

    monkeypatch.setenv("FILMCOLOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FILMCOLOR_CACHE_BYTES", "1500")
    c = s3_server.client()
    c.put_object(Bucket=s3_bucket, Key="a", Body=b"1" * 1000)
    with open_cached(f"s3://{s3_bucket}/a") as f:
        assert f.read() == b"1" * 1000
    c.put_object(Bucket=s3_bucket, Key="a", Body=b"2" * 1000)  # new ETag
    with open_cached(f"s3://{s3_bucket}/a") as f:
        assert f.read() == b"2" * 1000  # never the stale copy
    entries = [f for f in os.listdir(tmp_path) if f.endswith(".obj")]
    assert len(entries) == 1  # over 1500 bytes: the older entry went
