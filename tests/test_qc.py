"""QC of the preservation master: infra/qc/ffv1-master.xml with MediaConch, on a master made
by the pipeline's own encoder and assembly (no Ray), and on files it must refuse."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline import qc
from pipeline.errors import FilmcolorError

needs_mediaconch = pytest.mark.skipif(shutil.which("mediaconch") is None,
                                      reason="mediaconch is not installed (apt-get install mediaconch)")


def make_master(src: str, out: str, work: str) -> str:
    """The FFV1 master as the pipeline writes it: one segment by SegmentWriter (the input's
    luma, neutral chroma), then assembly (packets copied, input audio copied)."""
    from pipeline.assemble import Segment, assemble
    from pipeline.codecs import SegmentWriter, chroma_to_code, convert_luma, output_spec
    from pipeline.io import iter_luma, probe
    from pipeline.shard import Shard

    info = probe(src)
    spec = output_spec(info, "ffv1")
    seg = os.path.join(work, "seg-" + os.path.basename(out))
    writer = SegmentWriter(seg, spec, info.width, info.height)
    cw, ch = spec.chroma_size(info.width, info.height)
    cb, cr = chroma_to_code(np.zeros((2, ch, cw)), spec)
    for _, y in iter_luma(info, 0, info.frame_count):
        writer.write(convert_luma(y, info, spec), cb, cr)
    writer.close()
    n = info.frame_count
    assemble(info, spec, spec, [Segment(Shard("f-000", "f", 0, 0, 0, n, 0, n, ()), seg)], out)
    return out


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    from pipeline.synth import SynthScene, write_film

    d = tmp_path_factory.mktemp("qc")
    film = write_film(str(d / "bw.mkv"), [SynthScene("astronaut", 12, pan=(2.0, 0.5))], 64, 48, pix_fmt="gray")
    return make_master(film.path, str(d / "master.mkv"), str(d))


def write_mkv(path: str, codec: str, pix_fmt: str, options: dict, mux_options: dict | None = None) -> str:
    from types import SimpleNamespace

    from pipeline.codecs import BT709, set_color_tags

    tags = SimpleNamespace(colorspace=BT709, color_primaries=BT709, color_trc=BT709, full_range=False)
    with av.open(path, "w", format="matroska", options={"fflags": "+bitexact", **(mux_options or {})}) as c:
        s = c.add_stream(codec, rate=24, options=options)
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        set_color_tags(s.codec_context, tags)
        for i in range(24):
            f = av.VideoFrame(64, 48, pix_fmt)
            for p in f.planes:
                a = np.frombuffer(p, np.uint8)
                a[:] = (np.arange(a.size) * 3 + i * 11) % 220
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode(None):
            c.mux(pk)
    return path


# --- EBML: every Level 1 element of the Segment starts with a CRC-32 element ----------------

def _vint(b: bytes, i: int, keep_marker: bool) -> tuple[int, int]:
    first = b[i]
    n = 1
    while not first & (0x80 >> (n - 1)):
        n += 1
    v = first if keep_marker else first & (0xFF >> n)
    for k in range(1, n):
        v = (v << 8) | b[i + k]
    return v, i + n


def level1_elements(path: str) -> list[tuple[int, bytes]]:
    """(element id, first 6 bytes of its data) of each Level 1 element of the Segment."""
    b = open(path, "rb").read()
    i, out = 0, []
    while i < len(b):
        eid, i = _vint(b, i, True)
        size, i = _vint(b, i, False)
        if eid != 0x18538067:  # EBML header
            i += size
            continue
        end = min(i + size, len(b))
        while i < end:
            cid, i = _vint(b, i, True)
            csize, i = _vint(b, i, False)
            out.append((cid, b[i:i + 6]))
            i += csize
    return out


def test_policy_is_a_mediaconch_policy():
    root = ET.parse(qc.POLICY).getroot()
    assert root.tag == "policy" and root.get("type") == "and"
    rules = {(r.get("tracktype"), r.get("value"), r.get("operator"), (r.text or "").strip())
             for r in root.iter("rule")}
    assert {("General", "Format", "=", "Matroska"),
            ("General", "extra/ErrorDetectionType", "=", "Per level 1"),
            ("Video", "Format", "=", "FFV1"),
            ("Video", "Format_Version", "starts with", "3."),
            ("Video", "Format_Settings_GOP", "=", "N=1"),
            ("Video", "extra/ErrorDetectionType", "=", "Per slice"),
            ("Video", "Compression_Mode", "=", "Lossless")} <= rules
    present = {r[1] for r in rules if r[2] == "exists"}
    assert present == {"colour_primaries", "transfer_characteristics", "matrix_coefficients", "colour_range"}
    assert not [r for r in rules if r[0] == "Audio"]  # audio is not restricted


def test_master_has_crc32_and_is_deterministic(master, tmp_path):
    """fflags +bitexact keeps Matroska's CRC-32 elements, and a second assembly of the same
    film gives the same bytes."""
    elements = level1_elements(master)
    assert {0x1549A966, 0x1654AE6B, 0x1F43B675} <= {e for e, _ in elements}  # Info, Tracks, Cluster
    for eid, head in elements:
        if eid != 0xEC:  # Void
            assert head[:2] == b"\xbf\x84", hex(eid)  # CRC-32, 4 bytes
    source = os.path.join(os.path.dirname(master), "bw.mkv")
    again = make_master(source, str(tmp_path / "again.mkv"), str(tmp_path))
    assert open(again, "rb").read() == open(master, "rb").read()


def test_without_write_crc32_there_are_no_crc_elements(tmp_path):
    path = write_mkv(str(tmp_path / "nocrc.mkv"), "ffv1", "yuv420p", {"level": "3", "g": "1", "slicecrc": "1"},
                     {"write_crc32": "0"})
    assert all(head[:2] != b"\xbf\x84" for _, head in level1_elements(path))


@needs_mediaconch
def test_master_passes_the_policy(master):
    assert qc.check_master(master) == (True, "")


@needs_mediaconch
def test_h264_in_mkv_fails(tmp_path):
    path = write_mkv(str(tmp_path / "h264.mkv"), "libx264", "yuv420p", {"crf": "18", "g": "12"})
    ok, text = qc.check_master(path)
    assert not ok
    assert "Video/Format is FFV1 (found 'AVC'" in text
    assert "Compression_Mode" in text and "Format_Settings_GOP" in text


@needs_mediaconch
def test_gop_above_one_fails(tmp_path):
    from pipeline.codecs import FFV1_OPTIONS

    path = write_mkv(str(tmp_path / "gop.mkv"), "ffv1", "yuv420p", {**FFV1_OPTIONS, "g": "12"})
    ok, text = qc.check_master(path)
    assert not ok
    assert text.splitlines() == [f"{path}: fail: Video/Format_Settings_GOP is N=1 (intra only) "
                                 f"(found nothing, wanted = 'N=1')"]


@needs_mediaconch
def test_missing_crcs_and_colour_tags_fail(tmp_path):
    from pipeline.codecs import FFV1_OPTIONS

    nocrc = write_mkv(str(tmp_path / "nocrc.mkv"), "ffv1", "yuv420p", dict(FFV1_OPTIONS), {"write_crc32": "0"})
    ok, text = qc.check_master(nocrc)
    assert not ok and "General/ErrorDetectionType is Per level 1" in text and len(text.splitlines()) == 1
    noslicecrc = write_mkv(str(tmp_path / "noslicecrc.mkv"), "ffv1", "yuv420p", {**FFV1_OPTIONS, "slicecrc": "0"})
    ok, text = qc.check_master(noslicecrc)
    assert not ok and "Video/ErrorDetectionType is Per slice" in text
    untagged = str(tmp_path / "untagged.mkv")
    with av.open(untagged, "w", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream("ffv1", rate=Fraction(24), options=dict(FFV1_OPTIONS))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            f = av.VideoFrame(64, 48, "yuv420p")
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode(None):
            c.mux(pk)
    ok, text = qc.check_master(untagged)
    assert not ok and all(t in text for t in ("colour_primaries", "transfer_characteristics",
                                              "matrix_coefficients", "colour_range"))


def test_missing_mediaconch_is_a_clear_error(monkeypatch, tmp_path, master):
    monkeypatch.delenv("FILMCOLOR_MEDIACONCH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FilmcolorError, match="mediaconch is not installed.*apt-get install mediaconch"):
        qc.check_master(master)
