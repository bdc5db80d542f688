"""Names users give that end up in paths: safe film ids, and joins that stay inside."""

from __future__ import annotations

import os

import pytest

from pipeline.errors import InputError
from pipeline.names import MAX_ID, check_id, id_from_path, inside, join_inside


@pytest.mark.parametrize("value", ["reel1", "dictator-reel1", "A.b_c-9", "...", ".hidden", "x" * MAX_ID])
def test_safe_ids(value):
    assert check_id(value) is None


@pytest.mark.parametrize("value,needle", [
    ("../../x", "unsafe id '../../x' (letters, digits, '.', '_', '-' only)"),
    ("a/b", "unsafe id 'a/b'"),
    ("a\\b", "unsafe id"),
    (".", "not '.' or '..'"),
    ("..", "not '.' or '..'"),
    ("", "empty id"),
    ("réel", "letters, digits"),
    ("日本", "letters, digits"),
    ("a b", "letters, digits"),
    ("a\nb", "'a\\nb'"),  # shown escaped: the problem stays one line
    ("x" * (MAX_ID + 1), "at most 128"),
    (12, "expected a string"),
    (None, "expected a string"),
])
def test_unsafe_ids(value, needle):
    problem = check_id(value)
    assert problem and needle in problem and "\n" not in problem


@pytest.mark.parametrize("path,expected", [
    ("reel1.mkv", "reel1"),
    ("/archive/in/dictator-reel1.v2.mov", "dictator-reel1.v2"),
    ("s3://archive-in/dictator/reel1.mkv", "reel1"),
    ("scans/reel1/", "reel1"),  # a sequence folder
    ("s3://in/scans/reel1/", "reel1"),  # a sequence prefix
    ("scans/reel1_%08d.dpx", "reel1"),  # a printf pattern
    ("scans/reel1.%06d.tif", "reel1"),
    ("scans/reel-1-%d.tiff", "reel-1"),
    ("scans/reel1/%08d.dpx", "reel1"),  # nothing but the pattern: the folder names it
    ("%08d.dpx", "film"),
    ("my film (1).mov", "my_film_1"),
    ("réel 1.mkv", "reel_1"),
    ("..", "film"),
    ("x/..", "film"),
    ("/", "film"),
    ("", "film"),
    ("s3://bucket/", "bucket"),
])
def test_id_from_path(path, expected):
    assert id_from_path(path) == expected


def test_id_from_path_is_always_safe_and_keeps_names_apart():
    odd = ["日本.mkv", "映画.mkv", "@@.mkv", "a" * 300 + ".mkv", "b" * 300 + ".mkv", "a" * 301 + ".mkv",
           "../../x.mkv", "..\\..\\x.mkv", "a b\tc\n.mkv"]
    ids = [id_from_path(p) for p in odd]
    assert all(check_id(i) is None for i in ids), ids
    assert len(set(ids)) == len(ids)  # different names, different ids
    assert ids[0].startswith("film-") and len(ids[3]) == MAX_ID
    assert id_from_path("日本.mkv") == ids[0]  # deterministic: a re-run finds its run directory


def test_inside_local(tmp_path):
    base = str(tmp_path / "run")
    assert inside(base, base)
    assert inside(base, os.path.join(base, "segments", "reel1"))
    assert inside(base, os.path.join(base, "segments", "..", "thumbs"))
    assert not inside(base, os.path.join(base, "segments", "..", "..", "x"))
    assert not inside(base, str(tmp_path / "run2" / "x"))  # a sibling with the same prefix
    assert not inside(base, "/etc/passwd")
    assert not inside(base, "s3://b/run/x")
    rel = os.path.relpath(base)
    assert inside(rel, base + "/x") and inside(base, os.path.join(rel, "x"))  # relative vs absolute


def test_inside_s3():
    assert inside("s3://b/runs/r1", "s3://b/runs/r1/segments/reel1/0.mkv")
    assert inside("s3://b/runs/r1/", "s3://b/runs/r1/x")
    assert inside("s3://b", "s3://b/anything")
    assert not inside("s3://b/runs/r1", "s3://b/runs/r1/segments/../../x")
    assert not inside("s3://b/runs/r1", "s3://b/runs/r10/x")
    assert not inside("s3://b/runs/r1", "s3://other/runs/r1/x")
    assert not inside("s3://b/runs/r1", "/runs/r1/x")


def test_join_inside(tmp_path):
    base = str(tmp_path / "run")
    assert join_inside(base, "segments", "reel1") == os.path.join(base, "segments", "reel1")
    assert join_inside("s3://b/run", "thumbs", "reel1") == "s3://b/run/thumbs/reel1"  # as storage.join
    for parts in (("segments", "../../x"), ("..",), ("journal", "..", ".."), ("segments", "a", "../../../x"), ("/etc",)):
        with pytest.raises(InputError, match="leads outside"):
            join_inside(base, *parts)
    with pytest.raises(InputError, match="leads outside s3://b/run"):
        join_inside("s3://b/run", "segments", "../../x")
    join_inside("s3://b/run", "segments", "a/b")  # a folder deeper is still inside (ids refuse it earlier)
