"""Metric validity on a rendered task (embedded renderer): each corruption moves the metric it
targets, monotonically in its strength; ground truth scores at the estimator's noise floor."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmark.scoring import estimate_noise_floor, score_task
from benchmark.tasks.task import REVISIT_COLUMNS, Task

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
    from datagen.revisits import find_revisit_pairs
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
    nf = estimate_noise_floor(task)
    oracle = score_task(task, rgb, noise_floor=nf, **FAST)
    static = score_task(task, np.repeat(rgb[:1], len(rgb), axis=0), noise_floor=nf, **FAST)
    from benchmark.adapters.reproject import forward_splat

    rep = np.stack([rgb[0]] + [forward_splat(rgb[0], depth[0], K, np.linalg.inv(c) @ poses[0])[0]
                               for c in poses[1:]])
    reproject = score_task(task, rep, noise_floor=nf, **FAST)
    return dict(be=be, task=task, rgb=rgb, nf=nf, oracle=oracle, static=static, reproject=reproject)


def render(be, poses):
    return np.stack([f.rgb for f in be.capture_batch(list(poses), kinds=("rgb",))])


def test_oracle_is_at_the_noise_floor_with_perfect_fidelity(world):
    m, nf = world["oracle"].metrics, world["nf"]
    assert m["rpe_trans"] == nf["est_noise_floor_rpe_trans"] == m["est_noise_floor_rpe_trans"]
    assert m["rpe_rot_deg"] == nf["est_noise_floor_rpe_rot_deg"]
    assert nf["est_noise_floor_rpe_rot_deg@1f"] < 1.0 and nf["est_noise_floor_rpe_rot_deg"] < 3.0  # works on GT
    assert m["frames_psnr_gt"] == 60.0 and m["frames_ssim_gt"] == pytest.approx(1.0)
    assert m["revisit_psnr_gt"] == 60.0 and m["revisit_psnr_gt_covis"] == 60.0
    assert m["revisit_psnr_self"] == pytest.approx(m["revisit_psnr_self_ceiling"])
    assert m["revisit_psnr_self_covis_ceiling"] > 30.0  # depth warping of the earlier view is accurate
    assert m["revisit_psnr_self_covis_ceiling"] > m["revisit_psnr_self_ceiling"]  # pose difference removed
    assert 0.3 < m["revisit_covis_frac"] <= 1.0
    assert m["drift_psnr_slope"] == pytest.approx(0.0, abs=1e-9) and m["drift_psnr_ratio"] == 1.0
    assert np.isnan(m["revisit_lpips_gt"]) and any("LPIPS" in n for n in world["oracle"].notes)
    assert world["oracle"].est_poses.shape == (world["task"].num_frames, 4, 4)
    assert set(world["oracle"].curves) >= {"t_s", "psnr", "ssim", "lpips", "sharpness", "gt_sharpness"}


def test_action_following_separates_oracle_reproject_and_static(world):
    """The regression this guards against: an estimator whose noise floor on ground truth is at or
    above a static video's RPE (the estimator, not the model, dominating the metric)."""
    o, s, r = (world[k].metrics for k in ("oracle", "static", "reproject"))
    nf = world["nf"]
    assert set(nf) == {"est_noise_floor_rpe_trans", "est_noise_floor_rpe_rot_deg",
                       "est_noise_floor_rpe_trans@1f", "est_noise_floor_rpe_rot_deg@1f",
                       "est_noise_floor_rpe_trans@first_view", "est_noise_floor_rpe_rot_deg@first_view"}
    assert o["est_noise_floor_rpe_rot_deg"] == o["rpe_rot_deg"]
    # rotation: noise floor far below static, per second (headline) and per frame
    assert o["rpe_rot_deg"] < s["rpe_rot_deg"] / 10 and o["rpe_rot_deg@1f"] < s["rpe_rot_deg@1f"] / 3
    # translation over 1 s: clearly below static's penalty (= the commanded motion)
    assert o["rpe_trans"] < 0.6 * s["rpe_trans"]
    # reproject (perfect commanded poses, holes stay black) follows the actions: near oracle, far from static
    assert r["rpe_rot_deg"] < 0.2 * s["rpe_rot_deg"] and r["rpe_rot_deg@1f"] < 0.5 * s["rpe_rot_deg@1f"]
    assert r["rpe_trans"] < 0.6 * s["rpe_trans"]


def test_static_video_has_large_rpe_and_low_retrieval(world):
    s, o = world["static"].metrics, world["oracle"].metrics
    assert s["rpe_rot_deg"] > 3 * o["rpe_rot_deg"]
    assert s["revisit_psnr_gt"] < 20 < o["revisit_psnr_gt"]
    assert s["revisit_psnr_self"] == 60.0  # perfectly self-consistent: why the GT variants exist
    assert s["frames_psnr_gt"] < 20


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
                "drift_sharpness_ratio"):
        vals = [r[key] for r in rows]
        assert np.all(np.diff(vals) < 0), (key, vals)
    # every strength drifts downwards (the PSNR slope / ratio themselves are not monotonic in the
    # strength: PSNR is logarithmic and capped, so strong blur loses most of its dB in the first window)
    assert all(r["drift_psnr_slope"] < 0 and r["drift_ssim_slope"] < 0 and r["drift_sharpness_ratio"] < 1
               for r in rows)
    assert all(r["rpe_trans"] < 1e-9 for r in rows)  # external trajectory path: GT poses give zero RPE


def test_pose_drift_raises_rpe_monotonically(world):
    task = world["task"]
    rot, rot1f, trans = [], [], []
    for strength in (1.0, 2.0, 4.0, 8.0):
        frames = render(world["be"], _random_walk(task.gt_poses, strength))
        m = score_task(task, frames, **FAST).metrics
        rot.append(m["rpe_rot_deg"])
        rot1f.append(m["rpe_rot_deg@1f"])
        trans.append(m["rpe_trans"])
    nf = world["nf"]
    assert np.all(np.diff(rot) > 0) and np.all(np.diff(rot1f) > 0), (rot, rot1f)
    assert rot[0] > 2 * nf["est_noise_floor_rpe_rot_deg"]
    # translation over 1 s: the weak walks (~0.07 m/s at strength 1, added in quadrature to a ~0.16 m
    # floor on this forward-walking street task) are near the estimator's noise, the strongest is
    # clearly above it (per frame, translation is below any estimator's noise here: see
    # benchmark.metrics.rpe). Measured (2026-11-26 estimator): floor 0.156, strengths 1/2/4/8 ->
    # 0.202/0.190/0.194/0.347 m. Monotonicity in the strength is checked on the smoke suite
    # (report_validity), where 8 tasks average the estimator's noise.
    assert trans[-1] > 1.25 * nf["est_noise_floor_rpe_trans"], trans


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
    for key in ("revisit_psnr_gt", "revisit_psnr_self", "revisit_psnr_self_covis", "revisit_ssim_gt"):
        vals = [o[key]] + [r[key] for r in rows]
        assert np.all(np.diff(vals) < 0), (key, vals)
    assert o["revisit_psnr_gt"] - rows[-1]["revisit_psnr_gt"] > 20
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


def test_lpips_columns_when_backbone_weights_are_cached(world, tmp_path):
    """With a backbone file in the torch hub cache (random weights: plumbing only, never reported),
    every LPIPS column is computed: zero for ground truth, positive for the static video."""
    import os

    import torch
    import torchvision

    from benchmark.metrics.image_quality import lpips_backbone_file

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        path = lpips_backbone_file("alex")
        os.makedirs(os.path.dirname(path))
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
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
    assert np.isfinite(o.metrics["revisit_lpips_self_covis_ceiling"]) and np.isfinite(o.curves["lpips"]).all()
