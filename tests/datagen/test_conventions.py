import numpy as np
import pytest

from datagen import conventions as cv


def test_identity_rotator_is_opencv_looking_along_ue_x():
    R = cv.rotator_to_rotation(0, 0, 0)
    # camera z (forward) = UE +X = ours +X; camera x (right) = UE +Y = ours -Y; camera y (down) = -Z
    np.testing.assert_allclose(R[:, 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(R[:, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(R[:, 1], [0, 0, -1], atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)


def test_hand_checked_yaw_and_pitch():
    # yaw +90 in UE turns from +X toward +Y (right, seen from above in a left-handed frame).
    R = cv.rotator_to_rotation(0, 90, 0)
    np.testing.assert_allclose(R[:, 2], [0, -1, 0], atol=1e-12)  # UE +Y is ours -Y
    # pitch +30 looks up
    R = cv.rotator_to_rotation(30, 0, 0)
    np.testing.assert_allclose(R[:, 2], [np.cos(np.pi / 6), 0, 0.5], atol=1e-12)
    # roll +90: UE right vector becomes (0, 0, -1)*... check det and orthonormality only plus up
    R = cv.rotator_to_rotation(0, 0, 90)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)


def test_point_roundtrip_and_units():
    p = np.array([100.0, 200.0, 300.0])
    q = cv.ue_point_to_ours(p)
    np.testing.assert_allclose(q, [1.0, -2.0, 3.0])
    np.testing.assert_allclose(cv.ours_point_to_ue(q), p)


@pytest.mark.parametrize("seed", range(20))
def test_pose_roundtrip_random(seed):
    rng = np.random.default_rng(seed)
    loc = rng.uniform(-5000, 5000, 3)
    rot = (rng.uniform(-89, 89), rng.uniform(-179, 179), rng.uniform(-179, 179))
    c2w = cv.ue_pose_to_c2w(loc, rot)
    assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)
    loc2, rot2 = cv.c2w_to_ue_pose(c2w)
    np.testing.assert_allclose(loc2, loc, atol=1e-9)
    np.testing.assert_allclose(rot2, rot, atol=1e-7)


def test_intrinsics_from_fov_matches_tartanair():
    K = cv.intrinsics_from_fov(640, 480, 90.0)
    assert K[0, 0] == pytest.approx(320.0) and K[1, 1] == pytest.approx(320.0)
    assert (K[0, 2], K[1, 2]) == (320.0, 240.0)
    assert cv.fov_from_intrinsics(K, 640) == pytest.approx(90.0)
    with pytest.raises(ValueError):
        cv.intrinsics_from_fov(640, 480, 180.0)


def test_depth_conversion_with_sky():
    d_cm = np.array([[100.0, 1e7]], dtype=np.float32)
    d = cv.ue_depth_to_ours(d_cm)
    assert d[0, 0] == pytest.approx(1.0) and np.isinf(d[0, 1])
    np.testing.assert_allclose(cv.ours_depth_to_ue(d), [[100.0, 1e6]])


def test_look_at_agrees_with_rotator():
    c2w = cv.look_at([0, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(c2w[:3, :3], cv.rotator_to_rotation(0, 0, 0), atol=1e-12)
    c2w = cv.look_at([0, 0, 0], [0, -1, 0])  # ours -Y = UE +Y -> yaw 90
    p, y, r = cv.rotation_to_rotator(c2w[:3, :3])
    assert (p, y, r) == pytest.approx((0.0, 90.0, 0.0), abs=1e-9)
