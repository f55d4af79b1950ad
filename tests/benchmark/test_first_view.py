"""First-view segments (benchmark.metrics.first_view) and RPE restricted to them: the mask is
ground truth only, follows the camera leaving frame 0's view, and the restricted RPE equals the
headline when every segment is selected."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.metrics.first_view import (FIRST_VIEW_MIN, first_view_fraction, first_view_rpe, first_view_segments,
                                          segment_frames)
from benchmark.metrics.rpe import compute_rpe

W, H = 64, 48
K = np.array([[32.0, 0, W / 2], [0, 32.0, H / 2], [0, 0, 1.0]])


def _pose(yaw_deg: float = 0.0, x: float = 0.0) -> np.ndarray:
    P = np.eye(4)
    P[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    P[0, 3] = x
    return P


def _wall_depth(P: np.ndarray, dist: float = 2.0) -> np.ndarray:
    """Planar depth of an infinite wall z = dist (world, OpenCV axes) seen from camera P (inf where
    the ray misses it)."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays_c = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rays_w = rays_c @ P[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (dist - P[2, 3]) / rays_w[..., 2]  # planar depth = s (ray has z_c = 1)
    return np.where(s > 0, s, np.inf)


def test_fraction_follows_the_camera_out_of_the_first_view():
    yaws = [0.0, 0.0, 30.0, 60.0, 120.0]
    poses = np.stack([_pose(y) for y in yaws])
    depth = np.stack([_wall_depth(p) for p in poses])
    frac = first_view_fraction(K, depth, poses)
    assert frac[0] == pytest.approx(1.0) and frac[1] == pytest.approx(1.0)
    assert 0.1 < frac[3] < frac[2] < 1.0  # turning away leaves frame 0's view gradually
    assert frac[4] == 0.0  # facing away from the wall: no finite depth at all
    # a sideways step by a quarter of the wall width seen by frame 0 keeps ~3/4 of the view
    side = np.stack([_pose(), _pose(x=0.25 * 2 * 2.0 * (W / 2) / K[0, 0])])
    f2 = first_view_fraction(K, np.stack([_wall_depth(p) for p in side]), side)
    assert f2[1] == pytest.approx(0.75, abs=0.05)
    with pytest.raises(ValueError):
        first_view_fraction(K, depth[:3], poses)


def test_segments_need_every_frame_in_view():
    frac = np.array([1, 1, 0.9, 0.4, 0.8, 0.8, 0.8, 0.8])
    seg = first_view_segments(frac, 2)
    assert seg.tolist() == [True, False, False, False, True, True]
    assert first_view_segments(frac, 1).tolist() == [True, True, False, False, True, True, True]
    assert first_view_segments(frac, 8).size == 0 and FIRST_VIEW_MIN == 0.5


def test_rpe_on_segments_matches_headline_and_isolates_the_bad_part():
    rng = np.random.default_rng(0)
    n = 64
    ref = np.stack([_pose(yaw_deg=2.0 * i, x=0.05 * i + 0.02 * np.sin(i)) for i in range(n)])
    est = ref.copy()
    est[40:, :3, 3] += rng.normal(scale=0.3, size=(n - 40, 3))  # the second part is badly estimated
    rr = compute_rpe(ref, est, 16.0)
    assert rr.trans_errors_seg.shape == (n - 16,) and rr.rot_errors_deg_seg.shape == (n - 16,)
    all_t, all_r = rr.on_segments(np.ones(n - 16, bool))
    assert all_t == pytest.approx(rr.rpe_trans) and all_r == pytest.approx(rr.rpe_rot_deg)
    early = np.arange(n - 16) + 16 < 40  # segments ending before the bad part
    t_early, _ = rr.on_segments(early)
    assert t_early < 0.5 * rr.rpe_trans
    assert np.isnan(rr.on_segments(np.zeros(n - 16, bool))[0])
    with pytest.raises(ValueError):
        rr.on_segments(np.ones(3, bool))


def test_segment_frames_cover_exactly_the_selected_segments():
    seg = np.array([False, True, True, False, False, False, True])
    fr = segment_frames(seg, 2)
    assert fr.tolist() == [False, True, True, True, True, False, True, True, True]
    assert not segment_frames(np.zeros(5, bool), 3).any() and segment_frames(np.zeros(5, bool), 3).shape == (8,)


def test_first_view_rpe_is_aligned_on_the_first_view_not_on_a_flat_remainder():
    """A video that follows the actions perfectly while it shows frame 0's content and then holds
    still (reproject going black) scores ~0 in the first view when the Sim(3) is fitted there; the
    whole-trajectory fit (pulled by the flat remainder) gives that same part a wrong scale."""
    n, d = 160, 16
    ref = np.stack([_pose(yaw_deg=0.3 * i, x=0.06 * i) for i in range(n)])
    ref[:, 1, 3] = 0.02 * np.sin(np.arange(n) / 5.0)  # not collinear
    est = ref.copy()
    est[48:] = est[47]  # holds still after frame 47
    seg = np.arange(n - d) + d <= 47  # segments inside frames 0..47
    whole = compute_rpe(ref, est, 16.0, est_metric=True)
    t_whole, _ = whole.on_segments(seg)
    t_fv, r_fv = first_view_rpe(ref, est, 16.0, seg, d, est_metric=True)
    assert t_fv < 1e-6 and r_fv < 1e-6
    assert t_whole > 0.2  # the flat stretch shrank the scale: first-view steps scored wrong
    # a wrong first view is still wrong when aligned there: twice the speed in a non-metric estimate
    # is forgiven (scale), but a crooked direction is not
    crooked = est.copy()
    crooked[:48, 1, 3] += 0.04 * np.arange(48)
    assert first_view_rpe(ref, crooked, 16.0, seg, d, est_metric=True)[0] > 0.3
    assert np.isnan(first_view_rpe(ref, est, 16.0, np.zeros(n - d, bool), d)[0])
    with pytest.raises(ValueError):
        first_view_rpe(ref, est, 16.0, np.ones(n - 8, bool), 8)  # mask built for another delta
