"""The review page (`filmcolor report`): a real run on a small film, then the page checked
as text and in headless Chromium."""

from __future__ import annotations

import base64
import os
import pathlib
import re
import shutil
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from browser import full_page_screenshot, headless_chromium, missing_reason
from pipeline import storage
from pipeline.job import FilmJob, JobConfig, parse_exemplars, run_film
from pipeline.record import read_table, write_table
from pipeline.report import build_html, thumb_frames, thumb_uri, write_report

SCREENSHOT_COPY = "/tmp/report-screenshot.png"


class _Page(HTMLParser):
    """Every start tag as (tag, attrs); text of <code id=command>."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, cls: str | None = None) -> list[dict]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split())]


@pytest.fixture(scope="module")
def run(ray_cluster, film3, tmp_path_factory):
    """A real run of the 3-scene film, and its report at the default place."""
    d = tmp_path_factory.mktemp("report-run")
    (d / "out").mkdir()
    run_dir = str(d / "run")
    job = FilmJob("film3", film3.path, str(d / "out" / "colour.mkv"), parse_exemplars(film3.exemplars),
                  run_dir=run_dir)
    result = run_film(job, JobConfig(workers=2, progress=False))
    assert result.status == "done"
    path = write_report(run_dir)
    return run_dir, path, open(path, encoding="utf-8").read()


def test_thumb_frames_are_first_middle_last():
    assert thumb_frames(0, 18) == [0, 8, 17]
    assert thumb_frames(18, 32) == [18, 24, 31]
    assert thumb_frames(5, 7) == [5, 6]
    assert thumb_frames(5, 6) == [5]
    assert thumb_frames(5, 5) == []


def test_report_is_written_in_the_run_dir(run):
    run_dir, path, _ = run
    assert path == os.path.join(run_dir, "report", "index.html")
    assert [n for n in os.listdir(os.path.dirname(path))] == ["index.html"]  # no partial left


def test_report_out_dir(run, tmp_path):
    run_dir, _, _ = run
    path = write_report(run_dir, str(tmp_path / "elsewhere"))
    assert path == str(tmp_path / "elsewhere" / "index.html") and os.path.getsize(path) > 1000


def test_page_is_self_contained(run):
    _, _, text = run
    page = _Page(text)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"<script[^>]+src", text, re.I)
    assert not page.find("link") and "@import" not in text and "url(" not in text
    imgs = page.find("img")
    assert imgs, "no image on the page"
    for a in imgs:
        assert a["src"].startswith("data:image/jpeg;base64,")
        data = base64.b64decode(a["src"].split(",", 1)[1])
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    for a in page.find("a"):
        assert a["href"].startswith("#")
    assert len(text) < 2_000_000


def test_one_row_per_scene_with_redo_box(run):
    run_dir, _, text = run
    scenes = read_table(run_dir, "scenes")
    page = _Page(text)
    rows = page.find("tr", "scene")
    assert [(r["data-film"], int(r["data-scene"])) for r in rows] == \
        [(s["film_id"], s["scene"]) for s in sorted(scenes, key=lambda s: s["start_frame"])]
    boxes = page.find("input", "redo")
    assert [(b["data-film"], b["data-scene"]) for b in boxes] == [(r["data-film"], r["data-scene"]) for r in rows]
    assert all(b["type"] == "checkbox" for b in boxes)
    assert page.find("code") and any(a.get("id") == "command" for a in page.find("code"))
    assert any(a.get("id") == "copy" for a in page.find("button"))


def test_header_shows_run_and_model(run):
    run_dir, _, text = run
    film = read_table(run_dir, "films")[0]
    assert run_dir in text and "film3" in text
    assert film["model"]["name"] in text and film["model"]["weights_sha256"] in text  # full sha in title
    assert "10:00:00:00" in text and "10:00:00:17" in text  # start timecode, last frame of scene 0
    assert "2.00 s" in text  # duration 48 frames at 24 fps


def test_every_scene_has_its_exemplar_thumbnail(run):
    run_dir, _, text = run
    scenes = read_table(run_dir, "scenes")
    assert all(s["exemplar_source"] == "own" for s in scenes)
    assert text.count('class="ex"') == len(scenes)  # an <img class="ex"> per scene
    assert "exemplar unreadable" not in text and "no exemplar" not in text


def test_every_thumbnail_image_present(run):
    run_dir, _, text = run
    if not os.path.isdir(os.path.join(run_dir, "thumbs")):
        pytest.xfail("thumbnails not produced yet")
    scenes = read_table(run_dir, "scenes")
    for s in scenes:
        for fr in thumb_frames(s["start_frame"], s["end_frame"]):
            for kind in ("in", "out"):
                assert os.path.exists(thumb_uri(run_dir, s["film_id"], fr, kind)), (s["scene"], fr, kind)
    n = sum(len(thumb_frames(s["start_frame"], s["end_frame"])) for s in scenes)
    assert len(_Page(text).find("img", "th")) == 2 * n
    assert "no thumbnail" not in text


# ---- crafted records: escaping, placeholders, optional columns ------------------------

HOSTILE_ID = """reel<img src=x onerror="alert(1)">'&"""
HOSTILE_ERR = "boom </script><script>alert('x')</script> & <b>bold</b>"


def _crafted(run_dir: str, exemplar: str) -> None:
    model = {"name": "memnet", "version": "2", "weights_sha256": "ab" * 32}
    write_table(run_dir, "films", [{
        "film_id": HOSTILE_ID, "input": "in<put>.mkv", "output": "out.mkv", "status": "failed",
        "error": HOSTILE_ERR, "frames": 20, "width": 160, "height": 96, "codec": "ffv1", "model": model,
        "exemplars": [exemplar], "warnings": ["<warn>"], "seconds": 2.0}])
    write_table(run_dir, "scenes", [
        {"film_id": HOSTILE_ID, "scene": 0, "start_frame": 0, "end_frame": 10, "start_time": 0.0,
         "end_time": 0.4, "start_timecode": "01:00:00:00", "transition": "start", "score": 0.0,
         "low_variability": False, "exemplars": [0], "exemplar_source": "own"},
        {"film_id": HOSTILE_ID, "scene": 1, "start_frame": 10, "end_frame": 20, "start_time": 0.4,
         "end_time": 0.8, "start_timecode": "01:00:00:10", "transition": "cut", "score": 0.5,
         "low_variability": False, "exemplars": [], "exemplar_source": "none"}])
    write_table(run_dir, "shards", [
        {"shard_id": "a", "film_id": HOSTILE_ID, "index": 0, "scene": 0, "start_frame": 0, "end_frame": 10,
         "status": "done", "error": "", "attempts": 1, "frames": 10, "seconds": 1.0},
        {"shard_id": "b", "film_id": HOSTILE_ID, "index": 1, "scene": 1, "start_frame": 10, "end_frame": 20,
         "status": "failed", "error": HOSTILE_ERR, "attempts": 2, "frames": 0, "seconds": 1.0}])


def test_record_text_is_escaped(tmp_path, film3):
    run_dir = str(tmp_path / "run<&>")
    _crafted(run_dir, film3.exemplars[0].split("@")[0])
    text = open(write_report(run_dir), encoding="utf-8").read()
    for raw in (HOSTILE_ID, HOSTILE_ERR, "<warn>", "in<put>", "run<&>", "<b>bold</b>", "<script>alert"):
        assert raw not in text, raw
    assert "boom &lt;/script&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert text.count("<script") == 2  # the config block and the page's own script
    page = _Page(text)
    assert {r["data-film"] for r in page.find("tr", "scene")} == {HOSTILE_ID}  # attributes round-trip
    assert [r["data-status"] for r in page.find("tr", "scene")] == ["done", "failed"]
    # no end_timecode column: the last frame's timecode computed from the frames (25 fps)
    assert "01:00:00:09" in text and "01:00:00:19" in text


def test_missing_images_are_labelled_placeholders(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    run_dir = str(tmp_path / "run")
    _crafted(run_dir, str(bad))
    text = open(write_report(run_dir), encoding="utf-8").read()
    page = _Page(text)
    assert not page.find("img")
    assert "exemplar unreadable" in text and "no exemplar" in text
    assert text.count("no thumbnail") >= 2 * 3 * 2


def test_new_columns_exemplar_image_fps_hints(tmp_path, film3):
    """Columns the run record is gaining (fps, auto_model, exemplar_image, exemplar_frame,
    end_timecode) are used when present; an RGBA hints image becomes a JPEG thumbnail."""
    rgba = np.zeros((48, 80, 4), np.uint8)
    rgba[10:20, 10:30] = (0, 0, 255, 255)  # one red stroke, transparent elsewhere
    hints = str(tmp_path / "hints.png")
    cv2.imwrite(hints, rgba)
    films = [{"film_id": "f", "status": "done", "frames": 50, "fps": 25.0, "width": 80, "height": 48,
              "model": {"name": "memnet", "version": "2", "weights_sha256": "cd" * 32},
              "auto_model": {"name": "autonet", "version": "1", "weights_sha256": "ef" * 32},
              "seconds": 4.0, "exemplars": [], "warnings": []}]
    scenes = [{"film_id": "f", "scene": 0, "start_frame": 0, "end_frame": 50, "start_time": 0.0,
               "end_time": 1.96, "start_timecode": "00:00:00:00", "end_timecode": "00:00:02:00",
               "transition": "start", "exemplar_source": "hints", "exemplar_image": hints,
               "exemplar_frame": 7, "exemplar_similarity": None}]
    shards = [{"film_id": "f", "scene": 0, "status": "done", "error": ""}]
    text = build_html(str(tmp_path), films, scenes, shards)
    page = _Page(text)
    assert len(page.find("img", "ex")) == 1 and "autonet" in text and "ef" * 32 in text
    assert "00:00:02:00" in text and "frame 7" in text and "colour hints" in text
    assert "2.00 s" in text  # 50 frames at 25 fps, not end_time
    assert "12.5" in text  # frames per second of wall time


def test_report_on_s3(s3_bucket, tmp_path):
    run_dir = f"s3://{s3_bucket}/runs/r1"
    _crafted(run_dir, f"s3://{s3_bucket}/missing.png")
    uri = write_report(run_dir)
    assert uri == f"s3://{s3_bucket}/runs/r1/report/index.html"
    text = storage.read_bytes(uri).decode("utf-8")
    assert text.count("<tr class=\"scene ") == 2 and "exemplar unreadable" in text


# ---- in a real browser --------------------------------------------------------------

_NO_BROWSER = missing_reason()


@pytest.mark.skipif(_NO_BROWSER is not None, reason=_NO_BROWSER or "")
def test_page_in_headless_chromium(run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_dir, path, _ = run
    scenes = read_table(run_dir, "scenes")
    thumbs = os.path.isdir(os.path.join(run_dir, "thumbs"))
    with headless_chromium(1400, 900) as d:
        d.get(pathlib.Path(path).as_uri())
        rows = d.find_elements(By.CSS_SELECTOR, "tr.scene")
        assert len(rows) == len(scenes)
        assert d.execute_script("return document.images.length") >= len(scenes) * (7 if thumbs else 1)
        broken = d.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0
        assert d.execute_script("return document.querySelectorAll('.ph').length") == (0 if thumbs else 6 * 3)

        command = d.find_element(By.ID, "command")
        copy = d.find_element(By.ID, "copy")
        hint = command.text
        assert hint.startswith("Tick") and "--scene" not in hint and not copy.is_enabled()

        def ticked_scenes():
            return sorted(int(n) for n in re.findall(r"--scene (\d+)", command.text))

        boxes = d.find_elements(By.CSS_SELECTOR, "input.redo")
        boxes[0].click()
        boxes[2].click()
        assert ticked_scenes() == [0, 2]
        assert command.text == f"filmcolor reprocess {run_dir} --film film3 --scene 0 --scene 2"
        assert copy.is_enabled()
        boxes[0].click()
        assert ticked_scenes() == [2]
        boxes[1].click()
        assert ticked_scenes() == [1, 2]
        copy.click()  # clipboard or the select-and-execCommand fallback; either way no error
        WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "copied").text)
        assert d.find_element(By.ID, "copied").text in ("copied", "selected: press Ctrl+C")
        d.execute_script("window.scrollTo(0, 0)")
        shot = full_page_screenshot(d, str(tmp_path / "report.png"))
        shutil.copyfile(shot, SCREENSHOT_COPY)
        for b in (boxes[1], boxes[2]):
            b.click()
        assert command.text == hint and ticked_scenes() == []
        logs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    assert os.path.getsize(shot) > 10_000


@pytest.mark.skipif(_NO_BROWSER is not None, reason=_NO_BROWSER or "")
def test_command_quotes_run_dir_and_film_id(tmp_path, film3):
    from selenium.webdriver.common.by import By

    run_dir = str(tmp_path / "my run's dir")
    _crafted(run_dir, film3.exemplars[0].split("@")[0])
    path = write_report(run_dir)
    with headless_chromium(1200, 900) as d:
        d.get(pathlib.Path(path).as_uri())
        assert d.execute_script("return document.querySelectorAll('img').length") == 1
        d.find_element(By.ID, "tick-failed").click()  # scene 1 failed
        text = d.find_element(By.ID, "command").text
        quoted_dir = "'" + run_dir.replace("'", "'\"'\"'") + "'"
        quoted_id = "'" + HOSTILE_ID.replace("'", "'\"'\"'") + "'"
        assert text == f"filmcolor reprocess {quoted_dir} --film {quoted_id} --scene 1"
        d.find_element(By.ID, "clear").click()
        assert d.find_element(By.ID, "command").text.startswith("Tick")
