"""Build a versioned task suite on held-out scenes (``relic bench tasks``).

For every :class:`benchmark.tasks.families.TaskSpec` of the suite:

1. the scene: the ``scene_index``-th seed of the scene family whose scene id
   :func:`datagen.curation.splits.scene_split` calls "test" (held out from training and validation;
   asserted again on the generated scene);
2. the camera path: :func:`datagen.trajectories.generate` (the family's generator) on an
   :class:`datagen.backends.embedded.EmbeddedBackend` at the suite's resolution, with collision;
3. ground truth: RGB, planar depth and instance masks rendered at every pose;
4. the actions a model is commanded: :func:`datagen.actions.poses_to_actions` of the ground-truth
   poses (so action following is scored against exactly what a model is told), and gamma;
5. revisit pairs: :func:`datagen.revisit_pairs.find_revisit_pairs` with the ground-truth depth (default
   thresholds: >= 2 s apart, <= 1.5 m, <= 45 deg, overlap >= 0.5). Revisit and long-horizon tasks
   must have >= MIN_REVISIT_PAIRS pairs: the builder tries trajectory seeds
   ``traj_seed + k * SEED_STRIDE`` (k = 0, 1, ...) until one does (deterministic; the seed used is
   recorded in ``meta["traj_seed"]``);
6. the prompt: :func:`datagen.curation.captions.caption_text` of the scene description and the
   objects in view in frame 0 (static content only, never camera motion).

Everything is seeded, so two builds of the same suite are bit-identical (``content_sha256`` per
task in the manifest). A build is resumable: finished tasks whose spec is unchanged are kept.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from benchmark.tasks.families import (MAX_SEED_TRIES, MIN_REVISIT_PAIRS, SEED_STRIDE, SuiteSpec, TaskSpec,
                                      full_suite, mini_suite, smoke_suite)
from benchmark.tasks.io import SUITE_VERSION, _atomic_json, read_manifest, save_task, write_manifest
from benchmark.tasks.render import make_backend
from benchmark.tasks.task import REVISIT_COLUMNS, Task
from datagen.actions import poses_to_actions
from datagen.capture.config import scene_id_for
from datagen.curation.captions import caption_text, visible_objects
from datagen.curation.splits import scene_split, seeds_for_split
from datagen.render.presets import DEFAULT_FOV_DEG
from datagen.revisit_pairs import find_revisit_pairs
from datagen.scenes import library
from datagen.trajectories import generate

SUITES = ("smoke", "full", "mini")
BUILD_STATE = "build_state.json"


def default_scene_families() -> list[str]:
    """The embedded scene families, in the library's order (procedural ones only)."""
    fams = getattr(library, "FAMILIES", None)
    if not fams:
        raise RuntimeError("datagen.scenes.library exposes no scene families")
    return list(fams)


def suite_spec(name: str, width: int | None = None, height: int | None = None, fps: float | None = None,
               scene_families: list[str] | None = None) -> SuiteSpec:
    """The named suite's spec ("smoke" or "full"), optionally at another resolution / fps."""
    fams = scene_families or default_scene_families()
    kw = {k: v for k, v in (("width", width), ("height", height), ("fps", fps)) if v is not None}
    if name == "smoke":
        return smoke_suite(fams, **kw)
    if name == "full":
        return full_suite(fams, **kw)
    if name == "mini":
        return mini_suite(fams, **kw)
    raise ValueError(f"unknown suite {name!r}; use one of {SUITES}")


def scene_id_of(family: str, seed: int) -> str:
    """Scene id of ``generate_scene(family, seed)``: the scene library's naming rule, without
    generating the scene."""
    return scene_id_for(family, seed)


def test_scene_seed(scene_family: str, index: int) -> int:
    """The ``index``-th seed (from 0 up) of ``scene_family`` whose scene is in the test split."""
    return seeds_for_split(lambda s: scene_id_of(scene_family, s), "test", index + 1)[index]


def fov_deg() -> float:
    return float(DEFAULT_FOV_DEG)


def make_prompt(scene, mask0: np.ndarray | None) -> str:
    """Static prompt: scene description + objects in view in frame 0 (no camera motion)."""
    phrases = []
    if mask0 is not None and len(scene.objects):
        vis = visible_objects(mask0[None], len(scene.objects), min_frame_fraction=1.0)[:6]
        phrases = [scene.objects[j].description for j, _ in vis]
    return caption_text(scene.description, phrases)


def build_task(spec: TaskSpec, width: int, height: int, fps: float) -> tuple[Task, np.ndarray, np.ndarray]:
    """Generate one task: (Task without loaders, frames (N,H,W,3) uint8, depth (N,H,W) float32)."""
    seed = test_scene_seed(spec.scene_family, spec.scene_index)
    fov = fov_deg()
    backend = make_backend(spec.scene_family, seed, width, height, fov)
    info = backend.scene_info()
    scene_id = info["scene_id"]
    if scene_split(scene_id) != "test":  # never build a task on a training/validation scene
        raise RuntimeError(f"scene {scene_id} is in split {scene_split(scene_id)!r}, not 'test'")
    K = np.asarray(backend.intrinsics(), dtype=np.float64)
    needs_revisits = spec.family.startswith("revisit") or spec.family.startswith("long")
    tries = MAX_SEED_TRIES if needs_revisits else 1
    for k in range(tries):
        traj_seed = spec.traj_seed + k * SEED_STRIDE
        traj = generate(spec.generator, backend, seed=traj_seed, duration_s=spec.duration_s, fps=fps,
                        **dict(spec.params))
        if needs_revisits and len(getattr(traj, "revisit_plan", []) or []) == 0 and k < tries - 1:
            continue  # cheap pre-check: the generator's own (depth-free) revisit plan is empty
        poses = np.asarray(traj.poses, dtype=np.float64)
        caps = backend.capture_batch(list(poses), kinds=("rgb", "depth", "mask"))
        depth = np.stack([c.depth for c in caps]).astype(np.float32)
        revisits = find_revisit_pairs(poses, K, width, height, depths=depth, fps=fps)[REVISIT_COLUMNS]
        if not needs_revisits or len(revisits) >= MIN_REVISIT_PAIRS:
            break
    else:
        raise RuntimeError(f"task {spec.task_id()}: no trajectory seed in {tries} tries gave "
                           f">= {MIN_REVISIT_PAIRS} revisit pairs; lengthen duration_s")
    n = len(poses)
    frames = np.stack([c.rgb for c in caps]).astype(np.uint8)
    actions, gamma = poses_to_actions(poses)
    scene = getattr(backend, "scene", None)
    prompt = make_prompt(scene, caps[0].mask) if scene is not None else str(info.get("description", ""))
    segments = getattr(traj, "segments", None)
    meta = {"scene": {"family": spec.scene_family, "seed": int(seed), "fov_deg": fov},
            "generator": spec.generator, "traj_seed": traj_seed, "duration_s": spec.duration_s,
            "spec": spec.to_dict()}
    if segments is not None:
        meta["segments"] = _jsonable(segments)
    task = Task(task_id=spec.task_id(), family=spec.family, scene_id=scene_id, prompt=prompt, K=K,
                width=width, height=height, fps=float(fps), actions=np.asarray(actions, np.float32),
                gamma=float(gamma), gt_poses=poses, revisits=revisits.reset_index(drop=True), meta=meta)
    task._frames, task._depth = frames, depth
    if hasattr(backend, "close"):
        backend.close()
    assert task.num_frames == n
    return task, frames, depth


def _jsonable(x):
    try:
        import pandas as pd

        if isinstance(x, pd.DataFrame):
            return x.to_dict(orient="records")
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        from dataclasses import asdict

        return _jsonable(asdict(x))
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def spec_hash(spec: SuiteSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def build_suite(out_dir: Path, spec: SuiteSpec, progress: bool = True) -> dict:
    """Build (or resume) the suite ``spec`` under ``out_dir``; returns the manifest."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_p = out_dir / BUILD_STATE
    state = json.loads(state_p.read_text()) if state_p.exists() else {}
    if state.get("suite_spec_hash") not in (None, spec_hash(spec)):
        state = {}  # a different suite spec in this folder: rebuild every task
    done: dict = state.get("tasks", {})
    entries = []
    for ts in tqdm(spec.tasks, desc=f"suite {spec.name}", disable=not progress):
        tid = ts.task_id()
        prev = done.get(tid)
        if prev and prev["spec"] == ts.to_dict() and (out_dir / "tasks" / tid / "task.json").exists():
            entries.append(prev["entry"])
            continue
        task, frames, depth = build_task(ts, spec.width, spec.height, spec.fps)
        entry = save_task(task, out_dir, frames, depth)
        entries.append(entry)
        done[tid] = {"spec": ts.to_dict(), "entry": entry}
        _atomic_json(state_p, {"suite_spec_hash": spec_hash(spec), "tasks": done})
    config = {"suite_spec": spec.to_dict(), "suite_spec_hash": spec_hash(spec), "format_version": SUITE_VERSION}
    return write_manifest(out_dir, spec.name, config, entries)


def cache_root() -> Path:
    """Where suites built on demand are cached: $RELIC_CACHE or ~/.cache/relic-suite."""
    return Path(os.environ.get("RELIC_CACHE", Path.home() / ".cache" / "relic-suite"))


def ensure_suite(name: str, width: int | None = None, height: int | None = None, progress: bool = True) -> Path:
    """Path of a built suite ``name`` in the cache, building it first when absent or stale."""
    spec = suite_spec(name, width, height)
    d = cache_root() / "suites" / f"{name}-v{SUITE_VERSION}-{spec.width}x{spec.height}-{spec_hash(spec)}"
    try:
        m = read_manifest(d)
        if m.get("config", {}).get("suite_spec_hash") == spec_hash(spec):
            return d
    except (FileNotFoundError, ValueError):
        pass
    build_suite(d, spec, progress=progress)
    return d
