"""Output codecs: which encoder, pixel format and tags a deliverable is written with.

Segments are encoded by the actors in the master's format (the first OUTPUT): its own
codec when intra-only (FFV1, ProRes), else lossless FFV1 in its pixel format. Assembly
copies the master's packets from the segments, and makes every other deliverable from
the same segments, decoded once more and converted here (`convert_planes`): colour once,
encode per deliverable.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field

import av
import numpy as np

from pipeline.errors import InputError
from pipeline.io import FilmInfo, plane_array

EXTENSIONS = {".mkv": "ffv1", ".mov": "prores", ".mp4": "h264", ".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff"}
CONTAINERS = {"ffv1": "matroska", "prores": "mov", "prores4444": "mov", "h264": "mp4", "dpx": "image2",
              "tiff": "image2"}
SEQUENCE_CODECS = ("dpx", "tiff")

# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic values.
BT709, UNSPECIFIED, BT470BG, SMPTE170M = 1, 2, 5, 6


@dataclass(frozen=True)
class OutputSpec:
    codec: str  # 'ffv1' | 'prores' | 'h264'
    encoder: str  # FFmpeg encoder name
    pix_fmt: str
    bit_depth: int
    chroma: str  # '420' | '422' | '444'
    container: str  # FFmpeg muxer of the final output
    options: dict = field(default_factory=dict)
    intra: bool = True
    colorspace: int = BT709
    color_primaries: int = BT709
    color_trc: int = BT709
    full_range: bool = False

    @property
    def segment_encoder(self) -> str:
        # Inter codecs are assembled from lossless FFV1 segments and encoded once.
        return self.encoder if self.intra else "ffv1"

    @property
    def segment_options(self) -> dict:
        return self.options if self.intra else FFV1_OPTIONS

    def chroma_size(self, width: int, height: int) -> tuple[int, int]:
        sx = 2 if self.chroma in ("420", "422") else 1
        sy = 2 if self.chroma == "420" else 1
        return -(-width // sx), -(-height // sy)

    @property
    def matrix(self) -> str:
        return "bt601" if self.colorspace in (BT470BG, SMPTE170M) else "bt709"


# FFV1 version 3 archival settings (DESIGN.md): GOP 1, 16 slices, slice CRCs.
FFV1_OPTIONS = {"level": "3", "g": "1", "slices": "16", "slicecrc": "1", "coder": "1", "context": "1"}
PRORES_OPTIONS = {"profile": "3", "vendor": "apl0", "bits_per_mb": "8000"}  # 422 HQ
PRORES4444_OPTIONS = {"profile": "4", "vendor": "apl0", "bits_per_mb": "8000"}  # 4444 (no alpha)
H264_OPTIONS = {"crf": "18", "preset": "medium", "profile": "high", "g": "48"}


# Which codecs each output container may carry (the container follows the extension).
ALLOWED = {".mkv": {"ffv1", "prores", "prores4444", "h264"}, ".mov": {"prores", "prores4444", "h264"},
           ".mp4": {"h264"}, ".dpx": {"dpx"}, ".tif": {"tiff"}, ".tiff": {"tiff"}}
MUXERS = {".mkv": "matroska", ".mov": "mov", ".mp4": "mp4", ".dpx": "image2", ".tif": "image2", ".tiff": "image2"}
_PATTERN = re.compile(r"%0?\d*d")


def is_sequence_output(output: str) -> bool:
    """An image-sequence deliverable: a printf pattern naming the files of one folder,
    `graded/reel1_%08d.dpx` (the folder is made whole, then published)."""
    return os.path.splitext(output)[1].lower() in (".dpx", ".tif", ".tiff")


def codec_for(output: str, codec: str | None) -> str:
    """The codec for OUTPUT: `codec` if given (and the container can carry it), else the
    extension's default."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in EXTENSIONS:
        raise InputError(
            f"{output}: unsupported output extension {ext or '(none)'!r} "
            "(use .mkv, .mov, .mp4, or a .dpx/.tif sequence pattern like out/reel_%08d.dpx)"
        )
    if is_sequence_output(output):
        base = os.path.basename(output)
        if len(_PATTERN.findall(base)) != 1:
            raise InputError(f"{output}: an image-sequence output needs one frame-number pattern in its file "
                             "name, e.g. graded/reel1_%08d.dpx")
        if os.path.basename(os.path.dirname(output.rstrip("/"))) in ("", ".", ".."):
            raise InputError(f"{output}: an image-sequence output goes in a folder of its own, "
                             "e.g. graded/reel1_%08d.dpx")
    if codec is None:
        return EXTENSIONS[ext]
    if codec not in CONTAINERS:
        raise InputError(f"unsupported codec {codec!r} (use ffv1, prores, prores4444 or h264)")
    if codec not in ALLOWED[ext]:
        raise InputError(f"{output}: a {ext} file cannot carry {codec} (use {', '.join(sorted(ALLOWED[ext]))})")
    return codec


def muxer_for(output: str) -> str:
    return MUXERS[os.path.splitext(output)[1].lower()]


FFV1_DEPTHS = (8, 10, 12, 16)  # FFV1 Y'CbCr depths FFmpeg encodes; 9 and 14-bit scans go up


def output_spec(info: FilmInfo, codec: str) -> OutputSpec:
    """The output format for this film: keep luma depth and layout where the codec allows.

    FFV1 keeps the scan's own depth (8/10/12/16 bits, so the master's Y plane is the
    scan's luma sample for sample) and range; gray and RGB scans get 4:2:0 chroma."""
    tags = _color_tags(info)
    if codec == "ffv1":
        chroma = "420" if info.chroma in ("gray", "rgb") else info.chroma
        depth = next(d for d in FFV1_DEPTHS if d >= min(info.bit_depth, 16))
        fmt = f"yuv{chroma}p" + (f"{depth}le" if depth > 8 else "")
        return OutputSpec("ffv1", "ffv1", fmt, depth, chroma, "matroska", FFV1_OPTIONS, True, *tags)
    # ProRes and H.264 deliverables are video range (players assume it): full-range input
    # luma is rescaled, within the codec's tolerance anyway.
    video_tags = (*tags[:3], False)
    if codec == "prores":
        return OutputSpec("prores", "prores_ks", "yuv422p10le", 10, "422", "mov", PRORES_OPTIONS, True, *video_tags)
    if codec == "prores4444":
        return OutputSpec("prores4444", "prores_ks", "yuv444p10le", 10, "444", "mov", PRORES4444_OPTIONS, True,
                          *video_tags)
    if codec in SEQUENCE_CODECS:
        # R'G'B' files for grading suites, full range: 16-bit TIFF; DPX at 16 bits for
        # deep scans, else the 10 bits grading suites expect.
        depth = 16 if codec == "tiff" or info.bit_depth > 10 else 10
        return OutputSpec(codec, codec, "rgb", depth, "rgb", "image2", {}, True, *tags[:3], True)
    return OutputSpec("h264", "libx264", "yuv420p", 8, "420", "mp4", H264_OPTIONS, False, *video_tags)


def segment_key(codec: str) -> str:
    """Which segments a deliverable is made from: its own codec's (ProRes segments are
    the mezzanine's packets; H.264's are lossless FFV1 in its pixel format, encoded once at
    assembly), or for a DPX/TIFF sequence lossless FFV1 at the scan's depth."""
    return "ffv1" if codec in SEQUENCE_CODECS else codec


def extra_segment_keys(codecs: list[str]) -> list[str]:
    """The segment formats the actors encode besides the master's, one per deliverable
    format: colour once, encode each frame once per format, in parallel on the cluster."""
    master = segment_key(codecs[0])
    out = []
    for c in codecs[1:]:
        k = segment_key(c)
        if k != master and k not in out:
            out.append(k)
    return out


def segment_spec(info: FilmInfo, master_codec: str) -> OutputSpec:
    """What the actors encode segments in: the master's format; a sequence master is
    coloured into lossless FFV1 segments at the scan's depth and written out at assembly."""
    return output_spec(info, "ffv1" if master_codec in SEQUENCE_CODECS else master_codec)


def _color_tags(info: FilmInfo) -> tuple[int, int, int, bool]:
    """Input tags where present; otherwise BT.709 (HD) / BT.601 (SD), written explicitly.

    Gray input without a range tag is full range (that is how FFmpeg treats gray)."""
    sd = info.height < 720
    space = info.colorspace if info.colorspace != UNSPECIFIED else (SMPTE170M if sd else BT709)
    prim = info.color_primaries if info.color_primaries != UNSPECIFIED else (SMPTE170M if sd else BT709)
    trc = info.color_trc if info.color_trc != UNSPECIFIED else (SMPTE170M if sd else BT709)
    return space, prim, trc, info.full_range


def convert_luma(luma: np.ndarray, info: FilmInfo, spec: OutputSpec) -> np.ndarray:
    """Input luma code values -> output code values. Identity when depth and range match
    (the FFV1 guarantee); otherwise an exact integer rescale."""
    if info.full_range != spec.full_range:
        return _rescale_range(luma, info, spec)
    shift = spec.bit_depth - info.bit_depth
    if shift == 0:
        return luma
    dtype = np.uint8 if spec.bit_depth == 8 else np.uint16
    if shift > 0:
        return luma.astype(dtype) << shift
    return ((luma.astype(np.uint32) + (1 << (-shift - 1))) >> -shift).clip(0, 255).astype(dtype)


def _rescale_range(luma: np.ndarray, info: FilmInfo, spec: OutputSpec) -> np.ndarray:
    return _range_lut(info.bit_depth, info.full_range, spec.bit_depth, spec.full_range)[luma]


def _black_white(depth: int, full: bool) -> tuple[float, float]:
    scale = 1 << (depth - 8)
    return (0.0, float((1 << depth) - 1)) if full else (16.0 * scale, 235.0 * scale)


def code_to_chroma(code: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """The inverse of `chroma_to_code`: 2 x h x w code values -> float offsets."""
    scale = 1 << (spec.bit_depth - 8)
    span = (255.0 if spec.full_range else 224.0) * scale
    return (code.astype(np.float32) - 128.0 * scale) / span


def convert_luma_code(y: np.ndarray, src: OutputSpec, dst: OutputSpec) -> np.ndarray:
    """Y' code values from one deliverable's depth and range to another's: exact shifts
    when only the depth differs, else a rounded rescale of black..white."""
    if src.full_range == dst.full_range:
        shift = dst.bit_depth - src.bit_depth
        dtype = np.uint8 if dst.bit_depth == 8 else np.uint16
        if shift >= 0:
            return y.astype(dtype) << shift if shift else y
        return ((y.astype(np.uint32) + (1 << (-shift - 1))) >> -shift).clip(0, (1 << dst.bit_depth) - 1).astype(dtype)
    return _range_lut(src.bit_depth, src.full_range, dst.bit_depth, dst.full_range)[y]


@functools.lru_cache(maxsize=8)
def _range_lut(depth_in: int, full_in: bool, depth_out: int, full_out: bool) -> np.ndarray:
    """Every input code value's output code value (a table lookup per pixel instead of
    float arithmetic on a 2K/4K plane; the same rounding)."""
    lo_in, hi_in = _black_white(depth_in, full_in)
    lo_out, hi_out = _black_white(depth_out, full_out)
    y = np.arange(1 << depth_in, dtype=np.float64)
    out = (y - lo_in) * ((hi_out - lo_out) / (hi_in - lo_in)) + lo_out
    return np.rint(out).clip(0, (1 << depth_out) - 1).astype(np.uint8 if depth_out == 8 else np.uint16)


def convert_planes(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, src: OutputSpec, dst: OutputSpec):
    """One coloured frame (the segment's planes, code values) -> `dst`'s planes: (Y', Cb,
    Cr) code values, or for a sequence deliverable one H x W x 3 R'G'B' array."""
    import cv2

    h, w = y.shape
    chroma = code_to_chroma(np.stack([cb, cr]), src)  # 2 x h' x w' float offsets
    if dst.chroma == "rgb":
        lo, hi = _black_white(src.bit_depth, src.full_range)
        yf = (y.astype(np.float32) - lo) / (hi - lo)
        full = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in chroma])
        from pipeline.colour import ycbcr_to_rgb

        rgb = ycbcr_to_rgb(np.concatenate([yf[None], full]), src.matrix)  # H x W x 3 float [0, 1]
        top = (1 << dst.bit_depth) - 1
        return np.rint(rgb * top).astype(np.uint16 if dst.bit_depth > 8 else np.uint8)
    cw, ch = dst.chroma_size(w, h)
    if chroma.shape[1:] != (ch, cw):
        chroma = np.stack([cv2.resize(c, (cw, ch), interpolation=cv2.INTER_LINEAR) for c in chroma])
    code = chroma_to_code(chroma, dst)
    return convert_luma_code(y, src, dst), code[0], code[1]


def chroma_to_code(chroma: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """2 x h x w float offsets in [-0.5, 0.5] -> 2 x h x w code values of the output depth."""
    scale = 1 << (spec.bit_depth - 8)
    span = (255.0 if spec.full_range else 224.0) * scale
    mid = 128.0 * scale
    lo, hi = (0, 255 * scale + scale - 1) if spec.full_range else (16 * scale, 240 * scale)
    code = np.rint(mid + chroma * span).clip(lo, hi)
    return code.astype(np.uint8 if spec.bit_depth == 8 else np.uint16)


def make_frame(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A VideoFrame from planes (code values), written directly: no colour conversion."""
    h, w = y.shape
    frame = av.VideoFrame(w, h, pix_fmt)
    dtype = y.dtype
    for plane, data in zip(frame.planes, (y, cb, cr)):
        plane_array(plane, data.shape[1], data.shape[0], dtype)[:] = data
    return frame


def set_color_tags(ctx, spec: OutputSpec) -> None:
    ctx.colorspace = spec.colorspace
    ctx.color_primaries = spec.color_primaries
    ctx.color_trc = spec.color_trc
    ctx.color_range = 2 if spec.full_range else 1  # AVCOL_RANGE_JPEG / _MPEG


def packed_md5(*planes: np.ndarray) -> str:
    """md5 of planes as FFmpeg's rawvideo encoder packs a frame (no line padding; samples
    of more than 8 bits little-endian, as the *le pixel formats store them): the hash a
    framemd5 line carries for the decoded frame."""
    import hashlib

    h = hashlib.md5()
    for p in planes:
        h.update(np.ascontiguousarray(p if p.dtype == np.uint8 else p.astype("<u2", copy=False)).data)
    return h.hexdigest()


def packed_size(spec: OutputSpec, width: int, height: int) -> int:
    cw, ch = spec.chroma_size(width, height)
    return (width * height + 2 * cw * ch) * (1 if spec.bit_depth == 8 else 2)


class SegmentWriter:
    """Encodes one shard's frames (planes in output code values) to a staging file."""

    def __init__(self, path: str, spec: OutputSpec, width: int, height: int, threads: int = 1):
        self.path = path
        self.frames = 0
        self._container = av.open(path, mode="w", format="matroska")
        stream = self._container.add_stream(spec.segment_encoder, rate=24, options=dict(spec.segment_options))
        stream.width, stream.height = width, height
        stream.pix_fmt = spec.pix_fmt
        stream.codec_context.thread_count = threads
        set_color_tags(stream.codec_context, spec)
        self._stream = stream
        self._spec = spec
        self.spec = spec
        self.md5s: list[str] = []  # per frame: md5 of the planes packed as FFmpeg's rawvideo

    def write(self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> None:
        if self._spec.codec == "ffv1":  # lossless: decoding gives these planes back
            self.md5s.append(packed_md5(y, cb, cr))
        frame = make_frame(y, cb, cr, self._spec.pix_fmt)
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - we are already failing; the file is discarded
            pass
        if os.path.exists(self.path):
            os.remove(self.path)
