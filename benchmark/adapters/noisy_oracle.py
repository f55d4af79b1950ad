"""``noisy-oracle:<kind>=<strength>``: ground truth with one controlled corruption.

Used to prove that each metric moves the right way (the report's metric-validity section): each
kind targets one metric family and its damage grows monotonically with the strength, because the
same random draw (seeded by the task id) is scaled by the strength.

Kinds (strength s >= 0; s = 0 is exactly the oracle):

``drift=s``   action following. The scene is re-rendered (embedded renderer) at poses that
              accumulate a random walk: per step, translation increments N(0, (0.02 s m)^2) on each
              camera axis and rotation increments N(0, (0.5 s deg)^2) about each camera axis,
              composed on the right of the ground-truth pose (error in the camera frame). Targets
              ``rpe_trans`` / ``rpe_rot_deg`` (revisit metrics degrade too, as a real drift would).
``blur=s``    long-horizon drift. Frame t is blurred with a Gaussian of sigma = s * t / (N - 1)
              pixels (sharp at the start, sigma s at the end). Targets the long-horizon drift
              metrics ``drift_ssim_slope`` and ``drift_sharpness_ratio``.
``forget=s``  memory retrieval. On every frame the task lists as a revisit (``revisits.later``),
              the output is (1 - s) * GT + s * R, with R the render of a different scene of the same
              family (seed + 1000) from the same pose: the place is "forgotten" and replaced by
              other content while the camera still follows the actions. Targets ``revisit_*``.
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

from benchmark.adapters.oracle import OracleModel
from benchmark.tasks.render import render_rgb, task_backend
from benchmark.world_model import as_actions

KINDS = ("drift", "blur", "forget")
DRIFT_TRANS_M = 0.02
DRIFT_ROT_DEG = 0.5
FORGET_SEED_OFFSET = 1000


def _so3_exp(w: np.ndarray) -> np.ndarray:
    th = float(np.linalg.norm(w))
    if th < 1e-12:
        return np.eye(3)
    k = w / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * Kx @ Kx


def drifted_poses(gt_poses: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """Ground-truth poses with an accumulated camera-frame random walk (see module doc)."""
    rng = np.random.default_rng(seed)
    n = len(gt_poses)
    dt = rng.normal(size=(n, 3)) * DRIFT_TRANS_M * strength
    dr = np.deg2rad(rng.normal(size=(n, 3)) * DRIFT_ROT_DEG * strength)
    E = np.eye(4)
    out = np.array(gt_poses, dtype=np.float64, copy=True)
    for i in range(1, n):
        step = np.eye(4)
        step[:3, :3] = _so3_exp(dr[i])
        step[:3, 3] = dt[i]
        E = E @ step
        out[i] = gt_poses[i] @ E
    return out


def parse_spec(arg: str) -> tuple[str, float]:
    """"blur=2" -> ("blur", 2.0); raises ValueError naming the valid kinds."""
    if "=" not in arg:
        raise ValueError(f"noisy-oracle needs <kind>=<strength> with kind in {KINDS}, got {arg!r}")
    kind, val = arg.split("=", 1)
    kind = kind.strip()
    if kind not in KINDS:
        raise ValueError(f"noisy-oracle kind {kind!r} unknown; use one of {KINDS}")
    s = float(val)
    if not np.isfinite(s) or s < 0:
        raise ValueError(f"noisy-oracle strength must be >= 0, got {val!r}")
    return kind, s


class NoisyOracleModel(OracleModel):
    chunk_size = 4
    privileged = True

    def __init__(self, kind: str, strength: float) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"noisy-oracle kind {kind!r} unknown; use one of {KINDS}")
        self.kind, self.strength = kind, float(strength)
        self.name = f"noisy-oracle:{kind}={strength:g}"
        self._backend = None
        self._backend_task = None

    def _seed(self) -> int:
        return zlib.crc32(self._task.task_id.encode())

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        super().reset(first_frame, prompt, K)
        task = self._task
        n = task.num_frames
        if self.kind == "drift" and self.strength > 0:
            self._poses = drifted_poses(task.gt_poses, self.strength, self._seed())
            self._backend = task_backend(task)
        elif self.kind == "forget" and self.strength > 0:
            self._forget = np.zeros(n, dtype=bool)
            later = task.revisits["later"].to_numpy(dtype=int) if len(task.revisits) else np.zeros(0, int)
            self._forget[later[(later > 0) & (later < n)]] = True
            self._backend = task_backend(task, seed_offset=FORGET_SEED_OFFSET) if self._forget.any() else None

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        k = as_actions(actions).shape[0]
        idx = self._gt(k)
        gt = self._task.gt_frames()
        if self.strength == 0:
            return gt[idx].copy()
        if self.kind == "drift":
            return render_rgb(self._backend, self._poses[idx])
        if self.kind == "blur":
            n = self._task.num_frames
            out = []
            for i in idx:
                sigma = self.strength * i / max(n - 1, 1)
                out.append(cv2.GaussianBlur(gt[i], (0, 0), sigmaX=sigma) if sigma > 1e-3 else gt[i].copy())
            return np.stack(out)
        # forget
        out = gt[idx].copy()
        sel = idx[self._forget[idx]]
        if sel.size:
            other = render_rgb(self._backend, self._task.gt_poses[sel]).astype(np.float32)
            mix = (1 - self.strength) * gt[sel].astype(np.float32) + self.strength * other
            out[self._forget[idx]] = np.clip(np.rint(mix), 0, 255).astype(np.uint8)
        return out

    def close(self) -> None:
        if self._backend is not None and hasattr(self._backend, "close"):
            self._backend.close()
        self._backend = None
