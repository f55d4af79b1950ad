"""``reproject``: warps the first frame with its ground-truth depth to every commanded pose.

A geometric baseline with perfect action following and no hallucination: whatever frame 0 did
not see stays black. The commanded pose of step t is obtained by integrating the actions from
the first ground-truth pose with :func:`datagen.actions.actions_to_poses` (the inverse of the
labels the task was built with), so the model never reads any pose after frame 0.

Privileged inputs: frame 0's ground-truth depth and pose (``bind_task``).

Warping (:func:`forward_splat`): every pixel of frame 0 (centre at integer + 0.5) is lifted to
3D with its planar depth, moved into the target camera and projected; each point is splatted to
the pixel that contains its projection, a z-buffer keeping the nearest point per pixel; then
pixels still empty are filled the same way from the 2x2 pixels whose centres surround each
projection (so magnification up to 2x leaves no cracks, at the price of a one-pixel fringe). Pixels with infinite depth (sky) are
directions at infinity: they are rotated but not translated, and lose every z-test. Pixels no
point lands on stay black (0, 0, 0).
"""
from __future__ import annotations

import numpy as np

from benchmark.world_model import WorldModel, as_actions
from datagen.actions import actions_to_poses


def forward_splat(rgb0: np.ndarray, depth0: np.ndarray, K: np.ndarray, T_tgt_src: np.ndarray,
                  footprint: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``rgb0`` (H, W, 3) uint8 with planar depth ``depth0`` (H, W) metres to a new camera.

    ``T_tgt_src`` is the 4x4 transform from source-camera to target-camera coordinates (OpenCV
    axes), i.e. ``inv(c2w_tgt) @ c2w_src``. ``footprint`` 1 = containing pixel only, 2 = also
    fill empty pixels from the 4 pixels around each projection. Returns (rgb (H, W, 3) uint8, covered (H, W) bool).
    """
    h, w = depth0.shape
    K = np.asarray(K, dtype=np.float64)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64) + 0.5, np.arange(h, dtype=np.float64) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
    z = depth0.reshape(-1).astype(np.float64)
    finite = np.isfinite(z) & (z > 0)
    R, t = T_tgt_src[:3, :3], T_tgt_src[:3, 3]
    # finite points: R (z*ray) + t ; points at infinity: R ray (direction only)
    p = rays @ R.T
    p[finite] = p[finite] * z[finite, None] + t
    zt = p[:, 2]
    ok = zt > 1e-6
    p, zt = p[ok], zt[ok]
    colors = rgb0.reshape(-1, 3)[ok]
    order_key = np.where(finite[ok], zt, np.inf)  # sky loses every z-test
    uu = K[0, 0] * p[:, 0] / zt + K[0, 2]
    vv = K[1, 1] * p[:, 1] / zt + K[1, 2]
    out = np.zeros((h * w, 3), dtype=np.uint8)
    covered = np.zeros(h * w, dtype=bool)
    # pass 1: every point to the pixel containing its projection (z-buffered)
    passes = [[(np.floor(uu), np.floor(vv))]]
    if footprint >= 2:  # pass 2: fill still-empty pixels from the 4 pixels around each projection
        bu, bv = np.floor(uu - 0.5), np.floor(vv - 0.5)
        passes.append([(bu, bv), (bu + 1, bv), (bu, bv + 1), (bu + 1, bv + 1)])
    for cands in passes:
        pix_l, key_l, src_l = [], [], []
        for cu, cv_ in cands:
            inside = (cu >= 0) & (cu < w) & (cv_ >= 0) & (cv_ < h)
            pix_l.append(cv_[inside].astype(np.int64) * w + cu[inside].astype(np.int64))
            key_l.append(order_key[inside])
            src_l.append(np.nonzero(inside)[0])
        pix, key, src = np.concatenate(pix_l), np.concatenate(key_l), np.concatenate(src_l)
        free = ~covered[pix]
        pix, key, src = pix[free], key[free], src[free]
        if not pix.size:
            continue
        order = np.lexsort((key, pix))  # by pixel, then nearest first
        ps = pix[order]
        first = np.ones(ps.size, dtype=bool)
        first[1:] = ps[1:] != ps[:-1]
        win = order[first]
        out[pix[win]] = colors[src[win]]
        covered[pix[win]] = True
    return out.reshape(h, w, 3), covered.reshape(h, w)


class ReprojectModel(WorldModel):
    name = "reproject"
    chunk_size = 4
    privileged = True

    def __init__(self, footprint: int = 2) -> None:
        self.footprint = int(footprint)
        self._task = None

    def bind_task(self, task) -> None:
        self._task = task

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        if self._task is None:
            raise RuntimeError("reproject: needs bind_task(task) before reset() (frame-0 depth and pose)")
        self._rgb0 = np.asarray(first_frame, dtype=np.uint8)
        self._depth0 = self._task.gt_depth()[0]
        self._K = np.asarray(K, dtype=np.float64)
        self._c2w0 = np.asarray(self._task.gt_poses[0], dtype=np.float64)
        self._pose = self._c2w0.copy()  # pose of the latest frame (integrated from actions)

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        a = as_actions(actions)
        # integrate this chunk from the latest commanded pose (integration is sequential, so
        # chunk by chunk equals integrating the whole sequence at once)
        # actions_to_poses returns one pose per row, starting with c2w0, and ignores the last row
        # (it has no successor): append a padding row so all k actions are integrated.
        padded = np.concatenate([a, np.zeros((1, a.shape[1]), np.float32)], axis=0)
        poses = np.asarray(actions_to_poses(padded, float(gamma), self._pose), dtype=np.float64)[1:]
        out = []
        for c2w in poses:
            T = np.linalg.inv(c2w) @ self._c2w0
            rgb, _ = forward_splat(self._rgb0, self._depth0, self._K, T, self.footprint)
            out.append(rgb)
        self._pose = poses[-1]
        return np.stack(out)
