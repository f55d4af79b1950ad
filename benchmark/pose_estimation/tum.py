"""TUM RGB-D trajectory files: read and write camera-to-world poses.

Format (one pose per line, '#' comments, whitespace separated, 8 numbers):

    timestamp tx ty tz qx qy qz qw

``t`` is the camera centre in the world and ``q`` the camera-to-world rotation as a unit
quaternion in SCALAR-LAST (x, y, z, w) order, i.e. each line is one camera-to-world pose
``c2w = [R(q) | t]``. (evo reads these files and stores quaternions internally scalar-FIRST, wxyz;
this module only deals with 4x4 matrices, so the order question stays inside it.) Timestamps are in
seconds; the benchmark writes ``i / fps`` for frame i. The world frame and the camera axes are the
producer's (external estimators such as ViPE, MegaSaM or DROID-SLAM use their own); the benchmark
aligns trajectories with Sim(3) before comparing, so only c2w-ness and frame order matter.
"""
from __future__ import annotations

import os

import numpy as np
from scipy.spatial.transform import Rotation

from datagen.atomic import atomic_write


def poses_to_tum_rows(poses: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """(N,4,4) c2w + (N,) seconds -> (N,8) rows [t, tx, ty, tz, qx, qy, qz, qw]."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must be (N,4,4) camera-to-world matrices, got {poses.shape}")
    ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if ts.shape[0] != poses.shape[0]:
        raise ValueError(f"{ts.shape[0]} timestamps for {poses.shape[0]} poses")
    q = Rotation.from_matrix(poses[:, :3, :3]).as_quat()  # scalar-last x, y, z, w
    return np.column_stack([ts, poses[:, :3, 3], q])


def write_tum(path: str, poses: np.ndarray, timestamps: np.ndarray) -> None:
    """Write c2w poses to a TUM file atomically (:func:`datagen.atomic.atomic_write`)."""
    rows = poses_to_tum_rows(poses, timestamps)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("# timestamp tx ty tz qx qy qz qw (camera-to-world)\n")
            for r in rows:
                f.write(" ".join(f"{v:.9f}" for v in r) + "\n")

    atomic_write(path, write)


def read_tum(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM file -> ((N,) timestamps in seconds, (N,4,4) c2w poses), sorted by time."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TUM trajectory file not found: {path}")
    rows = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.replace(",", " ").split()
            if len(parts) != 8:
                raise ValueError(f"{path}:{ln}: expected 8 numbers 'timestamp tx ty tz qx qy qz qw', "
                                 f"got {len(parts)}")
            rows.append([float(p) for p in parts])
    if not rows:
        raise ValueError(f"{path}: no poses in TUM file")
    a = np.array(rows, dtype=np.float64)
    a = a[np.argsort(a[:, 0], kind="stable")]
    qn = np.linalg.norm(a[:, 4:8], axis=1)
    if np.any(qn < 1e-9):
        raise ValueError(f"{path}: zero quaternion in TUM file")
    poses = np.tile(np.eye(4), (a.shape[0], 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(a[:, 4:8] / qn[:, None]).as_matrix()
    poses[:, :3, 3] = a[:, 1:4]
    return a[:, 0], poses


def trajectory_for_frames(path: str, num_frames: int, fps: float) -> np.ndarray:
    """Load an external estimator's TUM file as (num_frames,4,4) c2w, one pose per frame.

    Poses are matched to frames by timestamp: frame i has time i / fps; each frame takes the pose
    with the nearest timestamp, which must be within half a frame period. Files whose timestamps are
    frame indices (0, 1, 2, ...) are accepted too (detected when the last timestamp is about
    num_frames - 1 and the file has num_frames rows).
    """
    ts, poses = read_tum(path)
    if len(ts) == num_frames and abs(ts[-1] - (num_frames - 1)) < 1e-6 and num_frames > 1 and fps != 1.0:
        ts = ts / fps  # frame-index timestamps
    want = np.arange(num_frames) / float(fps)
    idx = np.clip(np.searchsorted(ts, want), 0, len(ts) - 1)
    prev = np.clip(idx - 1, 0, len(ts) - 1)
    idx = np.where(np.abs(ts[prev] - want) < np.abs(ts[idx] - want), prev, idx)
    err = np.abs(ts[idx] - want)
    bad = np.nonzero(err > 0.5 / fps + 1e-9)[0]
    if bad.size:
        raise ValueError(f"{path}: no pose within half a frame of frame {int(bad[0])} (t={want[bad[0]]:.3f}s); "
                         f"the file covers {ts[0]:.3f}..{ts[-1]:.3f}s for {num_frames} frames at {fps} fps")
    return poses[idx]
