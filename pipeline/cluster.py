"""The one place that knows Ray: stages become Ray tasks and actors here.

- `init_ray`: an embedded local Ray (default) or an existing cluster (`address` /
  RAY_ADDRESS). Ray's own warnings and INFO lines go to a log file, not the terminal.
- `StagePool`: one pool of actors for the whole run, each hosting a stage object
  (`setup()` once, then `process(row)` per shard) — the model is loaded once per actor per
  run, and the shards of every film of the collection share the pool. A killed actor is
  restarted by Ray and its shard retried (`max_restarts`, `max_task_retries`).
- `run_task`: a stage function as a Ray task (planning, assembly) that takes no CPU slot,
  so it runs beside the actors instead of waiting for one.
- `ProgressSink`: a 0-CPU actor the colour actors report to, per shard, in absolute
  frames: a retried shard starts again from 0 instead of being counted twice.

Why not Ray Data's map_batches for the shards: a collection's shard table grows while it
runs (film k+1 is planned while film k is coloured), and a streaming Ray Data pipeline
whose planning and repartitioning need CPU slots deadlocks when the actor pool holds all
of them (seen on Ray 2.60 with 2 CPUs and 2 actors). Here the driver feeds shards to the
pool as plans arrive, and planning runs without a slot.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Callable


PASSED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
_RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.serve")


def init_ray(address: str | None = None, workers: int | None = None, log_file: str | None = None) -> None:
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
    handler = _quiet_ray(log_file)
    # Workers' stdout/stderr stay in Ray's session logs; shard errors reach the user through
    # the results (and the run record), one line each, from the driver.
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                  runtime_env={"env_vars": env}, configure_logging=False)
    # ray.init drops the handlers of its loggers, so what it says while starting would
    # reach the terminal through logging's last-resort handler: send that to the file too.
    last_resort, logging.lastResort = logging.lastResort, handler
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), **kwargs)
    finally:
        logging.lastResort = last_resort
    _quiet_ray(log_file)


def _quiet_ray(log_file: str | None) -> logging.Handler:
    """Ray's Python loggers write to `log_file` (or nowhere), not to the user's terminal."""
    handler: logging.Handler
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    else:
        handler = logging.NullHandler()
    for name in _RAY_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False
    return handler


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class ProgressSink:
    """Frames done per shard (absolute), summed per film on request."""

    def __init__(self):
        self.shards: dict[str, tuple[str, int]] = {}

    def report(self, film_id: str, shard_id: str, frames: int) -> None:
        self.shards[shard_id] = (film_id, frames)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for film, n in self.shards.values():
            out[film] = out.get(film, 0) + n
        return out


def _actor_class(stage_factory, sink):
    """The actor class, with the stage factory in its closure rather than as constructor
    arguments: Ray keeps constructor arguments in the object store, where a restart after
    the actor was killed might not find them; the class itself is kept by the cluster."""

    class StageActor:
        def __init__(self):
            report = (lambda film, shard, n: sink.report.remote(film, shard, n)) if sink is not None else None
            self.stage = stage_factory(report)
            self.stage.setup()

        def process(self, row: dict) -> dict:
            return self.stage.process(row)

    return StageActor


class StagePool:
    """`size` actors hosting `stage_factory(progress_fn)`; rows are queued and handed to
    idle actors one at a time (a shard is minutes of work: no batching needed)."""

    def __init__(self, stage_factory: Callable, size: int, sink=None, num_cpus: float = 1, retries: int = 2,
                 num_gpus: float = 0):
        import ray

        # max_task_retries=-1: while a lost node's actor is being restarted elsewhere, calls
        # to it fail at once ("unavailable"); a bounded count would be spent in seconds,
        # long before the restart. Restarts themselves stay bounded.
        cls = ray.remote(_actor_class(stage_factory, sink)).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                                     max_restarts=retries, max_task_retries=-1)
        self.actors = [cls.remote() for _ in range(size)]
        self.idle = deque(self.actors)
        self.queue: deque = deque()
        self.inflight: dict = {}  # ref -> (actor, row)
        self.tries: dict = {}  # id(row) -> actors that died holding it
        self.retries = retries

    def submit(self, row: dict) -> None:
        self.queue.append(row)

    def dispatch(self, before: Callable[[dict], None] | None = None) -> list:
        """Start queued rows on idle actors (`before(row)` first); returns [(ref, row)]."""
        new = []
        while self.idle and self.queue:
            actor, row = self.idle.popleft(), self.queue.popleft()
            if before:
                before(row)
            ref = actor.process.remote(row)
            self.inflight[ref] = (actor, row)
            new.append((ref, row))
        return new

    def finish(self, ref) -> tuple[dict, dict | None, str]:
        """(row, result or None, error) for a finished ref; its actor becomes idle again."""
        import ray

        actor, row = self.inflight.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            # The actor is gone for good (restarts used up): drop it; its row goes to a
            # surviving actor unless it has already outlived `retries` actors.
            self.actors = [a for a in self.actors if a != actor]
            died = self.tries[id(row)] = self.tries.get(id(row), 0) + 1
            if self.actors and died <= self.retries:
                self.queue.appendleft(row)
                return row, None, "retry"
            return row, None, f"the colour actor died and its restarts ran out ({type(exc).__name__})"
        except ray.exceptions.RayError as exc:
            self.idle.append(actor)
            return row, None, f"Ray: {type(exc).__name__}"
        self.idle.append(actor)
        return row, result, ""

    def fail_queued(self) -> list[dict]:
        """Rows that can no longer run (no actor left)."""
        if self.actors:
            return []
        rows, self.queue = list(self.queue), deque()
        return rows

    @property
    def busy(self) -> bool:
        return bool(self.inflight or self.queue)

    def shutdown(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)


def run_task(fn: Callable, *args, here: bool = False, **kwargs):
    """`fn(*args, **kwargs)` as a Ray task with no CPU slot (I/O-bound or short stages
    that must not wait behind the actors); returns its ref. `here`: on the driver's node
    (assembly stages a whole film in scratch: the node sized for it)."""
    import ray

    opts = {"num_cpus": 0, "max_retries": 2}
    if here:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                     soft=False)
    return ray.remote(fn).options(**opts).remote(*args, **kwargs)


def make_sink():
    import ray

    return ray.remote(num_cpus=0)(ProgressSink).remote()


def wait(refs: list, timeout: float) -> list:
    import ray

    if not refs:
        time.sleep(timeout)
        return []
    ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
    return ready


def get(ref):
    import ray

    return ray.get(ref)


def get_nowait(ref, timeout: float = 5):
    import ray

    return ray.get(ref, timeout=timeout)


def kill(actor) -> None:
    import ray

    ray.kill(actor)

