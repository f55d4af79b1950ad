"""The default pose estimator (direct photometric odometry) on committed ground-truth clips.

tests/benchmark/data/pose_clips.npz holds three short clips of the smoke suite rendered once at
112x64 (frames, every frame's ground-truth depth, GT poses, K, fps), so these tests do not depend on
this machine's renderer: ``pan`` (a pure pan, street), ``strafe`` (idle then truck right, apartment),
``mixed`` (dolly in + truck left, office). They check the protocol's promises on each, with the
estimator run as scoring runs it (keyframe depths from the reference, protocol 3 and later): a pan shows
almost no translation, a strafe and a mixed move are followed, imperceptible pixel changes move the
metrics by little, identical input gives bit-identical poses whatever the thread count, static,
reversed and noisy videos never score better than the ground truth, and the reference depth cannot
make a wrong motion look right (half speed scores ~0.5, a mirrored video is wrong). The frame-0-only
and scale-only modes are checked to follow motion too.
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics.action_following import score_action_following
from benchmark.pose_estimation.direct_estimator import DirectEstimator, DirectParams
from benchmark.pose_estimation.registry import run_estimator

DATA = Path(__file__).parent / "data" / "pose_clips.npz"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips():
    z = np.load(DATA)
    return {name: dict(frames=z[f"{name}_frames"], depth=z[f"{name}_depth"], depth0=z[f"{name}_depth"][0],
                       poses=z[f"{name}_poses"], K=z[f"{name}_K"], fps=float(z[f"{name}_fps"]))
            for name in ("pan", "strafe", "mixed")}


def _score(c, frames, estimator="direct", reference=True):
    res = run_estimator(estimator, frames, c["K"], depth0=c["depth0"], depth_ref=c["depth"] if reference else None,
                        ref_poses=c["poses"] if reference else None)
    assert res.metric
    return score_action_following(c["poses"], res.poses, c["fps"], est_metric=True).metrics


def _perturb(frames, seed=0):
    rng = np.random.default_rng(seed)
    flip = (rng.random(frames.shape) < 0.05) * rng.choice([-1, 1], size=frames.shape)
    flip[0] = 0
    return np.clip(frames.astype(int) + flip, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def gt_scores(clips):
    return {name: _score(c, c["frames"]) for name, c in clips.items()}


def test_pure_pan_shows_no_translation(clips, gt_scores):
    m = gt_scores["pan"]
    assert m["n_seg_rotonly"] > 0 and m["n_seg_trans"] == 0
    # commanded speed in the suites is ~1.3 m/s at full speed; the bar is a tenth of the mean speed
    assert m["spurious_trans"] < 0.1
    assert m["rpe_rot_rel"] < 0.1


@pytest.mark.parametrize("name", ["strafe", "mixed"])
def test_translation_is_followed(gt_scores, name):
    m = gt_scores[name]
    assert m["n_seg_trans"] > 0
    assert m["rpe_trans_rel"] < 0.25  # a static video scores 1.0
    assert m["rpe_rot_deg"] < 3.0


@pytest.mark.parametrize("mode", ["frame0", "scale"])
@pytest.mark.parametrize("name", ["strafe", "mixed"])
def test_translation_is_followed_with_less_reference_depth(clips, name, mode):
    """Frame 0's depth only (the video's own stereo after it), or only one scale per keyframe."""
    c = clips[name]
    est = DirectEstimator(DirectParams(ref_depth="scale"))
    res = est(c["frames"], c["K"], depth0=c["depth0"], depth_ref=c["depth"] if mode == "scale" else None)
    m = score_action_following(c["poses"], res.poses, c["fps"], est_metric=True).metrics
    assert m["rpe_trans_rel"] < 0.25 and m["rpe_rot_deg"] < 3.0


@pytest.mark.parametrize("name", ["strafe", "mixed"])
def test_reference_depth_cannot_make_a_wrong_motion_right(clips, gt_scores, name):
    """Keyframes take the reference's depth, but the motion comes from the pixels: a video at half
    the commanded speed scores what the true poses of its frames score (not ~0 as the command would,
    not 1 as a static video), and a mirrored one (sideways motion reversed) is clearly wrong."""
    c, g = clips[name], gt_scores[name]
    f, n = c["frames"], len(c["frames"])
    idx = np.arange(n) // 2
    half = _score(c, f[idx])
    true = score_action_following(c["poses"], c["poses"][idx], c["fps"]).metrics
    assert 0.3 < true["rpe_trans_rel"] < 0.9
    assert abs(half["rpe_trans_rel"] - true["rpe_trans_rel"]) <= 0.1
    mirrored = _score(c, np.ascontiguousarray(f[:, :, ::-1]))
    assert mirrored["rpe_trans_rel"] >= max(0.5, 2 * g["rpe_trans_rel"])


@pytest.mark.parametrize("speed", [2, 3])
def test_nearest_reference_depth_measures_a_video_ahead_of_the_command_at_its_speed(clips, speed):
    """A video that runs 2x / 3x faster than commanded (then freezes on the last frame). With the
    protocol's reference depth (each keyframe takes the depth at its own commanded index) the structure
    belongs to where the command said the camera was and pulls the measured motion towards the command:
    it scores well below what the true poses of its frames score (measured 0.720 vs 0.937 at 2x, 0.838 vs
    1.077 at 3x). The opt-in ``ref_depth="nearest"`` (the reference frame nearest where the keyframe is)
    scores what the true poses score (0.919, 1.065); it is not the protocol because its discrete switch
    was unstable on long-horizon tasks (direct_estimator's module docstring)."""
    c = clips["strafe"]
    n = len(c["frames"])
    idx = np.minimum(speed * np.arange(n), n - 1)
    true = score_action_following(c["poses"], c["poses"][idx], c["fps"]).metrics["rpe_trans_rel"]

    def score(mode):
        r = DirectEstimator(DirectParams(ref_depth=mode))(c["frames"][idx], c["K"], depth0=c["depth0"],
                                                          depth_ref=c["depth"], ref_poses=c["poses"])
        return score_action_following(c["poses"], r.poses, c["fps"], est_metric=True).metrics["rpe_trans_rel"]

    assert abs(score("nearest") - true) <= 0.05, true
    assert score("keyframes") < true - 0.1


@pytest.mark.parametrize("name", ["pan", "strafe", "mixed"])
def test_imperceptible_changes_move_metrics_little(clips, gt_scores, name):
    c = clips[name]
    m = _score(c, _perturb(c["frames"]))
    g = gt_scores[name]
    for key, tol in (("rpe_trans_rel", 0.05), ("rpe_rot_deg", 0.5), ("spurious_trans", 0.05)):
        if np.isfinite(g[key]):
            assert abs(m[key] - g[key]) <= tol, (key, g[key], m[key])


@pytest.mark.parametrize("name", ["pan", "strafe", "mixed"])
def test_wrong_videos_never_beat_ground_truth(clips, gt_scores, name):
    c, g = clips[name], gt_scores[name]
    f = c["frames"]
    static = _score(c, np.repeat(f[:1], len(f), axis=0))
    rev = _score(c, np.concatenate([f[:1], f[1:][::-1]]))
    rng = np.random.default_rng(1)
    noise = rng.normal(size=f.shape) * 20
    noise[0] = 0
    noisy = _score(c, np.clip(f + noise, 0, 255).round().astype(np.uint8))
    assert static["rpe_rot_deg"] >= 2 * g["rpe_rot_deg"] or g["n_seg_rot"] == 0
    assert rev["rpe_rot_deg"] >= 2 * g["rpe_rot_deg"] or g["n_seg_rot"] == 0
    assert noisy["rpe_rot_deg"] >= g["rpe_rot_deg"] - 0.2
    if g["n_seg_trans"] > 0:
        assert static["rpe_trans_rel"] == pytest.approx(1.0)
        assert rev["rpe_trans_rel"] >= max(0.5, 2 * g["rpe_trans_rel"])
        assert noisy["rpe_trans_rel"] >= g["rpe_trans_rel"] - 0.02


def test_same_frames_same_poses_whatever_the_thread_count(clips):
    """Bit-identical poses in processes with 1 and 2 BLAS/OpenMP threads (and twice in-process)."""
    c = clips["mixed"]
    a = DirectEstimator()(c["frames"], c["K"], depth0=c["depth0"]).poses
    b = DirectEstimator()(c["frames"], c["K"], depth0=c["depth0"]).poses
    r = DirectEstimator()(c["frames"], c["K"], depth_ref=c["depth"], ref_poses=c["poses"]).poses
    assert r.tobytes() == DirectEstimator()(c["frames"], c["K"], depth_ref=c["depth"], ref_poses=c["poses"]).poses.tobytes()
    assert a.tobytes() == b.tobytes()
    code = ("import hashlib, numpy as np, sys; sys.path.insert(0, %r); "
            "from benchmark.pose_estimation.direct_estimator import DirectEstimator; "
            "z = np.load(%r); p = DirectEstimator()(z['mixed_frames'], z['mixed_K'], depth0=z['mixed_depth'][0]).poses; "
            "print(hashlib.sha256(p.tobytes()).hexdigest())") % (str(ROOT), str(DATA))
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.add(out.stdout.strip().splitlines()[-1])
    assert digests == {hashlib.sha256(a.tobytes()).hexdigest()}


def test_static_video_is_held_exactly_and_bad_input_refused(clips):
    c = clips["strafe"]
    f = np.repeat(c["frames"][:1], 20, axis=0)
    res = DirectEstimator()(f, c["K"], depth0=c["depth0"])
    assert np.array_equal(res.poses, np.tile(np.eye(4), (20, 1, 1)))
    assert set(res.step_kind) == {"static"}
    with pytest.raises(ValueError, match="uint8"):
        DirectEstimator()(f.astype(np.float32), c["K"])
    with pytest.raises(ValueError, match="depth0"):
        DirectEstimator()(f, c["K"], depth0=c["depth0"][:10])
    with pytest.raises(ValueError, match="depth_ref"):
        DirectEstimator()(f, c["K"], depth_ref=c["depth"][:10])
    with pytest.raises(ValueError, match="ref_depth"):
        DirectEstimator(DirectParams(ref_depth="pixels"))(c["frames"], c["K"], depth_ref=c["depth"])
    nearest = DirectEstimator(DirectParams(ref_depth="nearest"))   # picks reference frames by pose
    with pytest.raises(ValueError, match="needs ref_poses"):
        nearest(c["frames"], c["K"], depth_ref=c["depth"])
    with pytest.raises(ValueError, match="needs ref_poses"):
        nearest(c["frames"], c["K"], depth_ref=c["depth"], ref_poses=c["poses"][:5])


def test_wide_frames_are_estimated_at_a_smaller_size(clips):
    """Frames wider than ``max_width`` are estimated at half size (K, depth0 and the reference depth
    pooled with them); motion is still followed there."""
    c = clips["strafe"]
    res = DirectEstimator(DirectParams(max_width=64))(c["frames"], c["K"], depth0=c["depth0"], depth_ref=c["depth"],
                                                      ref_poses=c["poses"])
    m = score_action_following(c["poses"], res.poses, c["fps"], est_metric=True).metrics
    assert m["rpe_trans_rel"] < 0.25 and m["rpe_rot_deg"] < 3.0


@pytest.mark.parametrize("name", ["pan", "mixed"])
def test_lost_frames_are_relocalised_against_the_previous_frame(clips, gt_scores, name):
    """With the turn test set to 0 deg every turning frame is lost against its keyframe, so every such
    frame is solved again against the previous frame: the motion is still followed (holding the
    previous pose, the old behaviour, would score rpe_rot_rel ~1), and nothing is marked failed."""
    c = clips[name]
    est = DirectEstimator(DirectParams(max_rot_step_deg=0.0))
    res = est(c["frames"], c["K"], depth0=c["depth0"], depth_ref=c["depth"], ref_poses=c["poses"])
    n_reloc = int(res.notes[0].split(" re-localised")[0].rsplit(" ", 1)[1])
    assert n_reloc >= 0.5 * sum(k != "static" for k in res.step_kind), res.notes
    assert res.num_failed == 0, res.notes
    m = score_action_following(c["poses"], res.poses, c["fps"], est_metric=True).metrics
    g = gt_scores[name]
    assert m["rpe_rot_deg"] < 3 * g["rpe_rot_deg"] + 0.5, m   # measured 0.30 vs 0.22 (pan), 2.45 vs 1.36 (mixed)
    if m["n_seg_rot"]:
        assert m["rpe_rot_rel"] < max(0.2, 2 * g["rpe_rot_rel"]), m
    if m["n_seg_trans"]:
        assert m["rpe_trans_rel"] < max(0.3, 2 * gt_scores[name]["rpe_trans_rel"]), m


def test_a_cut_is_lost_not_relocalised(clips):
    """A cut to another scene cannot be re-localised against the previous frame either: the frames after
    it are marked failed and hold their pose until tracking restarts on the new view."""
    a, b = clips["strafe"], clips["pan"]
    n = min(len(a["frames"]), len(b["frames"]))
    cut = n // 2
    frames = np.concatenate([a["frames"][:cut], b["frames"][cut:n]])
    res = DirectEstimator()(frames, a["K"], depth0=a["depth0"])
    assert res.step_kind[cut - 1] == "failed", res.step_kind[cut - 3:cut + 2]
    np.testing.assert_array_equal(res.poses[cut], res.poses[cut - 1])


OCCLUDER = Path(__file__).parent / "data" / "pose_occluder_strafe.npz"


@pytest.fixture(scope="module")
def occluder():
    """32 ground-truth frames (224x128) of the full suite's single_action__street1: a strafe left past a
    textureless near post in front of a brick wall (periodic texture), with every frame's depth (float16),
    GT poses, K and fps. Before the fine-level guard, the coarse pyramid levels pulled this strafe into a
    4-6 deg turn per frame that the rotation-only model then won (rpe_trans_rel 1.34, rpe_rot_deg 9.9)."""
    z = np.load(OCCLUDER)
    c = dict(frames=z["frames"], depth=z["depth"].astype(np.float32), poses=z["poses"], K=z["K"], fps=float(z["fps"]))
    c["depth0"] = c["depth"][0]
    return c


def test_coarse_levels_cannot_turn_a_strafe_into_a_pan(occluder):
    """Fine-level guard: a result that explains the full-resolution frame worse than its starting point
    is solved again from there over the finest levels. The strafe is then followed (measured 0.18 /
    1.42 deg) and its score is stable under imperceptible pixel changes."""
    c = occluder
    m = _score(c, c["frames"])
    assert m["n_seg_trans"] > 0 and m["rpe_trans_rel"] < 0.5, m
    assert m["rpe_rot_deg"] < 4.0, m
    for seed in (0, 1):
        mp = _score(c, _perturb(c["frames"], seed))
        assert abs(mp["rpe_trans_rel"] - m["rpe_trans_rel"]) <= 0.05, (seed, mp, m)
        assert abs(mp["rpe_rot_deg"] - m["rpe_rot_deg"]) <= 0.5, (seed, mp, m)
