"""TUM I/O, RPE with evo (cross-checked against evo's own command-line tool), alignment fallbacks
and the estimator registry. Synthetic trajectories only (the rendered checks live in
test_scoring_validity.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.metrics.rpe import compute_rpe
from benchmark.pose_estimation import registry
from benchmark.pose_estimation.opencv_estimator import EstimateResult
from benchmark.pose_estimation.tum import poses_to_tum_rows, read_tum, trajectory_for_frames, write_tum

FPS = 16.0


def _trajectory(n: int, seed: int) -> np.ndarray:
    """Smooth, non-collinear c2w trajectory (metres, OpenCV camera axes)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    pos = np.stack([0.6 * t, 0.4 * np.sin(1.3 * t), 0.1 * np.cos(0.7 * t)], axis=1)
    eul = np.stack([20 * np.sin(0.5 * t), 5 * np.sin(0.9 * t), 3 * np.cos(0.4 * t)], axis=1)
    eul += rng.normal(scale=0.05, size=eul.shape)
    P = np.tile(np.eye(4), (n, 1, 1))
    P[:, :3, :3] = Rotation.from_euler("yxz", eul, degrees=True).as_matrix()
    P[:, :3, 3] = pos
    return P


def _noisy_similar(P: np.ndarray, seed: int, scale: float = 3.0) -> np.ndarray:
    """P seen in another world frame at another scale, with per-frame noise."""
    rng = np.random.default_rng(seed)
    S = np.eye(4)
    S[:3, :3] = Rotation.from_euler("xyz", [30, -50, 10], degrees=True).as_matrix()
    S[:3, 3] = [1.0, -2.0, 0.5]
    out = np.empty_like(P)
    for i, p in enumerate(P):
        q = p.copy()
        q[:3, :3] = q[:3, :3] @ Rotation.from_rotvec(rng.normal(scale=0.004, size=3)).as_matrix()
        q[:3, 3] += rng.normal(scale=0.01, size=3)
        q[:3, 3] *= scale
        out[i] = S @ q
    return out


def test_tum_round_trip_and_quaternion_order(tmp_path):
    P = _trajectory(40, 0)
    ts = np.arange(40) / FPS
    f = tmp_path / "traj.txt"
    write_tum(str(f), P, ts)
    ts2, P2 = read_tum(str(f))
    assert np.allclose(ts2, ts) and np.allclose(P2, P, atol=1e-8)
    # scalar-LAST order in the file: a 90 deg turn about z is (qx,qy,qz,qw) = (0,0,s,s)
    Rz = np.eye(4)
    Rz[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    row = poses_to_tum_rows(Rz[None], np.zeros(1))[0]
    assert np.allclose(row[4:], [0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    assert not list(tmp_path.glob(".tum-*"))  # atomic write left no temp file


def test_trajectory_for_frames_accepts_seconds_and_indices(tmp_path):
    P = _trajectory(20, 1)
    f = tmp_path / "a.txt"
    write_tum(str(f), P, np.arange(20) / FPS)
    assert np.allclose(trajectory_for_frames(str(f), 20, FPS), P, atol=1e-8)
    g = tmp_path / "b.txt"
    write_tum(str(g), P, np.arange(20, dtype=float))  # frame-index timestamps
    assert np.allclose(trajectory_for_frames(str(g), 20, FPS), P, atol=1e-8)
    with pytest.raises(ValueError, match="no pose within half a frame"):
        trajectory_for_frames(str(f), 40, FPS)
    with pytest.raises(FileNotFoundError):
        read_tum(str(tmp_path / "missing.txt"))


def test_rpe_is_zero_for_a_similarity_transformed_copy():
    P = _trajectory(60, 2)
    S = np.eye(4)
    S[:3, :3] = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    S[:3, 3] = [3, 4, 5]
    Q = np.array([S @ p for p in P])
    Q[:, :3, 3] *= 0.25  # another scale
    r = compute_rpe(P, Q, FPS)
    assert r.alignment == "sim3"
    assert r.rpe_trans < 1e-9 and r.rpe_rot_deg < 1e-6 and r.ate < 1e-9
    assert r.scale == pytest.approx(4.0)


def _evo_cli_stat(tmp_path, ref, est, relation: str) -> dict:
    exe = shutil.which("evo_rpe") or os.path.join(os.path.dirname(sys.executable), "evo_rpe")
    out = tmp_path / f"{relation}.zip"
    cmd = [exe, "tum", str(ref), str(est), "-as", "--delta", "1", "--delta_unit", "f", "-r", relation,
           "--save_results", str(out), "--no_warnings", "--silent"]
    env = dict(os.environ, HOME=str(tmp_path), MPLBACKEND="Agg")  # evo writes its settings under HOME
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=120)
    with zipfile.ZipFile(out) as z:
        return json.loads(z.read("stats.json"))


def test_rpe_matches_evo_command_line_tool(tmp_path):
    P = _trajectory(80, 3)
    Q = _noisy_similar(P, 4)
    ref, est = tmp_path / "gt.txt", tmp_path / "est.txt"
    ts = np.arange(len(P)) / FPS
    write_tum(str(ref), P, ts)
    write_tum(str(est), Q, ts)
    ours = compute_rpe(P, Q, FPS)
    assert ours.alignment == "sim3"
    cli_t = _evo_cli_stat(tmp_path, ref, est, "trans_part")  # evo's default delta: 1 frame
    cli_r = _evo_cli_stat(tmp_path, ref, est, "angle_deg")
    assert ours.rpe_trans_1f == pytest.approx(cli_t["rmse"], rel=1e-6)
    assert float(ours.trans_errors.mean()) == pytest.approx(cli_t["mean"], rel=1e-6)
    assert ours.rpe_rot_deg_1f == pytest.approx(cli_r["rmse"], rel=1e-6)
    assert float(ours.rot_errors_deg.mean()) == pytest.approx(cli_r["mean"], rel=1e-6)
    assert ours.rpe_trans_1f > 0.005 and ours.rpe_rot_deg_1f > 0.1  # the noise is really there


def test_rpe_degenerate_alignment_fallbacks():
    P = _trajectory(50, 5)
    steps = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    static = np.repeat(P[:1], len(P), axis=0)
    r = compute_rpe(P, static, FPS, gamma=0.05)
    assert r.alignment == "origin" and "no translation" in r.notes[0]
    assert r.rpe_trans_1f == pytest.approx(np.sqrt(np.mean(steps ** 2)), rel=1e-6)
    # a pure-rotation reference: spurious estimated translation is scaled to the commanded speed
    rot_only = P.copy()
    rot_only[:, :3, 3] = 0
    wobble = P.copy()
    wobble[:, :3, 3] *= 1000.0
    r = compute_rpe(rot_only, wobble, FPS, gamma=0.05)
    assert "pure rotation" in r.notes[0] and float(r.trans_errors.mean()) == pytest.approx(0.05, rel=0.5)
    # ... unless the estimate is metric (depth-anchored): then its spurious translation counts as is
    tiny = P.copy()
    tiny[:, :3, 3] *= 1e-3
    r_m = compute_rpe(rot_only, tiny, FPS, gamma=0.05, est_metric=True)
    tiny_steps = np.linalg.norm(np.diff(tiny[:, :3, 3], axis=0), axis=1)
    assert r_m.scale == 1.0 and "metric estimate" in r_m.notes[0]
    assert r_m.rpe_trans_1f == pytest.approx(np.sqrt(np.mean(tiny_steps ** 2)), rel=1e-3)
    r_g = compute_rpe(rot_only, tiny, FPS, gamma=0.05)          # unknown scale: blown up to gamma
    assert r_g.rpe_trans_1f > 100 * r_m.rpe_trans_1f
    # collinear (straight dolly): Umeyama refuses, spread-ratio scale recovers a scaled copy exactly
    line = np.tile(np.eye(4), (30, 1, 1))
    line[:, 2, 3] = 0.04 * np.arange(30)
    est = line.copy()
    est[:, :3, 3] *= 7.0
    r = compute_rpe(line, est, FPS)
    assert r.alignment == "origin" and r.rpe_trans < 1e-9 and r.rpe_trans_1f < 1e-9 and r.scale == pytest.approx(1 / 7.0)


def test_rpe_at_one_second_matches_evo_cli_all_pairs(tmp_path):
    """The headline rpe_trans / rpe_rot_deg = evo RPE with delta round(fps) = 16 frames over all
    overlapping pairs."""
    P = _trajectory(80, 7)
    Q = _noisy_similar(P, 8)
    ref, est = tmp_path / "gt.txt", tmp_path / "est.txt"
    ts = np.arange(len(P)) / FPS
    write_tum(str(ref), P, ts)
    write_tum(str(est), Q, ts)
    ours = compute_rpe(P, Q, FPS)
    assert ours.delta_frames == 16
    exe = shutil.which("evo_rpe") or os.path.join(os.path.dirname(sys.executable), "evo_rpe")
    env = dict(os.environ, HOME=str(tmp_path), MPLBACKEND="Agg")
    for rel, key in (("trans_part", "rpe_trans"), ("angle_deg", "rpe_rot_deg")):
        out = tmp_path / f"{rel}16.zip"
        subprocess.run([exe, "tum", str(ref), str(est), "-as", "--delta", "16", "--delta_unit", "f", "--all_pairs",
                        "-r", rel, "--save_results", str(out), "--no_warnings", "--silent"],
                       check=True, capture_output=True, env=env, timeout=120)
        with zipfile.ZipFile(out) as z:
            cli = json.loads(z.read("stats.json"))
        assert ours.as_metrics()[key] == pytest.approx(cli["rmse"], rel=1e-6)
        assert ours.as_metrics()[key + "_mean"] == pytest.approx(cli["mean"], rel=1e-6)
    short = compute_rpe(P[:10], Q[:10], FPS)  # shorter than 1 s: the whole video is the delta
    assert short.delta_frames == 9 and "shorter than 1 s" in short.notes[-1] and np.isfinite(short.rpe_trans)


def test_static_or_jittering_estimate_gets_the_full_motion_penalty():
    """A static estimate scores the commanded motion itself (per step and per second); a nearly
    static one (micro-jitter, e.g. an estimator that lost track) is NOT rescued by Sim(3): Umeyama
    blows its jitter up (scale ~ 1e5), so it scores at least the same penalty, never a small error."""
    P = _trajectory(80, 5)
    steps = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    d16 = np.linalg.norm(P[16:, :3, 3] - P[:-16, :3, 3], axis=1)
    static = np.repeat(P[:1], len(P), axis=0)
    r = compute_rpe(P, static, FPS)
    assert r.rpe_trans_1f == pytest.approx(np.sqrt(np.mean(steps ** 2)), rel=1e-6)
    assert r.rpe_trans == pytest.approx(np.sqrt(np.mean(d16 ** 2)), rel=1e-6)
    jitter = static.copy()
    jitter[:, :3, 3] += np.random.default_rng(0).normal(scale=1e-6, size=(len(P), 3))
    j = compute_rpe(P, jitter, FPS)
    assert j.alignment == "sim3" and j.scale > 1e3
    assert j.rpe_trans_1f >= 0.9 * r.rpe_trans_1f and j.rpe_trans >= 0.9 * r.rpe_trans
    # a good estimate is far below that penalty at both deltas
    g = compute_rpe(P, _noisy_similar(P, 9), FPS)
    assert g.rpe_trans < 0.2 * r.rpe_trans and g.rpe_trans_1f < r.rpe_trans_1f


def test_estimator_registry():
    assert {"opencv", "opencv-orb", "opencv-sift"} <= set(registry.available_estimators())
    with pytest.raises(ValueError, match="unknown pose estimator"):
        registry.get_estimator("nope")
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    P = _trajectory(3, 6)
    res = registry.run_estimator(lambda f, K: P, frames, np.eye(3))
    assert isinstance(res, EstimateResult) and np.allclose(res.poses, P)
    registry.register_estimator("test-fixed", lambda: (lambda f, K: P))
    assert np.allclose(registry.run_estimator("test-fixed", frames, np.eye(3)).poses, P)
    with pytest.raises(ValueError, match="shape"):
        registry.run_estimator(lambda f, K: P[:2], frames, np.eye(3))


def test_metric_estimate_scale_is_limited_not_rewarded():
    """A metric estimate (anchored in metres) that is mostly noise, e.g. a few millimetres of
    spurious motion from a video that went black, is not blown up hundreds of times by Sim(3): its
    scale is limited to METRIC_SCALE_MAX, so it scores about the static penalty (not more, not
    less), while a metric estimate with an ordinary scale error is aligned exactly as before."""
    from benchmark.metrics.rpe import METRIC_SCALE_MAX

    P = _trajectory(80, 5)
    static = compute_rpe(P, np.repeat(P[:1], len(P), axis=0), FPS)
    tiny = P.copy()
    tiny[:, :3, 3] = P[0, :3, 3] + 0.002 * (P[:, :3, 3] - P[0, :3, 3])  # follows, at 1/500 of the size
    tiny[40:, :3, 3] += np.random.default_rng(1).normal(scale=0.003, size=(40, 3))  # and then noise
    free = compute_rpe(P, tiny, FPS, est_metric=True, metric_scale_max=None)
    lim = compute_rpe(P, tiny, FPS, est_metric=True)
    assert free.scale > 100 and free.alignment == "sim3"
    assert lim.scale == pytest.approx(METRIC_SCALE_MAX) and lim.alignment == "sim3 (scale limited)"
    assert any("limited" in n for n in lim.notes)
    assert free.rpe_trans > 1.1 * static.rpe_trans  # the noise, blown up, costs more than standing still
    assert lim.rpe_trans == pytest.approx(static.rpe_trans, rel=0.1)
    # an unanchored estimate keeps the free Sim(3) (its scale is arbitrary)
    assert compute_rpe(P, tiny, FPS).scale == pytest.approx(free.scale)
    # an ordinary metric estimate (3x too long) is untouched by the limit
    g = _noisy_similar(P, 9, scale=3.0)
    a, b = compute_rpe(P, g, FPS, est_metric=True), compute_rpe(P, g, FPS, est_metric=True, metric_scale_max=None)
    assert a.alignment == "sim3" and a.scale == pytest.approx(b.scale) and a.rpe_trans == pytest.approx(b.rpe_trans)


def test_metric_scale_limit_also_covers_a_collinear_reference():
    """A straight-line reference (a single-action dolly) makes Umeyama degenerate; the RMS-spread
    fallback scale is limited for a metric estimate too (a few mm of jitter is not blown up 70x)."""
    from benchmark.metrics.rpe import METRIC_SCALE_MAX

    n = 64
    P = np.tile(np.eye(4), (n, 1, 1))
    P[:, 0, 3] = 0.05 * np.arange(n)  # straight along x: collinear
    jitter = np.tile(np.eye(4), (n, 1, 1))
    jitter[:, :3, 3] = np.random.default_rng(3).normal(scale=0.002, size=(n, 3))
    free = compute_rpe(P, jitter, FPS, est_metric=True, metric_scale_max=None)
    lim = compute_rpe(P, jitter, FPS, est_metric=True)
    static = compute_rpe(P, np.repeat(P[:1], n, axis=0), FPS)
    assert free.alignment == "origin" and free.scale > 50
    assert lim.scale == pytest.approx(METRIC_SCALE_MAX) and any("limited" in m for m in lim.notes)
    assert free.rpe_trans > lim.rpe_trans
    assert lim.rpe_trans < 1.5 * static.rpe_trans
