"""``gamecraft[:WEIGHTS]``: Hunyuan-GameCraft through fastvideo (``FastVideo/HunyuanGameCraft-Diffusers``,
1280x704 at 24 fps), conditioned on per-frame camera poses as Pluecker ray embeddings.

Control mapping (fastvideo ``models/camera/trajectory.py``, the code behind its w/s/a/d/left_rot/
right_rot/up_rot/down_rot actions): those actions are turned into camera-to-world poses, OpenCV
axes (forward = +z, right = +x, down = +y), relative to frame 0, translations multiplied by 10
(``_get_relative_pose``; the action "value" is in metres), then into Pluecker rays with per-frame
intrinsics (fx, fy, cx, cy) in pixels (``_ray_condition``). The adapter skips the action names and
hands the model our COMMANDED poses directly, in that convention:

- poses = our actions integrated from the identity (:func:`benchmark.tasks.export.commanded_poses`,
  the task pack's poses_opencv), resampled to the model's frame times j/24 s (linear in position,
  slerp in rotation), translations in metres x ``TRANSLATION_SCALE`` (10);
- intrinsics = the task's K rescaled to 1280x704 (the model's own default, 0.50505 W x 0.8979 H, is
  the same 89-90 deg horizontal field of view as our suites);
- speed and angle are therefore exact (no calibration constant beyond the x10 of its own code).
- GameCraft's action space is 4 translations + 4 rotations (no pedestal, no roll): tasks commanding
  them are n/a with the reason, although the Pluecker input could carry them.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from benchmark.adapters import fastvideo_bridge as fb
from benchmark.tasks.export import commanded_poses

TRANSLATION_SCALE = 10.0
MODEL_FPS = 24.0
MODEL_SIZE = (1280, 704)
REPO_ID = "FastVideo/HunyuanGameCraft-Diffusers"
WEIGHTS_ENV = "RELIC_GAMECRAFT_WEIGHTS"


def resample_poses(poses: np.ndarray, times: np.ndarray) -> np.ndarray:
    """c2w poses at fractional frame indices ``times`` (linear position, slerp rotation)."""
    n = len(poses)
    times = np.clip(np.asarray(times, np.float64), 0, n - 1)
    out = np.tile(np.eye(4), (len(times), 1, 1))
    if n == 1:
        out[:] = poses[0]
        return out
    slerp = Slerp(np.arange(n), Rotation.from_matrix(poses[:, :3, :3]))
    out[:, :3, :3] = slerp(times).as_matrix()
    i0 = np.minimum(np.floor(times).astype(int), n - 2)
    w = (times - i0)[:, None]
    out[:, :3, 3] = (1 - w) * poses[i0, :3, 3] + w * poses[i0 + 1, :3, 3]
    return out


def to_gamecraft(actions: np.ndarray, gamma: float, fps: float, K: np.ndarray,
                 model_fps: float = MODEL_FPS) -> dict[str, np.ndarray]:
    """Our (n, 13) steps -> {"num_frames": T, "c2w": (T, 4, 4) float32, "intrinsics": (T, 4) float32}."""
    a = np.asarray(actions, dtype=np.float64)
    n = len(a)
    T = fb.model_num_frames(n, fps, model_fps)
    poses = commanded_poses(a, gamma, n + 1)
    c2w = resample_poses(poses, np.arange(T) * fps / model_fps)
    c2w[:, :3, 3] *= TRANSLATION_SCALE
    K = np.asarray(K, np.float64)
    intr = np.tile([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], (T, 1))
    return {"num_frames": np.int64(T), "c2w": c2w.astype(np.float32), "intrinsics": intr.astype(np.float32)}


class GameCraftModel(fb.FastVideoModel):
    name = "gamecraft"
    kind = "gamecraft"
    repo_id = REPO_ID
    env_var = WEIGHTS_ENV
    model_fps = MODEL_FPS
    model_size = MODEL_SIZE
    supported = ("dolly", "truck", "tilt", "pan")

    def controls(self, actions, gamma, fps, K):
        return to_gamecraft(actions, gamma, fps, K, self.model_fps)


def check(arg: str | None) -> None:
    fb.check_runnable(GameCraftModel.name, REPO_ID, WEIGHTS_ENV, arg)
