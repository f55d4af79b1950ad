"""Camera-trajectory estimator built on COLMAP's incremental structure-from-motion (pycolmap, CPU).

Selectable as ``--estimator colmap`` (registry name ``colmap``). Optional dependency: install it with
``pip install -e .[colmap]`` (pins ``pycolmap``); without it the estimator raises ImportError naming
that command.

Pipeline (one temporary folder per call, removed afterwards):
0. Repeated frames: a frame whose mean absolute luma difference to the last kept frame is <=
   ``static_mad`` grey levels (an idle camera) is not handed to COLMAP; it takes the pose of the
   last kept frame (step kind "static"). Identical frames give zero-parallax matches that only slow
   bundle adjustment down and can seed a degenerate initial pair.
1. Kept frames narrower than ``min_width`` are upscaled (bicubic) by f = min_width / W and K becomes
   diag(f, f, 1) K (exact: the suite and COLMAP both put pixel centres at integer + 0.5). They are
   written as lossless PNGs named by frame index.
2. SIFT feature extraction (CPU, one thread; COLMAP's first_octave=-1 doubles the image again),
   one shared PINHOLE camera with the suite's K.
3. Sequential matching over an explicit pair list: kept frame i against i+1..i+``overlap`` plus
   i + 2^k * ``overlap`` up to ``max_gap`` (``quadratic_overlap``); no loop detection (COLMAP's
   needs a vocabulary tree, i.e. a download). Geometric verification with a fixed RANSAC seed.
4. Incremental mapping (several models allowed) with the intrinsics held fixed (no focal,
   principal-point or extra-parameter refinement, neither in bundle adjustment nor in absolute-pose
   estimation), fixed random seeds, one thread; COLMAP's initial-pair bars (median triangulation
   angle ``init_min_tri_angle`` = 16 deg, 100 inliers); global BA each time a model grows by
   ``ba_global_ratio`` (30%; COLMAP: 10%), at most ``ba_global_max_refinements`` refinements (speed;
   capping the BA iterations instead broke models, measured).
5. Poses: COLMAP's cam_from_world of each registered image, inverted to camera-to-world (COLMAP's
   camera axes are OpenCV's), re-expressed relative to frame 0 (frame 0 = identity).

Degenerate models. A model in which a camera moves more than ``max_step_depth`` (0.25) x the
model's median point depth between consecutive frames is discarded (its frames count as failed).
On pure pans COLMAP still finds "initial pairs" (noise) and builds models whose camera centres jump
by 1e3-1e9 x the scene depth; this rule removes them (the suite moves <= 0.1 m per frame at >= ~1 m).

Known weakness of this rule (measured): a video that really jumps (the reversed smoke video, frame
0 -> its last frame: 0.9 x the scene depth in one frame) loses its whole, otherwise good model, and
every frame is failed. A rule on the median step (> 0.1 x depth) plus a much higher bound on the
largest one (> 5 x) would keep such models; not adopted yet (not measured on the whole suite).

Multiple models. The trajectory is chained in frame order: the model holding frame 0 (the largest
if several), else the one holding the earliest frame, is the reference. Every other model, by its
first frame, is scaled by (reference's median point depth) / (its median point depth) (the same
scene is seen at a similar depth; centre distances are useless on the pure rotations where models
break), and rotated / translated onto the trajectory: with shared frames by the chordal mean of
the rotation offsets and the median centre offset; with none at its first frame, which gets the
pose of the last trajectory frame before it (the gap is taken as no motion). Each junction is
listed in ``notes``. Frames already in the trajectory keep their pose.

Unregistered frames (COLMAP could not pose them, or they fall in a gap between models): rotation
is slerped and the camera centre linearly interpolated between the nearest registered frames before
and after; before the first / after the last registered frame the nearest registered pose is held.
Their ``step_kind`` is "failed" (step i describes frame i+1); registered frames get "sfm", repeats
"static". Frame 0 unregistered: poses are expressed relative to the first registered frame and
every step up to it is "failed".

Metric scale. With ``depth0`` (frame 0's ground-truth planar depth in metres, inf = sky), the
trajectory is scaled so that the depths of the 3D points observed in frame 0 (in frame 0's camera)
match ``depth0`` at their keypoints (median of the ratios over points with finite positive GT
depth; at least ``min_anchor_points``), and ``metric`` is True. Without ``depth0``, or when frame 0
is not registered or sees too few points, the scale is COLMAP's (arbitrary) and ``metric`` is False.

Determinism: every COLMAP stage runs on one thread with fixed random seeds
(``pycolmap.set_random_seed`` and every ``random_seed`` option), so the same frames give
bit-identical poses whatever OMP_NUM_THREADS says (tested in a second process).

Known limitations (measured on the smoke suite, reports/perf_pose_colmap.md): incremental SfM needs
a baseline to initialise and to triangulate, so pure pans / rotations with no translation are not
reconstructed: those frames are failed (held / interpolated). It is slow on CPU (tenths of a
second per frame on 2 cores, mostly bundle adjustment).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional

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
    rotation_fallback: bool = False    # pose frames in no model by a rotation-only fit ("colmap-rot")
    rot_min_inliers: int = 15
    rot_tol_deg: float = 0.25          # inlier tolerance floor of the rotation-only fit

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
        return self.estimate(frames, K, depth0, fallbacks=(self.rotation_fallback,))[0]

    def estimate(self, frames: np.ndarray, K: np.ndarray, depth0: Optional[np.ndarray] = None,
                 fallbacks: tuple[bool, ...] = (False,)) -> list[EstimateResult]:
        """One reconstruction, assembled once per entry of ``fallbacks`` (rotation-only fallback
        off / on), so both variants can be evaluated for the price of one COLMAP run."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N,H,W,3), got {frames.dtype} {frames.shape}")
        n = frames.shape[0]
        pycolmap = _import_pycolmap()
        if n < 2:
            return [EstimateResult(poses=np.tile(np.eye(4), (n, 1, 1)), step_kind=[], metric=depth0 is not None)
                    for _ in fallbacks]
        keep = self._static_keep(frames)
        if len(keep) < 2:
            return [EstimateResult(poses=np.tile(np.eye(4), (n, 1, 1)), step_kind=["static"] * (n - 1),
                                   notes=["colmap: every frame repeats frame 0 (static video)"],
                                   metric=depth0 is not None) for _ in fallbacks]
        level = pycolmap.logging.minloglevel
        if not self.verbose:
            pycolmap.logging.minloglevel = max(level, 2)
        work = tempfile.mkdtemp(prefix="relic-colmap-")
        db = None
        try:
            recs, f = self._reconstruct(frames, K, work, keep)
            out = []
            for fb in fallbacks:
                rot_fn = None
                if fb:
                    if db is None:
                        db = pycolmap.Database.open(os.path.join(work, "database.db"))
                    rot_fn = self._rotation_fn(db, np.diag([f, f, 1.0]) @ np.asarray(K, dtype=np.float64))
                out.append(_assemble(recs, n, f, depth0, self.min_anchor_points, self.max_step_depth, keep, rot_fn))
            return out
        finally:
            if db is not None:
                db.close()
            pycolmap.logging.minloglevel = level
            shutil.rmtree(work, ignore_errors=True)

    def _rotation_fn(self, db, Ku: np.ndarray) -> Callable[[int, int], Optional[np.ndarray]]:
        """rot(p, j): rotation-only fit (Kabsch on the bearings of COLMAP's verified inlier matches)
        from kept frame p to kept frame j; None without a verified pair or with too few inliers."""
        Kinv = np.linalg.inv(Ku)
        ids: dict[int, int] = {}

        def image_id(i: int) -> int:
            if i not in ids:
                ids[i] = db.read_image_with_name(f"{i:06d}.png").image_id
            return ids[i]

        def bearings(image: int, idx: np.ndarray) -> np.ndarray:
            xy = np.asarray(db.read_keypoints(image), dtype=np.float64)[idx, :2]
            b = np.column_stack([xy, np.ones(len(xy))]) @ Kinv.T
            return b / np.linalg.norm(b, axis=1, keepdims=True)

        def rot(p: int, j: int) -> Optional[np.ndarray]:
            a, b = image_id(p), image_id(j)
            if not db.exists_two_view_geometry(a, b):
                return None
            m = np.asarray(db.read_two_view_geometry(a, b).inlier_matches)
            if m.ndim != 2 or len(m) < self.rot_min_inliers:
                return None
            return _rotation_only(bearings(a, m[:, 0]), bearings(b, m[:, 1]), self.rot_min_inliers,
                                  np.radians(self.rot_tol_deg))

        return rot


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


def _rotate_from(prev: np.ndarray, R_rel: np.ndarray) -> np.ndarray:
    """Pose of a camera at ``prev``'s centre turned by R_rel (bearing b = R_rel a from prev to it)."""
    out = prev.copy()
    out[:3, :3] = prev[:3, :3] @ R_rel.T
    return out


def _chain_models(models: list[tuple[dict[int, np.ndarray], float]], kept: list[int], notes: list[str],
                  rot_fn: Optional[Callable[[int, int], Optional[np.ndarray]]] = None
                  ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Walk the kept frames in order and give each a pose (module docstring, "Multiple models").

    ``models``: (frame -> c2w, median point depth); ``models[0]`` is the reference (it holds frame
    0), or None for frame 0 at the identity without a model. ``rot_fn(p, j)``: rotation-only fit
    from kept frame p to j (None when it has too few matches); without ``rot_fn`` a frame no model
    holds is left out (interpolated later). Returns (poses, kind per posed frame)."""
    ref = models[0]
    traj: dict[int, np.ndarray] = dict(ref[0]) if ref is not None else {kept[0]: np.eye(4)}
    kind = {k: "sfm" for k in traj} if ref is not None else {kept[0]: "sfm"}
    d_ref = ref[1] if ref is not None else None
    pending = sorted(models[1:], key=lambda it: (min(it[0]), -len(it[0])))
    prev = kept[0]
    for j in kept[1:]:
        if j in traj:
            prev = j
            continue
        hit = [it for it in pending if j in it[0]]
        if hit:
            m, d_m = max(hit, key=lambda it: len(it[0]))
            pending = [it for it in pending if it[0] is not m]
            if d_ref is None:
                d_ref = d_m
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
                before = max(k for k in traj if k < j)
                R_rel = rot_fn(before, j) if rot_fn is not None else None
                anchor = _rotate_from(traj[before], R_rel) if R_rel is not None else traj[before]
                R = anchor[:3, :3] @ m[j][:3, :3].T
                t = anchor[:3, 3] - s * (R @ m[j][:3, 3])
                how = "a rotation-only fit" if R_rel is not None else "no motion"
                notes.append(f"colmap: model with frames {min(m)}-{max(m)} shares no frame with the trajectory: "
                             f"attached at frame {j} with {how} since frame {before}")
            for k, p in m.items():
                if k not in traj:
                    traj[k] = _sim3_apply(s, R, t, p)
                    kind[k] = "sfm"
        elif rot_fn is not None:
            R_rel = rot_fn(prev, j)
            if R_rel is not None:
                traj[j], kind[j] = _rotate_from(traj[prev], R_rel), "rotation"
            else:
                traj[j], kind[j] = traj[prev].copy(), "failed"
        prev = j if j in traj else prev
    return traj, kind


def _rotation_only(b1: np.ndarray, b2: np.ndarray, min_inliers: int, tol_rad: float) -> Optional[np.ndarray]:
    """Rotation R with b2 ~ R b1 for unit bearings (M,3): Kabsch, then three rounds keeping the
    matches within max(3 x median, tol) of the fit; None with fewer than ``min_inliers``."""
    keep = np.ones(len(b1), dtype=bool)
    R = None
    for _ in range(4):
        if keep.sum() < min_inliers:
            return None
        h = b1[keep].T @ b2[keep]
        u, _, vt = np.linalg.svd(h)
        R = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
        err = np.arccos(np.clip(np.sum((b1 @ R.T) * b2, axis=1), -1.0, 1.0))
        keep = err <= max(3.0 * float(np.median(err[keep])), tol_rad)
    return R if keep.sum() >= min_inliers else None


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
              max_step_depth: float = 0.25, keep: Optional[list[int]] = None,
              rot_fn: Optional[Callable[[int, int], Optional[np.ndarray]]] = None) -> EstimateResult:
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
    keep = list(range(n)) if keep is None else list(keep)
    # reference model: the one holding frame 0 (most images if several); none -> frame 0 = identity
    with0 = [it for it in items if 0 in it[2]]
    ref = max(with0, key=lambda it: (len(it[2]), -it[0])) if with0 else None
    others = [it for it in items if it is not ref]
    traj, kind = _chain_models([(ref[2], ref[3]) if ref is not None else None] + [(it[2], it[3]) for it in others],
                               keep, notes, rot_fn)
    if not items:
        notes.append("colmap: no model reconstructed")
    elif ref is None:
        notes.append("colmap: frame 0 is in no model; it is the identity and the scale is arbitrary")
    if len(items) > 1:
        notes.append(f"colmap: {len(items)} models chained")
    is_kept = np.zeros(n, dtype=bool)
    is_kept[keep] = True
    # repeated frames (not handed to COLMAP) take the pose of the last kept frame before them
    src = np.maximum.accumulate(np.where(is_kept, np.arange(n), 0))
    for i in range(n):
        if not is_kept[i] and src[i] in traj:
            traj[i] = traj[src[i]]
    poses = _fill(traj, n)
    poses = np.linalg.inv(poses[0])[None] @ poses
    metric = False
    if depth0 is not None and ref is not None:
        s, npts = _anchor_scale(ref[1], np.asarray(depth0, dtype=np.float64), f, min_anchor_points)
        if s is not None:
            poses[:, :3, 3] *= s
            metric = True
            notes.append(f"colmap: metric scale from frame 0's depth on {npts} points")
        else:
            notes.append(f"colmap: only {npts} frame-0 points with depth; scale left arbitrary")
    if depth0 is not None and not metric and not np.any(poses[:, :3, 3]):
        metric = True  # no model: every translation is exactly 0, which is 0 m in any scale
        notes.append("colmap: no translation estimated anywhere (0 m, metric)")
    poses[0] = np.eye(4)

    def step(i: int) -> str:
        k = kind.get(int(src[i]), "failed")
        return k if is_kept[i] or k == "failed" else "static"

    step_kind = [step(i + 1) for i in range(n - 1)]
    nf, nr = step_kind.count("failed"), step_kind.count("rotation")
    if nr:
        notes.append(f"colmap: {nr}/{n - 1} frames in no model posed by a rotation-only fit (no translation)")
    if nf:
        notes.append(f"colmap: {nf}/{n - 1} frames not posed (interpolated / held)")
    return EstimateResult(poses=poses, step_kind=step_kind, notes=notes, metric=metric)
