"""Planning: scenes -> shards, exemplars -> scenes, and each shard's propagation runs.

A shard is a contiguous frame range that one actor colours and encodes as one segment.
Normally one scene is one shard; a very long scene is split into shards of at most
`max_frames`, each decoding `warmup` extra frames on the side away from its exemplar so
that its propagation state is settled by the time its first output frame comes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

# Fixed namespace: shard ids are uuid5(namespace, "film_id:start-end") so re-runs line up.
SHARD_NAMESPACE = uuid.UUID("6f1c2b1e-8f0a-5d7e-9a41-3c2f0e6b7d15")


@dataclass(frozen=True)
class PlanConfig:
    max_frames: int = 1000  # longest shard (bounds an actor's memory); longer scenes are split
    warmup: int = 24  # frames decoded before a split shard's first output frame


@dataclass(frozen=True)
class Shard:
    shard_id: str
    film_id: str
    index: int  # position in the film: segments are concatenated in this order
    scene: int
    start_frame: int
    end_frame: int  # exclusive
    scene_start: int
    scene_end: int
    exemplars: tuple[int, ...]  # indices into the film's exemplar list
    low_variability: bool = False

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class Run:
    """Frames processed by one propagator pass, in processing order. The propagator is reset
    before each run; `frames[0]` is the seed exemplar's frame when `seeded`."""

    frames: tuple[int, ...]
    exemplars: tuple[int, ...]


def shard_id(film_id: str, start: int, end: int) -> str:
    return str(uuid.uuid5(SHARD_NAMESPACE, f"{film_id}:{start}-{end}"))


@dataclass(frozen=True)
class Assignment:
    exemplars: tuple[int, ...]  # indices into the film's exemplar list
    source: str  # 'own' | 'hints' | 'matched' (most similar) | 'nearest' (in time) | 'auto' | 'none'
    similarity: float | None = None


def assign_exemplars(scenes, exemplar_frames: list[int], similarity: dict | None = None) -> dict[int, Assignment]:
    """scene number -> its exemplars. A scene with none of its own takes the film's most
    similar exemplar when `similarity` (scene -> [score per exemplar]) is given, else the
    exemplars of the nearest scene in time (ties: the earlier). Flat/black scenes get none
    (they are not propagated into)."""
    own: dict[int, list[int]] = {s.scene: [] for s in scenes}
    for i, f in enumerate(exemplar_frames):
        for s in scenes:
            if s.start_frame <= f < s.end_frame:
                own[s.scene].append(i)
    with_own = [s for s in scenes if own[s.scene]]
    out: dict[int, Assignment] = {}
    for s in scenes:
        if getattr(s, "low_variability", False):
            out[s.scene] = Assignment((), "none")
        elif own[s.scene]:
            out[s.scene] = Assignment(tuple(own[s.scene]), "own")
        elif similarity is not None and exemplar_frames:
            scores = similarity[s.scene]
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))
            out[s.scene] = Assignment((best,), "matched", scores[best])
        elif with_own:
            near = min(with_own, key=lambda o: (_gap(s, o), o.start_frame))
            out[s.scene] = Assignment(tuple(own[near.scene]), "nearest")
        else:
            out[s.scene] = Assignment((), "none")
    return out


def _gap(a, b) -> int:
    if b.end_frame <= a.start_frame:
        return a.start_frame - b.end_frame + 1
    return b.start_frame - a.end_frame + 1


def plan_shards(film_id: str, scenes, exemplar_frames: list[int], cfg: PlanConfig = PlanConfig(),
                similarity: dict | None = None, assigned: dict[int, Assignment] | None = None) -> list[Shard]:
    """`assigned` (scene -> Assignment, from pipeline.guidance) overrides the assignment
    made here from frames and similarity."""
    assigned = assigned if assigned is not None else assign_exemplars(scenes, exemplar_frames, similarity)
    shards: list[Shard] = []
    for s in scenes:
        n = s.end_frame - s.start_frame
        pieces = max(1, -(-n // cfg.max_frames))
        bounds = [s.start_frame + (n * k) // pieces for k in range(pieces + 1)]
        for a, b in zip(bounds, bounds[1:]):
            shards.append(Shard(
                shard_id=shard_id(film_id, a, b), film_id=film_id, index=len(shards), scene=s.scene,
                start_frame=a, end_frame=b, scene_start=s.start_frame, scene_end=s.end_frame,
                exemplars=assigned[s.scene].exemplars, low_variability=bool(getattr(s, "low_variability", False)),
            ))
    return shards


def propagation_runs(shard: Shard, exemplar_frames: list[int], warmup: int) -> list[Run]:
    """The passes that colour `shard`, each starting from (or near) one exemplar.

    Exemplars inside the scene split it at the midpoints between them; each exemplar's
    region is coloured forward from it to the region's end and backward from it to the
    region's start (so an exemplar may sit anywhere in its scene). A scene that borrows
    another scene's exemplars is coloured forward from its first frame.
    Frames outside the shard are warm-up: processed, not output."""
    lo, hi = shard.start_frame, shard.end_frame
    inside = sorted((exemplar_frames[i], i) for i in shard.exemplars
                    if shard.scene_start <= exemplar_frames[i] < shard.scene_end)
    if not inside:
        first = max(shard.scene_start, lo - warmup)
        return [Run(tuple(range(first, hi)), shard.exemplars)]
    runs: list[Run] = []
    for k, (frame, ex) in enumerate(inside):
        r0 = shard.scene_start if k == 0 else (inside[k - 1][0] + frame + 1) // 2
        r1 = shard.scene_end if k == len(inside) - 1 else (frame + inside[k + 1][0] + 1) // 2
        # Forward: [frame, r1) restricted to [lo - warmup, hi).
        f0, f1 = max(frame, lo - warmup), min(r1, hi)
        if f0 < f1 and f1 > lo:
            runs.append(Run(tuple(range(f0, f1)), (ex,)))
        # Backward: frame-1 down to r0, restricted to (hi + warmup) > x >= lo.
        b0, b1 = max(r0, lo), min(frame, hi + warmup)  # frames [b0, b1) walked downwards
        if b0 < b1 and b0 < hi:
            start = b1 if b1 == frame else b1 - 1
            frames = tuple(range(start, b0 - 1, -1))
            runs.append(Run(frames, (ex,)))
    return runs
