"""The Ray Data adapter against a real local Ray cluster: the known traps."""

from __future__ import annotations

import sys

import pytest
import ray.cloudpickle

from pipeline.raydata import run_stage

# Stage classes defined here travel to the workers by value (tests/ is not on their path).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Square:
    def __init__(self, progress):
        self.progress = progress or (lambda film, n: None)

    def setup(self):
        self.k = 2

    def process(self, row):
        self.progress("film", 1)
        return {"id": row["id"], "value": row["id"] ** self.k}


class Explodes(Square):
    def process(self, row):
        if row["id"] == 3:
            raise RuntimeError("boom")
        return super().process(row)


@pytest.mark.timeout(180)
def test_pool_as_wide_as_the_cluster_does_not_stall(ray_cluster):
    rows = [{"id": i} for i in range(9)]
    out = run_stage(rows, Square, workers=2)
    assert sorted(r["value"] for r in out) == [i * i for i in range(9)]


@pytest.mark.timeout(180)
def test_progress_reaches_the_driver(ray_cluster):
    from pipeline.progress import Progress

    import io

    p = Progress({"film": 6}, stream=io.StringIO())
    run_stage([{"id": i} for i in range(6)], Square, workers=2, progress=p)
    assert p.done["film"] == 6
    assert "film" in p.line("film")


@pytest.mark.timeout(180)
def test_an_exception_in_a_stage_does_not_raise_and_its_row_is_missing(ray_cluster):
    rows = [{"id": i} for i in range(6)]
    out = run_stage(rows, Explodes, workers=2)
    ids = {r["id"] for r in out}
    assert 3 not in ids  # the planner, not Ray, notices what is missing (job marks it failed)
    assert ids <= {0, 1, 2, 4, 5}
