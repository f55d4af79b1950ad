"""Capture ONE episode with a backend: trajectory -> frames -> labels, revisits, curation, captions.

All labels are computed from the CAPTURED poses (the ``c2w`` each frame reports), never from the
commanded trajectory, so they describe exactly what was rendered.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pandas as pd

from datagen.actions import poses_to_actions
from datagen.capture.config import CorpusConfig, EpisodeSpec
from datagen.conventions import c2w_to_ue_pose
from datagen.corpus import format as F
from datagen.corpus.writer import EpisodeRecord
from datagen.curation.balance import active_fractions
from datagen.curation.captions import caption_segments
from datagen.curation.filters import curate
from datagen.revisit_pairs import find_revisit_pairs
from datagen.trajectories import generate
from datagen.trajectories.base import to_jsonable


def scene_texts(backend, scene=None) -> tuple[str, list[str], list[str]]:
    """(scene description, object names, object description phrases) for captions."""
    info = backend.scene_info()
    if scene is not None:
        names = [o.name for o in scene.objects]
        descs = [o.description for o in scene.objects]
        served = list(backend.objects())
        if len(served) != len(names):
            # a real UE level: mask ids index the SERVER's object list (`vget /objects`: every actor,
            # in the engine's order), not the exported scene file's objects; match those by name
            by_name = dict(zip(names, descs))
            descs = [by_name.get(n, n.rstrip("0123456789_").replace("_", " ")) for n in served]
            names = served
        return scene.description, names, descs
    names = list(backend.objects())
    descs = info.get("object_descriptions") or [n.rstrip("0123456789_").replace("_", " ") for n in names]
    return str(info.get("description", "")), names, list(descs)


def frames_table(c2w: np.ndarray, K: np.ndarray, fps: float, actions: np.ndarray, flags: dict,
                 kept: np.ndarray) -> pd.DataFrame:
    """The per-frame table (format.FRAME_COLUMNS) of one episode."""
    n = len(c2w)
    cols: dict[str, np.ndarray] = {"frame": np.arange(n, dtype=np.int64), "time_s": np.arange(n) / float(fps)}
    flat = c2w.reshape(n, 16)
    for j, name in enumerate(F.C2W_COLUMNS):
        cols[name] = flat[:, j]
    ue = np.zeros((n, 6))
    for i in range(n):
        loc, rot = c2w_to_ue_pose(c2w[i])
        ue[i, :3], ue[i, 3:] = loc, rot
    for j, name in enumerate(F.UE_COLUMNS):
        cols[name] = ue[:, j]
    cols["fx"], cols["fy"] = np.full(n, K[0, 0]), np.full(n, K[1, 1])
    cols["cx"], cols["cy"] = np.full(n, K[0, 2]), np.full(n, K[1, 2])
    for j, name in enumerate(F.ACTION_CHANNELS):
        cols[name] = actions[:, j].astype(np.float32)
    cols["kept"] = kept.astype(bool)
    for name in F.FILTER_NAMES:
        cols[f"flag_{name}"] = flags[name].astype(bool)
    return pd.DataFrame(cols, columns=list(F.FRAME_COLUMNS))


def capture_episode(spec: EpisodeSpec, backend, cfg: CorpusConfig, scene=None, backend_name: str = "embedded",
                    progress: Optional[Callable[[int], None]] = None, chunk: int = 32) -> EpisodeRecord:
    """Generate, render and label one episode. `progress(n)` is called with frames rendered so far."""
    backend.set_resolution(cfg.width, cfg.height)
    backend.set_fov(cfg.fov_deg)
    traj = generate(spec.generator, backend, seed=spec.seed, duration_s=spec.duration_s, fps=cfg.fps, **spec.params)
    poses_cmd = np.asarray(traj.poses, dtype=np.float64)
    n = len(poses_cmd)
    if n < 2:
        raise RuntimeError(f"episode {spec.episode_id}: generator {spec.generator} produced {n} poses")
    kinds = ("rgb", "depth", "mask")  # captions and the degenerate filter use instance masks
    W, H = cfg.width, cfg.height
    rgb = np.empty((n, H, W, 3), np.uint8)
    depth = np.empty((n, H, W), np.float32)
    mask = np.full((n, H, W), -1, np.int32)
    c2w = np.empty((n, 4, 4), np.float64)
    have_mask = True
    for s in range(0, n, chunk):
        frames = backend.capture_batch(list(poses_cmd[s:s + chunk]), kinds)
        for j, fr in enumerate(frames):
            i = s + j
            if fr.rgb is None or fr.depth is None:
                raise RuntimeError(f"episode {spec.episode_id}: backend returned no rgb/depth for frame {i}")
            if fr.rgb.shape != (H, W, 3):
                raise RuntimeError(f"episode {spec.episode_id}: frame {i} has shape {fr.rgb.shape}, expected {(H, W, 3)}")
            rgb[i], depth[i], c2w[i] = fr.rgb, fr.depth, fr.c2w
            if fr.mask is None:
                have_mask = False
            else:
                mask[i] = fr.mask
        if progress is not None:
            progress(min(n, s + chunk))
    K = np.asarray(backend.intrinsics(), dtype=np.float64)

    actions, gamma = poses_to_actions(c2w)
    rv = dict(cfg.revisits)
    revisits = find_revisit_pairs(c2w, K, W, H, depths=depth, fps=cfg.fps, **rv)
    revisits = revisits.reindex(columns=list(F.REVISIT_COLUMNS))
    m = mask if have_mask else None
    cur = curate(c2w, cfg.fps, cfg.thresholds, rgb=rgb, depth=depth, mask=m)
    desc, names, odescs = scene_texts(backend, scene)
    cap = dict(cfg.captions)
    captions = caption_segments(m, cfg.fps, desc, odescs, names, segment_s=cap["segment_s"],
                                min_coverage=cap["min_coverage"], min_frame_fraction=cap["min_frame_fraction"],
                                max_objects=int(cap["max_objects"]), num_frames=n)
    table = frames_table(c2w, K, cfg.fps, actions, cur.flags, cur.kept)
    fracs = active_fractions(actions, cur.kept if cur.kept.any() else None,
                             active_threshold=cfg.balance["active_threshold"])
    info = backend.scene_info()
    meta = {
        "episode_id": spec.episode_id, "scene_id": spec.scene_id, "family": spec.family,
        "scene_seed": spec.scene_seed, "scene_description": desc, "split": spec.split,
        "generator": spec.generator, "params": dict(getattr(traj, "params", spec.params) or {}),
        "seed": spec.seed, "fps": cfg.fps, "num_frames": n, "duration_s": n / cfg.fps,
        "width": W, "height": H, "fov_deg": cfg.fov_deg, "K": K.tolist(), "gamma": float(gamma),
        "objects": names, "object_descriptions": odescs, "captions": captions,
        "trajectory": to_jsonable(traj.metadata() if hasattr(traj, "metadata") else
                                {"segments": getattr(traj, "segments", [])}),
        "curation": cur.to_meta(), "num_revisit_pairs": int(len(revisits)),
        "action_fractions": fracs, "backend": backend_name, "backend_scene_id": info.get("scene_id"),
        "max_commanded_pose_error_m": float(np.abs(c2w[:, :3, 3] - poses_cmd[:, :3, 3]).max()),
    }
    return EpisodeRecord(episode_id=spec.episode_id, rgb=rgb, depth=depth, frames=table, revisits=revisits,
                         meta=meta, mask=mask.astype(np.int16) if (cfg.store_mask and have_mask) else None)
