"""Revisit-pair detection on analytic scenes (a box room with exact planar depth)."""
import numpy as np
import pandas as pd
import pytest

from datagen import conventions as cv
from datagen.revisit_pairs import COLUMNS, find_revisit_pairs

W, H = 64, 48
K = cv.intrinsics_from_fov(W, H, 90.0)
ROOM_MIN = np.array([-5.0, -5.0, 0.0])
ROOM_MAX = np.array([5.0, 5.0, 3.0])


def pose(pos, yaw, pitch=0.0):
    c = np.eye(4)
    c[:3, :3] = cv.rotator_to_rotation(pitch, yaw, 0.0)
    c[:3, 3] = pos
    return c


def box_depth(c2w, h=H, w=W, open_top=False):
    """Exact planar depth (m) of a camera inside the box room; inf through an open ceiling."""
    u = (np.arange(w) + 0.5) * (W / w)
    v = (np.arange(h) + 0.5) * (H / h)
    uu, vv = np.meshgrid(u, v)
    rays = np.linalg.inv(K) @ np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)])
    d = c2w[:3, :3] @ rays  # world directions with camera z = 1
    o = c2w[:3, 3][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (ROOM_MIN[:, None] - o) / d
        t2 = (ROOM_MAX[:, None] - o) / d
    t = np.where(t1 > 0, t1, np.inf)
    t = np.minimum(t, np.where(t2 > 0, t2, np.inf))
    t = t.min(axis=0)
    if open_top:  # walls end at the ceiling height; rays that leave through the top see sky
        t = np.where(o[2] + t * d[2] >= ROOM_MAX[2] - 1e-6, np.inf, t)
    return t.reshape(h, w).astype(np.float32)


def pan_clip(n_per_rev=64, revs=1.5, pos=(0.0, 0.0, 1.5)):
    n = int(n_per_rev * revs)
    return np.stack([pose(pos, 360.0 * i / n_per_rev) for i in range(n)])


def test_columns_and_types_and_pan360_pairs():
    poses = pan_clip()
    depths = np.stack([box_depth(p) for p in poses])
    df = find_revisit_pairs(poses, K, W, H, depths, fps=16, min_gap_s=2.0)
    assert list(df.columns) == COLUMNS
    assert df["later"].dtype == np.int64 and df["overlap"].dtype == np.float64
    assert len(df) > 0
    # later frames of the second revolution revisit the matching frame one revolution earlier
    second = df[df.later >= 64]
    assert len(second) == 32
    assert (second.later - second.earlier == 64).all()
    np.testing.assert_allclose(second.overlap, 1.0)
    np.testing.assert_allclose(second.rot_dist_deg, 0.0, atol=1e-4)
    np.testing.assert_allclose(second.gap_s, 4.0)
    assert (df.later - df.earlier >= 32).all()  # min gap 2 s at 16 fps


def test_no_pairs_without_revisit_and_min_gap_respected():
    poses = np.stack([pose((0.1 * i - 4.0, 0.0, 1.5), 0.0) for i in range(80)])  # straight walk
    depths = np.stack([box_depth(p) for p in poses])
    df = find_revisit_pairs(poses, K, W, H, depths, fps=16, max_dist_m=0.5)
    assert len(df) == 0
    # a camera standing still is not a revisit (it never left), unless excursion is not required
    still = np.stack([pose((0, 0, 1.5), 30.0)] * 60)
    assert len(find_revisit_pairs(still, K, W, H, None, fps=16)) == 0
    df = find_revisit_pairs(still, K, W, H, None, fps=16, require_excursion=False)
    assert len(df) == 60 - 32 and (df.later - df.earlier >= 32).all()


def test_out_and_back_pairs_with_depth():
    out = [pose((-3.0 + 0.05 * i, 0.0, 1.5), 0.0) for i in range(60)]  # walk +X for 3 m
    turn = [pose(out[-1][:3, 3], 180.0 * i / 20) for i in range(1, 21)]  # turn around
    back = [pose((-0.05 - 0.05 * i, 0.0, 1.5), 180.0) for i in range(60)]  # walk back
    turn2 = [pose(back[-1][:3, 3], 180.0 + 180.0 * i / 20) for i in range(1, 21)]  # face +X again
    poses = np.stack(out + turn + back + turn2)
    depths = np.stack([box_depth(p) for p in poses])
    df = find_revisit_pairs(poses, K, W, H, depths, fps=16, max_dist_m=0.5, max_rot_deg=20)
    assert len(df) > 0
    # the walk back faces the other way: it cannot revisit the outward frames; the final
    # turn back toward +X revisits the beginning of the outward walk
    last = df[df.later >= 140]
    assert len(last) > 0 and (last.earlier < 20).all()
    assert (last.overlap >= 0.5).all() and (last.pose_dist_m <= 0.5).all()


def test_depth_consistency_rejects_occluded_views():
    poses = pan_clip()
    depths = np.stack([box_depth(p) for p in poses])
    occluded = depths.copy()
    occluded[:32] = 0.3  # something right in front of the camera during the first half turn
    df_ok = find_revisit_pairs(poses, K, W, H, depths, fps=16)
    df_occ = find_revisit_pairs(poses, K, W, H, occluded, fps=16)
    assert set(df_ok.earlier) & set(range(32))
    assert not (set(df_occ.earlier) & set(range(32)))


def test_sky_points_at_infinity():
    poses = np.stack([pose((0, 0, 1.5), 360.0 * i / 64, pitch=60.0) for i in range(96)])
    depths = np.stack([box_depth(p, open_top=True) for p in poses])
    assert np.isinf(depths).mean() > 0.3
    df = find_revisit_pairs(poses, K, W, H, depths, fps=16)
    second = df[df.later >= 64]
    np.testing.assert_allclose(second.overlap, 1.0)


def test_frustum_approximation_without_depth():
    poses = pan_clip()
    df = find_revisit_pairs(poses, K, W, H, None, fps=16)
    second = df[df.later >= 64]
    assert len(second) == 32 and (second.later - second.earlier == 64).all()
    np.testing.assert_allclose(second.overlap, 1.0)
    # rotation of 40 deg with a 90 deg FOV: partial overlap, strictly between 0 and 1
    a = pose((0, 0, 1.5), 0.0)
    b = pose((0, 0, 1.5), 40.0)
    seq = np.stack([a] + [pose((0, 0, 1.5), 180.0)] * 40 + [b])
    df = find_revisit_pairs(seq, K, W, H, None, fps=16, min_overlap=0.0)
    row = df[df.later == 41].iloc[0]
    assert row.earlier == 0 and 0.3 < row.overlap < 0.8
    assert row.rot_dist_deg == pytest.approx(40.0, abs=1e-4)


def test_max_pairs_per_frame_and_errors():
    poses = pan_clip(revs=2.6)
    df = find_revisit_pairs(poses, K, W, H, None, fps=16, max_pairs_per_frame=2)
    assert df.groupby("later").size().max() == 2
    assert isinstance(df, pd.DataFrame)
    with pytest.raises(ValueError, match="depths"):
        find_revisit_pairs(poses, K, W, H, np.zeros((3, H, W)), fps=16)
    with pytest.raises(ValueError, match="poses"):
        find_revisit_pairs(np.eye(4), K, W, H)
