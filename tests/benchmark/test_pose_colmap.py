"""The ``colmap`` pose estimator (benchmark/pose_estimation/colmap_estimator.py).

The end-to-end tests render a small textured box room with numpy (ray casting, no renderer), so
they do not depend on the suite renderer's floating point; they need pycolmap (the ``colmap`` extra)
and skip without it. The assembly helpers (chaining models, filling unregistered frames) are tested
without pycolmap.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.pose_estimation import colmap_estimator as ce
from benchmark.pose_estimation.registry import available_estimators, get_estimator, run_estimator

REPO = Path(__file__).resolve().parents[2]
needs_pycolmap = pytest.mark.skipif(not ce.pycolmap_available(),
                                    reason=f"pycolmap not installed: {ce.PIP_HINT}")

W, H = 112, 64
K = np.array([[56.0, 0.0, 56.0], [0.0, 56.0, 32.0], [0.0, 0.0, 1.0]])


def _value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smooth random texture on a plane: bilinear value noise at three cell sizes (metres)."""
    out = np.zeros_like(u)
    rng = np.random.default_rng(seed)
    for cell, amp in ((0.5, 0.5), (0.15, 0.35), (0.05, 0.15)):
        grid = rng.random((256, 256))
        x, y = u / cell + 128.0, v / cell + 128.0
        x0, y0 = np.floor(x).astype(int) % 255, np.floor(y).astype(int) % 255
        fx, fy = x - np.floor(x), y - np.floor(y)
        g = (grid[y0, x0] * (1 - fx) * (1 - fy) + grid[y0, x0 + 1] * fx * (1 - fy)
             + grid[y0 + 1, x0] * (1 - fx) * fy + grid[y0 + 1, x0 + 1] * fx * fy)
        out += amp * g
    return out


def render_room(c2w: np.ndarray, ss: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H,W,3) and planar depth (H,W) of a 6 x 3 x 6.5 m textured box seen from ``c2w``
    (OpenCV camera axes, world = camera 0's axes: x right, y down, z forward)."""
    ys, xs = np.mgrid[0:H * ss, 0:W * ss]
    px = (xs + 0.5) / ss
    py = (ys + 0.5) / ss
    rays_c = np.stack([(px - K[0, 2]) / K[0, 0], (py - K[1, 2]) / K[1, 1], np.ones_like(px)], -1)
    R, o = c2w[:3, :3], c2w[:3, 3]
    d = rays_c @ R.T
    best = np.full(px.shape, np.inf)
    col = np.zeros(px.shape + (3,))
    # planes: (axis, position, texture seed, the two in-plane axes, tint)
    planes = [(0, -3.0, 1, (2, 1), (1.0, 0.8, 0.7)), (0, 3.0, 2, (2, 1), (0.7, 0.9, 1.0)),
              (1, 1.5, 3, (0, 2), (0.9, 0.9, 0.8)), (1, -1.5, 4, (0, 2), (0.8, 0.8, 0.9)),
              (2, 4.0, 5, (0, 1), (1.0, 1.0, 1.0)), (2, -2.5, 6, (0, 1), (0.9, 1.0, 0.9))]
    for axis, pos, seed, (a, b), tint in planes:
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (pos - o[axis]) / d[..., axis]
        ok = (lam > 1e-6) & (lam < best)
        p = o + lam[..., None] * d
        tex = _value_noise(p[..., a], p[..., b], seed)
        best = np.where(ok, lam, best)
        col = np.where(ok[..., None], tex[..., None] * np.asarray(tint), col)
    img = col.reshape(H, ss, W, ss, 3).mean((1, 3))
    depth = best.reshape(H, ss, W, ss).mean((1, 3))  # lam is planar depth (ray z = 1 in camera)
    return np.clip(img * 255.0, 0, 255).round().astype(np.uint8), depth.astype(np.float32)


def strafe_poses(n: int = 32, step: float = 0.05, yaw_deg: float = 0.0) -> np.ndarray:
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        poses[i, :3, 3] = [step * i, 0.0, 0.02 * i]
        poses[i, :3, :3] = Rotation.from_euler("y", yaw_deg * i / max(n - 1, 1), degrees=True).as_matrix()
    return poses


@pytest.fixture(scope="module")
def strafe_video():
    poses = strafe_poses()
    out = [render_room(p) for p in poses]
    return np.stack([f for f, _ in out]), out[0][1], poses


def _rot_err_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).magnitude()))


def test_registered_and_errors_name_the_pip_command(monkeypatch):
    assert "colmap" in available_estimators()
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install"):
        frames = np.repeat((np.arange(3, dtype=np.uint8) * 40)[:, None, None, None], H * W * 3).reshape(3, H, W, 3)
        run_estimator("colmap", frames, K)


@needs_pycolmap
def test_strafe_metric_and_accurate(strafe_video):
    frames, depth0, gt = strafe_video
    res = run_estimator("colmap", frames, K, depth0=depth0)
    assert res.poses.shape == (len(frames), 4, 4)
    np.testing.assert_allclose(res.poses[0], np.eye(4), atol=1e-12)
    assert res.metric, res.notes
    assert res.num_failed == 0, res.notes
    path = np.linalg.norm(gt[-1, :3, 3])
    err = np.linalg.norm(res.poses[:, :3, 3] - gt[:, :3, 3], axis=1)
    # metric (anchored by depth0, no alignment): within 10% of the path length everywhere
    assert err.max() < 0.1 * path, (err.max(), path, res.notes)
    assert max(_rot_err_deg(a, b) for a, b in zip(res.poses, gt)) < 1.5


@needs_pycolmap
def test_without_depth_scale_is_arbitrary_but_direction_right(strafe_video):
    frames, _, gt = strafe_video
    res = run_estimator("colmap", frames, K)
    assert not res.metric
    t_est, t_gt = res.poses[-1, :3, 3], gt[-1, :3, 3]
    cos = float(t_est @ t_gt / (np.linalg.norm(t_est) * np.linalg.norm(t_gt)))
    assert cos > 0.98, cos


def _digest(poses: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(poses, dtype=np.float64).tobytes()).hexdigest()


@needs_pycolmap
def test_deterministic_across_runs_and_thread_settings(strafe_video, tmp_path):
    frames, depth0, _ = strafe_video
    a = run_estimator("colmap", frames, K, depth0=depth0).poses
    b = run_estimator("colmap", frames, K, depth0=depth0).poses
    assert _digest(a) == _digest(b)
    # a fresh process with other thread settings gives the same bits
    np.savez(tmp_path / "in.npz", frames=frames, depth0=depth0, K=K)
    code = ("import sys, hashlib, numpy as np; sys.path.insert(0, %r);"
            "from benchmark.pose_estimation.registry import run_estimator;"
            "z = np.load(%r); p = run_estimator('colmap', z['frames'], z['K'], depth0=z['depth0']).poses;"
            "print(hashlib.sha256(np.ascontiguousarray(p, dtype=np.float64).tobytes()).hexdigest())"
            ) % (str(REPO), str(tmp_path / "in.npz"))
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == _digest(a)


@needs_pycolmap
def test_static_video_is_static(strafe_video):
    frames, depth0, _ = strafe_video
    static = np.repeat(frames[:1], 12, 0)
    res = run_estimator("colmap", static, K, depth0=depth0)
    assert res.step_kind == ["static"] * 11
    np.testing.assert_array_equal(res.poses, np.tile(np.eye(4), (12, 1, 1)))


@needs_pycolmap
def test_repeated_frames_hold_the_pose(strafe_video):
    frames, depth0, gt = strafe_video
    # an idle camera for 6 frames in the middle: those frames repeat frame 15 exactly
    fr = np.concatenate([frames[:16], np.repeat(frames[15:16], 6, 0), frames[16:]])
    res = run_estimator("colmap", fr, K, depth0=depth0)
    assert res.step_kind[15:21] == ["static"] * 6
    for i in range(16, 22):
        np.testing.assert_array_equal(res.poses[i], res.poses[15])
    assert res.num_failed == 0, res.notes


@needs_pycolmap
def test_unrelated_frames_are_failed_not_invented(strafe_video):
    frames, depth0, _ = strafe_video
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(8, H, W, 3), dtype=np.uint8)  # pure noise: nothing to match
    res = run_estimator("colmap", np.concatenate([frames[:1], noise]), K, depth0=depth0)
    assert res.num_failed == 8
    assert np.all(np.isfinite(res.poses))


# -- assembly helpers (no pycolmap needed) -----------------------------------------------------
def _pose(rotvec, t) -> np.ndarray:
    p = np.eye(4)
    p[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    p[:3, 3] = t
    return p


def test_fill_interpolates_between_and_holds_outside():
    traj = {2: _pose([0, 0, 0], [0, 0, 0]), 6: _pose([0, 0.4, 0], [4.0, 0, 0])}
    out = ce._fill(traj, 9)
    np.testing.assert_allclose(out[0], traj[2])
    np.testing.assert_allclose(out[8], traj[6])
    np.testing.assert_allclose(out[4][:3, 3], [2.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(Rotation.from_matrix(out[4][:3, :3]).as_rotvec(), [0, 0.2, 0], atol=1e-9)


def test_chain_recovers_a_similarity_from_shared_frames():
    rng = np.random.default_rng(3)
    traj = {i: _pose(rng.normal(size=3) * 0.1, rng.normal(size=3)) for i in range(0, 10)}
    # model 2 = frames 7..14 of the same trajectory seen in a world rotated, shifted and scaled by 1/3
    truth = {i: _pose(rng.normal(size=3) * 0.1, rng.normal(size=3)) for i in range(10, 15)}
    full = {**traj, **truth}
    S_R = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    s, t = 1 / 3.0, np.array([5.0, -1.0, 2.0])
    m2 = {}
    for i in range(7, 15):
        p = np.eye(4)
        p[:3, :3] = S_R @ full[i][:3, :3]
        p[:3, 3] = s * (S_R @ full[i][:3, 3]) + t
        m2[i] = p
    notes: list[str] = []
    # model depths: the same scene is 3x smaller in model 2's units
    out, kind = ce._chain_models([(traj, 3.0), (m2, 1.0)], list(range(15)), notes)
    assert all(kind[i] == "sfm" for i in range(15))
    for i in range(10, 15):
        np.testing.assert_allclose(out[i], truth[i], atol=1e-9)
    assert "3 shared frame(s)" in notes[0]


def test_chain_without_shared_frames_holds_pose_over_the_gap():
    a = {0: _pose([0, 0, 0], [0, 0, 0]), 1: _pose([0, 0, 0], [1.0, 0, 0])}
    b = {4: _pose([0, 0.3, 0], [7.0, 7.0, 7.0]), 5: _pose([0, 0.3, 0], [7.0, 7.0, 9.0])}
    notes: list[str] = []
    out, kind = ce._chain_models([(a, 2.0), (b, 1.0)], [0, 1, 2, 3, 4, 5], notes)
    assert 2 not in out and 3 not in out  # no rotation fallback: left to interpolation
    np.testing.assert_allclose(out[4], a[1], atol=1e-12)  # no motion over frames 2-3
    assert np.linalg.norm(out[5][:3, 3] - out[4][:3, 3]) == pytest.approx(4.0)  # depth ratio 2 x 2 m
    assert "shares no frame" in notes[0]


def test_chain_rotation_fallback_turns_in_place_and_carries_the_next_model():
    a = {0: _pose([0, 0, 0], [0, 0, 0]), 1: _pose([0, 0, 0], [1.0, 0, 0])}
    b = {4: _pose([0, 0, 0], [0, 0, 0]), 5: _pose([0, 0, 0], [0, 0, 1.0])}
    step = Rotation.from_rotvec([0, 0.1, 0]).as_matrix()  # bearing b = R a: the camera turns by -0.1 rad

    def rot(p, j):
        return None if j == 3 else step

    out, kind = ce._chain_models([(a, 1.0), (b, 1.0)], [0, 1, 2, 3, 4, 5], [], rot)
    assert [kind[i] for i in range(6)] == ["sfm", "sfm", "rotation", "failed", "sfm", "sfm"]
    for i in (2, 3, 4):
        np.testing.assert_allclose(out[i][:3, 3], [1.0, 0, 0], atol=1e-12)  # centre held
    np.testing.assert_allclose(out[2][:3, :3], step.T, atol=1e-12)
    np.testing.assert_allclose(out[3], out[2])  # no fit: held, failed
    np.testing.assert_allclose(out[4][:3, :3], step.T @ step.T, atol=1e-12)  # model b starts turned
    np.testing.assert_allclose(out[5][:3, 3], np.array([1.0, 0, 0]) + step.T @ step.T @ np.array([0, 0, 1.0]),
                               atol=1e-12)


def test_rotation_only_fit_recovers_rotation_with_outliers():
    rng = np.random.default_rng(1)
    b1 = rng.normal(size=(60, 3)) + [0, 0, 3]
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    R = Rotation.from_rotvec([0.02, -0.05, 0.01]).as_matrix()
    b2 = b1 @ R.T
    b2[:10] = rng.normal(size=(10, 3)) + [0, 0, 3]  # 10 wrong matches
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    est = ce._rotation_only(b1, b2, 15, np.radians(0.25))
    assert np.degrees(Rotation.from_matrix(est.T @ R).magnitude()) < 1e-6
    assert ce._rotation_only(b1[:12], b2[:12], 15, np.radians(0.25)) is None
