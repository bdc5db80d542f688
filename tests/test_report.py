"""The review page (`filmcolor report`): a real run on a small film, then the page checked
as text and in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import posixpath
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
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
    for a in page.find("a"):  # in-page anchors, and relative download links (nothing fetched)
        assert a["href"].startswith("#") or ("dl" in a["class"].split() and a.get("download")
                                             and not urllib.parse.urlparse(a["href"]).scheme
                                             and not a["href"].startswith("/")), a
    assert page.find("a", "dl") and not page.find("img", "dl")  # keyframes are linked, not embedded
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


# ---- keyframes beside the run, linked relative to the page ---------------------------

KINDS = {"keyframe", "hints", "colours", "exemplar"}


def _scene_links(page_path: str) -> dict[tuple[int, str], str]:
    """{(scene, kind): href} of the page's download links."""
    out, scene = {}, None
    for tag, a in _Page(open(page_path, encoding="utf-8").read()).tags:
        if tag == "tr" and "scene" in (a.get("class") or "").split():
            scene = int(a["data-scene"])
        elif tag == "a" and "dl" in (a.get("class") or "").split():
            assert a.get("download") and a["download"] == urllib.parse.unquote(a["href"]).rsplit("/", 1)[-1], a
            out[scene, a["data-kind"]] = a["href"]
    return out


def _local_file(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    assert parsed.scheme == "file", url
    return urllib.request.url2pathname(parsed.path)


def _resolve(page_path: str, href: str) -> str:
    """The file a relative link of the page leads to, as a browser resolves it."""
    assert not urllib.parse.urlparse(href).scheme and not href.startswith("/"), href
    return _local_file(urllib.parse.urljoin(pathlib.Path(page_path).as_uri(), href))


def _check_picture(path: str, kind: str, frame: int | None = None, film: str | None = None) -> None:
    """A PNG of film3's size; a keyframe is the grey frame itself, a hints template fully
    transparent, the colours an RGB picture."""
    from pipeline.io import iter_luma, probe

    assert os.path.isfile(path), path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert img.shape[:2] == (96, 160), (path, img.shape)  # film3's own size: full resolution
    if kind == "keyframe" and film is not None:  # the grey frame itself (8-bit full-range source)
        info = probe(film)
        assert img.ndim == 2 and np.array_equal(img, next(iter_luma(info, frame, frame + 1))[1])
    if kind == "hints":
        assert img.shape[2] == 4 and not img[..., 3].any()
    if kind == "colours":
        assert img.ndim == 3 and img.shape[2] == 3


def _keyframe_mtimes(run_dir: str) -> dict[str, int]:
    folder = os.path.join(run_dir, "keyframes", "film3")
    return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)}


def test_keyframes_are_made_beside_the_run_and_linked_relative_to_the_page(run, film3, tmp_path):
    from pipeline.keyframes import parse_name

    run_dir, path, _ = run
    scenes = read_table(run_dir, "scenes")
    links = _scene_links(path)
    assert {k for k in links} == {(s["scene"], kind) for s in scenes for kind in KINDS}
    for (scene, kind), href in links.items():
        target = _resolve(path, href)
        if kind == "exemplar":  # the user's own exemplar, outside the run dir: still relative
            assert os.path.samefile(target, next(s["exemplar_image"] for s in scenes if s["scene"] == scene))
            _check_picture(target, kind)
            continue
        assert href.startswith("../keyframes/film3/film3_s%04d_f" % scene), href
        assert os.path.dirname(target) == os.path.join(run_dir, "keyframes", "film3")
        _check_picture(target, kind, parse_name(os.path.basename(target))[2], film3.path)

    # another --out: other relative paths, the same files
    out = tmp_path / "pages" / "review"
    before = _keyframe_mtimes(run_dir)
    page = write_report(run_dir, str(out))
    assert _keyframe_mtimes(run_dir) == before  # nothing missing or stale: nothing made again
    elsewhere = _scene_links(page)
    assert elsewhere.keys() == links.keys()
    for key, href in elsewhere.items():
        assert key[1] == "exemplar" or not href.startswith("../keyframes/"), href
        assert os.path.samefile(_resolve(page, href), _resolve(path, links[key]))

    # a template gone is made again with its keyframe (pipeline.keyframes.export), nothing else
    gone = next(n for n in before if n.endswith("_hints.png"))
    os.remove(os.path.join(run_dir, "keyframes", "film3", gone))
    write_report(run_dir)
    after = _keyframe_mtimes(run_dir)
    assert sorted(n for n in after if after[n] != before.get(n)) == \
        sorted([gone, gone.replace("_hints", ""), ".filmcolor-keyframes.json"])


def test_a_failed_film_gets_grey_keyframes_only(run, film3, tmp_path):
    run_dir = str(tmp_path / "run")
    model = {"name": "memnet", "version": "2", "weights_sha256": "ab" * 32}
    write_table(run_dir, "films", [{"film_id": "f3", "input": film3.path, "output": str(tmp_path / "never.mkv"),
                                    "status": "failed", "error": "boom", "frames": 48, "width": 160,
                                    "height": 96, "model": model, "exemplars": [], "warnings": []}])
    write_table(run_dir, "scenes", [{**s, "film_id": "f3"} for s in read_table(run[0], "scenes")])
    path = write_report(run_dir)
    names = sorted(n for n in os.listdir(os.path.join(run_dir, "keyframes", "f3")) if n.endswith(".png"))
    assert len(names) == 6 and not any("_coloured" in n for n in names)
    links = _scene_links(path)
    assert {kind for _, kind in links} == {"keyframe", "hints", "exemplar"}
    for (_, kind), href in links.items():
        assert os.path.isfile(_resolve(path, href))


def test_relative_links_local_and_s3(film3, tmp_path):
    from pipeline.report import relative_href

    assert relative_href("/a/run/report", "/a/run/keyframes/f/x y#1.png") == "../keyframes/f/x%20y%231.png"
    assert relative_href("/a/run/report", "/a/run/exemplars/f/auto-0000012.png") == "../exemplars/f/auto-0000012.png"
    assert relative_href("s3://b/runs/r1/report", "s3://b/runs/r1/keyframes/f/k.png") == "../keyframes/f/k.png"
    assert relative_href("s3://b/pages/", "s3://b/runs/r1/keyframes/f/k.png") == "../runs/r1/keyframes/f/k.png"
    assert relative_href("s3://other/pages", "s3://b/runs/r1/k.png") is None
    assert relative_href("/local/report", "s3://b/k.png") is None
    assert relative_href("s3://b/report", "/local/k.png") is None
    # no relative path: the picture's place as text, with a title; never a broken link
    ex = film3.exemplars[0].split("@")[0]
    films = [{"film_id": "f", "status": "done", "frames": 48, "width": 160, "height": 96, "exemplars": [ex]}]
    scenes = [{"film_id": "f", "scene": 0, "start_frame": 0, "end_frame": 48, "exemplar_source": "own",
               "exemplar_image": ex, "exemplar_frame": 0}]
    files = {"f": {0: {"keyframe": "s3://b/runs/r1/keyframes/f/f_s0000_f0000000_00-00-00-00.png"}}}
    text = build_html("s3://b/runs/r1", films, scenes, [], files=files, page_dir="s3://b/runs/r1/report")
    page = _Page(text)
    assert [(a["data-kind"], a["href"]) for a in page.find("a", "dl")] == \
        [("keyframe", "../keyframes/f/f_s0000_f0000000_00-00-00-00.png")]
    assert [a["data-kind"] for a in page.find("div", "abs")] == ["exemplar"]
    assert ex in page.find("div", "abs")[0]["title"]


def test_keyframes_of_a_run_on_s3_are_linked_by_relative_keys(run, film3, s3_bucket):
    """A run directory in a bucket: the keyframes are written there and linked by key paths
    relative to the page's, as an S3 website or a copied prefix serves them."""
    run_dir = f"s3://{s3_bucket}/runs/r2"
    film = read_table(run[0], "films")[0]
    write_table(run_dir, "films", [{**film, "film_id": "f3"}])  # its master: the local run's
    write_table(run_dir, "scenes", [{**s, "film_id": "f3"} for s in read_table(run[0], "scenes")])
    uri = write_report(run_dir)
    text = storage.read_bytes(uri).decode("utf-8")
    page = _Page(text)
    links = [(a["data-kind"], a["href"]) for a in page.find("a", "dl")]
    assert sorted(k for k, _ in links) == sorted(["keyframe", "hints", "colours"] * 3)
    for kind, href in links:
        assert href.startswith("../keyframes/f3/f3_s"), href
        key = posixpath.normpath(posixpath.join("runs/r2/report", urllib.parse.unquote(href)))
        img = cv2.imdecode(np.frombuffer(storage.read_bytes(f"s3://{s3_bucket}/{key}"), np.uint8),
                           cv2.IMREAD_UNCHANGED)
        assert img.shape[:2] == (96, 160)
    # the user's exemplars are local files: no path from the bucket, shown as text
    assert [a["data-kind"] for a in page.find("div", "abs")] == ["exemplar"] * 3


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
        assert d.find_element(By.ID, "command-keyframes").text == \
            f"filmcolor keyframes {quoted_dir} --film {quoted_id} --scene 1 --out to-paint"
        assert d.find_element(By.ID, "command-exemplars").text == \
            f"filmcolor reprocess {quoted_dir} --exemplars to-paint"
        d.find_element(By.ID, "clear").click()
        assert d.find_element(By.ID, "command").text.startswith("Tick")
        assert not d.find_element(By.ID, "copy-keyframes").is_enabled()


def _hue_turned(rgb: np.ndarray) -> np.ndarray:
    """The colour truth with its chroma turned 90 degrees: the same luma, other colours
    (what a colourist repainting a scene does; the plain truth is the exemplar the run
    already has at that frame, and would change nothing)."""
    from pipeline.synth import rgb_to_ycbcr, ycbcr_to_rgb

    y, cb, cr = rgb_to_ycbcr(rgb, "bt601")
    return ycbcr_to_rgb(np.stack([y, -cr, cb]), "bt601")


def _shell(command: str, **env) -> subprocess.CompletedProcess:
    """A command composed by the page, as a colourist pastes it into a shell; `filmcolor`
    is this interpreter's `python -m pipeline.cli`."""
    script = 'filmcolor() { "$FILMCOLOR_PY" -m pipeline.cli "$@"; }\n' + command
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FILMCOLOR_PY": sys.executable, **env})


@pytest.mark.skipif(_NO_BROWSER is not None, reason=_NO_BROWSER or "")
def test_round_trip_from_the_page_in_headless_chromium(run, film3, ray_cluster, tmp_path):
    """The colourist's round trip as the page gives it: every download link resolves to a
    picture; two ticked scenes and a folder typed in compose the keyframes and the
    reprocess --exemplars commands, which, run in a shell, export exactly those scenes and
    then redo only the scene painted. Last in this file: it reprocesses the shared run
    (the other tests hold either way: scene 2 stays an "own" exemplar scene)."""
    from selenium.webdriver.common.by import By

    from pipeline.keyframes import parse_name

    run_dir, path, _ = run
    path = write_report(run_dir)
    paint = str(tmp_path / "to paint")  # a space: the page quotes it
    with headless_chromium(1400, 900) as d:
        url = pathlib.Path(path).as_uri()
        d.get(url)
        links = d.execute_script(
            "return Array.from(document.querySelectorAll('a.dl')).map(a => [a.closest('tr').dataset.scene, "
            "a.dataset.kind, a.getAttribute('href'), a.href, a.download])")
        assert len(links) == 3 * len(KINDS)
        for scene, kind, href, resolved, download in links:
            target = urllib.parse.urljoin(url, href)
            assert target == resolved  # the browser resolves it the same way
            frame = parse_name(download)[2] if kind != "exemplar" else None
            _check_picture(_local_file(target), kind, frame, film3.path)
            assert os.path.basename(_local_file(target)) == download

        command = d.find_element(By.ID, "command")
        kf_box = d.find_element(By.ID, "command-keyframes")
        back_box = d.find_element(By.ID, "command-exemplars")
        assert "--scene" not in kf_box.text and "--exemplars" not in back_box.text
        assert not d.find_element(By.ID, "copy-keyframes").is_enabled()
        boxes = d.find_elements(By.CSS_SELECTOR, "input.redo")
        boxes[0].click()
        boxes[2].click()
        field = d.find_element(By.ID, "paint-dir")
        assert field.get_attribute("value") == "to-paint"
        assert kf_box.text == f"filmcolor keyframes {run_dir} --film film3 --scene 0 --scene 2 --out to-paint"
        field.clear()
        field.send_keys(paint)
        redo, export, back = command.text, kf_box.text, back_box.text
        assert d.find_element(By.ID, "copy-keyframes").is_enabled()
        logs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    assert redo == f"filmcolor reprocess {run_dir} --film film3 --scene 0 --scene 2"  # as before
    assert export == f"filmcolor keyframes {run_dir} --film film3 --scene 0 --scene 2 --out '{paint}'"
    assert back == f"filmcolor reprocess {run_dir} --exemplars '{paint}'"

    # out: exactly the ticked scenes' keyframes and templates, as the page links them
    r = _shell(export)
    assert r.returncode == 0, r.stderr
    names = sorted(n for n in os.listdir(paint) if n.endswith(".png"))
    assert [(parse_name(n)[1], parse_name(n)[3]) for n in names] == [(0, ""), (0, "_hints"), (2, ""), (2, "_hints")]
    for n in names:
        with open(os.path.join(paint, n), "rb") as a, open(os.path.join(run_dir, "keyframes", "film3", n), "rb") as b:
            assert a.read() == b.read()

    # paint scene 2's keyframe: its colour truth, chroma turned (same luma as the frame)
    painted = next(n for n in names if n.startswith("film3_s0002_") and parse_name(n)[3] == "")
    frame = parse_name(painted)[2]
    assert cv2.imwrite(os.path.join(paint, painted), cv2.cvtColor(_hue_turned(film3.colour[frame]), cv2.COLOR_RGB2BGR))
    shards = {s["shard_id"]: s for s in read_table(run_dir, "shards")}
    film = read_table(run_dir, "films")[0]
    coloured = os.path.join(run_dir, "keyframes", "film3", painted.replace(".png", "_coloured.png"))
    with open(coloured, "rb") as f:
        colours_before = f.read()

    # back: joins this session's cluster (a second local Ray on 2 cores would double the time)
    r = _shell(back, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
    assert r.returncode == 0, r.stderr
    assert "1 painted exemplar(s)" in r.stderr
    after = {s["shard_id"]: s for s in read_table(run_dir, "shards")}
    assert after.keys() == shards.keys()
    redone = {k for k in after if (after[k]["attempts"], after[k]["segment_sha256"]) !=
              (shards[k]["attempts"], shards[k]["segment_sha256"])}
    assert redone and redone == {k for k, s in shards.items() if s["scene"] == 2}
    for k in redone:
        assert after[k]["attempts"] > shards[k]["attempts"]
        assert after[k]["segment_sha256"] != shards[k]["segment_sha256"]
        assert after[k]["status"] == "done"
    film_after = read_table(run_dir, "films")[0]
    assert film_after["status"] == "done" and film_after["output_sha256"] != film["output_sha256"]
    assert os.path.join(paint, painted) in film_after["exemplars"]

    # the page written at the end of the reprocess: scene 2's colours are the new master's,
    # its exemplar link leads to the painted keyframe
    with open(coloured, "rb") as f:
        assert f.read() != colours_before
    marker = json.load(open(os.path.join(run_dir, "keyframes", "film3", ".filmcolor-report.json")))
    assert {e["coloured"] for e in marker.values()} == {film_after["output_sha256"]}
    links = _scene_links(path)
    assert os.path.samefile(_resolve(path, links[2, "exemplar"]), os.path.join(paint, painted))
