"""The registry hands frame 0's ground-truth depth (the metric anchor) only to estimators that accept
it. (The opencv estimator's own behaviour on rendered scenes was tested here until scoring protocol 2:
its KLT/RANSAC choices made those results depend on the CPU, e.g. 0.13 m vs 1.10 m of invented
translation over the same 80-degree pan on two x86 machines; the default direct estimator is tested on
committed clips in test_pose_direct.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.pose_estimation.opencv_estimator import OpenCVEstimator
from benchmark.pose_estimation.registry import accepts_depth0, run_estimator

W, H, FPS = 160, 96, 16.0


@pytest.fixture(scope="module")
def scene():
    from datagen.backends.embedded import EmbeddedBackend
    from datagen.scenes.library import generate_scene

    sc = generate_scene("apartment", 3)
    return sc, EmbeddedBackend(sc, width=W, height=H, fov=90.0)


def _render(be, poses):
    fr = be.capture_batch(list(poses), kinds=("rgb", "depth"))
    return np.stack([f.rgb for f in fr]), np.stack([f.depth for f in fr])


def _walk(start, n, step_cam, yaw_deg=0.0):
    P, c = [start.copy()], start.copy()
    for _ in range(n):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
        T[:3, 3] = step_cam
        c = c @ T
        P.append(c.copy())
    return np.array(P)


def test_registry_passes_depth0_only_to_estimators_that_take_it(scene):
    sc, be = scene
    poses = _walk(sc.spawn_c2w, 5, [0.03, 0.0, 0.0])
    rgb, depth = _render(be, poses)
    seen = {}

    def plain(frames, K):
        seen["plain"] = True
        return np.tile(np.eye(4), (len(frames), 1, 1))

    def anchored(frames, K, depth0=None):
        seen["depth0"] = depth0
        return np.tile(np.eye(4), (len(frames), 1, 1))

    assert not accepts_depth0(plain) and accepts_depth0(anchored) and accepts_depth0(OpenCVEstimator())
    run_estimator(plain, rgb, be.intrinsics(), depth0=depth[0])
    run_estimator(anchored, rgb, be.intrinsics(), depth0=depth[0])
    assert seen["plain"] and seen["depth0"] is not None and seen["depth0"].shape == (H, W)
    with pytest.raises(ValueError, match="depth0"):
        OpenCVEstimator()(rgb, be.intrinsics(), depth0=depth)  # (N,H,W) instead of (H,W)
