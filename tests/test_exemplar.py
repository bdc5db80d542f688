import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.exemplar import fit, load_rgb, parse_spec, resolve_frame
from pipeline.io import probe
from pipeline.synth import SynthScene, save_png, write_film


@pytest.fixture(scope="module")
def vfr_film(tmp_path_factory):
    d = tmp_path_factory.mktemp("ex")
    film = write_film(str(d / "f.mkv"), [SynthScene("coffee", 30)], 64, 48, vfr=True, audio=False,
                      timecode="01:00:00:00")
    return probe(film.path)


def test_parse_spec_splits_on_last_at():
    s = parse_spec("refs/a@b.png@120")
    assert s.image == "refs/a@b.png" and s.at == "120"
    with pytest.raises(InputError):
        parse_spec("refs/a.png")


def test_resolve_index_timecode_and_seconds(vfr_film):
    assert resolve_frame("7", vfr_film) == 7
    # timecode counts frames from the film's start timecode, at the nominal rate
    assert resolve_frame("01:00:00:05", vfr_film) == 5
    # seconds: the frame on screen at that time, from the exact timestamps (vfr)
    t = (vfr_film.frame_pts[10] - vfr_film.frame_pts[0]) * vfr_film.time_base
    assert resolve_frame(f"{float(t) + 0.001:.6f}s", vfr_film) == 10
    assert resolve_frame("0s", vfr_film) == 0


@pytest.mark.parametrize("at", ["30", "99999", "00:59:59:00", "100s", "-1", "abc"])
def test_frames_outside_the_film_are_rejected(vfr_film, at):
    with pytest.raises(InputError):
        resolve_frame(at, vfr_film)


def test_fit_covers_and_centres():
    img = np.zeros((100, 400, 3), np.float32)
    img[:, 150:250] = 1.0  # a white band in the centre
    out = fit(img, (64, 48))
    assert out.shape == (48, 64, 3)
    assert out[:, 32].min() > 0.9  # the centre stays the centre
    assert out[:, 0].max() < 0.1


def test_unreadable_exemplar(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"not an image")
    with pytest.raises(InputError, match="not a readable image"):
        load_rgb(str(p))
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    save_png(str(tmp_path / "ok.png"), rgb)
    got, sha = load_rgb(str(tmp_path / "ok.png"))
    assert got.shape == (20, 30, 3) and len(sha) == 64
    assert np.allclose(got * 255, rgb, atol=0.5)


def test_timecode_counts_frames_on_ntsc_rate_film():
    """23.976 fps runs non-drop timecode at 24: TC and frame index agree over an hour, and
    the scene list's timecodes name the frames the exemplar option resolves."""
    from fractions import Fraction

    from pipeline.io import FilmInfo
    from pipeline.scenes.export import timecode_of

    n = 90000
    info = FilmInfo(path="x", container="mov", width=64, height=48, pix_fmt="gray", chroma="gray", bit_depth=8,
                    full_range=True, time_base=Fraction(1, 24000), frame_pts=tuple(range(0, n * 1001, 1001)),
                    frame_duration_pts=1001, avg_rate=Fraction(24000, 1001), colorspace=2, color_primaries=2,
                    color_trc=2, start_timecode="01:00:00:00")
    assert timecode_of(info, 86400) == "02:00:00:00"
    assert resolve_frame("02:00:00:00", info) == 86400
    assert resolve_frame(timecode_of(info, 1234), info) == 1234


# --- images refused before decoding: size from the header, above MAX_IMAGE_PIXELS --------

import logging  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import cv2  # noqa: E402

from pipeline.exemplar import MAX_IMAGE_PIXELS, check_exemplar, has_colour, image_size  # noqa: E402

BIG = 20000


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(w: int, h: int, alpha: bool = False) -> bytes:
    """A real PNG of one colour, w x h, made without the picture in memory: 1-bit palette
    (red; with a tRNS chunk it decodes with alpha), rows compressed as a stream. 20000 x
    20000 is ~50 KB on disk and 1.2 GB decoded as BGR."""
    row = b"\x00" + b"\x00" * ((w + 7) // 8)  # filter 0, all pixels palette entry 0
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 3, 0, 0, 0))
            + _chunk(b"PLTE", bytes([220, 30, 30, 30, 30, 220]))
            + (_chunk(b"tRNS", b"\xff\x00") if alpha else b"")
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def bomb_tiff(w: int, h: int) -> bytes:
    """A real bilevel TIFF (deflate, one strip, little-endian), w x h, made like bomb_png."""
    row = b"\x00" * ((w + 7) // 8)
    z = zlib.compressobj(9)
    strip = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    tags = [(256, 4, w), (257, 4, h), (258, 3, 1), (259, 3, 8), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, h), (279, 4, len(strip))]
    ifd_at = 8 + len(strip)
    tags = [(t, ty, 8 if t == 273 else v) for t, ty, v in tags]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", t, ty, 1) + (struct.pack("<HH", v, 0) if ty == 3 else struct.pack("<I", v))
        for t, ty, v in tags) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_at) + strip + ifd


def bomb_jpeg(w: int, h: int) -> bytes:
    """A small real JPEG whose frame header was changed to say w x h."""
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(buf.tobytes())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    files = {"png": d / "big.png", "tif": d / "big.tif", "jpg": d / "big.jpg", "hints": d / "big_hints.png"}
    files["png"].write_bytes(bomb_png(BIG, BIG))
    files["tif"].write_bytes(bomb_tiff(BIG, BIG))
    files["jpg"].write_bytes(bomb_jpeg(BIG, BIG))
    files["hints"].write_bytes(bomb_png(BIG, BIG, alpha=True))
    return {k: str(v) for k, v in files.items()}


def test_bomb_generators_make_real_images(tmp_path):
    """The same code at a small size decodes to the picture it describes."""
    png = cv2.imdecode(np.frombuffer(bomb_png(40, 30), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == (30, 40, 3) and tuple(png[5, 5]) == (30, 30, 220)  # BGR of the red palette entry
    rgba = cv2.imdecode(np.frombuffer(bomb_png(40, 30, alpha=True), np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (30, 40, 4)
    tif = cv2.imdecode(np.frombuffer(bomb_tiff(40, 30), np.uint8), cv2.IMREAD_UNCHANGED)
    assert tif is not None and tif.shape[:2] == (30, 40)
    for make in (bomb_png, bomb_tiff, bomb_jpeg):
        assert image_size(make(40, 30)) == (40, 30)


@pytest.mark.parametrize("kind", ["png", "tif", "jpg"])
def test_huge_exemplar_is_refused_before_decoding(big_files, kind):
    path = big_files[kind]
    assert os.path.getsize(path) < 200_000
    t = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_rgb(path)
    assert time.perf_counter() - t < 1.0
    assert str(err.value) == (f"exemplar {path}: 20000 x 20000 pixels is above the limit of 67108864 "
                              "(8192 x 8192); scale it down to the film's size")
    assert MAX_IMAGE_PIXELS == 8192 * 8192


def test_huge_exemplar_needs_no_memory(big_files):
    """In a process of its own: the refusal allocates nothing like the decoded picture
    (1.2 GB as BGR for the PNG)."""
    code = ("import resource, sys\nfrom pipeline.errors import InputError\nfrom pipeline.exemplar import load_rgb\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n        load_rgb(p)\n    except InputError as e:\n        print(e)\n"
            # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would report
            # the forking pytest process's own peak
            "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n")
    files = [big_files["png"], big_files["tif"], big_files["jpg"]]
    res = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stderr
    assert len(lines) == 4 and all("above the limit" in l for l in lines[:3])
    assert int(lines[3]) < 600, f"peak RSS {lines[3]} MB"


def test_largest_allowed_size_is_read_not_refused():
    assert image_size(bomb_png(8192, 8192)) == (8192, 8192)  # exactly at the limit: allowed
    from pipeline.exemplar import decode_image

    with pytest.raises(InputError, match="8193 x 8192 pixels is above"):
        decode_image(bomb_png(8193, 8192), "x.png")


def test_header_sizes_of_real_files(tmp_path):
    """PNG, JPEG, TIFF (8 and 16 bits, several layouts), and formats read by Pillow."""
    rgb8 = (np.random.default_rng(1).random((37, 53, 3)) * 255).astype(np.uint8)
    rgb16 = (rgb8.astype(np.uint16) * 257)
    cases = [(".png", rgb8, []), (".png", rgb16, []), (".png", rgb8[..., 0], []),
             (".jpg", rgb8, []), (".jpg", rgb8, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
             (".tif", rgb8, []), (".tif", rgb16, []), (".bmp", rgb8, []), (".webp", rgb8, [])]
    for ext, img, params in cases:
        ok, buf = cv2.imencode(ext, img, params)
        assert ok
        assert image_size(buf.tobytes()) == (53, 37), ext
    from PIL import Image

    for fmt, kw in (("TIFF", {"big_tiff": True}), ("TIFF", {"compression": "tiff_deflate"}), ("PPM", {})):
        import io

        out = io.BytesIO()
        Image.fromarray(rgb8).save(out, fmt, **kw)
        assert image_size(out.getvalue()) == (53, 37), (fmt, kw)
    assert image_size(b"not an image") is None
    assert image_size(b"\x89PNG\r\n\x1a\n") is None  # truncated
    assert image_size(b"\xff\xd8\xff\xe0\x00") is None
    for good in (bomb_png(40, 30), bomb_jpeg(40, 30), bomb_tiff(40, 30)):  # cut anywhere in the header
        for n in range(0, 200):
            assert image_size(good[:n]) in (None, (40, 30))
    assert image_size(b"\xff\xd8\xff\xc0\x00\x11\x08\x00") is None
    assert image_size(b"MM\x00+\x00\x08\x00\x00" + b"\x00" * 8) is None  # BigTIFF, IFD at 0


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_exemplars_load_at_full_precision(tmp_path, ext):
    rgb16 = (np.random.default_rng(2).random((20, 30, 3)) * 65535).astype(np.uint16)
    path = str(tmp_path / f"e16{ext}")
    assert cv2.imwrite(path, cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    got, sha = load_rgb(path)
    assert got.dtype == np.float32 and got.shape == (20, 30, 3)
    assert np.allclose(got * 65535, rgb16, atol=0.5)  # every 16-bit code value kept


# --- grey exemplars: a warning ----------------------------------------------------------

def _grey_photo() -> np.ndarray:
    from pipeline.synth import photo

    rgb = cv2.resize(photo("coffee"), (160, 96), interpolation=cv2.INTER_AREA)
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)


def test_has_colour():
    from pipeline.synth import photo

    grey = _grey_photo()
    assert not has_colour(grey.astype(np.float32) / 255)
    assert has_colour(cv2.resize(photo("coffee"), (160, 96)).astype(np.float32) / 255)
    sepia = (grey.astype(np.float32) / 255) * np.array([1.0, 0.85, 0.65], np.float32)  # a toned print
    assert has_colour(sepia)
    speck = grey.astype(np.float32) / 255
    speck[10, 10] = (1.0, 0.0, 0.0)  # one red pixel (dust) in 15360: still a grey picture
    assert not has_colour(speck)
    patch = grey.astype(np.float32) / 255
    patch[10:20, 10:20] = (0.8, 0.2, 0.2)  # a painted object on 0.65% of the picture: colour
    assert has_colour(patch)
    tint = np.clip(grey.astype(np.float32) + (1.0, 0.0, 0.0), 0, 255) / 255  # R one code above G, B
    assert not has_colour(tint)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_grey_exemplar_warns_once_with_its_name(tmp_path, caplog, ext):
    path = str(tmp_path / f"grey{ext}")
    cv2.imwrite(path, _grey_photo())  # a JPEG stores it with (near-)zero chroma planes
    with caplog.at_level(logging.WARNING, logger="filmcolor"):
        sha = check_exemplar(path)
    assert sha == load_rgb(path)[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"exemplar {path} has no colour (a grey picture): its scene will come out grey"]


def test_colour_exemplar_does_not_warn(tmp_path, caplog):
    from pipeline.synth import photo

    path = str(tmp_path / "colour.jpg")
    cv2.imwrite(path, cv2.cvtColor(cv2.resize(photo("chelsea"), (160, 96)), cv2.COLOR_RGB2BGR))
    with caplog.at_level(logging.WARNING, logger="filmcolor"):
        check_exemplar(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(InputError, match="no such file"):
        check_exemplar(str(tmp_path / "missing.png"))


def test_cli_refuses_a_huge_exemplar(film3, big_files, tmp_path):
    from tests.test_cli import _expect_bad, run_cli

    out = str(tmp_path / "o.mkv")
    res = run_cli("colorize", film3.path, out, "-e", f"{big_files['png']}@3")
    _expect_bad(res, out, f"exemplar {big_files['png']}: 20000 x 20000 pixels is above the limit of 67108864 "
                          "(8192 x 8192); scale it down to the film's size")
