"""A task suite on disk: save and load, versioned.

Layout (``SUITE_FORMAT`` / ``SUITE_VERSION`` in ``manifest.json``)::

    SUITE/
      manifest.json                 format, version, suite name, build config, task list + hashes
      tasks/<task_id>/
        task.json                   task_id, family, scene_id, prompt, K, width, height, fps,
                                    gamma, num_frames, meta
        first_frame.png             frame 0 (the model's input), same as frames/000000.png
        actions.npy                 (N-1 or N, 13) float32 RELIC labels; row i moves frame i -> i+1
                                    (a row N-1, if present, is never used)
        poses.npy                   (N, 4, 4) float64 ground-truth camera-to-world (ours)
        revisits.csv                columns datagen.corpus.format.REVISIT_COLUMNS
        frames/%06d.png             N lossless RGB PNGs (ground truth for every step)
        depth.npz                   key "depth": (N, H, W) float32 planar metres, inf = no hit

Every array is stored losslessly. ``content_sha256`` in the manifest is the SHA-256 of the task's
arrays (poses, actions, frames, depth) and its JSON, so two builds can be compared bit for bit.
The loader refuses any format/version it does not know.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from benchmark.tasks.task import REVISIT_COLUMNS, Task
from datagen.atomic import atomic_write_bytes
from datagen.filebytes import npy_bytes

SUITE_FORMAT = "relic-bench-suite"
SUITE_VERSION = 1
KNOWN_VERSIONS = (1,)


def _atomic_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return enc.tobytes()


def read_png_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PNG file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def task_hash(task_json: dict, actions: np.ndarray, poses: np.ndarray, frames: np.ndarray,
              depth: np.ndarray, revisits: pd.DataFrame) -> str:
    """SHA-256 over a task's JSON and arrays (the determinism fingerprint)."""
    h = hashlib.sha256()
    h.update(json.dumps(task_json, sort_keys=True).encode())
    for a in (actions, poses, frames, depth):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    h.update(revisits.to_csv(index=False, float_format="%.6g").encode())
    return h.hexdigest()


def task_to_json(task: Task) -> dict:
    return {
        "task_id": task.task_id, "family": task.family, "scene_id": task.scene_id, "prompt": task.prompt,
        "K": np.asarray(task.K, dtype=np.float64).tolist(), "width": int(task.width), "height": int(task.height),
        "fps": float(task.fps), "gamma": float(task.gamma), "num_frames": int(task.num_frames),
        "meta": task.meta,
    }


def save_task(task: Task, suite_dir: Path, frames: np.ndarray, depth: np.ndarray) -> dict:
    """Write one task (atomically per file) under ``suite_dir/tasks/<task_id>``; return its manifest entry."""
    n = task.num_frames
    frames = np.asarray(frames, dtype=np.uint8)
    depth = np.asarray(depth, dtype=np.float32)
    if frames.shape != (n, task.height, task.width, 3):
        raise ValueError(f"task {task.task_id}: frames shape {frames.shape} != {(n, task.height, task.width, 3)}")
    if depth.shape != (n, task.height, task.width):
        raise ValueError(f"task {task.task_id}: depth shape {depth.shape} != {(n, task.height, task.width)}")
    actions = np.asarray(task.actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 13 or actions.shape[0] not in (n - 1, n):
        raise ValueError(f"task {task.task_id}: actions shape {actions.shape}, expected ({n - 1} or {n}, 13)")
    d = Path(suite_dir) / "tasks" / task.task_id
    tj = task_to_json(task)
    revisits = task.revisits[REVISIT_COLUMNS].reset_index(drop=True)
    atomic_write_bytes(d / "actions.npy", npy_bytes(actions))
    atomic_write_bytes(d / "poses.npy", npy_bytes(np.asarray(task.gt_poses, dtype=np.float64)))
    atomic_write_bytes(d / "revisits.csv", revisits.to_csv(index=False).encode())
    for i in range(n):
        atomic_write_bytes(d / "frames" / f"{i:06d}.png", _png_bytes(frames[i]))
    atomic_write_bytes(d / "first_frame.png", _png_bytes(frames[0]))
    buf = io.BytesIO()
    np.savez_compressed(buf, depth=depth)
    atomic_write_bytes(d / "depth.npz", buf.getvalue())
    _atomic_json(d / "task.json", tj)  # last: its presence marks a complete task
    return {"task_id": task.task_id, "family": task.family, "scene_id": task.scene_id, "num_frames": n,
            "fps": float(task.fps), "duration_s": n / float(task.fps), "num_revisits": int(len(revisits)),
            "content_sha256": task_hash(tj, actions, task.gt_poses, frames, depth, revisits)}


def write_manifest(suite_dir: Path, suite: str, config: dict, entries: list[dict]) -> dict:
    manifest = {"format": SUITE_FORMAT, "version": SUITE_VERSION, "suite": suite, "config": config,
                "tasks": entries}
    _atomic_json(Path(suite_dir) / "manifest.json", manifest)
    return manifest


def read_manifest(suite_dir: Path) -> dict:
    """The suite's manifest; raises on a missing file or an unknown format/version."""
    p = Path(suite_dir) / "manifest.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: build a suite with `relic bench tasks --out {suite_dir}`")
    m = json.loads(p.read_text())
    if m.get("format") != SUITE_FORMAT:
        raise ValueError(f"{p}: format {m.get('format')!r} is not a {SUITE_FORMAT}")
    if m.get("version") not in KNOWN_VERSIONS:
        raise ValueError(f"{p}: suite version {m.get('version')!r} is not supported by this relic-suite "
                         f"(known: {list(KNOWN_VERSIONS)}); rebuild it with `relic bench tasks`")
    return m


def load_task(task_dir: Path) -> Task:
    """Load one task; frames and depth are read lazily on first use."""
    task_dir = Path(task_dir)
    tj = json.loads((task_dir / "task.json").read_text())
    n = int(tj["num_frames"])
    revisits = pd.read_csv(task_dir / "revisits.csv")
    for c in REVISIT_COLUMNS:
        if c not in revisits.columns:
            raise ValueError(f"{task_dir}/revisits.csv lacks column {c}")
    revisits["later"] = revisits["later"].astype(int)
    revisits["earlier"] = revisits["earlier"].astype(int)

    def frames_loader() -> np.ndarray:
        return np.stack([read_png_rgb(task_dir / "frames" / f"{i:06d}.png") for i in range(n)])

    def depth_loader() -> np.ndarray:
        with np.load(task_dir / "depth.npz") as z:
            return z["depth"].astype(np.float32)

    return Task(task_id=tj["task_id"], family=tj["family"], scene_id=tj["scene_id"], prompt=tj["prompt"],
                K=np.asarray(tj["K"], dtype=np.float64), width=int(tj["width"]), height=int(tj["height"]),
                fps=float(tj["fps"]), actions=np.load(task_dir / "actions.npy"), gamma=float(tj["gamma"]),
                gt_poses=np.load(task_dir / "poses.npy"), revisits=revisits,
                _frames_loader=frames_loader, _depth_loader=depth_loader, meta=dict(tj.get("meta", {})))


@dataclass
class Suite:
    """A loaded suite: its directory, manifest and tasks (in manifest order)."""

    root: Path
    manifest: dict
    tasks: list[Task] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.manifest.get("suite", "?"))

    @property
    def content_hash(self) -> str:
        """SHA-256 over the manifest's per-task ``content_sha256`` (sorted by task id): two suites with
        the same hash hold bit-identical tasks (inputs and ground truth). A machine whose renderer
        rounds differently builds a suite with another hash; results are then compared with the gate's
        tolerances, which were measured across re-rendered suites (benchmark/README.md)."""
        return suite_content_hash(self.manifest)

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.task_id == task_id:
                return t
        raise KeyError(f"no task {task_id!r} in suite {self.root}")


def suite_content_hash(manifest: dict) -> str:
    """See :attr:`Suite.content_hash`."""
    lines = sorted(f"{e['task_id']}:{e.get('content_sha256', '')}" for e in manifest.get("tasks", []))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_suite(suite_dir: Path, task_ids: list[str] | None = None) -> Suite:
    """Load a suite (checks format/version); optionally only ``task_ids``."""
    suite_dir = Path(suite_dir)
    m = read_manifest(suite_dir)
    tasks = []
    for e in m["tasks"]:
        if task_ids and e["task_id"] not in task_ids:
            continue
        d = suite_dir / "tasks" / e["task_id"]
        if not (d / "task.json").exists():
            raise FileNotFoundError(f"suite {suite_dir}: task {e['task_id']} is incomplete; rebuild the suite")
        tasks.append(load_task(d))
    if task_ids:
        missing = set(task_ids) - {t.task_id for t in tasks}
        if missing:
            raise ValueError(f"suite {suite_dir} has no task(s) {sorted(missing)}")
    return Suite(root=suite_dir, manifest=m, tasks=tasks)
