"""RELIC action labels: every channel by hand, round trips, static frames, gamma."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from datagen import actions as A
from datagen import conventions as cv


def _start_pose(pitch=17.0, yaw=-63.0, roll=8.0, pos=(1.0, -2.0, 1.5)):
    c = np.eye(4)
    c[:3, :3] = cv.rotator_to_rotation(pitch, yaw, roll)
    c[:3, 3] = pos
    return c


def _two(c0, dpos_cam=(0, 0, 0), rot=(0, 0, 0)):
    """Frame 0 = c0; frame 1 moved by dpos in camera-0 axes and turned by a local rotator."""
    c1 = np.eye(4)
    c1[:3, 3] = c0[:3, 3] + c0[:3, :3] @ np.asarray(dpos_cam, float)
    c1[:3, :3] = c0[:3, :3] @ A.local_rotation(*rot)
    return np.stack([c0, c1])


def test_channel_order_is_fixed():
    assert A.CHANNELS == (
        "dolly_in", "dolly_out", "truck_left", "truck_right", "pedestal_up", "pedestal_down",
        "tilt_up", "tilt_down", "pan_left", "pan_right", "roll_cw", "roll_ccw", "static",
    )
    assert (A.DOLLY_IN, A.PEDESTAL_DOWN, A.TILT_UP, A.PAN_RIGHT, A.ROLL_CCW, A.STATIC) == (0, 5, 6, 9, 11, 12)


# (channel, camera-frame displacement in metres, local rotator (pitch, yaw, roll) deg)
CASES = [
    ("dolly_in", (0, 0, 0.1), (0, 0, 0)),
    ("dolly_out", (0, 0, -0.1), (0, 0, 0)),
    ("truck_left", (-0.1, 0, 0), (0, 0, 0)),
    ("truck_right", (0.1, 0, 0), (0, 0, 0)),
    ("pedestal_up", (0, -0.1, 0), (0, 0, 0)),
    ("pedestal_down", (0, 0.1, 0), (0, 0, 0)),
    ("tilt_up", (0, 0, 0), (3, 0, 0)),
    ("tilt_down", (0, 0, 0), (-3, 0, 0)),
    ("pan_left", (0, 0, 0), (0, -3, 0)),
    ("pan_right", (0, 0, 0), (0, 3, 0)),
    ("roll_cw", (0, 0, 0), (0, 0, 3)),
    ("roll_ccw", (0, 0, 0), (0, 0, -3)),
]


@pytest.mark.parametrize("start", [dict(pitch=0, yaw=0, roll=0), dict()], ids=["identity", "oblique"])
@pytest.mark.parametrize("name,dpos,rot", CASES, ids=[c[0] for c in CASES])
def test_each_channel_lights_alone(name, dpos, rot, start):
    poses = _two(_start_pose(**start), dpos, rot)
    act, gamma = A.poses_to_actions(poses)
    expect = np.zeros(13)
    idx = A.CHANNEL_INDEX[name]
    expect[idx] = 1.0 if idx < 6 else 3.0
    np.testing.assert_allclose(act[0], expect, atol=1e-5)
    np.testing.assert_allclose(act[1], np.eye(13)[12])  # last row static
    if idx < 6:
        assert gamma == pytest.approx(0.1)
    else:
        assert gamma == 0.0


def test_static_channel_and_all_static_clip():
    c0 = _start_pose()
    poses = np.stack([c0] * 5)
    act, gamma = A.poses_to_actions(poses)
    assert gamma == 0.0
    np.testing.assert_array_equal(act, np.tile(np.eye(13)[12], (5, 1)).astype(np.float32))
    back = A.actions_to_poses(act, gamma, c0)
    np.testing.assert_allclose(back, poses, atol=1e-12)


def test_static_threshold_is_absolute_and_documented():
    c0 = _start_pose()
    tiny = _two(c0, (0, 0, 1e-3), (0, 0.01, 0))  # 1 mm and 0.01 deg: below defaults
    act, _ = A.poses_to_actions(tiny)
    assert act[0, A.STATIC] == 1.0 and act[0, A.DOLLY_IN] == pytest.approx(1.0)
    moving = _two(c0, (0, 0, 5e-3))
    assert A.poses_to_actions(moving)[0][0, A.STATIC] == 0.0
    turning = _two(c0, (0, 0, 0), (0, 0.2, 0))
    assert A.poses_to_actions(turning)[0][0, A.STATIC] == 0.0


def test_directions_in_world_for_known_pose():
    # Camera at identity rotator looks along ours +X; UE yaw +90 turns right = toward ours -Y.
    c0 = _start_pose(0, 0, 0, (0, 0, 0))
    c1 = _start_pose(0, 0, 0, (0.2, 0, 0))
    act, g = A.poses_to_actions(np.stack([c0, c1]))
    assert act[0, A.DOLLY_IN] == pytest.approx(1.0) and g == pytest.approx(0.2)
    c2 = _start_pose(0, 5, 0, (0, 0, 0))  # yaw +5 deg (right)
    act, _ = A.poses_to_actions(np.stack([c0, c2]))
    assert act[0, A.PAN_RIGHT] == pytest.approx(5.0, abs=1e-5)
    c3 = _start_pose(4, 0, 0, (0, 0, 0))  # pitch +4 (up)
    act, _ = A.poses_to_actions(np.stack([c0, c3]))
    assert act[0, A.TILT_UP] == pytest.approx(4.0, abs=1e-5)
    c4 = _start_pose(0, 0, 0, (0, 0, 0.3))  # world up = ours +Z = camera -y
    act, _ = A.poses_to_actions(np.stack([c0, c4]))
    assert act[0, A.PEDESTAL_UP] == pytest.approx(1.0)
    c5 = _start_pose(0, 0, 0, (0, -0.3, 0))  # ours -Y = UE +Y = right
    act, _ = A.poses_to_actions(np.stack([c0, c5]))
    assert act[0, A.TRUCK_RIGHT] == pytest.approx(1.0)


def test_roll_cw_means_up_vector_leans_right():
    c0 = _start_pose(0, 0, 0, (0, 0, 0))
    c1 = _start_pose(0, 0, 10, (0, 0, 0))  # UE roll +10
    act, _ = A.poses_to_actions(np.stack([c0, c1]))
    assert act[0, A.ROLL_CW] == pytest.approx(10.0, abs=1e-5)
    up_cam = -c1[:3, 1]  # world up vector of the rolled camera
    right0 = c0[:3, 0]
    assert up_cam @ right0 > 0.1  # the camera's up leans toward its original right


def test_gamma_is_mean_of_nonzero_displacements():
    c0 = _start_pose()
    poses = [c0]
    for d in (0.1, 0.0, 0.3, 0.0):
        poses.append(_two(poses[-1], (0, 0, d))[1])
    act, gamma = A.poses_to_actions(np.stack(poses))
    assert gamma == pytest.approx(0.2)
    np.testing.assert_allclose(act[:4, A.DOLLY_IN], [0.5, 0, 1.5, 0], atol=1e-6)
    np.testing.assert_array_equal(act[:, A.STATIC], [0, 1, 0, 1, 1])


def _random_clip(rng, n, p_static=0.2):
    c = _start_pose(*rng.uniform([-40, -180, -20], [40, 180, 20]), pos=rng.normal(size=3))
    poses = [c]
    for _ in range(n - 1):
        if rng.random() < p_static:
            dpos, rot = np.zeros(3), np.zeros(3)
        else:
            dpos = rng.normal(scale=0.08, size=3) * (rng.random(3) < 0.7)
            rot = rng.normal(scale=3.0, size=3) * (rng.random(3) < 0.6)
        poses.append(_two(poses[-1], dpos, rot)[1])
    return np.stack(poses)


def _pose_errors(a, b):
    dt = np.linalg.norm(a[:, :3, 3] - b[:, :3, 3], axis=1).max()
    rel = np.einsum("nji,njk->nik", a[:, :3, :3], b[:, :3, :3])
    cosang = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)
    # arccos loses precision near 1: use the skew part for small angles
    skew = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], 1)
    dr = np.degrees(np.arctan2(np.linalg.norm(skew, axis=1) / 2, cosang)).max()
    return dt, dr


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), p_static=st.sampled_from([0.0, 0.3, 1.0]))
def test_round_trip_float64_property(seed, n, p_static):
    poses = _random_clip(np.random.default_rng(seed), n, p_static)
    act, gamma = A.poses_to_actions(poses, dtype=np.float64)
    assert act.shape == (n, 13) and np.all(act >= 0)
    back = A.actions_to_poses(act, gamma, poses[0])
    dt, dr = _pose_errors(back, poses)
    assert dt <= 1e-6 and dr <= 1e-6, (dt, dr)


def test_round_trip_float32_labels_tolerance():
    rng = np.random.default_rng(7)
    for _ in range(5):
        poses = _random_clip(rng, 200)
        act, gamma = A.poses_to_actions(poses)
        assert act.dtype == np.float32
        dt, dr = _pose_errors(A.actions_to_poses(act, gamma, poses[0]), poses)
        assert dt <= 1e-4 and dr <= 1e-3, (dt, dr)


def test_labels_are_invariant_to_the_world_frame():
    rng = np.random.default_rng(3)
    poses = _random_clip(rng, 50)
    T = _start_pose(11, 123, -7, (5, 6, 7))
    moved = np.einsum("ij,njk->nik", T, poses)
    a1, g1 = A.poses_to_actions(poses)
    a2, g2 = A.poses_to_actions(moved)
    np.testing.assert_allclose(a1, a2, atol=1e-4)
    assert g1 == pytest.approx(g2)


def test_multi_hot_and_aliases():
    row = A.multi_hot({"W", "LookRight"}, speed=1.5, rot_speed_deg=2.0)
    assert row[A.DOLLY_IN] == 1.5 and row[A.PAN_RIGHT] == 2.0 and row[A.STATIC] == 0
    assert row.sum() == pytest.approx(3.5)
    np.testing.assert_array_equal(A.multi_hot(set()), np.eye(13, dtype=np.float32)[12])
    np.testing.assert_array_equal(A.multi_hot({"static"}), np.eye(13, dtype=np.float32)[12])
    row = A.multi_hot({"lift_up": 0.5, "roll_ccw": 2.0}, rot_speed_deg=1.0)
    assert row[A.PEDESTAL_UP] == 0.5 and row[A.ROLL_CCW] == 2.0
    with pytest.raises(ValueError, match="unknown action key"):
        A.multi_hot({"jump"})


def test_multi_hot_integrates_to_expected_motion():
    rows = np.stack([A.multi_hot({"w"})] * 10 + [A.multi_hot(set())])
    poses = A.actions_to_poses(rows, 0.1, _start_pose(0, 0, 0, (0, 0, 0)))
    np.testing.assert_allclose(poses[-1, :3, 3], [1.0, 0, 0], atol=1e-9)
    rows = np.stack([A.multi_hot({"LookRight"}, rot_speed_deg=9.0)] * 10 + [A.multi_hot(set())])
    poses = A.actions_to_poses(rows, 0.1, _start_pose(0, 0, 0, (0, 0, 0)))
    pitch, yaw, roll = cv.rotation_to_rotator(poses[-1, :3, :3])
    assert yaw == pytest.approx(90.0) and abs(pitch) < 1e-9 and abs(roll) < 1e-9


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 4, 4\)"):
        A.poses_to_actions(np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        A.poses_to_actions(np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="13"):
        A.actions_to_poses(np.zeros((3, 12)), 0.1)
    with pytest.raises(ValueError, match="gamma"):
        A.actions_to_poses(np.zeros((3, 13)), -1.0)
