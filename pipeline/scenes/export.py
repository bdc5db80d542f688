"""Scene list export: CSV, Parquet, JSON, CMX3600 EDL, OpenTimelineIO.

Fields (DESIGN.md): scene, start_frame, end_frame (exclusive), start_time, end_time
(seconds, from the exact frame timestamps), start_timecode (the film's start timecode plus
the frame's time, at the film's nominal rate), transition, score. CSV has exactly these
columns; Parquet, JSON and OTIO also carry low_variability.
"""

from __future__ import annotations

import csv
import json
import os
from fractions import Fraction

CSV_COLUMNS = ["scene", "start_frame", "end_frame", "start_time", "end_time",
               "start_timecode", "transition", "score"]


def nominal_fps(info) -> int:
    """Integer timecode rate: the film's average rate rounded (23.976 -> 24, 29.97 -> 30)."""
    rate = Fraction(info.avg_rate) if info.avg_rate else Fraction(24)
    return max(1, int(round(float(rate))))


def parse_timecode(tc: str, fps: int) -> int:
    parts = tc.replace(";", ":").replace(".", ":").split(":")
    if len(parts) != 4:
        raise ValueError(f"bad timecode {tc!r}")
    h, m, s, f = (int(p) for p in parts)
    return ((h * 60 + m) * 60 + s) * fps + f


def format_timecode(frames: int, fps: int) -> str:
    frames = frames % (24 * 3600 * fps)
    f = frames % fps
    s = frames // fps
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


def frame_offset(info, index: int, fps: int) -> int:
    """Timecode frames from the film's start to frame `index`.

    Timecode counts frames (a 23.976 fps film runs non-drop timecode at 24), so this is
    the frame index itself: deriving it from seconds x nominal rate would drift by 0.1 %
    (86 frames an hour) on NTSC-rate film. `filmcolor colorize -e IMG@HH:MM:SS:FF` uses
    the same convention, so a timecode read off the EDL names the same frame."""
    return index


def timecode_of(info, index: int) -> str:
    fps = nominal_fps(info)
    start = parse_timecode(getattr(info, "start_timecode", None) or "00:00:00:00", fps)
    return format_timecode(start + frame_offset(info, index, fps), fps)


def rows(scenes, info) -> list[dict]:
    from pipeline.io import frame_time

    out = []
    for s in scenes:
        out.append({
            "scene": int(s.scene),
            "start_frame": int(s.start_frame),
            "end_frame": int(s.end_frame),
            "start_time": round(float(frame_time(info, s.start_frame)), 6),
            "end_time": round(float(frame_time(info, s.end_frame)), 6),
            "start_timecode": timecode_of(info, s.start_frame),
            "transition": s.transition,
            "score": round(float(s.score), 6),
            "low_variability": bool(s.low_variability),
        })
    return out


def _atomic_write(out: str, writer) -> None:
    """Written to a staging file (beside a local `out`, in scratch for S3), then published."""
    from pipeline import storage

    tmp = storage.staging_path(out, os.path.splitext(out)[1])
    try:
        writer(tmp)
        storage.publish(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _csv(rs, path):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rs:
            w.writerow(r)


def _json(rs, path):
    with open(path, "w") as fh:
        json.dump(rs, fh, indent=1)
        fh.write("\n")


def _parquet(rs, path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("scene", pa.int32()), ("start_frame", pa.int64()), ("end_frame", pa.int64()),
        ("start_time", pa.float64()), ("end_time", pa.float64()), ("start_timecode", pa.string()),
        ("transition", pa.string()), ("score", pa.float64()), ("low_variability", pa.bool_()),
    ])
    table = pa.Table.from_pylist(rs, schema=schema)
    pq.write_table(table, path)


def edl_text(scenes, info, title: str | None = None) -> str:
    """CMX3600: one cut event per scene; source and record timecodes are the film's own."""
    fps = nominal_fps(info)
    start = parse_timecode(getattr(info, "start_timecode", None) or "00:00:00:00", fps)
    name = os.path.basename(info.path)
    reel = "AX"
    lines = [f"TITLE: {title or os.path.splitext(name)[0]}", "FCM: NON-DROP FRAME", ""]
    for s in scenes:
        tin = format_timecode(start + frame_offset(info, s.start_frame, fps), fps)
        tout = format_timecode(start + frame_offset(info, s.end_frame, fps), fps)
        lines.append(f"{s.scene + 1:03d}  {reel:<8} V     C        {tin} {tout} {tin} {tout}")
        lines.append(f"* FROM CLIP NAME: {name}")
        lv = " LOW VARIABILITY" if s.low_variability else ""
        lines.append(f"* SCENE {s.scene} TRANSITION {s.transition.upper()} SCORE {s.score:.4f}{lv}")
        lines.append("")
    return "\n".join(lines)


def _edl(scenes, info, path):
    with open(path, "w", newline="\r\n") as fh:
        fh.write(edl_text(scenes, info))


def otio_timeline(scenes, info):
    import opentimelineio as otio

    fps = nominal_fps(info)
    start = parse_timecode(getattr(info, "start_timecode", None) or "00:00:00:00", fps)
    name = os.path.basename(info.path)
    total = frame_offset(info, info.frame_count, fps)
    ref = otio.schema.ExternalReference(
        target_url=os.path.abspath(info.path) if "://" not in info.path else info.path,
        available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(total, fps)),
    )
    tl = otio.schema.Timeline(name=os.path.splitext(name)[0])
    tl.global_start_time = otio.opentime.RationalTime(start, fps)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for s in scenes:
        a = frame_offset(info, s.start_frame, fps)
        b = frame_offset(info, s.end_frame, fps)
        clip = otio.schema.Clip(
            name=f"scene {s.scene:04d}",
            media_reference=ref.clone() if hasattr(ref, "clone") else ref,
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(start + a, fps), otio.opentime.RationalTime(b - a, fps)),
        )
        clip.metadata["filmcolor"] = {
            "scene": int(s.scene), "start_frame": int(s.start_frame), "end_frame": int(s.end_frame),
            "transition": s.transition, "score": float(s.score),
            "low_variability": bool(s.low_variability),
        }
        track.append(clip)
    tl.tracks.append(track)
    return tl


def _otio(scenes, info, path):
    import opentimelineio as otio

    otio.adapters.write_to_file(otio_timeline(scenes, info), path, adapter_name="otio_json")


def write_scenes(scenes, info, out: str) -> None:
    """Write the scene list by extension: .csv .parquet .json .edl (CMX3600) .otio."""
    ext = os.path.splitext(out)[1].lower()
    if ext == ".csv":
        rs = rows(scenes, info)
        _atomic_write(out, lambda p: _csv(rs, p))
    elif ext in (".parquet", ".pq"):
        rs = rows(scenes, info)
        _atomic_write(out, lambda p: _parquet(rs, p))
    elif ext == ".json":
        rs = rows(scenes, info)
        _atomic_write(out, lambda p: _json(rs, p))
    elif ext == ".edl":
        _atomic_write(out, lambda p: _edl(scenes, info, p))
    elif ext == ".otio":
        _atomic_write(out, lambda p: _otio(scenes, info, p))
    else:
        from pipeline.errors import InputError

        raise InputError(f"{out}: unsupported scene list format {ext or '(none)'} "
                         "(use .csv, .parquet, .json, .edl or .otio)")


SUPPORTED_EXTENSIONS = (".csv", ".parquet", ".json", ".edl", ".otio")
