"""Scene list export: CSV, Parquet, JSON, CMX3600 EDL, OTIO, with the film's start timecode."""

from __future__ import annotations

import csv
import json

import pytest

from pipeline.errors import InputError
from pipeline.io import probe
from pipeline.scenes import Scene, write_scenes
from pipeline.scenes.export import CSV_COLUMNS, format_timecode, parse_timecode
from pipeline.scenes.synth import write_gray

from .clips import clip, shot


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    c = clip().cut(shot("astronaut", 30)).cut(shot("coffee", 18))
    path = str(tmp_path_factory.mktemp("export") / "film.mkv")
    write_gray(path, c.frames, rate=24, codec="ffv1", timecode="01:00:10:00")
    info = probe(path)
    scenes = [Scene(0, 0, 24, "start", 0.0), Scene(1, 24, 30, "cut", 0.61, True),
              Scene(2, 30, 48, "dissolve", 0.8)]
    return info, scenes


def test_timecode_arithmetic():
    assert parse_timecode("01:00:00:00", 24) == 86400
    assert format_timecode(86400 + 24 * 61 + 5, 24) == "01:01:01:05"


def test_csv_has_exactly_the_design_columns(film, tmp_path):
    info, scenes = film
    out = tmp_path / "s.csv"
    write_scenes(scenes, info, str(out))
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == CSV_COLUMNS == [
        "scene", "start_frame", "end_frame", "start_time", "end_time", "start_timecode", "transition", "score"]
    assert [r["start_timecode"] for r in rows] == ["01:00:10:00", "01:00:11:00", "01:00:11:06"]
    assert [float(r["start_time"]) for r in rows] == [0.0, 1.0, 1.25]
    from pipeline.io import frame_time

    # Exact frame timestamps (Matroska stores milliseconds: 48 frames end at 1.999 s).
    assert float(rows[-1]["end_time"]) == round(float(frame_time(info, 48)), 6)
    assert rows[2]["transition"] == "dissolve"


def test_json_and_parquet_carry_low_variability(film, tmp_path):
    import pyarrow.parquet as pq

    info, scenes = film
    write_scenes(scenes, info, str(tmp_path / "s.json"))
    write_scenes(scenes, info, str(tmp_path / "s.parquet"))
    js = json.loads((tmp_path / "s.json").read_text())
    assert [r["low_variability"] for r in js] == [False, True, False]
    t = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert t == js


def test_edl_uses_the_film_start_timecode(film, tmp_path):
    info, scenes = film
    out = tmp_path / "s.edl"
    write_scenes(scenes, info, str(out))
    text = out.read_text()
    assert text.startswith("TITLE: film")
    assert "FCM: NON-DROP FRAME" in text
    events = [ln for ln in text.splitlines() if ln[:3].isdigit()]
    assert len(events) == 3
    assert events[1].split()[-4:] == ["01:00:11:00", "01:00:11:06", "01:00:11:00", "01:00:11:06"]


def test_otio_round_trips(film, tmp_path):
    import opentimelineio as otio

    info, scenes = film
    out = tmp_path / "s.otio"
    write_scenes(scenes, info, str(out))
    tl = otio.adapters.read_from_file(str(out))
    clips = list(tl.find_clips())
    assert len(clips) == 3
    assert clips[1].source_range.start_time.to_timecode() == "01:00:11:00"
    assert clips[1].metadata["filmcolor"]["low_variability"] is True
    assert tl.duration().to_frames() == 48


def test_unknown_extension_is_an_input_error(film, tmp_path):
    info, scenes = film
    with pytest.raises(InputError):
        write_scenes(scenes, info, str(tmp_path / "s.xml"))
    assert not list(tmp_path.iterdir())
