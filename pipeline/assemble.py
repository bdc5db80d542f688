"""Assembly: segments concatenated in shard order, the input's other streams copied.

Video timestamps come from the input film (frame by frame), never from a nominal rate, so
a variable-frame-rate film keeps its timing. Intra-only codecs (FFV1, ProRes) are copied
packet for packet from the segments; H.264 is encoded once here from lossless segments.
Audio and subtitle packets are copied unchanged where the container accepts the codec
(re-encoding AAC would shift it); otherwise audio is transcoded and a warning recorded.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av

from pipeline import log
from pipeline.codecs import OutputSpec, set_color_tags
from pipeline.errors import FilmcolorError
from pipeline.io import FilmInfo, open_input
from pipeline.shard import Shard

COPYABLE = {
    "matroska": None,  # anything
    "mov": {"aac", "alac", "mp3", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
            "pcm_f32le", "mov_text"},
    "mp4": {"aac", "alac", "mp3", "ac3", "eac3", "opus", "flac", "mov_text"},
}
METADATA_SKIP = {"encoder", "duration", "_statistics_tags", "_statistics_writing_app", "creation_time"}


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


def assemble(info: FilmInfo, spec: OutputSpec, segments: list[Segment], out_path: str) -> list[str]:
    """Write the output film to `out_path` (a staging path). Returns warnings."""
    check_segments(segments)
    warnings: list[str] = []
    # bitexact: no random ids or dates in the container, so a re-run gives the same bytes.
    options = {"fflags": "+bitexact"}
    if spec.container in ("mp4", "mov"):
        options["movflags"] = "+faststart"
    with open_input(info.path) as src, av.open(out_path, mode="w", format=spec.container, options=options) as out:
        _copy_metadata(src.metadata, out.metadata)
        in_video = src.streams.video[0]
        if spec.intra:
            with open_input(segments[0].path) as first:
                vout = out.add_stream_from_template(first.streams.video[0])
        else:
            vout = out.add_stream(spec.encoder, options=dict(spec.options))
            vout.width, vout.height, vout.pix_fmt = info.width, info.height, spec.pix_fmt
            vout.codec_context.time_base = info.time_base
        vout.time_base = info.time_base
        set_color_tags(vout.codec_context, spec)
        _copy_metadata(in_video.metadata, vout.metadata)
        copies, transcodes = _other_streams(src, out, spec, warnings)
        out.start_encoding()
        video = _video_packets(info, spec, segments, vout)
        others = _other_packets(src, copies, transcodes)
        for packet in heapq.merge(video, others, key=lambda p: p[0]):
            out.mux(packet[2])
        for stream, (enc, _) in transcodes.items():
            for pkt in enc.encode(None):
                out.mux(pkt)
    return warnings


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


def _video_packets(info: FilmInfo, spec: OutputSpec, segments: list[Segment], vout) -> Iterator:
    """(time, order, packet) for the output's video in presentation order, with the input's
    timestamps. Intra codecs: one packet per frame, copied."""
    tb = info.time_base
    pts = info.frame_pts
    order = 0
    for seg in segments:
        with open_input(seg.path) as c:
            vs = c.streams.video[0]
            index = seg.shard.start_frame
            if spec.intra:
                for pkt in c.demux(vs):
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
            else:
                for frame in c.decode(vs):
                    frame.pts = pts[index]
                    frame.time_base = tb
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for pkt in vout.encode(frame):
                        yield (_dts_time(pkt), order, pkt)
                        order += 1
                    index += 1
    if not spec.intra:
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


def publish_film(info: FilmInfo, codec: str, segments: list[tuple[Shard, str]], output: str,
                 part_size: int | None = None) -> tuple[list[str], str]:
    """The assembly stage: segments (from the run directory, local or S3) -> the film at
    `output`, built in staging (beside a local output, node scratch for S3) and made
    visible whole. Returns (warnings, sha256). Nothing is left at `output` or in scratch
    on failure."""
    import dataclasses
    import os

    from pipeline import storage
    from pipeline.codecs import muxer_for, output_spec

    spec = dataclasses.replace(output_spec(info, codec), container=muxer_for(output))
    staging = storage.staging_path(output, os.path.splitext(output)[1])
    try:
        warnings = assemble(info, spec, [Segment(s, uri) for s, uri in segments], staging)
        sha = storage.file_sha256(staging)
        storage.publish(staging, output, sha, part_size)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return warnings, sha
