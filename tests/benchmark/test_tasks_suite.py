"""Suite building: held-out scenes only, deterministic, labels = actions of the GT poses."""
import json

import numpy as np
import pytest

from benchmark.tasks.families import FAMILIES, LONG_HORIZON_MIN_S, MIN_REVISIT_PAIRS, SuiteSpec
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import build_suite, scene_id_of, suite_spec
from benchmark.tasks.suite import test_scene_seed as nth_test_seed


def test_smoke_and_full_specs_cover_every_family_on_test_scenes():
    from datagen.curation.splits import scene_split

    for name in ("smoke", "full"):
        spec = suite_spec(name)
        assert {t.family for t in spec.tasks} == set(FAMILIES)
        assert max(t.duration_s for t in spec.tasks if t.family == "long_horizon") >= LONG_HORIZON_MIN_S
        for t in spec.tasks:
            sid = scene_id_of(t.scene_family, nth_test_seed(t.scene_family, t.scene_index))
            assert scene_split(sid) == "test", (name, t, sid)
    smoke = suite_spec("smoke")
    assert (smoke.width, smoke.height) == (112, 64)
    assert len(smoke.tasks) < len(suite_spec("full").tasks)


def test_scene_id_rule_matches_the_generated_scene():
    from datagen.scenes.library import generate_scene

    assert scene_id_of("apartment", 7) == generate_scene("apartment", 7).scene_id


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    smoke = suite_spec("smoke")
    # the two shortest smoke tasks plus the shortest revisit task, built twice
    short = sorted(smoke.tasks, key=lambda t: t.duration_s)
    picked = tuple(short[:2]) + tuple(t for t in short if t.family.startswith("revisit"))[:1]
    spec = SuiteSpec("smoke", smoke.width, smoke.height, smoke.fps, picked)
    a, b = tmp_path_factory.mktemp("suite_a"), tmp_path_factory.mktemp("suite_b")
    return spec, build_suite(a, spec, progress=False), build_suite(b, spec, progress=False), a


def test_suite_build_is_deterministic(two_builds):
    spec, ma, mb, _ = two_builds
    assert [e["content_sha256"] for e in ma["tasks"]] == [e["content_sha256"] for e in mb["tasks"]]
    assert ma == mb


def test_built_tasks_are_complete_and_consistent(two_builds):
    from datagen.actions import poses_to_actions
    from datagen.curation.splits import scene_split

    spec, m, _, root = two_builds
    suite = load_suite(root)
    assert suite.manifest["version"] == 1 and suite.name == "smoke"
    for t in suite.tasks:
        assert scene_split(t.scene_id) == "test"
        n = t.num_frames
        assert n == round(t.meta["duration_s"] * t.fps)
        assert t.gt_frames().shape == (n, t.height, t.width, 3) and t.gt_frames().dtype == np.uint8
        assert t.gt_depth().shape == (n, t.height, t.width) and t.gt_depth().dtype == np.float32
        assert t.actions.shape == (n, 13)
        a, g = poses_to_actions(t.gt_poses)
        np.testing.assert_array_equal(a, t.actions)  # the commanded actions ARE the GT-pose labels
        assert g == pytest.approx(t.gamma)
        assert t.prompt and not any(w in t.prompt.lower().split() for w in ("camera", "pan", "moves"))
        if t.family.startswith("revisit"):
            assert len(t.revisits) >= MIN_REVISIT_PAIRS
            assert (t.revisits["later"] > t.revisits["earlier"]).all()
            assert (t.revisits["gap_s"] >= 2.0 - 1e-9).all()
        assert (root / "tasks" / t.task_id / "first_frame.png").exists()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["config"]["suite_spec"]["name"] == "smoke"


def test_rebuild_resumes_without_recomputing(two_builds, monkeypatch):
    import benchmark.tasks.suite as suite_mod

    spec, m, _, root = two_builds

    def boom(*a, **k):
        raise AssertionError("a finished task was rebuilt")

    monkeypatch.setattr(suite_mod, "build_task", boom)
    assert build_suite(root, spec, progress=False) == m
