"""A small synthetic corpus in the real on-disk format, for tests and smoke runs of training
before (or without) a rendered corpus. It goes through ``datagen.corpus.writer`` so the loader
reads it with ``datagen.Corpus`` exactly like a captured one.

Scene: a textured cylinder around the origin (radius 6 m) seen by a pinhole camera moving on the
ground plane at 1.5 m height with smoothly varying yaw and forward speed. The image is an exact
ray cast onto the cylinder (so rotations and translations produce consistent motion and parallax),
the texture a deterministic function of (azimuth, height) on the wall. Poses are OpenCV-axes
camera-to-world in metres (world Z up); actions/gamma come from ``datagen.actions.poses_to_actions``.
Captions: one per 5 s segment, naming the wall's colour scheme.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from datagen.actions import poses_to_actions
from datagen.corpus import format as F
from datagen.corpus import writer as W

RADIUS = 6.0
CAM_H = 1.5


def _c2w(x: float, y: float, yaw: float) -> np.ndarray:
    z = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    yd = np.array([0.0, 0.0, -1.0])
    xr = np.cross(yd, z)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = xr, yd, z, (x, y, CAM_H)
    return m


def render(c2w: np.ndarray, K: np.ndarray, H: int, W_: int, palette: np.ndarray) -> np.ndarray:
    """Ray-cast the cylinder wall (and a floor/ceiling gradient) -> (H, W, 3) uint8."""
    u, v = np.meshgrid(np.arange(W_) + 0.5, np.arange(H) + 0.5)
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    d = d_cam @ c2w[:3, :3].T
    o = c2w[:3, 3]
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = 2 * (o[0] * d[..., 0] + o[1] * d[..., 1])
    c = o[0] ** 2 + o[1] ** 2 - RADIUS ** 2
    t = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / np.maximum(2 * a, 1e-9)
    p = o + t[..., None] * d
    az = np.arctan2(p[..., 1], p[..., 0])
    z = p[..., 2]
    stripes = 0.5 + 0.5 * np.sin(7 * az) * np.cos(3.0 * z)
    blocks = ((np.floor(az * 6 / math.pi) + np.floor(z * 2)) % 2)
    col = (palette[0] * stripes[..., None] + palette[1] * (1 - stripes[..., None])) * (0.7 + 0.3 * blocks[..., None])
    floor = z < 0
    ceil = z > 4.0
    col[floor] = (0.25 + 0.1 * np.sin(p[floor][:, 0:1] * 3)) * np.array([0.6, 0.5, 0.4])
    col[ceil] = np.array([0.8, 0.85, 0.95])
    return (np.clip(col, 0, 1) * 255).astype(np.uint8)


PALETTES = {"warm red and cream": ([0.85, 0.25, 0.2], [0.95, 0.9, 0.75]),
            "blue and white": ([0.2, 0.35, 0.85], [0.95, 0.95, 0.95]),
            "green and brown": ([0.25, 0.7, 0.3], [0.5, 0.35, 0.2])}


def write_synthetic_corpus(out: str | Path, episodes: int = 3, frames: int = 48, height: int = 64,
                           width: int = 112, fps: float = 16.0, seed: int = 0, splits=("train",)) -> Path:
    """Write ``episodes`` synthetic episodes of ``frames`` frames (round-robin over ``splits``)."""
    out = Path(out)
    cfg = {"generator": "relic_model.data.synthetic", "episodes": episodes, "frames": frames,
           "height": height, "width": width, "fps": fps, "seed": seed, "splits": list(splits)}
    W.init_corpus(out, cfg)
    rng = np.random.default_rng(seed)
    fov = 70.0
    fx = width / 2 / math.tan(math.radians(fov) / 2)
    K = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1.0]])
    rows = []
    names = list(PALETTES)
    for e in range(episodes):
        eid = f"syn_{e:04d}"
        pname = names[e % len(names)]
        pal = np.array(PALETTES[pname])
        x, y, yaw = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-math.pi, math.pi)
        w_yaw, sp = rng.uniform(-0.06, 0.06), rng.uniform(0.02, 0.06)
        poses = []
        for t in range(frames):
            poses.append(_c2w(x, y, yaw))
            yaw += w_yaw * (1 + math.sin(t / 9.0))
            x += sp * math.cos(yaw)
            y += sp * math.sin(yaw)
            if x * x + y * y > 9:
                yaw += 0.15
        poses = np.stack(poses)
        rgb = np.stack([render(p, K, height, width, pal) for p in poses])
        actions, gamma = poses_to_actions(poses)
        df = pd.DataFrame({"frame": np.arange(frames), "time_s": np.arange(frames) / fps})
        flat = poses.reshape(frames, 16)
        for i, c in enumerate(F.C2W_COLUMNS):
            df[c] = flat[:, i]
        for c in F.UE_COLUMNS:
            df[c] = 0.0
        df["fx"], df["fy"], df["cx"], df["cy"] = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        for i, c in enumerate(F.ACTION_CHANNELS):
            df[c] = actions[:, i]
        df["kept"] = True
        for c in F.FLAG_COLUMNS:
            df[c] = False
        seg = int(5 * fps)
        caps = [{"start_frame": s, "end_frame": min(frames, s + seg), "start_s": s / fps,
                 "end_s": min(frames, s + seg) / fps, "text": f"a round room with {pname} striped walls",
                 "objects": []} for s in range(0, frames, seg)]
        meta = {"episode_id": eid, "scene_id": f"syn_scene_{e % len(names)}", "family": "synthetic",
                "scene_seed": int(e % len(names)), "scene_description": pname, "split": splits[e % len(splits)],
                "generator": "synthetic_orbit", "params": {}, "seed": int(seed * 1000 + e), "fps": fps,
                "num_frames": frames, "duration_s": frames / fps, "width": width, "height": height,
                "fov_deg": fov, "K": K.tolist(), "gamma": float(gamma), "objects": [], "object_descriptions": [],
                "captions": caps, "curation": {"status": "kept", "reasons": {}, "reject_reasons": [],
                                               "kept_segments": [[0, frames]], "kept_frames": frames, "removed": []},
                "backend": {"name": "synthetic"}, "render_seconds": 0.0}
        rev = pd.DataFrame({c: pd.Series(dtype=float) for c in F.REVISIT_COLUMNS})
        W.write_episode(out, W.EpisodeRecord(eid, rgb, np.full((frames, height, width), 5.0, np.float32), df, rev, meta))
        rows.append(W.manifest_row(meta))
    W.write_manifest(out, rows)
    return out
