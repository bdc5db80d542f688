from fractions import Fraction

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.io import frame_time, iter_luma, probe
from pipeline.synth import SynthScene, write_film

SHOTS = [SynthScene("astronaut", 20, pan=(3, 1)), SynthScene("rocket", 20, pan=(-2, 0))]


@pytest.mark.parametrize("pix_fmt", ["gray", "gray10le", "yuv420p", "yuv422p", "yuv444p", "yuv420p10le",
                                     "gray16le", "gray12le", "yuv420p12le", "yuv420p16le", "yuv444p16le"])
def test_probe_formats(tmp_path, pix_fmt):
    # gray16le: RAWcooked's FFV1 of a 16-bit luma-only scan
    from pipeline.synth import luma_code, rgb_to_ycbcr

    film = write_film(str(tmp_path / "f.mkv"), SHOTS, 64, 48, pix_fmt=pix_fmt, audio=False, keep_colour=True)
    info = probe(film.path)
    depth = next((d for d in (10, 12, 16) if str(d) in pix_fmt), 8)
    assert info.frame_count == 40
    assert info.pix_fmt == pix_fmt
    assert info.bit_depth == depth
    y = next(iter_luma(info, 5, 6))[1]
    assert y.shape == (48, 64) and y.dtype == (np.uint16 if depth > 8 else np.uint8)
    # the stored samples themselves, at the film's depth
    truth = luma_code(rgb_to_ycbcr(film.colour[5], "bt601")[0], depth, full_range=pix_fmt.startswith("gray"))
    assert np.array_equal(y, truth)


def test_range_decode_is_frame_accurate_with_b_frames_and_vfr(tmp_path):
    # H.264 with B-frames and a GOP of 12, variable frame rate: seeking must land exactly.
    film = write_film(str(tmp_path / "v.mp4"), SHOTS, 64, 48, pix_fmt="yuv420p", codec="libx264", vfr=True,
                      audio=False)
    info = probe(film.path)
    assert len(set(np.diff(info.frame_pts))) == 2  # really variable
    full = dict(iter_luma(info, 0, info.frame_count))
    for start, end in [(0, 3), (11, 14), (12, 13), (25, 40), (39, 40)]:
        part = list(iter_luma(info, start, end))
        assert [i for i, _ in part] == list(range(start, end))
        for i, y in part:
            assert np.array_equal(y, full[i]), f"frame {i} differs when decoded from {start}"


def test_frame_time_uses_timestamps(tmp_path):
    film = write_film(str(tmp_path / "v.mkv"), SHOTS[:1], 64, 48, vfr=True, audio=False)
    info = probe(film.path)
    assert frame_time(info, 0) == 0
    assert frame_time(info, 3) == (info.frame_pts[3] - info.frame_pts[0]) * info.time_base
    assert frame_time(info, info.frame_count) > frame_time(info, info.frame_count - 1)
    assert isinstance(frame_time(info, 2), Fraction)


def test_start_timecode_is_read(tmp_path):
    film = write_film(str(tmp_path / "t.mkv"), SHOTS[:1], 64, 48, audio=False, timecode="01:02:03:04")
    assert probe(film.path).start_timecode == "01:02:03:04"


def test_not_a_video(tmp_path):
    p = tmp_path / "x.mkv"
    p.write_bytes(b"this is not a film" * 100)
    with pytest.raises(InputError, match="not a video"):
        probe(str(p))


def test_truncated_video(tmp_path):
    film = write_film(str(tmp_path / "t.mkv"), SHOTS, 64, 48, audio=False)
    data = open(film.path, "rb").read()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        probe(str(cut))


def test_audio_only_file_has_no_video(tmp_path):
    import av

    p = str(tmp_path / "a.mka")
    with av.open(p, "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for pkt in s.encode(f):
            c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    with pytest.raises(InputError, match="no video stream"):
        probe(p)
