"""Action following per segment type (benchmark.metrics.action_following), on synthetic trajectories:
the values the protocol promises for perfect, static, reversed and non-metric estimates, the segment
kinds and their NaN rules, and agreement with evo's RPE where the two compute the same thing."""
import numpy as np
import pytest
from evo.core import metrics as evo_metrics
from evo.core.trajectory import PoseTrajectory3D
from scipy.spatial.transform import Rotation

from benchmark.metrics import action_following as af

FPS = 16.0


def _traj(steps_t, steps_yaw_deg):
    """c2w poses from per-frame camera-frame translations (N-1,3) and yaw steps (N-1,) in degrees."""
    poses = [np.eye(4)]
    for t, yaw in zip(steps_t, steps_yaw_deg):
        step = np.eye(4)
        step[:3, :3] = Rotation.from_euler("y", yaw, degrees=True).as_matrix()
        step[:3, 3] = t
        poses.append(poses[-1] @ step)
    return np.array(poses)


def _mixed(n=80):
    """A strafe (0.06 m/frame), then a pure pan (3 deg/frame), then a dolly with a slow turn."""
    t = np.zeros((n - 1, 3))
    yaw = np.zeros(n - 1)
    t[:30, 0] = 0.06
    yaw[30:55] = 3.0
    t[55:, 2] = 0.07
    yaw[55:] = 0.5
    return _traj(t, yaw)


def test_perfect_static_reversed_values():
    ref = _mixed()
    perfect = af.score_action_following(ref, ref.copy(), FPS).metrics
    assert perfect["rpe_trans_rel"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["rpe_rot_deg"] == pytest.approx(0.0, abs=1e-4)
    assert perfect["spurious_trans"] == pytest.approx(0.0, abs=1e-9)
    static = af.score_action_following(ref, np.repeat(ref[:1], len(ref), 0), FPS).metrics
    assert static["rpe_trans_rel"] == pytest.approx(1.0)  # exactly the command's length per segment
    assert static["rpe_rot_rel"] == pytest.approx(1.0)
    assert static["spurious_trans"] == 0.0
    # the command's motion played backwards (same path, opposite direction of every step)
    back = _traj(np.array([[-0.06, 0, 0]] * 30 + [[0, 0, 0]] * 25 + [[0, 0, -0.07]] * 24),
                 [0.0] * 30 + [-3.0] * 25 + [-0.5] * 24)
    rev = af.score_action_following(ref, back, FPS).metrics
    assert rev["rpe_trans_rel"] > 1.8
    assert rev["rpe_rot_rel"] > 1.8


def test_segment_kinds_and_counts():
    ref = _mixed()
    k = af.segment_kinds(ref, FPS)
    assert k.delta == 16
    m = af.score_action_following(ref, ref, FPS).metrics
    assert m["n_seg"] == len(ref) - 16
    # the pure pan: 25 frames of 3 deg, so segments fully inside it turn 48 deg and do not move
    assert m["n_seg_rotonly"] >= 1 and m["n_seg_trans"] >= 1
    assert np.all(k.length_m[k.rotation_only] < af.STILL_MAX_M)
    assert np.all(k.angle_deg[k.rotating] >= af.ROT_MIN_DEG)
    assert np.all(k.length_m[k.translating] >= af.TRANS_MIN_M)


def test_kinds_absent_give_nan_not_zero():
    pan = _traj(np.zeros((40, 3)), [2.0] * 40)
    m = af.score_action_following(pan, pan, FPS).metrics
    assert np.isnan(m["rpe_trans_rel"]) and np.isnan(m["rpe_trans"]) and m["n_seg_trans"] == 0
    assert m["n_seg_rotonly"] > 0 and m["spurious_trans"] == 0.0
    strafe = _traj(np.tile([0.05, 0, 0], (40, 1)), [0.0] * 40)
    m = af.score_action_following(strafe, strafe, FPS).metrics
    assert np.isnan(m["rpe_rot_rel"]) and np.isnan(m["spurious_trans"]) and m["n_seg_rot"] == 0


def test_spurious_translation_measured_in_metres_per_second():
    pan = _traj(np.zeros((40, 3)), [3.0] * 40)
    est = _traj(np.tile([0.01, 0, 0], (40, 1)), [3.0] * 40)  # invents 1 cm per frame of strafe
    m = af.score_action_following(pan, est, FPS).metrics
    assert m["spurious_trans"] == pytest.approx(0.16, rel=0.05)  # 16 cm over each 1-s segment
    assert m["rpe_rot_deg"] == pytest.approx(0.0, abs=1e-4)


def test_errors_equal_evo_rpe_without_alignment():
    """With s = 1 (metric estimate) every per-segment error is evo's RPE (delta 16 frames, all pairs)."""
    rng = np.random.default_rng(3)
    ref = _mixed()
    est = _traj(rng.normal(0, 0.03, (len(ref) - 1, 3)), rng.normal(0, 2.0, len(ref) - 1))
    res = af.score_action_following(ref, est, FPS)
    to = lambda p: PoseTrajectory3D(poses_se3=list(p), timestamps=np.arange(len(p)) / FPS)  # noqa: E731
    for rel, ours in ((evo_metrics.PoseRelation.translation_part, res.trans_err_m),
                      (evo_metrics.PoseRelation.rotation_angle_deg, res.rot_err_deg)):
        m = evo_metrics.RPE(rel, delta=16, delta_unit=evo_metrics.Unit.frames, all_pairs=True)
        m.process_data((to(ref), to(est)))
        np.testing.assert_allclose(ours, np.asarray(m.error), rtol=1e-6, atol=1e-6)


def test_unknown_scale_gets_least_squares_segment_scale():
    ref = _mixed()
    est = ref.copy()
    est[:, :3, 3] *= 0.01  # right motion, arbitrary scale
    m = af.score_action_following(ref, est, FPS, est_metric=False)
    assert m.scale == pytest.approx(100.0, rel=1e-6)
    assert m.metrics["rpe_trans_rel"] == pytest.approx(0.0, abs=1e-6)
    # pointing backwards: the best non-negative scale is 0, i.e. it scores like a static video
    back = _traj(np.array([[-0.06, 0, 0]] * 79), [0.0] * 79)
    strafe = _traj(np.array([[0.06, 0, 0]] * 79), [0.0] * 79)
    m = af.score_action_following(strafe, back, FPS, est_metric=False)
    assert m.scale == 0.0 and m.metrics["rpe_trans_rel"] == pytest.approx(1.0)
    # degenerate reference (no translating segment): no scale, spurious translation NaN, noted
    pan = _traj(np.zeros((40, 3)), [3.0] * 40)
    m = af.score_action_following(pan, _traj(np.tile([0.01, 0, 0], (40, 1)), [3.0] * 40), FPS, est_metric=False)
    assert np.isnan(m.metrics["spurious_trans"]) and m.notes


def test_relative_error_is_capped_per_segment():
    strafe = _traj(np.tile([0.05, 0, 0], (40, 1)), [0.0] * 40)
    wild = strafe.copy()
    wild[20:, :3, 3] += 1e6  # one estimator blow-up
    m = af.score_action_following(strafe, wild, FPS).metrics
    assert m["rpe_trans_rel"] <= af.REL_CAP


def test_bad_input_is_refused():
    ref = _mixed(30)
    with pytest.raises(ValueError, match="differ in shape"):
        af.score_action_following(ref, ref[:-1], FPS)
    bad = ref.copy()
    bad[3, 0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        af.score_action_following(ref, bad, FPS)
