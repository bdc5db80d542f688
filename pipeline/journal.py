"""The run record as a journal: every finished unit is durable the moment it is done.

Layout in the run directory (local or S3):

    journal/<film>/plan.json               probe result, scenes, shard plan (after the scan)
    journal/<film>/shards/<shard_id>.json  one row per shard, written by the actor right after
                                           its segment is stored and checksummed
    journal/<film>/film.json               the film's row, after it is published (or failed)
    films.parquet scenes.parquet shards.parquet   the readable tables, compacted from the
                                           journal as films finish and at the end of the run

One small object per row, because S3 has no append: a row is either there, whole, or not.
After a crash the same command reads the journal and redoes only what has no durable row.
Rows of older run directories (parquet only, no journal) are read too.
"""

from __future__ import annotations

import json

from pipeline import storage
from pipeline.record import merge_rows, read_table, write_table


class Journal:
    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def _uri(self, film_id: str, *parts: str) -> str:
        from pipeline.names import join_inside

        return join_inside(self.run_dir, "journal", film_id, *parts)

    def _read(self, uri: str) -> dict | None:
        try:
            return json.loads(storage.read_bytes(uri))
        except FileNotFoundError:
            return None
        except storage.StorageError as exc:
            if exc.reason == "no such key":
                return None
            raise

    def _write(self, uri: str, row: dict) -> None:
        storage.makedirs(storage.parent(uri))
        storage.write_bytes(uri, json.dumps(row, sort_keys=True).encode())

    # --- the run's films (what `filmcolor resume RUN_DIR` runs again) -----------------
    def films(self) -> list[dict]:
        return (self._read(storage.join(self.run_dir, "journal", "run.json")) or {}).get("films", [])

    def save_films(self, films: list[dict]) -> None:
        """Add or update the films of this run (kept in the order first seen)."""
        known = {f["film_id"]: f for f in self.films()}
        known.update({f["film_id"]: f for f in films})
        self._write(storage.join(self.run_dir, "journal", "run.json"), {"films": list(known.values())})

    # --- plan -----------------------------------------------------------------------
    def plan(self, film_id: str) -> dict | None:
        return self._read(self._uri(film_id, "plan.json"))

    def save_plan(self, film_id: str, plan: dict) -> None:
        self._write(self._uri(film_id, "plan.json"), plan)

    # --- shards -----------------------------------------------------------------------
    def shard_uri(self, film_id: str, shard_id: str) -> str:
        return self._uri(film_id, "shards", f"{shard_id}.json")

    def shard_rows(self, film_id: str) -> dict[str, dict]:
        """shard_id -> latest row: the compacted table overlaid by journal rows."""
        rows = {r["shard_id"]: r for r in read_table(self.run_dir, "shards") if r["film_id"] == film_id}
        for name in storage.listdir(self._uri(film_id, "shards")):
            if name.endswith(".json"):
                row = self._read(self._uri(film_id, "shards", name))
                if row:
                    rows[row["shard_id"]] = row
        return rows

    def record_shard(self, row: dict) -> None:
        self._write(self.shard_uri(row["film_id"], row["shard_id"]), row)

    # --- films ------------------------------------------------------------------------
    def film_row(self, film_id: str) -> dict | None:
        row = self._read(self._uri(film_id, "film.json"))
        if row is None:
            row = next((r for r in read_table(self.run_dir, "films") if r["film_id"] == film_id), None)
        return row

    def record_film(self, row: dict) -> None:
        self._write(self._uri(row["film_id"], "film.json"), row)

    # --- tables -----------------------------------------------------------------------
    def compact(self, film_ids: list[str]) -> None:
        """Rewrite the readable tables: rows of `film_ids` from the journal, all other
        films' rows as they were."""
        shards, scenes, films = read_table(self.run_dir, "shards"), read_table(self.run_dir, "scenes"), \
            read_table(self.run_dir, "films")
        for fid in film_ids:
            rows = sorted(self.shard_rows(fid).values(), key=lambda r: r["index"])
            shards = merge_rows(shards, rows, "shard_id", ("film_id", fid))
            plan = self.plan(fid)
            if plan:
                scenes = merge_rows(scenes, plan["scene_rows"], "scene", ("film_id", fid))
            film = self._read(self._uri(fid, "film.json"))
            if film:
                films = merge_rows(films, [film], "film_id")
        write_table(self.run_dir, "shards", shards)
        write_table(self.run_dir, "scenes", scenes)
        write_table(self.run_dir, "films", films)
