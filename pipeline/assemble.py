"""Assembly: one deliverable from the coloured segments, the input's other streams copied.

Every deliverable of a film is made from the same segments (colour once, encode per
deliverable): the master's packets are copied from the segments as they are (they were
encoded in its format); any other deliverable — ProRes mezzanine, H.264 access copy, a
DPX or TIFF sequence for grading — decodes the segments and encodes once
(`codecs.convert_planes`: one conversion per target, no stage in between).

Video timestamps come from the input film (frame by frame), never from a nominal rate, so
a variable-frame-rate film keeps its timing; the start timecode is written explicitly
(Matroska TIMECODE tag, MOV tmcd track, DPX header). Audio and subtitle packets are
copied unchanged where the container accepts the codec (re-encoding AAC would shift it);
otherwise audio is transcoded and a warning recorded.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av

import contextlib

import numpy as np

from pipeline import log
from pipeline.codecs import OutputSpec, convert_planes, make_frame, set_color_tags
from pipeline.errors import FilmcolorError
from pipeline.io import FilmInfo, open_input, plane_array
from pipeline.shard import Shard

COPYABLE = {
    "matroska": None,  # anything
    "mov": {"aac", "alac", "mp3", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
            "pcm_f32le", "mov_text"},
    "mp4": {"aac", "alac", "mp3", "ac3", "eac3", "opus", "flac", "mov_text"},
}
METADATA_SKIP = {"encoder", "duration", "_statistics_tags", "_statistics_writing_app", "creation_time", "timecode"}


class AssemblyError(FilmcolorError):
    pass


@dataclass
class Segment:
    shard: Shard
    path: str


def check_segments(segments: list[Segment]) -> None:
    """Every planned shard has its segment, complete, and they tile the film in order."""
    expected = 0
    for seg in segments:
        if seg.shard.start_frame != expected:
            raise AssemblyError(f"segments do not tile the film: gap at frame {expected}")
        try:
            with open_input(seg.path) as c:
                n = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
        except (FilmcolorError, FileNotFoundError, av.FFmpegError) as exc:
            raise AssemblyError(f"segment of shard {seg.shard.shard_id} is missing or unreadable: {exc}") from None
        if n != seg.shard.frames:
            raise AssemblyError(f"segment of shard {seg.shard.shard_id} has {n} frames, expected {seg.shard.frames}")
        expected = seg.shard.end_frame


def _copy_metadata(src: dict, dst) -> None:
    for k, v in src.items():
        if k.lower() not in METADATA_SKIP and not k.lower().startswith("_statistics"):
            dst[k] = v


def _source(info: FilmInfo):
    """The input container, for its metadata and audio/subtitle streams; an image
    sequence has neither."""
    return contextlib.nullcontext(None) if info.is_sequence else open_input(info.path)


def assemble(info: FilmInfo, seg_spec: OutputSpec, spec: OutputSpec, segments: list[Segment],
             out_path: str) -> list[str]:
    """Write one container deliverable to `out_path` (a staging path). Returns warnings.
    `seg_spec`: the segments' format; `spec`: the deliverable's."""
    check_segments(segments)
    warnings: list[str] = []
    copy = _copies(seg_spec, spec)
    # bitexact: no random ids or dates in the container, so a re-run gives the same bytes.
    options = {"fflags": "+bitexact"}
    if spec.container in ("mp4", "mov"):
        options["movflags"] = "+faststart"
    if spec.container == "matroska":
        options["write_crc32"] = "1"  # CRC-32 elements on every level-1 element (FFmpeg's default; said outright)
    with _source(info) as src, av.open(out_path, mode="w", format=spec.container, options=options) as out:
        if src is not None:
            _copy_metadata(src.metadata, out.metadata)
        rate = _rate(info)
        if copy:
            with open_input(segments[0].path) as first:
                vout = out.add_stream_from_template(first.streams.video[0])
        else:
            vout = out.add_stream(spec.encoder, rate=rate, options=dict(spec.options))
            vout.width, vout.height, vout.pix_fmt = info.width, info.height, spec.pix_fmt
            vout.thread_type = "AUTO"  # ProRes slices, x264's own threads: output bytes do not depend on it
            vout.codec_context.time_base = info.time_base
        vout.time_base = info.time_base
        vout.codec_context.framerate = rate  # the MOV muxer makes its tmcd track at this rate
        set_color_tags(vout.codec_context, spec)
        if src is not None:
            _copy_metadata(src.streams.video[0].metadata, vout.metadata)
        # Matroska writes it as the TIMECODE tag, MOV/MP4 as a tmcd track.
        vout.metadata["timecode"] = info.start_timecode
        copies, transcodes = _other_streams(src, out, spec, warnings) if src is not None else ({}, {})
        out.start_encoding()
        video = _video_packets(info, seg_spec, spec, segments, vout, copy)
        others = _other_packets(src, copies, transcodes) if src is not None else iter(())
        for packet in heapq.merge(video, others, key=lambda p: p[0]):
            out.mux(packet[2])
        for stream, (enc, _) in transcodes.items():
            for pkt in enc.encode(None):
                out.mux(pkt)
    return warnings


def _copies(seg_spec: OutputSpec, spec: OutputSpec) -> bool:
    """The deliverable is the segments' own format (the master, intra-coded): packets are
    copied, not encoded again."""
    return spec.intra and seg_spec.encoder == spec.encoder and seg_spec.pix_fmt == spec.pix_fmt \
        and seg_spec.options == spec.options


def _rate(info: FilmInfo) -> Fraction:
    """The film's nominal rate, for encoders and the MOV timecode track (timestamps
    themselves come from the frame table)."""
    return info.avg_rate.limit_denominator(1001) if info.avg_rate else Fraction(24)


def segment_frames(seg_spec: OutputSpec, segments: list[Segment]) -> Iterator[tuple[int, tuple]]:
    """(frame index, (Y', Cb, Cr) code-value planes) of the coloured film, segment after
    segment: what every deliverable other than the master is made from."""
    dtype = np.uint8 if seg_spec.bit_depth == 8 else np.dtype("<u2")
    for seg in segments:
        index = seg.shard.start_frame
        with open_input(seg.path) as c:
            c.streams.video[0].thread_type = "AUTO"  # FFV1's 16 slices decode in parallel
            for frame in c.decode(c.streams.video[0]):
                planes = tuple(plane_array(p, frame.width if k == 0 else p.width, frame.height if k == 0 else p.height,
                                           dtype) for k, p in enumerate(frame.planes[:3]))
                yield index, planes
                index += 1


def _other_streams(src, out, spec: OutputSpec, warnings: list[str]):
    """Map input audio/subtitle streams to output streams: copied, transcoded or dropped."""
    allowed = COPYABLE.get(spec.container)
    copies, transcodes = {}, {}
    for s in src.streams:
        if s.type not in ("audio", "subtitle"):
            continue
        name = s.codec_context.name if s.codec_context else "unknown"
        if allowed is None or name in allowed:
            o = out.add_stream_from_template(s)
            _copy_metadata(s.metadata, o.metadata)
            copies[s.index] = o
        elif s.type == "audio":
            o = out.add_stream("aac", rate=s.codec_context.sample_rate, layout=s.codec_context.layout)
            resampler = av.AudioResampler(format="fltp", layout=s.codec_context.layout, rate=s.codec_context.sample_rate)
            transcodes[s.index] = (o, resampler)
            warnings.append(f"audio stream {s.index} ({name}) cannot be copied into {spec.container}; transcoded to AAC")
        else:
            warnings.append(f"subtitle stream {s.index} ({name}) cannot be stored in {spec.container}; dropped")
    for w in warnings:
        log.warning("%s", w)
    return copies, transcodes


def _video_packets(info: FilmInfo, seg_spec: OutputSpec, spec: OutputSpec, segments: list[Segment], vout,
                   copy: bool) -> Iterator:
    """(time, order, packet) for the output's video in presentation order, with the input's
    timestamps: copied from the segments (`copy`), else encoded from their frames."""
    tb = info.time_base
    pts = info.frame_pts
    order = 0
    if copy:
        for seg in segments:
            with open_input(seg.path) as c:
                index = seg.shard.start_frame
                for pkt in c.demux(c.streams.video[0]):
                    if not pkt.size:
                        continue
                    end = pts[index + 1] if index + 1 < len(pts) else info.end_pts
                    pkt.stream = vout
                    pkt.time_base = tb
                    pkt.pts = pkt.dts = pts[index]
                    pkt.duration = end - pts[index]
                    yield (pts[index] * tb, order, pkt)
                    order += 1
                    index += 1
        return
    for index, (y, cb, cr) in segment_frames(seg_spec, segments):
        frame = make_frame(*convert_planes(y, cb, cr, seg_spec, spec), spec.pix_fmt)
        frame.pts = pts[index]
        frame.time_base = tb
        for pkt in vout.encode(frame):
            yield (_dts_time(pkt), order, pkt)
            order += 1
    for pkt in vout.encode(None):
        yield (_dts_time(pkt), order, pkt)
        order += 1


def _dts_time(pkt) -> Fraction:
    ts = pkt.dts if pkt.dts is not None else pkt.pts
    return ts * pkt.time_base


def _other_packets(src, copies: dict, transcodes: dict) -> Iterator:
    indices = list(copies) + list(transcodes)
    if not indices:
        return
    streams = [src.streams[i] for i in indices]
    order = 0
    for pkt in src.demux(streams):
        if pkt.dts is None and not pkt.size:
            continue
        i = pkt.stream.index
        if i in copies:
            t = (pkt.dts if pkt.dts is not None else pkt.pts or 0) * pkt.time_base
            tb = pkt.time_base
            pkt.stream = copies[i]
            pkt.time_base = tb
            yield (t, 1 << 60 | order, pkt)
            order += 1
        else:
            enc, resampler = transcodes[i]
            for frame in pkt.decode():
                for rf in resampler.resample(frame):
                    for out_pkt in enc.encode(rf):
                        yield (_dts_time(out_pkt), 1 << 60 | order, out_pkt)
                        order += 1


def publish_deliverable(info: FilmInfo, seg_codec: str, codec: str, segments: list[tuple[Shard, str]],
                        output: str, part_size: int | None = None) -> dict:
    """The assembly stage for one deliverable: the film's segments (run directory, local
    or S3) -> `output` (a container file, or a DPX/TIFF sequence pattern), built in staging
    (beside a local output, node scratch for S3), made visible whole, then its fixity
    sidecars beside it (`NAME.framemd5`, `NAME.sha256`, computed from the staged bytes).
    Returns {warnings, sha256, framemd5_uri, sha256_uri}. Nothing is left at `output` or in
    scratch on failure."""
    import dataclasses
    import os

    from pipeline import fixity, storage
    from pipeline.codecs import is_sequence_output, muxer_for, output_spec, segment_spec

    seg_spec = segment_spec(info, seg_codec)  # the segments' format: the master's, or this deliverable's own
    spec = dataclasses.replace(output_spec(info, codec), container=muxer_for(output))
    segs = [Segment(s, uri) for s, uri in segments]
    if is_sequence_output(output):
        return _publish_sequence(info, seg_spec, spec, segs, output, part_size)
    staging = storage.staging_path(output, os.path.splitext(output)[1])
    try:
        warnings = assemble(info, seg_spec, spec, segs, staging)
        sha = storage.file_sha256(staging)
        known = _known_framemd5(staging, info, seg_spec, spec, segs)
        sidecars = fixity.sidecar_texts(staging, output, known)  # from the bytes about to be published
        qc = _qc(staging, output, spec, warnings)
        storage.publish(staging, output, sha, part_size)
        uris = fixity.store_sidecars(output, sidecars)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return {"warnings": warnings, "sha256": sha, "qc": qc, **uris}


def _known_framemd5(staging: str, info: FilmInfo, seg_spec: OutputSpec, spec: OutputSpec,
                    segs: list[Segment]) -> str | None:
    """The master's framemd5 from the hashes its actors wrote beside lossless segments
    whose packets it copied; None (decode instead) where any is missing or does not fit."""
    from pipeline import fixity, storage
    from pipeline.codecs import packed_size

    if not (_copies(seg_spec, spec) and spec.codec == "ffv1"):
        return None
    md5s = []
    for seg in segs:
        uri = seg.path + ".md5"
        try:
            got = storage.read_bytes(uri).decode().split() if storage.exists(uri) else []
        except (OSError, storage.StorageError, UnicodeDecodeError):
            got = []
        if len(got) != seg.shard.frames:
            return None
        md5s += got
    try:
        return fixity.framemd5_from_md5s(staging, md5s, packed_size(spec, info.width, info.height))
    except FilmcolorError:
        return None


def _qc(path: str, output: str, spec: OutputSpec, warnings: list[str]) -> str:
    """The FFV1 master against the MediaConch policy (infra/qc/), where mediaconch is
    installed: 'pass', or 'fail: rules' (also a warning in the run record)."""
    import shutil

    if spec.codec != "ffv1":
        return ""
    if not shutil.which("mediaconch"):
        return "not run (mediaconch not installed)"
    from pipeline import qc

    try:
        ok, text = qc.check_master(path)
    except FilmcolorError as exc:
        return f"not run ({exc})"
    if ok:
        return "pass"
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    warnings.append(f"{output}: MediaConch policy failed: {first}")
    return f"fail: {text.strip()}"


def sequence_names(info: FilmInfo, output: str) -> list[str]:
    """File names of a sequence deliverable, one per frame: the pattern filled with the
    input's own file numbers (a scan's numbering carries through to the grade), or frame
    indices from 0 for a container input."""
    import os
    import re

    base = os.path.basename(output)
    first = 0
    if info.is_sequence:
        m = re.search(r"(\d+)\.[A-Za-z]+$", os.path.basename(info.frame_files[0]))
        first = int(m.group(1)) if m else 0
    return [base % (first + i) for i in range(info.frame_count)]


def write_sequence(info: FilmInfo, seg_spec: OutputSpec, spec: OutputSpec, segments: list[Segment],
                   folder: str, output: str) -> list[str]:
    """The coloured film as R'G'B' image files (DPX or 16-bit TIFF) in local `folder`,
    each DPX carrying the rate and its frame's timecode. Returns the file names."""
    import os

    from pipeline.io import image
    from pipeline.scenes.export import timecode_of

    check_segments(segments)
    names = sequence_names(info, output)
    ext = os.path.splitext(output)[1].lower()
    extra = {"frame_rate": _rate(info), "big_endian": True} if spec.codec == "dpx" else {}
    for index, (y, cb, cr) in segment_frames(seg_spec, segments):
        rgb = convert_planes(y, cb, cr, seg_spec, spec)  # H x W x 3 uint16 at spec.bit_depth
        if spec.codec == "dpx":
            extra["timecode"] = timecode_of(info, index)
        data = image.encode(rgb, ext, spec.bit_depth, **extra)
        with open(os.path.join(folder, names[index]), "wb") as f:
            f.write(data)
    return names


def _publish_sequence(info: FilmInfo, seg_spec: OutputSpec, spec: OutputSpec, segs: list[Segment], output: str,
                      part_size: int | None) -> dict:
    """A sequence deliverable: written whole into a staging folder, then the folder is
    renamed into place (local; a previous delivery of the same sequence is replaced) or its
    files uploaded (S3, where the sidecars, stored last, mark the sequence complete)."""
    import os
    import shutil
    import tempfile

    from pipeline import fixity, storage

    folder = storage.parent(output) if storage.is_s3(output) else os.path.dirname(os.path.abspath(output))
    where = storage.scratch_dir() if storage.is_s3(output) else os.path.dirname(folder)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", suffix=".partial", dir=where)
    try:
        names = write_sequence(info, seg_spec, spec, segs, staging, output)
        sidecars = fixity.sidecar_texts(staging, folder)
        if storage.is_s3(output):
            for name in names:
                storage.put_file(os.path.join(staging, name), storage.join(folder, name), part_size=part_size)
        else:
            _replace_folder(staging, folder, output)
        uris = fixity.store_sidecars(folder, sidecars)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"warnings": [], **uris}


def _replace_folder(staging: str, folder: str, output: str) -> None:
    """Rename the finished folder into place; an earlier delivery of this sequence (a
    folder holding only its files) is moved aside first and removed after."""
    import os
    import shutil

    from pipeline import storage

    storage.published_mode(staging)  # mkdtemp's 0700 (its files were made under the umask)
    old = None
    if os.path.exists(folder):
        old = folder + f".old-{os.getpid()}"
        os.replace(folder, old)
    os.replace(staging, folder)
    if old:
        shutil.rmtree(old, ignore_errors=True)
