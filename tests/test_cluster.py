"""The Ray adapter against a real local Ray cluster: one pool, no stall, exact progress."""

from __future__ import annotations

import sys
import time

import pytest
import ray.cloudpickle

from pipeline import cluster

# Stage classes defined here travel to the workers by value (tests/ is not on their path).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _add(xs):
    return sum(xs)


class Square:
    def __init__(self, progress):
        self.progress = progress or (lambda film, shard, n: None)

    def setup(self):
        self.k = 2

    def process(self, row):
        for n in range(1, 4):
            self.progress("film", f"s{row['id']}", n)
        return {"id": row["id"], "value": row["id"] ** self.k}


class Explodes(Square):
    def process(self, row):
        if row["id"] == 3:
            raise RuntimeError("boom")
        return super().process(row)


def _drain(pool, rows):
    for r in rows:
        pool.submit(r)
    out, refs = [], []
    t0 = time.time()
    while pool.busy:
        refs += [ref for ref, _ in pool.dispatch()]
        for ref in cluster.wait(refs, timeout=1):
            refs.remove(ref)
            out.append(pool.finish(ref))
        assert time.time() - t0 < 120, "the pool stalled"
    return out


@pytest.mark.timeout(180)
def test_pool_as_wide_as_the_cluster_does_not_stall_and_plans_run_beside_it(ray_cluster):
    pool = cluster.StagePool(Square, size=2)
    # A 0-CPU task (planning) runs while both actors hold the cluster's 2 CPUs.
    plan = cluster.run_task(_add, [1, 2, 3])
    out = _drain(pool, [{"id": i} for i in range(9)])
    assert cluster.get(plan) == 6
    assert sorted(res["value"] for _, res, _ in out) == [i * i for i in range(9)]
    pool.shutdown()


@pytest.mark.timeout(180)
def test_progress_is_absolute_per_shard(ray_cluster):
    sink = cluster.make_sink()
    pool = cluster.StagePool(Square, size=2, sink=sink)
    _drain(pool, [{"id": i} for i in range(6)])
    time.sleep(0.5)  # reports are fire-and-forget
    assert cluster.get(sink.totals.remote()) == {"film": 18}  # 6 shards x 3, however often reported
    pool.shutdown()


@pytest.mark.timeout(180)
def test_an_exception_in_a_stage_comes_back_as_an_error(ray_cluster):
    pool = cluster.StagePool(Explodes, size=2)
    out = _drain(pool, [{"id": i} for i in range(6)])
    errors = {row["id"]: err for row, res, err in out if res is None}
    assert list(errors) == [3] and "RayTaskError" in errors[3] or "Ray" in errors[3]
    pool.shutdown()
