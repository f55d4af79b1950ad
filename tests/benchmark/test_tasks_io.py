"""Suite I/O: lossless round trip, version check."""
import json

import numpy as np
import pandas as pd
import pytest

from benchmark.tasks.io import load_suite, read_manifest, save_task, write_manifest
from benchmark.tasks.task import REVISIT_COLUMNS, Task


def _task(n=6, h=8, w=12):
    rng = np.random.default_rng(3)
    poses = np.repeat(np.eye(4)[None], n, 0)
    poses[:, 0, 3] = np.arange(n) * 0.1
    rv = pd.DataFrame([[5, 0, 0.5, 0.0, 0.9, 5 / 16]], columns=REVISIT_COLUMNS)
    t = Task(task_id="t0", family="revisit_loop", scene_id="x-0001", prompt="A room.",
             K=np.array([[6.0, 0, 6], [0, 6, 4], [0, 0, 1]]), width=w, height=h, fps=16.0,
             actions=rng.random((n, 13)).astype(np.float32), gamma=0.1, gt_poses=poses, revisits=rv,
             meta={"scene": {"family": "x", "seed": 1, "fov_deg": 90.0}})
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 9, (n, h, w)).astype(np.float32)
    depth[:, 0, 0] = np.inf
    return t, frames, depth


def test_round_trip_is_lossless(tmp_path):
    t, frames, depth = _task()
    e = save_task(t, tmp_path, frames, depth)
    write_manifest(tmp_path, "smoke", {}, [e])
    s = load_suite(tmp_path)
    u = s.task("t0")
    np.testing.assert_array_equal(u.gt_frames(), frames)
    np.testing.assert_array_equal(u.gt_depth(), depth)
    np.testing.assert_array_equal(u.actions, t.actions)
    np.testing.assert_array_equal(u.gt_poses, t.gt_poses)
    np.testing.assert_array_equal(u.first_frame(), frames[0])
    assert u.prompt == t.prompt and u.meta == t.meta and u.fps == 16.0
    pd.testing.assert_frame_equal(u.revisits[REVISIT_COLUMNS], t.revisits[REVISIT_COLUMNS], check_dtype=False)


def test_loader_refuses_unknown_versions(tmp_path):
    t, frames, depth = _task()
    write_manifest(tmp_path, "smoke", {}, [save_task(t, tmp_path, frames, depth)])
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["version"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="version 999"):
        read_manifest(tmp_path)
    m["version"], m["format"] = 1, "something-else"
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="format"):
        load_suite(tmp_path)
