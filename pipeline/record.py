"""The run record: films.parquet, scenes.parquet, shards.parquet in the run directory.

Each shard row carries status and error (video2dataset style), so a re-run skips work
that is done and a person can see what failed and why without reading logs.
"""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage

MODEL_TYPE = pa.struct([("name", pa.string()), ("version", pa.string()), ("weights_sha256", pa.string())])

SHARDS_SCHEMA = pa.schema([
    ("shard_id", pa.string()), ("film_id", pa.string()), ("index", pa.int32()), ("scene", pa.int32()),
    ("start_frame", pa.int64()), ("end_frame", pa.int64()), ("status", pa.string()), ("error", pa.string()),
    ("attempts", pa.int32()), ("model", MODEL_TYPE), ("exemplar_sha256", pa.list_(pa.string())),
    ("segment_uri", pa.string()), ("segment_sha256", pa.string()), ("frames", pa.int64()), ("seconds", pa.float64()),
    ("peak_rss_mb", pa.float64()),  # of the actor process when the shard finished
    # Segments of the film's other deliverable formats, made from the same colouring:
    # "KEY=sha256" each (pipeline.codecs.extra_segment_keys), beside segment_uri.
    ("segment_extras", pa.list_(pa.string())),
])

SCENES_SCHEMA = pa.schema([
    ("film_id", pa.string()), ("scene", pa.int32()), ("start_frame", pa.int64()), ("end_frame", pa.int64()),
    ("start_time", pa.float64()), ("end_time", pa.float64()), ("start_timecode", pa.string()),
    ("transition", pa.string()), ("score", pa.float64()), ("low_variability", pa.bool_()),
    ("exemplars", pa.list_(pa.int32())), ("exemplar_source", pa.string()),
    ("exemplar_similarity", pa.float64()),  # for 'matched' scenes: luminance similarity 0..1
    # The exemplar image the scene is coloured from: the user's, or one derived in the run
    # directory (exemplars/<film>/hints-*.png, auto-*.png) for a colourist to look at.
    ("exemplar_image", pa.string()), ("exemplar_frame", pa.int64()), ("end_timecode", pa.string()),
])

FILMS_SCHEMA = pa.schema([
    ("film_id", pa.string()), ("input", pa.string()), ("output", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("frames", pa.int64()), ("width", pa.int32()), ("height", pa.int32()),
    ("pix_fmt", pa.string()), ("codec", pa.string()), ("model", MODEL_TYPE), ("exemplars", pa.list_(pa.string())),
    ("exemplar_frames", pa.list_(pa.int64())), ("exemplar_sha256", pa.list_(pa.string())),
    ("hints", pa.list_(pa.string())), ("hint_frames", pa.list_(pa.int64())), ("hint_sha256", pa.list_(pa.string())),
    ("auto_model", MODEL_TYPE),  # the automatic colorizer, when any scene got automatic colours
    ("fps", pa.float64()), ("warnings", pa.list_(pa.string())),
    ("output_sha256", pa.string()), ("seconds", pa.float64()),
    # Every deliverable made from the one colouring (the master first) and its fixity.
    ("outputs", pa.list_(pa.string())), ("codecs", pa.list_(pa.string())),
    ("output_sha256s", pa.list_(pa.string())), ("framemd5_uris", pa.list_(pa.string())),
    ("sha256_uris", pa.list_(pa.string())), ("qc", pa.list_(pa.string())),  # MediaConch: pass / fail: ...
    ("start_timecode", pa.string()), ("rate", pa.string()),
    ("scan_seconds", pa.float64()), ("colorize_seconds", pa.float64()), ("assemble_seconds", pa.float64()),
])

TABLES = {"films": FILMS_SCHEMA, "scenes": SCENES_SCHEMA, "shards": SHARDS_SCHEMA}


def write_table(run_dir: str, name: str, rows: list[dict]) -> str:
    """Replace `name`.parquet in the run directory atomically."""
    table = pa.Table.from_pylist(rows, schema=TABLES[name])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    uri = storage.join(run_dir, f"{name}.parquet")
    storage.makedirs(run_dir)
    storage.write_bytes(uri, buf.getvalue())
    return uri


def read_table(run_dir: str, name: str) -> list[dict]:
    uri = storage.join(run_dir, f"{name}.parquet")
    if not storage.exists(uri):
        return []
    return pq.read_table(io.BytesIO(storage.read_bytes(uri))).to_pylist()


def merge_rows(old: list[dict], new: list[dict], key: str, scope: tuple[str, str] | None = None) -> list[dict]:
    """Rows of `new` replace rows of `old` with the same key; rows of other films are kept.
    `scope` = (column, value): all old rows with that value are replaced by `new`."""
    if scope is not None:
        kept = [r for r in old if r.get(scope[0]) != scope[1]]
    else:
        new_keys = {r[key] for r in new}
        kept = [r for r in old if r[key] not in new_keys]
    return kept + new


def default_run_dir(output: str) -> str:
    from pipeline.codecs import is_sequence_output

    if is_sequence_output(output):  # beside the sequence's folder, not inside it
        output = storage.parent(output)
    base = os.path.basename(output.rstrip("/"))
    stem = base.rsplit(".", 1)[0]
    return storage.join(storage.parent(output), f"{stem}.filmcolor-run")
