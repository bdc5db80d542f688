from dataclasses import dataclass

from pipeline.shard import PlanConfig, assign_exemplars, plan_shards, propagation_runs, shard_id


@dataclass(frozen=True)
class Sc:
    scene: int
    start_frame: int
    end_frame: int
    low_variability: bool = False


SCENES = [Sc(0, 0, 10), Sc(1, 10, 30), Sc(2, 30, 34, True), Sc(3, 34, 60)]


def test_shard_ids_are_deterministic_and_distinct():
    a = plan_shards("film", SCENES, [5, 20])
    b = plan_shards("film", SCENES, [5, 20])
    assert [s.shard_id for s in a] == [s.shard_id for s in b]
    assert len({s.shard_id for s in a}) == len(a)
    assert a[0].shard_id == shard_id("film", 0, 10)
    assert plan_shards("other", SCENES, [5])[0].shard_id != a[0].shard_id


def test_exemplars_go_to_their_scene_and_nearest_scene_otherwise():
    got = {k: v.exemplars for k, v in assign_exemplars(SCENES, [5, 20]).items()}
    assert got[0] == (0,) and got[1] == (1,)
    assert got[2] == ()  # low variability: not propagated into
    assert got[3] == (1,)  # borrows the nearest scene's exemplar


def test_scene_without_exemplar_takes_the_most_similar():
    sim = {0: [0.9, 0.1], 1: [0.2, 0.8], 2: [0.0, 0.0], 3: [0.7, 0.3]}
    got = assign_exemplars(SCENES, [5, 20], sim)
    assert got[3].exemplars == (0,) and got[3].source == "matched" and got[3].similarity == 0.7
    assert got[1].source == "own" and got[2].source == "none"


def test_long_scenes_split_and_tile():
    shards = plan_shards("f", [Sc(0, 0, 2500)], [100], PlanConfig(max_frames=1000))
    assert [(s.start_frame, s.end_frame) for s in shards] == [(0, 833), (833, 1666), (1666, 2500)]
    assert all(s.scene_start == 0 and s.scene_end == 2500 for s in shards)


def _covered(shard, runs):
    out = []
    for r in runs:
        for f in r.frames:
            if shard.start_frame <= f < shard.end_frame and f not in out:
                out.append(f)
    return sorted(out)


def test_exemplar_mid_scene_runs_forward_and_backward():
    (shard,) = plan_shards("f", [Sc(0, 0, 20)], [8])
    runs = propagation_runs(shard, [8], warmup=4)
    assert runs[0].frames == tuple(range(8, 20))  # forward from the exemplar
    assert runs[1].frames == tuple(range(8, -1, -1))  # backward, seeded at the exemplar
    assert _covered(shard, runs) == list(range(20))


def test_two_exemplars_split_the_scene_at_the_midpoint():
    (shard,) = plan_shards("f", [Sc(0, 0, 40)], [5, 30])
    runs = propagation_runs(shard, [5, 30], warmup=4)
    assert {r.exemplars for r in runs} == {(0,), (1,)}
    owner = {}
    for r in runs:
        for f in r.frames:
            owner.setdefault(f, r.exemplars[0])
    assert owner[17] == 0 and owner[18] == 1
    assert _covered(shard, runs) == list(range(40))


def test_split_shard_gets_warmup_before_it():
    shards = plan_shards("f", [Sc(0, 0, 300)], [0], PlanConfig(max_frames=100, warmup=10))
    runs = propagation_runs(shards[1], [0], warmup=10)
    assert runs == [runs[0]] and runs[0].frames[0] == 90 and runs[0].frames[-1] == 199
    assert _covered(shards[1], runs) == list(range(100, 200))


def test_split_shard_before_its_exemplar_runs_backward_with_warmup():
    shards = plan_shards("f", [Sc(0, 0, 300)], [250], PlanConfig(max_frames=100, warmup=10))
    runs = propagation_runs(shards[1], [250], warmup=10)
    assert len(runs) == 1 and runs[0].frames[0] == 209 and runs[0].frames[-1] == 100
    assert _covered(shards[1], runs) == list(range(100, 200))


def test_borrowed_exemplar_runs_forward_from_scene_start():
    shards = plan_shards("f", SCENES, [5])
    runs = propagation_runs(shards[3], [5], warmup=10)
    assert runs[0].frames == tuple(range(34, 60))
