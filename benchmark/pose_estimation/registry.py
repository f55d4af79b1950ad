"""Pluggable camera-trajectory estimators, by name.

An estimator is a callable ``(frames (N,H,W,3) uint8, K (3,3)) -> EstimateResult | ndarray (N,4,4)``
returning camera-to-world poses (any world frame; metric when anchored by ``depth0``, otherwise any
global scale: benchmark.metrics.action_following fits one). Built in: ``direct`` (photometric
keyframe odometry, the default since scoring protocol 2), ``opencv`` (KLT tracks, protocol 1's
default), ``opencv-orb`` (ORB), ``opencv-sift`` (SIFT). External estimators (ViPE, MegaSaM,
DROID-SLAM, ...) run elsewhere and hand in TUM files (benchmark.pose_estimation.tum), which
``benchmark.scoring.score_task(est_trajectory=...)`` accepts directly.
"""
from __future__ import annotations

import inspect
from typing import Callable, Optional, Union

import numpy as np

from benchmark.pose_estimation import pose_cache
from benchmark.pose_estimation.direct_estimator import DirectEstimator
from benchmark.pose_estimation.opencv_estimator import EstimateResult, OpenCVEstimator

EstimatorFn = Callable[[np.ndarray, np.ndarray], Union[EstimateResult, np.ndarray]]

_REGISTRY: dict[str, Callable[[], EstimatorFn]] = {
    "direct": lambda: DirectEstimator(),
    "opencv": lambda: OpenCVEstimator(feature="klt"),
    "opencv-orb": lambda: OpenCVEstimator(feature="orb"),
    "opencv-sift": lambda: OpenCVEstimator(feature="sift"),
    # COLMAP incremental SfM (optional extra `pip install -e .[colmap]`; imported on first use)
    "colmap": lambda: __import__("benchmark.pose_estimation.colmap_estimator",
                                 fromlist=["ColmapEstimator"]).ColmapEstimator(),
    "colmap-rot": lambda: __import__("benchmark.pose_estimation.colmap_estimator",
                                     fromlist=["ColmapEstimator"]).ColmapEstimator(rotation_fallback=True),
}


# deterministic estimators whose whole code lives in this package (the pose cache's key covers it);
# COLMAP is not among them (its library and threads decide its result)
_CACHEABLE = {"direct", "opencv", "opencv-orb", "opencv-sift"}


def register_estimator(name: str, factory: Callable[[], EstimatorFn]) -> None:
    """Register ``factory`` (no-argument callable returning an estimator) under ``name``."""
    if not name or not isinstance(name, str):
        raise ValueError("estimator name must be a non-empty string")
    _REGISTRY[name] = factory
    _CACHEABLE.discard(name)  # a re-registered name is no longer the code the cache key covers


def available_estimators() -> list[str]:
    return sorted(_REGISTRY)


def get_estimator(estimator: Union[str, EstimatorFn]) -> EstimatorFn:
    """Resolve a registered name (or pass a callable through)."""
    if callable(estimator):
        return estimator
    if estimator not in _REGISTRY:
        raise ValueError(f"unknown pose estimator {estimator!r}; registered: {available_estimators()} "
                         "(or pass est_trajectory from a TUM file)")
    return _REGISTRY[estimator]()


def accepts_depth0(fn) -> bool:
    """Whether estimator ``fn`` takes a ``depth0`` keyword (frame 0's ground-truth depth)."""
    return _accepts(fn, "depth0")


def accepts_depth_ref(fn) -> bool:
    """Whether estimator ``fn`` takes a ``depth_ref`` keyword (the reference depth of every frame)."""
    return _accepts(fn, "depth_ref")


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def run_estimator(estimator: Union[str, EstimatorFn], frames: np.ndarray, K: np.ndarray,
                  depth0: Optional[np.ndarray] = None, depth_ref: Optional[np.ndarray] = None,
                  ref_poses: Optional[np.ndarray] = None, use_cache: bool = True) -> EstimateResult:
    """Run an estimator and normalise its output to an EstimateResult. ``depth0`` (frame 0's planar
    depth, metres) and ``depth_ref`` ((N,H,W): the reference's depth at every commanded pose, from which
    the default estimator takes its keyframes' depth) and ``ref_poses`` ((N,4,4) camera-to-world: the
    commanded poses that depth was rendered at; the default estimator picks the reference frame nearest
    each keyframe's estimated pose) are handed to estimators that accept them,
    ignored otherwise. A built-in estimator (given by name) reads and fills the pose cache when
    ``RELIC_POSE_CACHE`` is set (``pose_cache``) unless ``use_cache`` is False."""
    cache_key = None
    if use_cache and isinstance(estimator, str) and estimator in _CACHEABLE and pose_cache.cache_dir() is not None:
        cache_key = pose_cache.key(estimator, frames, K, depth0, depth_ref, ref_poses)
        hit = pose_cache.load(cache_key)
        if hit is not None and hit[0].shape == (frames.shape[0], 4, 4):
            return EstimateResult(poses=hit[0], step_kind=hit[1], notes=hit[2], metric=hit[3])
    out = _run(estimator, frames, K, depth0, depth_ref, ref_poses)
    if cache_key is not None:
        pose_cache.store(cache_key, out.poses, out.step_kind, out.notes, out.metric)
    return out


def _run(estimator, frames, K, depth0, depth_ref, ref_poses=None) -> EstimateResult:
    fn = get_estimator(estimator)
    kw = {}
    if depth0 is not None and accepts_depth0(fn):
        kw["depth0"] = depth0
    if depth_ref is not None and accepts_depth_ref(fn):
        kw["depth_ref"] = depth_ref
    if ref_poses is not None and _accepts(fn, "ref_poses"):
        kw["ref_poses"] = ref_poses
    out = fn(frames, K, **kw)
    if isinstance(out, EstimateResult):
        return out
    poses = np.asarray(out, dtype=np.float64)
    if poses.shape != (frames.shape[0], 4, 4):
        raise ValueError(f"estimator returned poses of shape {poses.shape}, expected {(frames.shape[0], 4, 4)}")
    return EstimateResult(poses=poses, step_kind=["unknown"] * (frames.shape[0] - 1))
