"""Ranged-GET reads against a real S3 server: the same bytes and frames as the local file."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline import storage
from pipeline.io import iter_luma, probe
from pipeline.storage.rangeio import RangeReader, ReadStats

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def film_on_s3(s3_server, s3_bucket, film3):
    s3_server.client().upload_file(film3.path, s3_bucket, "films/bw.mkv")
    return film3, f"s3://{s3_bucket}/films/bw.mkv"


def test_random_reads_and_seeks_match_the_local_bytes(film_on_s3):
    film, uri = film_on_s3
    data = open(film.path, "rb").read()
    rnd = random.Random(7)
    with RangeReader(uri, min_chunk=4096, max_chunk=65536) as f:
        assert f.size == len(data)
        for _ in range(200):
            pos, n = rnd.randrange(len(data)), rnd.randrange(1, 100_000)
            f.seek(pos)
            assert f.read(n) == data[pos:pos + n]
        f.seek(-10, 2)
        assert f.read() == data[-10:]
        assert f.read(5) == b""


def test_sequential_reads_grow_the_chunks(film_on_s3):
    film, uri = film_on_s3
    ReadStats.reset()
    with RangeReader(uri, min_chunk=4096, max_chunk=1 << 20) as f:
        while f.read(4096):
            pass
    fetched, requests = ReadStats.reset()
    size = len(open(film.path, "rb").read())
    assert fetched == size  # every byte once
    assert requests < size / 4096 / 4  # far fewer requests than reads


def test_probe_and_frames_by_uri_equal_the_local_file(film_on_s3):
    film, uri = film_on_s3
    local, remote = probe(film.path), probe(uri)
    assert remote.frame_pts == local.frame_pts and remote.path == uri
    a = list(iter_luma(local, 20, 30))
    b = list(iter_luma(remote, 20, 30))  # seeks into the middle of the object
    assert [i for i, _ in a] == [i for i, _ in b] == list(range(20, 30))
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))


def test_an_object_replaced_while_read_is_an_error(film_on_s3, s3_server):
    _, uri = film_on_s3
    bucket, key = uri[5:].split("/", 1)
    with RangeReader(uri, min_chunk=4096, max_chunk=4096) as f:
        f.read(10)
        s3_server.client().put_object(Bucket=bucket, Key=key, Body=b"another film entirely" * 1000)
        f.seek(50_000)
        with pytest.raises(storage.StorageError, match="changed while it was being read"):
            f.read(10)
