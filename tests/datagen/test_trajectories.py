"""Trajectory generators on real scenes through the embedded backend (poses only)."""
import json
import math

import numpy as np
import pytest

from datagen import actions as A
from datagen import conventions as cv
from datagen.backends.embedded import EmbeddedBackend
from datagen.scenes.library import generate_scene
from datagen.trajectories import GENERATORS, REVISIT_GENERATORS, Trajectory, generate

REQUIRED = {"explore", "script_single", "script_mixed", "revisit_out_and_back", "revisit_loop",
            "revisit_pan360", "revisit_look_away", "revisit_return_to_start"}


@pytest.fixture(scope="module")
def backends():
    return {fam: EmbeddedBackend(generate_scene(fam, 0), width=32, height=24) for fam in ("apartment", "park")}


@pytest.fixture(scope="module")
def trajs(backends):
    out = {}
    for fam, be in backends.items():
        for name in GENERATORS:
            for seed in (1, 2):
                out[(fam, name, seed)] = generate(name, be, seed=seed, duration_s=20.0, fps=16)
    return out


def test_registry_has_every_required_generator():
    assert REQUIRED <= set(GENERATORS)
    assert set(REVISIT_GENERATORS) == {k for k in REQUIRED if k.startswith("revisit_")}


def test_shape_validity_bounds_and_clearance(trajs, backends):
    for (fam, name, seed), t in trajs.items():
        assert isinstance(t, Trajectory) and t.generator == name and t.seed == seed
        assert t.poses.shape == (320, 4, 4) and t.fps == 16.0
        R = t.poses[:, :3, :3]
        np.testing.assert_allclose(np.einsum("nji,njk->nik", R, R), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
        assert np.allclose(np.linalg.det(R), 1.0)
        scene = backends[fam].scene
        pos = t.poses[:, :3, 3]
        assert np.all(pos >= scene.bounds_min - 1e-9) and np.all(pos <= scene.bounds_max + 1e-9), (fam, name)
        assert scene.clearance(pos).min() >= backends[fam].radius - 2e-3, (fam, name, seed)


def test_reproducible_and_seed_dependent(trajs, backends):
    be = backends["apartment"]
    for name in GENERATORS:
        again = generate(name, be, seed=1, duration_s=20.0, fps=16)
        np.testing.assert_array_equal(again.poses, trajs[("apartment", name, 1)].poses)
        assert again.segments == trajs[("apartment", name, 1)].segments
        assert not np.allclose(trajs[("apartment", name, 1)].poses, trajs[("apartment", name, 2)].poses)


def test_segments_tile_the_clip_and_metadata_is_json(trajs):
    for key, t in trajs.items():
        segs = t.segments
        assert segs[0]["start"] == 0 and segs[-1]["end"] == t.num_frames - 1, key
        for a, b in zip(segs[:-1], segs[1:]):
            assert a["end"] == b["start"] and a["start"] < a["end"]
        meta = json.loads(json.dumps(t.metadata()))
        assert meta["num_frames"] == 320 and meta["generator"] == key[1]


def test_segments_describe_the_commands_actually_held(trajs):
    t = trajs[("apartment", "script_single", 1)]
    acts, _ = t.actions()
    for s in t.segments:
        if s["action"] in A.CHANNEL_INDEX:  # a single held key lights (almost only) its own channel
            rows = acts[s["start"]:s["end"]]
            i = A.CHANNEL_INDEX[s["action"]]
            assert np.all(rows[:, i] > 0)
            # levelling leaves < 0.5 deg of roll/pitch, so cross-talk stays below sin(0.5 deg) < 1 %
            assert np.delete(rows[:, :12], i, axis=1).max() <= 0.01 * rows[:, i].max()


def test_scripts_cover_single_and_mixed_actions(trajs):
    singles, mixes = set(), set()
    for (fam, name, seed), t in trajs.items():
        for s in t.segments:
            if name == "script_single" and s["action"] != "idle":
                assert "+" not in s["action"]
                singles.add(s["action"])
            if name == "script_mixed" and "+" in s["action"]:
                mixes.add(s["action"])
    assert len(singles) >= 8 and len(mixes) >= 6, (singles, mixes)


def test_explore_is_varied_and_human_like(trajs):
    union = set()
    for fam in ("apartment", "park"):
        for seed in (1, 2):
            t = trajs[(fam, "explore", seed)]
            acts, gamma = t.actions()
            actions = {s["action"] for s in t.segments}
            union |= actions
            assert "idle" in actions and len(actions - {"idle"}) >= 2, actions
            assert gamma > 0  # it walks
            # actions persist: the median held segment lasts well over a few frames
            held = [s["end"] - s["start"] for s in t.segments if s["action"] != "idle"]
            assert np.median(held) >= 8
            assert t.log["collided"].mean() < 0.05  # turns away from walls rather than pushing
    assert len(union) >= 6, union


def _pose_gap(a, b):
    d = np.linalg.norm(a[:3, 3] - b[:3, 3])
    ang = math.degrees(math.acos(np.clip((np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2, -1, 1)))
    return d, ang


def test_revisit_generators_plan_real_revisits(trajs):
    for (fam, name, seed), t in trajs.items():
        if name not in REVISIT_GENERATORS:
            assert t.revisit_plan == []
            continue
        assert len(t.revisit_plan) > 0, (fam, name, seed)
        for later, earlier in t.revisit_plan:
            assert later - earlier >= 32  # >= 2 s at 16 fps
            d, ang = _pose_gap(t.poses[later], t.poses[earlier])
            assert d <= 1.0 and ang <= 30.0


def test_return_to_start_and_loop_come_back(trajs):
    for fam in ("apartment", "park"):
        for seed in (1, 2):
            t = trajs[(fam, "revisit_return_to_start", seed)]
            d, ang = _pose_gap(t.poses[-1], t.poses[0])
            assert d < 0.2 and ang < 2.0, (fam, seed, d, ang)
            t = trajs[(fam, "revisit_loop", seed)]
            walked = np.linalg.norm(np.diff(t.poses[:, :3, 3], axis=0), axis=1).sum()
            back = [_pose_gap(p, t.poses[0]) for p in t.poses[len(t.poses) // 3:]]
            assert walked > 3.0 and min(d for d, _ in back) < 0.2


def test_pan360_turns_a_full_circle_in_place(trajs):
    for fam in ("apartment", "park"):
        t = trajs[(fam, "revisit_pan360", 1)]
        yaws = [cv.rotation_to_rotator(p[:3, :3])[1] for p in t.poses]
        total = np.abs((np.diff(yaws) + 180) % 360 - 180).sum()
        assert total >= 360.0
        assert np.ptp(t.poses[:, :3, 3], axis=0).max() < 1e-9


def test_look_away_looks_back(trajs):
    t = trajs[("apartment", "revisit_look_away", 1)]
    phases = [s["phase"] for s in t.segments]
    assert "away" in phases and "look_back" in phases
    later = {a for a, _ in t.revisit_plan}
    back = [s for s in t.segments if s["phase"] == "look_back"]
    assert any(s["start"] <= f <= s["end"] for f in later for s in back)


def test_durations_fps_and_controller_params(backends):
    be = backends["apartment"]
    t = generate("explore", be, seed=3, duration_s=7.3, fps=10, controller={"move_speed": 0.7})
    assert t.num_frames == 73 and t.fps == 10.0
    assert t.params["controller"] == {"move_speed": 0.7}
    v = np.linalg.norm(np.diff(t.poses[:, :3, 3], axis=0), axis=1) * 10
    assert v.max() <= 0.7 * 1.1 + 1e-9
    t = generate("revisit_pan360", be, seed=3, duration_s=40.0, start="spawn")
    assert t.num_frames == 640
    np.testing.assert_allclose(t.poses[0], be.scene.spawn_c2w, atol=1e-9)


def test_bad_arguments(backends):
    be = backends["apartment"]
    with pytest.raises(ValueError, match="unknown trajectory generator"):
        generate("teleport", be, seed=0)
    with pytest.raises(ValueError, match="bad parameter"):
        generate("explore", be, seed=0, warp_speed=9)
    with pytest.raises(ValueError, match="start"):
        generate("explore", be, seed=0, start="moon")
    with pytest.raises(ValueError, match="duration_s"):
        generate("explore", be, seed=0, duration_s=0)
