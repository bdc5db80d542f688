"""The one place that knows Ray: stages become Ray Data calls here.

Traps on Ray 2.60 this adapter avoids:
- A fixed pool of 1-CPU actors on a 2-CPU machine can starve the tasks that feed it;
  the pool is elastic (min 1) so feeding tasks can always be scheduled.
- An exception in a UDF fails the whole dataset, and tolerated errored blocks are dropped
  silently: stages never raise (they return failed rows), and the caller compares what
  came back with what it planned (`missing` rows are recorded as failed).
"""

from __future__ import annotations

import logging
import os
import threading

import pyarrow as pa

from pipeline import log


PASSED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")


def init_ray(address: str | None = None, workers: int | None = None) -> None:
    """Embedded local Ray (default) or an existing cluster (`address` / RAY_ADDRESS)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # The library code must be importable on the workers (also on a remote cluster).
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # Storage settings every worker must share (never credentials: those come from each
    # node's own credential chain, or are inherited from this process by a local cluster).
    env.update({k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("FILMCOLOR_")})
    runtime_env = {"env_vars": env}
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
                  runtime_env=runtime_env)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), **kwargs)


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class _ProgressSink:
    """A tiny actor the colorize actors report frames to (never frames themselves)."""

    def __init__(self):
        self.done: dict[str, int] = {}

    def add(self, film_id: str, n: int) -> None:
        self.done[film_id] = self.done.get(film_id, 0) + n

    def get(self) -> dict[str, int]:
        return dict(self.done)


class _StageActor:
    def __init__(self, stage_factory, sink):
        sink_add = (lambda film, n: sink.add.remote(film, n)) if sink is not None else None
        self.stage = stage_factory(sink_add)
        self.stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([self.stage.process(row) for row in batch.to_pylist()])


def run_stage(rows: list[dict], stage_factory, workers: int, progress=None) -> list[dict]:
    """Run `stage_factory(progress_fn)` (an object with setup/process) over `rows`, one row
    per block, on an elastic actor pool of up to `workers` actors. Returns result rows."""
    import ray
    import ray.data

    if not rows:
        return []
    # Ray Data's INFO lines would interleave with our progress line; warnings still show.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own progress line is the one a person reads
    ctx.max_errored_blocks = 0
    sink = ray.remote(num_cpus=0)(_ProgressSink).remote() if progress is not None else None
    size = max(1, min(workers, len(rows)))
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(
        _StageActor,
        fn_constructor_args=(stage_factory, sink),
        batch_size=1,
        batch_format="pyarrow",
        # Elastic (min 1) so feeding tasks can always be scheduled, but started at full size:
        # left to scale up on its own, the pool stayed at one actor for short films.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size, initial_size=size),
        num_cpus=1,
    )
    results: list[dict] = []
    error: list[BaseException] = []

    def consume():
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                results.extend(batch.to_pylist())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    def poll():
        if sink is None:
            return
        try:
            for film, n in ray.get(sink.get.remote(), timeout=5).items():
                progress.set(film, n)
        except Exception:  # noqa: BLE001 - progress is best effort
            pass

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(timeout=0.5)
        poll()
    poll()  # the last reports may land after the last block
    if error:
        log.error("the Ray Data run stopped: %s", error[0])
    if sink is not None:
        ray.kill(sink)
    return results
