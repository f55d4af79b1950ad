"""Time-reverse augmentation: palindrome indices and mirrored, recomputed labels."""
import numpy as np
import pytest

from datagen import actions as A
from datagen import conventions as cv
from datagen.augment import pivot_of, time_reverse, time_reverse_indices


@pytest.mark.parametrize("T", [1, 2, 3, 10, 81, 317])
def test_indices_are_palindrome_of_length_T(T):
    rng = np.random.default_rng(T)
    pivots = set()
    for _ in range(50):
        idx = time_reverse_indices(T, rng)
        assert idx.shape == (T,) and idx.dtype == np.int64
        p = pivot_of(idx)
        pivots.add(p)
        assert (T - 1) / 2 <= p <= T - 1
        np.testing.assert_array_equal(idx[: p + 1], np.arange(p + 1))
        for k in range(1, T - p):
            assert idx[p + k] == idx[p - k]
        assert idx.min() >= 0 and idx.max() == p
    if T >= 10:
        assert len(pivots) > 3  # really random


def test_pivot_distribution_covers_range_uniformly():
    rng = np.random.default_rng(0)
    T = 21
    ps = np.array([pivot_of(time_reverse_indices(T, rng)) for _ in range(4000)])
    assert ps.min() == 10 and ps.max() == 20
    counts = np.bincount(ps)[10:]
    assert counts.min() > 4000 / 11 * 0.75


def test_explicit_pivot_and_errors():
    idx = time_reverse_indices(6, np.random.default_rng(0), pivot=3)
    np.testing.assert_array_equal(idx, [0, 1, 2, 3, 2, 1])
    with pytest.raises(ValueError, match="pivot"):
        time_reverse_indices(6, np.random.default_rng(0), pivot=1)
    with pytest.raises(ValueError, match="T must be"):
        time_reverse_indices(0, np.random.default_rng(0))


def _clip(step_dpos, step_rot, n, start=(10.0, -30.0, 0.0)):
    c = np.eye(4)
    c[:3, :3] = cv.rotator_to_rotation(*start)
    poses = [c]
    for _ in range(n - 1):
        p = poses[-1]
        q = np.eye(4)
        q[:3, 3] = p[:3, 3] + p[:3, :3] @ np.asarray(step_dpos, float)
        q[:3, :3] = p[:3, :3] @ A.local_rotation(*step_rot)
        poses.append(q)
    return np.stack(poses)


@pytest.mark.parametrize(
    "dpos,rot,fwd,bwd",
    [
        ((0, 0, 0.1), (0, 0, 0), "dolly_in", "dolly_out"),
        ((-0.1, 0, 0), (0, 0, 0), "truck_left", "truck_right"),
        ((0, -0.1, 0), (0, 0, 0), "pedestal_up", "pedestal_down"),
        ((0, 0, 0), (2, 0, 0), "tilt_up", "tilt_down"),
        ((0, 0, 0), (0, 3, 0), "pan_right", "pan_left"),
        ((0, 0, 0), (0, 0, -2), "roll_ccw", "roll_cw"),
    ],
)
def test_reversed_labels_mirror_forward(dpos, rot, fwd, bwd):
    T = 40
    poses = _clip(dpos, rot, T)
    idx, act, gamma = time_reverse(poses, np.random.default_rng(1), pivot=25)
    fwd_act, _ = A.poses_to_actions(poses)
    p = 25
    # forward part identical to the source labels (same steps)
    np.testing.assert_allclose(act[:p], fwd_act[:p], atol=1e-5)
    # reversed part: mirrored channels
    mirror = [A.CHANNEL_INDEX[A.OPPOSITE[c]] if c in A.OPPOSITE else i for i, c in enumerate(A.CHANNELS)]
    for k in range(p, T - 1):
        src = idx[k + 1]  # reversed step k goes from frame src+1 to frame src
        np.testing.assert_allclose(act[k], fwd_act[src][mirror], atol=1e-4)
        assert act[k, A.CHANNEL_INDEX[bwd]] > 0 and act[k, A.CHANNEL_INDEX[fwd]] == 0
    assert act[-1, A.STATIC] == 1.0
    if any(dpos):
        assert gamma == pytest.approx(0.1)


def test_mixed_motion_mirrors_approximately_and_poses_match_indices():
    poses = _clip((0.02, 0.0, 0.1), (0.5, 2.0, 0.0), 60)
    idx, act, gamma = time_reverse(poses, np.random.default_rng(5))
    back = A.actions_to_poses(act, gamma, poses[idx[0]])
    np.testing.assert_allclose(back, poses[idx], atol=1e-3)
    p = pivot_of(idx)
    fwd_act, _ = A.poses_to_actions(poses)
    if p < len(poses) - 2:
        k = p
        src = idx[k + 1]
        assert act[k, A.DOLLY_OUT] == pytest.approx(fwd_act[src, A.DOLLY_IN], rel=0.05)
        assert act[k, A.PAN_LEFT] == pytest.approx(fwd_act[src, A.PAN_RIGHT], rel=0.05)


def test_pause_holds_the_start_frame_and_labels_it_static():
    from datagen.augment import pause, pause_indices
    poses = _clip((0.0, 0.0, 0.1), (0.0, 2.0, 0.0), 20)
    idx, act, gamma = pause(poses, np.random.default_rng(0), start=7)
    assert idx.tolist() == list(range(8)) + [7] * 12
    fwd, g = A.poses_to_actions(poses)
    np.testing.assert_allclose(act[:7], fwd[:7], atol=1e-6)       # the moving part keeps its labels
    assert np.all(act[7:, A.STATIC] == 1.0) and np.all(act[7:, :A.STATIC] == 0.0)
    assert gamma == pytest.approx(g)
    np.testing.assert_allclose(A.actions_to_poses(act, gamma, poses[0]), poses[idx], atol=1e-6)
    # a still shot: every step static, no motion scale
    idx0, act0, gamma0 = pause(poses, np.random.default_rng(0), start=0)
    assert idx0.tolist() == [0] * 20 and gamma0 == 0.0 and np.all(act0[:, A.STATIC] == 1.0)
    # the draw: from frame 0 with probability from_first_prob, else inside the clip
    starts = [int(pause_indices(20, np.random.default_rng(s))[-1]) for s in range(400)]
    assert 0.4 < np.mean([k == 0 for k in starts]) < 0.6 and max(starts) <= 18 and len(set(starts)) > 10
    assert all(int(pause_indices(20, np.random.default_rng(s), from_first_prob=0.0)[-1]) >= 1 for s in range(50))
    with pytest.raises(ValueError, match="pause start"):
        pause_indices(20, np.random.default_rng(0), start=19)
    with pytest.raises(ValueError, match="T must be >= 2"):
        pause_indices(1, np.random.default_rng(0))
