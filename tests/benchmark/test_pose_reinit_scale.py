"""The opencv estimator's scale at a re-initialisation (map lost, two-view restart): scale
propagation from the surviving map points
(benchmark.pose_estimation.opencv_estimator, step 2), on synthetic two-view geometry."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.pose_estimation.opencv_estimator import OpenCVEstimator



def _project(X, c2w, K):
    x = (np.column_stack([X, np.ones(len(X))]) @ np.linalg.inv(c2w)[:3].T) @ K.T
    return x[:, :2] / x[:, 2:3]


def _two_views(t_true, seed=0, n=60):
    rng = np.random.default_rng(seed)
    K = np.array([[200.0, 0, 160], [0, 200.0, 96], [0, 0, 1]])
    X = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(-1, 1, n), rng.uniform(3, 8, n)])
    a = np.eye(4)
    b = np.eye(4)
    b[:3, 3] = t_true
    return K, X, _project(X, a, K), _project(X, b, K), a


def test_propagated_baseline_recovers_the_map_scale():
    t_true = np.array([0.3, 0.0, 0.1])
    K, X, pa, pb, a = _two_views(t_true)
    est = OpenCVEstimator()
    common = list(range(len(X)))
    world = {k: X[k] for k in common[:20]}  # only some tracks still have map points
    # cv2 convention of the two-view solve: t maps keyframe-camera points into the frame's camera
    t_unit = -t_true / np.linalg.norm(t_true)
    got = est._propagated_baseline(pa, pb, common, world, np.eye(3), t_unit, a, K)
    assert got is not None and got[1] == "map"
    assert got[0] == pytest.approx(np.linalg.norm(t_true), rel=0.02)


def test_propagated_baseline_refuses_too_few_or_inconsistent_map_points():
    t_true = np.array([0.3, 0.0, 0.1])
    K, X, pa, pb, a = _two_views(t_true)
    est = OpenCVEstimator()
    common = list(range(len(X)))
    t_unit = -t_true / np.linalg.norm(t_true)
    few = {k: X[k] for k in common[: est.min_prop - 1]}
    assert est._propagated_baseline(pa, pb, common, few, np.eye(3), t_unit, a, K) is None
    rng = np.random.default_rng(1)
    scrambled = {k: X[k] * rng.uniform(0.3, 3.0) for k in common[:20]}  # map disagrees with itself
    assert est._propagated_baseline(pa, pb, common, scrambled, np.eye(3), t_unit, a, K) is None
