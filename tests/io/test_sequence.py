"""The sequence reader: DPX/TIFF frames in a folder, a pattern or an S3 prefix, refused
clearly when the sequence is not one film."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.io import iter_luma, parse_rate, probe
from pipeline.io.sequence import is_sequence
from pipeline.synth import SynthScene, write_sequence

SHOTS = [SynthScene("astronaut", 6, pan=(2, 1)), SynthScene("coffee", 6, pan=(-2, 0))]


def _truth(film, depth):
    """The luma code values write_sequence stored (rendered again, same arithmetic)."""
    from pipeline.synth import rgb_to_ycbcr

    top = (1 << depth) - 1
    return [np.rint(rgb_to_ycbcr(f, "bt709")[0] * top).astype(np.uint16 if depth > 8 else np.uint8)
            for f in film.colour]


@pytest.mark.parametrize("ext,depth,big_endian,rgb", [
    (".dpx", 16, True, False), (".dpx", 10, True, False), (".dpx", 12, False, False), (".dpx", 16, False, True),
    (".dpx", 10, True, True), (".tif", 16, False, False), (".tif", 16, False, True), (".dpx", 8, True, False),
])
def test_every_depth_reads_the_stored_samples(tmp_path, ext, depth, big_endian, rgb):
    film = write_sequence(str(tmp_path / "reel"), SHOTS, 64, 48, depth, ext, big_endian, rgb, keep_colour=True)
    info = probe(film.path, Fraction(24))
    assert info.is_sequence and info.frame_count == 12 and info.bit_depth == depth and info.full_range
    assert info.chroma == ("rgb" if rgb else "gray")
    got = dict(iter_luma(info, 0, info.frame_count))
    truth = _truth(film, depth)
    for i in range(12):
        # an R=G=B scan's luma by the documented matrix is the stored value itself
        assert got[i].dtype == truth[i].dtype and np.array_equal(got[i], truth[i]), f"frame {i}"


def test_rate_and_timecode_from_the_dpx_header(tmp_path):
    film = write_sequence(str(tmp_path / "r"), SHOTS, 32, 24, 16, ".dpx", rate=Fraction(18),
                          timecode="01:00:00:00", first_number=86400)
    info = probe(film.path)
    assert info.avg_rate == 18 and info.time_base == Fraction(1, 18)
    assert info.start_timecode == "01:00:00:00"
    assert info.frame_pts == tuple(range(12)) and info.end_pts == 12


def test_fps_option_where_the_files_have_no_rate(tmp_path):
    film = write_sequence(str(tmp_path / "t"), SHOTS, 32, 24, 16, ".tif", rate=None)
    with pytest.raises(InputError, match="give the film's rate with --fps"):
        probe(film.path)
    info = probe(film.path, parse_rate("18"))
    assert info.avg_rate == 18
    assert parse_rate("23.976") == Fraction(24000, 1001) and parse_rate("24000/1001") == Fraction(24000, 1001)


def test_pattern_folder_and_any_start_number(tmp_path):
    film = write_sequence(str(tmp_path / "p"), SHOTS, 32, 24, 16, ".dpx", first_number=1001)
    a = probe(film.path)
    b = probe(os.path.join(film.path, "reel_%08d.dpx"))
    assert a.frame_files == b.frame_files and os.path.basename(a.frame_files[0]) == "reel_00001001.dpx"
    assert is_sequence(film.path) and is_sequence(os.path.join(film.path, "reel_%08d.dpx"))
    assert not is_sequence(str(tmp_path / "film.mkv"))


def _one_line(exc: InputError) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_gap_duplicate_mixed_depth_and_damage_are_refused_naming_the_file(tmp_path):
    film = write_sequence(str(tmp_path / "g"), SHOTS, 32, 24, 16, ".dpx")
    os.remove(os.path.join(film.path, "reel_00000005.dpx"))
    with pytest.raises(InputError) as e:
        probe(film.path)
    assert "reel_00000006.dpx" in _one_line(e.value) and "gap" in str(e.value)

    film = write_sequence(str(tmp_path / "d"), SHOTS, 32, 24, 16, ".dpx")
    shutil.copy(os.path.join(film.path, "reel_00000003.dpx"), os.path.join(film.path, "reel_003.dpx"))
    with pytest.raises(InputError) as e:
        probe(film.path)
    assert "duplicate frame number 3" in _one_line(e.value)

    film = write_sequence(str(tmp_path / "m"), SHOTS, 32, 24, 16, ".dpx")
    write_sequence(str(tmp_path / "m10"), SHOTS, 32, 24, 10, ".dpx")
    shutil.copy(str(tmp_path / "m10" / "reel_00000007.dpx"), os.path.join(film.path, "reel_00000007.dpx"))
    with pytest.raises(InputError) as e:
        probe(film.path)
    assert "reel_00000007.dpx" in _one_line(e.value) and "10-bit" in str(e.value)

    film = write_sequence(str(tmp_path / "x"), SHOTS, 32, 24, 16, ".dpx")
    victim = os.path.join(film.path, "reel_00000004.dpx")
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) - 100)
    with pytest.raises(InputError) as e:
        probe(film.path)
    assert "reel_00000004.dpx" in _one_line(e.value) and "truncated" in str(e.value)

    film = write_sequence(str(tmp_path / "two"), SHOTS, 32, 24, 16, ".dpx")
    write_sequence(film.path, SHOTS, 32, 24, 16, ".dpx", name="other_%04d")
    with pytest.raises(InputError, match="more than one image sequence"):
        probe(film.path)


def test_a_sequence_under_an_s3_prefix(s3_server, s3_bucket, tmp_path):
    from pipeline.storage.rangeio import ReadStats

    film = write_sequence(str(tmp_path / "s"), SHOTS, 64, 48, 16, ".dpx", timecode="00:59:59:00")
    c = s3_server.client()
    for name in sorted(os.listdir(film.path)):
        c.upload_file(os.path.join(film.path, name), s3_bucket, f"scans/reel1/{name}")
    local = probe(film.path)
    remote = probe(f"s3://{s3_bucket}/scans/reel1/")
    assert remote.frame_count == 12 and remote.start_timecode == "00:59:59:00"
    assert all(e for e in remote.frame_etags)
    before = ReadStats.bytes
    got = dict(iter_luma(remote, 4, 7))
    # a range reads only its own objects
    assert ReadStats.bytes - before == sum(remote.frame_sizes[4:7])
    for i, y in iter_luma(local, 4, 7):
        assert np.array_equal(got[i], y)
    # pinned by ETag: a frame replaced after the probe is an error, not a silent mix
    c.upload_file(os.path.join(film.path, "reel_00000000.dpx"), s3_bucket, "scans/reel1/reel_00000005.dpx")
    with pytest.raises(Exception, match="reel_00000005"):
        list(iter_luma(remote, 5, 6))
