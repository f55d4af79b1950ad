"""Blank ground-truth frames (benchmark.metrics.observability) and the segments action following leaves
out because of them (protocol 4): on committed clips and synthetic trajectories."""
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.metrics import action_following as af
from benchmark.metrics.observability import MIN_TEXTURED, observable_frames, textured_fraction

DATA = Path(__file__).parent / "data" / "pose_clips.npz"


def test_rendered_frames_are_observable_and_flat_ones_are_not():
    z = np.load(DATA)
    frames = np.concatenate([z[f"{n}_frames"] for n in ("pan", "strafe", "mixed")])
    frac = textured_fraction(frames)
    assert frac.min() > 5 * MIN_TEXTURED, frac.min()          # far above the threshold on real renders
    assert observable_frames(frames).all()
    flat = np.full((3, 64, 112, 3), (30, 40, 60), dtype=np.uint8)
    flat[1, 10:13, 10:13] = 200                              # one small spot: still under 2 % of the pixels
    noisy_flat = flat.copy()
    noisy_flat[2] += np.random.default_rng(0).integers(0, 2, size=flat[2].shape, dtype=np.uint8)  # +-1 grey
    assert not observable_frames(noisy_flat).any()
    with pytest.raises(ValueError, match=r"\(N,H,W,3\)"):
        textured_fraction(frames[0])


def test_scored_segments_exclude_every_segment_touching_a_blank_frame():
    obs = np.ones(40, dtype=bool)
    obs[[10, 11]] = False
    ok = af.scored_segments(obs, 4)
    assert ok.shape == (36,)
    # segment i covers frames i..i+4: those with i in 6..11 touch frame 10 or 11
    assert np.array_equal(np.nonzero(~ok)[0], np.arange(6, 12))


def _pan_then_strafe(n=64):
    poses = [np.eye(4)]
    for i in range(n - 1):
        step = np.eye(4)
        if i < 30:
            step[:3, :3] = Rotation.from_euler("y", 3.0, degrees=True).as_matrix()
        else:
            step[0, 3] = 0.06
        poses.append(poses[-1] @ step)
    return np.array(poses)


def test_blank_segments_are_left_out_of_every_metric_and_counted():
    ref = _pan_then_strafe()
    est = ref.copy()
    est[20:26] = est[19]                    # the estimate holds still where the view is blank...
    est[26:] = est[19] @ np.linalg.inv(ref[26]) @ ref[26:]   # ...then follows again
    obs = np.ones(len(ref), dtype=bool)
    obs[20:26] = False
    full = af.score_action_following(ref, est, 16.0).metrics
    part = af.score_action_following(ref, est, 16.0, observable=obs).metrics
    assert full["n_seg_blank"] == 0 and part["n_seg_blank"] == 16 + 6
    assert part["n_seg"] + part["n_seg_blank"] == full["n_seg"]
    assert part["rpe_rot_deg"] < 1e-3 < 1.0 < full["rpe_rot_deg"]  # the held frames only hurt inside blank segments
    assert part["n_seg_rot"] < full["n_seg_rot"]
    # the same segments for every estimate: a static video is still exactly 1 in translation
    static = af.score_action_following(ref, np.repeat(ref[:1], len(ref), 0), 16.0, observable=obs).metrics
    assert static["rpe_trans_rel"] == pytest.approx(1.0) and static["n_seg"] == part["n_seg"]
    with pytest.raises(ValueError, match="observable must be"):
        af.score_action_following(ref, est, 16.0, observable=obs[:-1])
