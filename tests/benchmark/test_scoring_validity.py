"""Metric validity on a rendered task (embedded renderer): each corruption moves the metric it
targets, monotonically in its strength; every assertion compares different videos (or a video with
a documented bound), never a score with a copy of itself. Thresholds have wide margins: the
renderer's floating point differs between machines."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.scoring import score_task
from benchmark.tasks.task import REVISIT_COLUMNS, Task
from datagen.filebytes import sha256_file

W, H, FPS = 224, 128, 16.0
SCENE = ("street", 1)
# (frames, forward m/frame, right m/frame, yaw deg/frame): walk, veer, look away and back, step back
SCRIPT = [(16, 0.05, 0.0, 0.0), (16, 0.04, 0.02, -1.0), (24, 0.0, 0.0, 5.0), (24, 0.0, 0.0, -5.0),
          (16, -0.04, -0.02, 1.0)]
FAST = dict(lpips=False, max_revisit_pairs=12)


def _script_poses(start: np.ndarray) -> np.ndarray:
    P, c = [start.copy()], start.copy()
    for n, dz, dx, yaw in SCRIPT:
        for _ in range(n):
            T = np.eye(4)
            T[:3, :3] = Rotation.from_euler("y", yaw, degrees=True).as_matrix()  # camera y = down: pan
            T[:3, 3] = [dx, 0.0, dz]
            c = c @ T
            P.append(c.copy())
    return np.array(P)


def _random_walk(P: np.ndarray, strength: float, seed: int = 0) -> np.ndarray:
    """GT poses with an accumulated camera-frame random walk: per frame N(0, (0.01 s m)^2) per axis
    and N(0, (0.3 s deg)^2) per axis (the same draw for every strength)."""
    rng = np.random.default_rng(seed)
    dt = rng.normal(size=(len(P), 3)) * 0.01 * strength
    dr = rng.normal(size=(len(P), 3)) * np.radians(0.3) * strength
    E, out = np.eye(4), P.copy()
    for i in range(1, len(P)):
        step = np.eye(4)
        step[:3, :3] = Rotation.from_rotvec(dr[i]).as_matrix()
        step[:3, 3] = dt[i]
        E = E @ step
        out[i] = P[i] @ E
    return out


@pytest.fixture(scope="module")
def world():
    from datagen.backends.embedded import EmbeddedBackend
    from datagen.revisit_pairs import find_revisit_pairs
    from datagen.scenes.library import generate_scene

    scene = generate_scene(*SCENE)
    be = EmbeddedBackend(scene, width=W, height=H, fov=90.0)
    poses = _script_poses(scene.spawn_c2w)
    frames = be.capture_batch(list(poses), kinds=("rgb", "depth"))
    rgb = np.stack([f.rgb for f in frames])
    depth = np.stack([f.depth for f in frames])
    K = be.intrinsics()
    rv = find_revisit_pairs(poses, K, W, H, depths=depth, fps=FPS)[REVISIT_COLUMNS].reset_index(drop=True)
    task = Task(task_id="validity", family="test", scene_id=scene.scene_id, prompt="", K=K, width=W, height=H,
                fps=FPS, actions=np.zeros((len(poses), 13), np.float32), gamma=0.04, gt_poses=poses, revisits=rv,
                _frames_loader=lambda: rgb, _depth_loader=lambda: depth)
    assert len(rv) >= 5, "the look-away script must produce revisit pairs"
    oracle = score_task(task, rgb, **FAST)
    static = score_task(task, np.repeat(rgb[:1], len(rgb), axis=0), **FAST)
    from benchmark.adapters.reproject import forward_splat

    rep = np.stack([rgb[0]] + [forward_splat(rgb[0], depth[0], K, np.linalg.inv(c) @ poses[0])[0]
                               for c in poses[1:]])
    reproject = score_task(task, rep, **FAST)
    return dict(be=be, task=task, rgb=rgb, oracle=oracle, static=static, reproject=reproject)


def render(be, poses):
    return np.stack([f.rgb for f in be.capture_batch(list(poses), kinds=("rgb",))])


def test_ground_truth_revisits_warp_onto_each_other(world):
    """The co-visibility warp (GT depth + poses) maps the earlier GT view onto the later one: far more
    alike than the unwarped pair, and the re-observation gate keeps the builder's pairs."""
    m = world["oracle"].metrics
    assert m["revisit_psnr_self_covis_gtref"] > 30.0
    assert m["revisit_psnr_self_covis_gtref"] > m["revisit_psnr_self_gtref"]  # pose difference removed
    assert 0.5 <= m["revisit_covis_frac"] <= 1.0
    assert m["revisit_pairs_reobserved"] >= 0.8 * m["revisit_pairs_annotated"] and m["revisit_pairs"] >= 5
    assert np.isnan(m["revisit_lpips_gt"]) and any("LPIPS" in n for n in world["oracle"].notes)
    assert world["oracle"].est_poses.shape == (world["task"].num_frames, 4, 4)
    assert set(world["oracle"].curves) >= {"t_s", "psnr", "ssim", "lpips", "sharpness", "gt_sharpness"}


def test_consistency_gain_a_frozen_video_cannot_win(world):
    """The bars of the self-consistency headline on one rendered task: static within +-0.5 dB of 0,
    ground truth >= static + 3 dB and >= shuffled frames + 3 dB; raw self-PSNR would rank static first."""
    o, s = world["oracle"].metrics, world["static"].metrics
    task, rgb = world["task"], world["rgb"]
    perm = np.concatenate([[0], 1 + np.random.default_rng(3).permutation(len(rgb) - 1)])
    sh = score_task(task, rgb[perm], est_trajectory=task.gt_poses, **FAST).metrics
    assert o["revisit_gain_pairs"] >= 5 and o["revisit_gain_controls"] >= o["revisit_gain_pairs"]
    assert abs(s["revisit_consistency_gain"]) <= 0.5
    assert o["revisit_consistency_gain"] >= s["revisit_consistency_gain"] + 3.0
    assert o["revisit_consistency_gain"] >= sh["revisit_consistency_gain"] + 3.0, (o["revisit_consistency_gain"],
                                                                                   sh["revisit_consistency_gain"])
    assert s["revisit_psnr_self"] > o["revisit_psnr_self"] + 20  # why raw self-PSNR is secondary


def test_action_following_separates_oracle_reproject_and_static(world):
    """Rotation over 1-s segments: the ground truth and reproject (perfect commanded poses) far below a
    video that does not move (translation bars live in the action-following tests)."""
    o, s, r = (world[k].metrics for k in ("oracle", "static", "reproject"))
    assert o["rpe_rot_deg"] < s["rpe_rot_deg"] / 5
    assert r["rpe_rot_deg"] < 0.3 * s["rpe_rot_deg"]


def test_static_video_has_low_fidelity(world):
    s, o = world["static"].metrics, world["oracle"].metrics
    assert s["revisit_psnr_gt"] < 20 and s["frames_psnr_gt"] < 20
    assert s["revisit_psnr_gt_covis"] < 20 and s["revisit_ssim_gt"] < 0.7


def test_blur_lowers_fidelity_and_sharpness_monotonically(world):
    task, rgb = world["task"], world["rgb"]
    n = len(rgb)
    rows = []
    for strength in (1.0, 2.0, 4.0):  # sigma grows over time: sharp start, sigma = strength at the end
        frames = np.stack([f if i == 0 else cv2.GaussianBlur(f, (0, 0), strength * i / (n - 1))
                           for i, f in enumerate(rgb)])
        sc = score_task(task, frames, est_trajectory=task.gt_poses, **FAST)
        rows.append(dict(sc.metrics, last_psnr=sc.curves["psnr"][-1], last_ssim=sc.curves["ssim"][-1]))
    for key in ("frames_psnr_gt", "frames_ssim_gt", "revisit_psnr_gt", "last_psnr", "last_ssim",
                "drift_sharpness_ratio", "drift_psnr_late"):
        vals = [r[key] for r in rows]
        assert np.all(np.diff(vals) < 0), (key, vals)
    # every strength drifts downwards (the PSNR slope / ratio themselves are not monotonic in the
    # strength: PSNR is logarithmic and capped, so strong blur loses most of its dB in the first window)
    assert all(r["drift_psnr_slope"] < 0 and r["drift_ssim_slope"] < 0 and r["drift_sharpness_ratio"] < 1
               for r in rows)


def test_pose_drift_raises_rpe_rot_and_lowers_late_psnr_monotonically(world):
    task = world["task"]
    ms = [score_task(task, render(world["be"], _random_walk(task.gt_poses, strength)), **FAST).metrics
          for strength in (1.0, 2.0, 4.0, 8.0)]
    rot, late = [m["rpe_rot_deg"] for m in ms], [m["drift_psnr_late"] for m in ms]
    assert np.all(np.diff(rot) > 0), rot
    assert rot[0] > world["oracle"].metrics["rpe_rot_deg"]
    assert np.all(np.diff(late) < 0) and late[0] < world["oracle"].metrics["drift_psnr_late"] - 10, late


def test_late_psnr_separates_wrong_order_frozen_and_noisy_video_where_the_slope_cannot(world):
    """The long-horizon headline (protocol 6): every corrupted video ends far below the ground truth
    (60 dB cap); the PSNR slope it replaced scores several of them level with it (equally wrong
    throughout is no change over time)."""
    task, rgb = world["task"], world["rgb"]
    n = len(rgb)
    perm = np.concatenate([[0], 1 + np.random.default_rng(5).permutation(n - 1)])
    noise = np.random.default_rng(6).normal(size=rgb.shape) * 20
    noise[0] = 0
    vids = {"reversed": np.concatenate([rgb[:1], rgb[1:][::-1]]), "shuffled": rgb[perm],
            "noise20": np.clip(rgb + noise, 0, 255).round().astype(np.uint8)}
    got = {k: score_task(task, v, est_trajectory=task.gt_poses, **FAST).metrics for k, v in vids.items()}
    got["static"] = world["static"].metrics
    o = world["oracle"].metrics
    assert o["drift_psnr_late"] == 60.0 and abs(o["drift_psnr_slope"]) < 1e-9
    for k, m in got.items():
        assert m["drift_psnr_late"] < 35.0, (k, m["drift_psnr_late"])
    # the slope's blind spot: noise sigma 20 is equally wrong throughout
    assert abs(got["noise20"]["drift_psnr_slope"]) < 0.5



def test_forgetting_lowers_retrieval_but_not_rpe_much(world):
    from datagen.backends.embedded import EmbeddedBackend
    from datagen.scenes.library import generate_scene

    task, rgb = world["task"], world["rgb"]
    later = np.unique(task.revisits["later"].to_numpy())
    other = EmbeddedBackend(generate_scene(SCENE[0], SCENE[1] + 1000), width=W, height=H, fov=90.0)
    other_rgb = render(other, task.gt_poses[later])
    rows = []
    for s in (0.5, 1.0):
        frames = rgb.copy()
        frames[later] = np.clip((1 - s) * rgb[later] + s * other_rgb, 0, 255).astype(np.uint8)
        rows.append(score_task(task, frames, **FAST).metrics)
    o, st = world["oracle"].metrics, world["static"].metrics
    for key in ("revisit_psnr_gt", "revisit_psnr_self_covis", "revisit_ssim_gt"):
        vals = [o[key]] + [r[key] for r in rows]
        assert np.all(np.diff(vals) < 0), (key, vals)
    assert o["revisit_psnr_gt"] - rows[-1]["revisit_psnr_gt"] > 20
    # what the video showed at the first visit is not shown again: less self-consistent than the GT
    assert rows[-1]["revisit_consistency_gain"] < o["revisit_consistency_gain"] - 1.0
    # RPE moves far less than between oracle and a static video
    assert abs(rows[-1]["rpe_rot_deg"] - o["rpe_rot_deg"]) < 0.5 * (st["rpe_rot_deg"] - o["rpe_rot_deg"])


def test_score_task_input_errors_and_tum_trajectory(world, tmp_path):
    from benchmark.pose_estimation.tum import write_tum

    task, rgb = world["task"], world["rgb"]
    with pytest.raises(ValueError, match="frame 0"):
        score_task(task, rgb[1:], **FAST)
    with pytest.raises(ValueError, match="uint8"):
        score_task(task, rgb.astype(np.float32), **FAST)
    f = tmp_path / "est.txt"
    write_tum(str(f), task.gt_poses, np.arange(task.num_frames) / FPS)
    m = score_task(task, rgb, est_trajectory=str(f), **FAST)
    assert m.metrics["rpe_trans"] < 1e-6 and m.metrics["rpe_rot_deg"] < 1e-4
    tidy = m.tidy("oracle")
    assert list(tidy.columns) == ["model", "task", "metric", "value"] and len(tidy) == len(m.metrics)


@pytest.mark.parametrize("name", ["opencv-orb", "opencv-sift"])
def test_descriptor_estimators_follow_the_camera(world, name):
    task = world["task"]
    m = score_task(task, world["rgb"], estimator=name, **FAST).metrics
    assert m["rpe_rot_deg"] < 0.5 * world["static"].metrics["rpe_rot_deg"]
    assert m["pose_est_failed_frac"] < 0.2


def test_lpips_columns_when_a_verified_backbone_is_cached(world, tmp_path, monkeypatch):
    """With a backbone file in the torch hub cache that passes the hash check (random weights whose
    digest is patched in: plumbing only, never reported), every LPIPS column is computed: zero for
    ground truth against itself, positive for the static video."""
    import os

    import torch
    import torchvision

    from benchmark.metrics import image_quality as iq

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        path = iq.lpips_backbone_file("alex")
        os.makedirs(os.path.dirname(path))
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
        monkeypatch.setitem(iq.LPIPS_BACKBONE_SHA256, "alex", sha256_file(path))
        task, rgb = world["task"], world["rgb"]
        kw = dict(est_trajectory=task.gt_poses, lpips=True, max_revisit_pairs=4)
        o = score_task(task, rgb, **kw)
        s = score_task(task, np.repeat(rgb[:1], len(rgb), axis=0), **kw)
    finally:
        torch.hub.set_dir(old)
    assert o.lpips_status.startswith("available")
    for key in ("frames_lpips_gt", "revisit_lpips_gt", "revisit_lpips_gt_covis"):
        assert o.metrics[key] == pytest.approx(0.0, abs=1e-6)
        assert s.metrics[key] > 1e-4
    assert np.isfinite(o.metrics["revisit_lpips_self_covis_gtref"]) and np.isfinite(o.curves["lpips"]).all()
