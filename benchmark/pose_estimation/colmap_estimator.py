"""Camera-trajectory estimator built on COLMAP's incremental structure-from-motion (pycolmap, CPU).

Selectable as ``--estimator colmap`` (registry name ``colmap``). Optional dependency: install it with
``pip install -e .[colmap]`` (pins ``pycolmap``); without it the estimator raises ImportError naming
that command.

Pipeline (one temporary folder per call, removed afterwards):
1. Frames (N,H,W,3) uint8 narrower than ``min_width`` are upscaled (bicubic) by f = min_width / W
   and K becomes diag(f, f, 1) K (exact: the suite and COLMAP both put pixel centres at
   integer + 0.5). They are written as lossless PNGs ``000000.png``...
2. SIFT feature extraction (CPU, one thread), one shared PINHOLE camera with the suite's K.
3. Sequential matching: frame i against i+1..i+``overlap`` (linear) plus i+2^k (``quadratic``)
   up to ``max_gap``; no loop detection (it needs a vocabulary tree, i.e. a download).
   Geometric verification with fixed RANSAC seeds.
4. Incremental mapping with the intrinsics held fixed (no focal, principal-point or extra-parameter
   refinement in BA or absolute-pose estimation), fixed random seeds, one thread.
5. Poses: COLMAP's cam_from_world of each registered image, inverted to camera-to-world (COLMAP's
   camera axes are OpenCV's), re-expressed relative to frame 0 (frame 0 = identity).

Multiple models. COLMAP starts a new model when registration breaks. The returned trajectory is
chained in frame order: the model holding frame 0 (or, if none does, the one holding the earliest
frame) comes first; a later model that shares registered frames with the trajectory so far is
attached by a Sim(3) fitted on the shared camera centres and rotations (median scale); a model that
shares none is attached at its first frame, which is given the pose of the frame before it (the gap
is taken as no motion), with its scale set so its median per-frame camera displacement equals the
median per-frame displacement of the trajectory before it. Each such junction is counted and listed
in ``notes``.

Unregistered frames (COLMAP could not pose them, or they fall in a gap between models): rotation
is slerped and the camera centre linearly interpolated between the nearest registered frames before
and after; before the first / after the last registered frame the nearest registered pose is held.
Their ``step_kind`` is "failed" (step i describes frame i+1), registered frames get "sfm".
Frame 0 unregistered: it is the identity by definition and the poses are expressed relative to the
first registered frame (which is then "failed" relative to frame 0: the steps up to it are failed).

Metric scale. With ``depth0`` (frame 0's ground-truth planar depth in metres, inf = sky), the
trajectory is scaled so that the depths of the 3D points observed in frame 0 (in frame 0's camera)
match ``depth0`` at their keypoints (median of the ratios over points with finite positive GT
depth; at least ``min_anchor_points``), and ``metric`` is True. Without ``depth0``, or when frame 0
is not registered or sees too few points, the scale is COLMAP's (arbitrary) and ``metric`` is False.

Determinism: every COLMAP stage runs on one thread with fixed random seeds
(``pycolmap.set_random_seed`` and every ``random_seed`` option), so the same frames give
bit-identical poses whatever OMP_NUM_THREADS says.

Known limitation (measured, reports/perf_pose_colmap.md): incremental SfM needs a baseline to
initialise (``init_min_tri_angle``), so pure pans / rotations with no translation cannot be
reconstructed at all: those frames are failed, held at the identity.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from benchmark.pose_estimation.opencv_estimator import EstimateResult

PIP_HINT = "pip install -e '.[colmap]'  (or: pip install pycolmap==4.2.1)"


def _import_pycolmap():
    try:
        import pycolmap  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"the 'colmap' pose estimator needs pycolmap, which is not installed: {PIP_HINT}") from e
    return pycolmap


def pycolmap_available() -> bool:
    try:
        _import_pycolmap()
        return True
    except ImportError:
        return False


@dataclass
class ColmapEstimator:
    """Callable ``(frames, K, depth0=None) -> EstimateResult``; see the module docstring."""

    min_width: int = 224               # upscale narrower frames to this width (SIFT needs room)
    max_num_features: int = 1024
    peak_threshold: float = 0.004      # SIFT DoG threshold (COLMAP default 0.0067; renders are smooth)
    overlap: int = 5                   # linear sequential matching window
    quadratic_overlap: bool = True     # also match i -> i + 2^k (k >= log2(overlap)+1) ...
    max_gap: int = 40                  # ... up to this frame distance
    init_min_tri_angle: float = 16.0   # degrees (COLMAP's default; lower values initialise on pans)
    init_min_num_inliers: int = 100
    abs_pose_min_num_inliers: int = 15
    min_model_size: int = 5
    min_anchor_points: int = 8
    max_step_depth: float = 0.25       # reject a model where a camera moves more than this x the median
                                       # point depth between consecutive frames (degenerate: pure pans)
    static_mad: float = 0.5            # grey levels: a frame this close to the last kept one is a repeat
    ba_max_iterations: int = -1  # -1: COLMAP default
    ba_global_max_refinements: int = 2
    ba_global_ratio: float = 1.3       # global BA each time the model grows by 30% (COLMAP: 10%)
    seed: int = 0
    num_threads: int = 1
    verbose: bool = False              # COLMAP's INFO log (off: warnings and errors only)

    # -- COLMAP stages ----------------------------------------------------------------------
    def _write_images(self, frames: np.ndarray, K: np.ndarray, image_dir: str, keep: list[int]):
        import cv2

        h, w = frames.shape[1:3]
        f = self.min_width / float(w) if w < self.min_width else 1.0
        os.makedirs(image_dir, exist_ok=True)
        for i in keep:
            im = frames[i]
            if f != 1.0:
                im = cv2.resize(im, (int(round(w * f)), int(round(h * f))), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(os.path.join(image_dir, f"{i:06d}.png"), im[:, :, ::-1])
        return np.diag([f, f, 1.0]) @ np.asarray(K, dtype=np.float64), f

    def _static_keep(self, frames: np.ndarray) -> list[int]:
        """Indices of the frames handed to COLMAP: a frame whose mean absolute luma difference to the
        last kept frame is <= ``static_mad`` grey levels is a repeat (idle camera) and is skipped."""
        luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        keep = [0]
        for i in range(1, frames.shape[0]):
            if float(np.mean(np.abs(luma[i] - luma[keep[-1]]))) > self.static_mad:
                keep.append(i)
        return keep

    def _sequential_pairs(self, n: int) -> list[tuple[int, int]]:
        pairs = set()
        for i in range(n):
            for d in range(1, self.overlap + 1):
                if i + d < n:
                    pairs.add((i, i + d))
            if self.quadratic_overlap:
                d = 2 * self.overlap
                while d <= self.max_gap:
                    if i + d < n:
                        pairs.add((i, i + d))
                    d *= 2
        return sorted(pairs)

    def _reconstruct(self, frames: np.ndarray, K: np.ndarray, work: str, keep: list[int]):
        pycolmap = _import_pycolmap()
        pycolmap.set_random_seed(self.seed)
        image_dir = os.path.join(work, "images")
        db_path = os.path.join(work, "database.db")
        Ku, f = self._write_images(frames, K, image_dir, keep)
        n = len(keep)
        names = [f"{i:06d}.png" for i in keep]

        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(repr(float(v)) for v in (Ku[0, 0], Ku[1, 1], Ku[0, 2], Ku[1, 2]))
        ext = pycolmap.FeatureExtractionOptions()
        ext.num_threads = self.num_threads
        ext.use_gpu = False
        ext.sift.max_num_features = int(self.max_num_features)
        ext.sift.peak_threshold = float(self.peak_threshold)
        timings = {}
        t0 = time.perf_counter()
        pycolmap.extract_features(db_path, image_dir, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=ext, device=pycolmap.Device.cpu)

        timings["extract_s"] = time.perf_counter() - t0
        mo = pycolmap.FeatureMatchingOptions()
        mo.num_threads = self.num_threads
        mo.use_gpu = False
        tvg = pycolmap.TwoViewGeometryOptions()
        tvg.ransac.random_seed = self.seed
        tvg.ransac.num_threads = 1
        # explicit pair list (linear window + power-of-two gaps up to max_gap), so the pairing does
        # not depend on COLMAP's defaults; matched through the imported-pairs path.
        pair_file = os.path.join(work, "pairs.txt")
        with open(pair_file, "w") as fh:
            for a, b in self._sequential_pairs(n):
                fh.write(f"{names[a]} {names[b]}\n")
        ipo = pycolmap.ImportedPairingOptions()
        ipo.match_list_path = pair_file
        pycolmap.match_image_pairs(db_path, matching_options=mo, pairing_options=ipo, verification_options=tvg,
                                   device=pycolmap.Device.cpu)

        timings["match_s"] = time.perf_counter() - t0 - timings["extract_s"]
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = self.num_threads
        opts.random_seed = self.seed
        opts.multiple_models = True
        opts.min_model_size = int(self.min_model_size)
        opts.extract_colors = False
        opts.ba_refine_focal_length = False
        opts.ba_refine_principal_point = False
        opts.ba_refine_extra_params = False
        opts.mapper.num_threads = self.num_threads
        opts.mapper.random_seed = self.seed
        opts.mapper.abs_pose_refine_focal_length = False
        opts.mapper.abs_pose_refine_extra_params = False
        opts.mapper.init_min_tri_angle = float(self.init_min_tri_angle)
        opts.mapper.init_min_num_inliers = int(self.init_min_num_inliers)
        opts.mapper.abs_pose_min_num_inliers = int(self.abs_pose_min_num_inliers)
        opts.triangulation.random_seed = self.seed
        opts.ba_local_max_num_iterations = int(self.ba_max_iterations)
        opts.ba_global_max_num_iterations = int(self.ba_max_iterations)
        opts.ba_local_max_refinements = 1
        opts.ba_global_max_refinements = int(self.ba_global_max_refinements)
        opts.ba_global_frames_ratio = float(self.ba_global_ratio)
        opts.ba_global_points_ratio = float(self.ba_global_ratio)
        out_dir = os.path.join(work, "sparse")
        os.makedirs(out_dir, exist_ok=True)
        recs = pycolmap.incremental_mapping(db_path, image_dir, out_dir, options=opts)
        timings["map_s"] = time.perf_counter() - t0 - timings["extract_s"] - timings["match_s"]
        self.last_timings = timings
        return recs, f

    # -- main entry -------------------------------------------------------------------------
    def __call__(self, frames: np.ndarray, K: np.ndarray, depth0: Optional[np.ndarray] = None) -> EstimateResult:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N,H,W,3), got {frames.dtype} {frames.shape}")
        n = frames.shape[0]
        if n < 2:
            return EstimateResult(poses=np.tile(np.eye(4), (n, 1, 1)), step_kind=[], metric=depth0 is not None)
        pycolmap = _import_pycolmap()
        level = pycolmap.logging.minloglevel
        if not self.verbose:
            pycolmap.logging.minloglevel = max(level, 2)
        work = tempfile.mkdtemp(prefix="relic-colmap-")
        try:
            keep = self._static_keep(frames)
            if len(keep) < 2:
                return EstimateResult(poses=np.tile(np.eye(4), (n, 1, 1)), step_kind=["static"] * (n - 1),
                                      notes=["colmap: every frame repeats frame 0 (static video)"],
                                      metric=depth0 is not None)
            recs, f = self._reconstruct(frames, K, work, keep)
            return _assemble(recs, n, f, depth0, self.min_anchor_points, self.max_step_depth, keep)
        finally:
            pycolmap.logging.minloglevel = level
            shutil.rmtree(work, ignore_errors=True)


# -- assembling COLMAP models into one trajectory ------------------------------------------------
def _model_poses(rec) -> dict[int, np.ndarray]:
    """frame index -> camera-to-world 4x4 of every registered image of a pycolmap Reconstruction."""
    out = {}
    for image in rec.images.values():
        if not image.has_pose:
            continue
        w2c = np.eye(4)
        w2c[:3, :] = image.cam_from_world().matrix()
        out[int(os.path.splitext(image.name)[0])] = np.linalg.inv(w2c)
    return out


def _model_depth(rec) -> float:
    """Median depth of the 3D points in the cameras that observe them (the model's length unit)."""
    zs = []
    for image in rec.images.values():
        if not image.has_pose:
            continue
        cfw = image.cam_from_world()
        R, t = np.asarray(cfw.rotation.matrix()), np.asarray(cfw.translation)
        for p2d in image.points2D:
            if p2d.has_point3D():
                zs.append(float((R @ np.asarray(rec.points3D[p2d.point3D_id].xyz) + t)[2]))
    return float(np.median(zs)) if zs else 0.0


def _max_step_ratio(poses: dict[int, np.ndarray], depth: float) -> float:
    """Largest camera displacement per frame between consecutive registered frames, in units of the
    model's median point depth (inf without points)."""
    ks = sorted(poses)
    if depth <= 0:
        return float("inf")
    steps = [np.linalg.norm(poses[b][:3, 3] - poses[a][:3, 3]) / (b - a) for a, b in zip(ks[:-1], ks[1:])]
    return float(max(steps) / depth) if steps else 0.0


def _sim3_apply(s: float, R: np.ndarray, t: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = R @ c2w[:3, :3]
    out[:3, 3] = s * (R @ c2w[:3, 3]) + t
    return out


def _chain_models(models: list[tuple[dict[int, np.ndarray], float]], notes: list[str]) -> dict[int, np.ndarray]:
    """Chain COLMAP models (poses, median point depth) into one pose dict in the world of the first
    one; see the module docstring."""
    traj, d_ref = dict(models[0][0]), models[0][1]
    for m, d_m in sorted(models[1:], key=lambda it: min(it[0])):
        s = d_ref / d_m if d_m > 0 else 1.0
        shared = sorted(set(m) & set(traj))
        if shared:
            # rotation: chordal mean of R_traj R_m^T; translation: median of c_traj - s R c_m.
            acc = sum(traj[k][:3, :3] @ m[k][:3, :3].T for k in shared)
            u, _, vt = np.linalg.svd(acc)
            R = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
            t = np.median(np.stack([traj[k][:3, 3] - s * (R @ m[k][:3, 3]) for k in shared]), axis=0)
            notes.append(f"colmap: model with frames {min(m)}-{max(m)} attached by {len(shared)} shared frame(s)")
        else:
            j = min(m)
            before = [k for k in traj if k < j]
            anchor = traj[max(before)] if before else traj[min(traj)]
            R = anchor[:3, :3] @ m[j][:3, :3].T
            t = anchor[:3, 3] - s * (R @ m[j][:3, 3])
            notes.append(f"colmap: model with frames {min(m)}-{max(m)} shares no frame with the trajectory: "
                         f"attached at frame {j} with no motion over the gap")
        for k, p in m.items():
            if k not in traj:
                traj[k] = _sim3_apply(s, R, t, p)
    return traj


def _fill(traj: dict[int, np.ndarray], n: int) -> np.ndarray:
    """(n,4,4): registered poses as given, the others interpolated between the nearest registered
    frames (slerp + linear centre) or held beyond the first / last."""
    ks = np.array(sorted(traj))
    out = np.empty((n, 4, 4))
    for i in range(n):
        if i in traj:
            out[i] = traj[i]
            continue
        after = ks[ks > i]
        before = ks[ks < i]
        if len(before) == 0 or len(after) == 0:
            out[i] = traj[int(after[0] if len(before) == 0 else before[-1])]
            continue
        a, b = int(before[-1]), int(after[0])
        w = (i - a) / (b - a)
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([traj[a][:3, :3], traj[b][:3, :3]])))
        out[i] = np.eye(4)
        out[i][:3, :3] = slerp([w]).as_matrix()[0]
        out[i][:3, 3] = (1 - w) * traj[a][:3, 3] + w * traj[b][:3, 3]
    return out


def _anchor_scale(rec, depth0: np.ndarray, f: float, min_points: int) -> tuple[Optional[float], int]:
    """Median of GT depth / reconstructed depth over the 3D points observed in frame 0 (image
    ``000000.png`` of ``rec``); keypoints are in the upscaled image (factor ``f``)."""
    image = rec.find_image_with_name("000000.png")
    if image is None or not image.has_pose:
        return None, 0
    cfw = image.cam_from_world()
    R = np.asarray(cfw.rotation.matrix())
    t = np.asarray(cfw.translation)
    h, w = depth0.shape
    ratios = []
    for p2d in image.points2D:
        if not p2d.has_point3D():
            continue
        x, y = np.asarray(p2d.xy, dtype=np.float64) / f
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < h and 0 <= col < w):
            continue
        d = float(depth0[row, col])
        z = float((R @ np.asarray(rec.points3D[p2d.point3D_id].xyz) + t)[2])
        if np.isfinite(d) and d > 0 and z > 0:
            ratios.append(d / z)
    if len(ratios) < min_points:
        return None, len(ratios)
    return float(np.median(ratios)), len(ratios)


def _assemble(recs: dict, n: int, f: float, depth0: Optional[np.ndarray], min_anchor_points: int,
              max_step_depth: float = 0.25, keep: Optional[list[int]] = None) -> EstimateResult:
    notes: list[str] = []
    items = []
    for rid, rec in sorted(recs.items()):
        P = _model_poses(rec)
        if not P:
            continue
        depth = _model_depth(rec)
        ratio = _max_step_ratio(P, depth)
        if ratio > max_step_depth:
            notes.append(f"colmap: model with frames {min(P)}-{max(P)} rejected as degenerate (a camera moves "
                         f"{ratio:.3g} x the median scene depth in one frame; pure rotation?)")
            continue
        items.append((rid, rec, P, depth))
    if not items:
        notes.append(f"colmap: no model reconstructed; all {n - 1} frames failed (held at frame 0)")
        return EstimateResult(poses=np.tile(np.eye(4), (n, 1, 1)), step_kind=["failed"] * (n - 1), notes=notes,
                              metric=False)
    # reference model: the one holding frame 0 (most images if several), else the earliest frame.
    with0 = [it for it in items if 0 in it[2]]
    ref = max(with0, key=lambda it: (len(it[2]), -it[0])) if with0 else min(items, key=lambda it: (min(it[2]), it[0]))
    others = [it for it in items if it is not ref]
    traj = _chain_models([(ref[2], ref[3])] + [(it[2], it[3]) for it in others], notes)
    if len(items) > 1:
        notes.append(f"colmap: {len(items)} models chained")
    keep = list(range(n)) if keep is None else list(keep)
    is_kept = np.zeros(n, dtype=bool)
    is_kept[keep] = True
    registered = np.zeros(n, dtype=bool)
    registered[sorted(traj)] = True
    # repeated frames (not handed to COLMAP) take the pose of the last kept frame before them
    src = np.maximum.accumulate(np.where(is_kept, np.arange(n), 0))
    for i in range(n):
        if not is_kept[i] and registered[src[i]]:
            traj[i] = traj[src[i]]
    poses = _fill(traj, n)
    first = int(np.argmax(registered))
    poses = np.linalg.inv(poses[first])[None] @ poses
    if first > 0:
        notes.append(f"colmap: frame 0 not registered; poses relative to frame {first}")
        registered[:first + 1] = False  # steps up to the first registered frame are unknown
    metric = False
    if depth0 is not None and first == 0:
        s, npts = _anchor_scale(ref[1], np.asarray(depth0, dtype=np.float64), f, min_anchor_points)
        if s is not None:
            poses[:, :3, 3] *= s
            metric = True
            notes.append(f"colmap: metric scale from frame 0's depth on {npts} points")
        else:
            notes.append(f"colmap: only {npts} frame-0 points with depth; scale left arbitrary")
    poses[0] = np.eye(4)
    step_kind = ["failed" if not registered[src[i + 1]] else "sfm" if is_kept[i + 1] else "static"
                 for i in range(n - 1)]
    if first > 0:
        step_kind[:first] = ["failed"] * first
    nf = step_kind.count("failed")
    if nf:
        notes.append(f"colmap: {nf}/{n - 1} frames not registered (interpolated / held)")
    return EstimateResult(poses=poses, step_kind=step_kind, notes=notes, metric=metric)
