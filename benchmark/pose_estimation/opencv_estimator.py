"""Default camera-trajectory estimator: monocular visual odometry with OpenCV (CPU).

Assumptions: a pinhole camera with the task's intrinsics K (no distortion), a static scene,
small motion between frames (the suites: <= ~0.1 m and <= ~3.75 deg per frame at 16 fps), frames
of any size (tiny renders are upscaled). Output scale is arbitrary (Sim(3) alignment fixes it).
Known weaknesses (measured, see reports/perf_pose_validity.md): rotation is accurate (median
0.1-0.3 deg/frame on ground-truth smoke videos); translation is weak on tiny shallow scenes:
a sideways strafe at ~3 m is nearly indistinguishable from a yaw over one frame (it is then
taken for ~1.8 deg/frame of rotation), and translation magnitudes between re-initialisations
follow a constant-speed prior.

Input: RGB uint8 frames (N,H,W,3) and the pinhole intrinsics K (pixel centres at integer + 0.5,
datagen.conventions). Frames wider than ``max_width`` are first downscaled (INTER_AREA) by
f = max_width / W, frames narrower than ``min_width`` upscaled (bilinear) by f = min_width / W (small
benchmark renders, so the 21x21 tracking windows and corner detector have room), and K becomes
diag(f, f, 1) K (exact for the pixel-centre-at-+0.5 convention). The luma image is then smoothed with
a Gaussian of ``blur_sigma`` pixels (default 1): renders and generated frames alias, and aliasing
makes corner tracks jitter (measured: it lowers the noise floor on rendered tasks).

Output: (N,4,4) camera-to-world poses in the estimator's own world (frame 0 = identity, OpenCV
camera axes) with an arbitrary global scale; benchmark.metrics.rpe aligns them to the commanded
trajectory with Sim(3) before computing errors.

Tracks. ``feature="klt"`` (default): Shi-Tomasi corners tracked frame to frame with pyramidal
Lucas-Kanade (21x21 window, 4 levels), kept only if tracking back lands within ``fb_px`` pixels of
the start (forward-backward check); new corners top the set up to ``max_features`` after every
frame. ``feature="orb"`` / ``"sift"``: keypoints detected per frame, matched to the previous frame
by brute force with Lowe's ratio test (``ratio``) and a mutual-nearest check; a matched keypoint
inherits its match's track id. Either way each frame has (track id, pixel position) pairs.

Poses (keyframe visual odometry). The estimator keeps a keyframe (a frame with known pose and track
positions) and a map of 3D points (track id -> world point, in the estimator's scale).
0. Low texture: when fewer than ``ecc_min_tracks`` tracks survive from the previous frame (flat
   walls), the step's rotation comes from direct image alignment of the two smoothed luma images
   (``cv2.findTransformECC``, homography model, accepted if its correlation is >= ``ecc_min_corr``;
   H projected onto SO(3) through K), with no translation (kind "rotation"). Pure-black pixels
   (luma <= 2: holes of warped or generated frames) are masked out (eroded 7x7); frames with less
   than half valid pixels skip ECC. If ECC is rejected,
   the steps below run as usual.
1. Tracking: if at least ``min_pnp`` tracked points have map points, the pose comes from
   ``cv2.solvePnPRansac`` (EPnP, reprojection threshold ``2 * ransac_px``) refined by
   Levenberg-Marquardt on the inliers (step kind "pnp"). A PnP camera displacement above
   ``max_speed_jump`` times the median of the last 16 PnP displacements is accepted only if the
   two-view model selection (2.) on this frame and the previous one does not call the pair a pure
   rotation; otherwise the frame gets that rotation and no translation (kind "rotation"): when the
   map leaves the view during a pan, PnP on a few badly triangulated points jumps.
   Rotation gate (``rot_gate_deg``, default 1 deg; None disables): the PnP frame-to-frame rotation
   must agree with the rotation-only fit of the consecutive frames (RANSAC homography inliers,
   Kabsch on their bearings; accurate at these tiny baselines). If it differs by more, the frame
   takes the rotation-only fit and the previous step's camera-frame translation (constant
   velocity; kind "rotation"). Measured on the smoke suite this removes PnP's tilts on thin maps
   (median PnP step error 0.7 deg -> 0.4 deg, no more 10-20 deg outliers).
2. Otherwise two-view geometry against the keyframe on their common tracks (if fewer than
   ``max(min_matches, kf_keep_frac * the tracks it shared with the frame after it)``, the previous
   frame becomes the keyframe first): RANSAC homography -> rotation
   ``R_h`` (projection of K^-1 H K onto SO(3), refined by Kabsch on the inlier bearings), and
   essential matrix with the known K + ``cv2.recoverPose`` -> (R, unit t). The translational
   parallax is the median pixel distance between each point and its keyframe position rotated by R
   (rotation removed). If ``R_h`` explains the tracks to within ``rotation_px`` (median) or the
   parallax is below ``min_parallax_px``, the motion is taken as a pure rotation relative to the
   keyframe (kind "rotation", t = 0, the keyframe is kept so parallax can accumulate); otherwise
   (kind "init") the rotation is checked against the chained rotation-only fits since the
   keyframe (the essential matrix over a short baseline trades rotation for translation: before
   this gate its "init" steps had a median error of 4 deg): if they differ by more than
   ``rot_gate_deg`` the chained rotation is kept and the translation direction is re-solved for it
   (epipolar constraint with known R: null vector of the stacked ``b x R a``, signed like E's t).
   The translation's length (the re-initialisation scale, ``reinit_scale="map+depth+moved"``):
   a) scale propagation: if at least ``min_prop`` of the common tracks still have map points, the
      length that makes their two-view triangulation agree in depth (seen from the keyframe) with
      the map, median of the ratios, used if the log-ratios agree (MAD <= ``prop_mad``);
   b) else, with the metric anchor, the frame-0 depth prior: the length that gives the
      triangulated points frame 0's median depth (no drift; wrong by the ratio of the two views'
      depths, hence the clamp);
   c) the speed prior: median per-frame displacement over the last 16 PnP frames times the number
      of frames since the keyframe that MOVED (the rotation-only fit of the pair j-1 -> j leaves a
      median residual above ``moved_px``; pure-rotation and static frames add no baseline). A cue
      from a) or b) that differs from this prior by more than ``reinit_clamp`` x is clamped to it
      (one bad re-initialisation must not collapse or blow up the scale); with no cue it is used;
      1.0 per frame before any PnP speed (unanchored).
   When b) finds nothing to triangulate (a pure rotation taken for a translation), the prior c) is
   used; ``degenerate_zero=True`` gives no translation instead (smoke oracle 0.357, but mostly-hole
   reproject videos then collapse to a near-static estimate that Sim(3) blows up: 0.601 > static).
   The notes count which cue each re-initialisation used. Before 2026-11-26 only c) existed and it
   counted every frame since the keyframe: after a pan (the keyframe is kept while the camera only
   rotates) the first translation got the whole pan's worth of speed, i.e. metres of spurious
   motion. Measured with the oracle video (the estimator's noise floor), 1-s RPE-trans, mean over
   tasks: full suite (224x128, 40 tasks of 5 scenes) 0.495 -> 0.377 m (static: 0.474); smoke
   (112x64) 0.465 -> 0.429 (static 0.512, reproject 0.420 -> 0.446).
   Then the map is re-initialised by triangulating the common tracks, and the frame becomes the keyframe. Frames
   since the keyframe that were posed as pure rotations get their camera centres interpolated
   linearly between the keyframe's and this frame's (back-fill, so slow starts do not jump).
3. Keyframes and map growth: after a PnP frame, when the median rotation-compensated parallax to
   the keyframe exceeds ``kf_parallax_px`` or fewer than half the keyframe's map points are still
   tracked, tracks seen in both frames without a map point are triangulated
   (``cv2.triangulatePoints`` with both poses; kept if in front of both cameras, reprojection error
   below 2 px in both and triangulation angle above ``min_tri_deg``) and the frame becomes the
   keyframe. The global scale is fixed by the first "init"; it drifts slowly and whenever the map
   is lost (e.g. long pure pans) and re-initialised.
Metric anchor (``depth0``, used by benchmark.scoring: frame 0's ground-truth planar depth, which
is the same given first frame for every model and says nothing about the generated frames).
Frame 0's tracks with a smooth, finite depth (3x3 max/min ratio <= ``anchor_edge_ratio``: corners
sit on silhouettes) are back-projected, X = d K^-1 (u, v, 1), into the initial map, so PnP runs
from frame 1 in metres and no essential-matrix initialisation or speed prior is needed while that
map is in view. In this mode the rotation gate of 1. is replaced by model selection on the map
points: the frame is taken as a pure rotation about the previous camera centre (kind "rotation",
no translation) when the rotation-only fit of the consecutive frames explains their tracks to
within ``rotation_px`` (median) AND its reprojection error on the map is at most
``anchor_rot_ratio`` x PnP's + ``anchor_rot_px``; otherwise the PnP pose is kept. A two-view
initialisation before any PnP speed is known gets its metric baseline from frame 0's median
depth (triangulated points' median depth in the keyframe = that depth). Measured on the smoke
suite (112x64; ``python perf/perf_pose_validity.py``, reports/perf_pose_validity.md):
1-s RPE-trans oracle 0.43 m (1.0 without the anchor) vs static 0.51.
4. Failures: too few tracks (and ECC rejected), RANSAC / PnP failing -> the pose of the previous frame is HELD (kind
   "failed", counted). Frames whose (resized, smoothed) luma differs from the previous frame's by less than
   ``static_luma`` grey levels (mean absolute difference) are "static" (pose held, not a failure).
Notes: the failed-frame count, which cue each re-initialisation's scale came from, and which branch
posed the "rotation" frames (ECC, PnP speed jump, map model selection, PnP rotation gate, two-view):
on the full suite's ground-truth videos of the apartment scenes (2026-11-26, one task per family,
pan360 left out) 51-77 % of frames are posed as rotations, mostly by the two-view, map model
selection and PnP speed-jump branches (a per-frame forward step at 224x128 moves the tracks by less
than ``rotation_px``), and the estimated 1-s translations are short (median length ratio to the
truth 0.3-1.0 after Sim(3) alignment).
Tried and not adopted (2026-11-26): sliding-window bundle adjustment over keyframes (every 2nd
frame, windows of 24, half fixed as context, the frame-0 depth points fixed, SciPy's sparse
``least_squares`` with a soft-L1 loss) as a refinement of these poses. On the full suite's ground-
truth videos it lowered the median reprojection error (1.0 -> 0.5 px; 0.46 px at the true poses)
but not the trajectory error consistently (1-s RPE-trans mixed_action__office0 0.486 -> 0.447 m,
RPE-rot 7.78 -> 8.14 deg; single_action__apartment0 0.534 -> 0.550 m) and took ~10x longer (31 s
instead of 3.3 s for 320 frames: SciPy's LSMR inner solves), which breaks the scoring-speed target.
A compiled bundle adjuster (Ceres / GTSAM) or an external estimator (``--trajectories``) is the way
to stronger translations.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class EstimateResult:
    """poses (N,4,4) c2w, frame 0 = identity; step_kind[i] says how frame i+1 was posed (N-1
    entries): "pnp", "init", "rotation", "static" or "failed" (or "unknown" for external callables).
    ``metric``: True when the translations are in metres (anchored by frame 0's depth), False when
    their scale is arbitrary (monocular, unanchored)."""

    poses: np.ndarray
    step_kind: list[str]
    notes: list[str] = field(default_factory=list)
    metric: bool = False

    @property
    def failed(self) -> np.ndarray:
        return np.array([k == "failed" for k in self.step_kind], dtype=bool)

    @property
    def num_failed(self) -> int:
        return int(self.failed.sum())


def _project_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum |b_k - R a_k|^2 for unit vectors a, b (M,3)."""
    return _project_so3(b.T @ a)


def _angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))))


def _translation_given_rotation(pa, pb, R, Kinv) -> np.ndarray:
    """Unit t with x_b = R x_a + t from pixel matches (epipolar constraint b . (t x R a) = 0, least
    squares over all matches: the null vector of the stacked (b x R a)), sign arbitrary."""
    ha = np.column_stack([pa, np.ones(len(pa))]) @ Kinv.T
    hb = np.column_stack([pb, np.ones(len(pb))]) @ Kinv.T
    A = np.cross(hb, ha @ R.T)
    A /= np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    return np.linalg.svd(A)[2][-1]


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


class _KLTTracker:
    """Shi-Tomasi corners + pyramidal Lucas-Kanade with a forward-backward check (module doc)."""

    def __init__(self, max_points: int, fb_px: float):
        self.max_points, self.fb_px = max_points, fb_px
        self.lk = dict(winSize=(21, 21), maxLevel=3,
                       criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        self.gray = None
        self.pts = np.zeros((0, 2), np.float32)  # OpenCV pixel coordinates (centre of pixel 0 = 0.0)
        self.ids = np.zeros(0, np.int64)
        self.next_id = 0

    def _top_up(self):
        need = self.max_points - len(self.pts)
        if need <= 0:
            return
        mask = np.full(self.gray.shape, 255, np.uint8)
        for x, y in self.pts:
            cv2.circle(mask, (int(round(x)), int(round(y))), 7, 0, -1)
        c = cv2.goodFeaturesToTrack(self.gray, need, 0.001, 7, mask=mask, blockSize=7)
        if c is not None:
            c = c.reshape(-1, 2).astype(np.float32)
            self.pts = np.vstack([self.pts, c])
            self.ids = np.concatenate([self.ids, np.arange(self.next_id, self.next_id + len(c))])
            self.next_id += len(c)

    def __call__(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.gray is not None and len(self.pts):
            p0 = self.pts.reshape(-1, 1, 2)
            p1, st, _ = cv2.calcOpticalFlowPyrLK(self.gray, gray, p0, None, **self.lk)
            pb, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self.gray, p1, None, **self.lk)
            p1 = p1.reshape(-1, 2)
            h, w = gray.shape
            ok = (st.ravel() == 1) & (st2.ravel() == 1) & \
                (np.linalg.norm((pb - p0).reshape(-1, 2), axis=1) < self.fb_px) & \
                (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
            self.pts, self.ids = p1[ok].astype(np.float32), self.ids[ok]
        else:
            self.pts, self.ids = np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
        self.gray = gray
        self._top_up()
        return self.ids.copy(), self.pts.astype(np.float64) + 0.5


class _DescriptorTracker:
    """ORB or SIFT keypoints per frame, ratio-test + mutual matching to the previous frame; a matched
    keypoint inherits its match's track id, others get new ids."""

    def __init__(self, feature: str, max_features: int, ratio: float):
        if feature == "orb":
            self.det = cv2.ORB_create(nfeatures=max_features, fastThreshold=7, edgeThreshold=19, patchSize=19)
            self.bf = cv2.BFMatcher(cv2.NORM_HAMMING)
        else:
            self.det = cv2.SIFT_create(nfeatures=max_features)
            self.bf = cv2.BFMatcher(cv2.NORM_L2)
        self.ratio = ratio
        self.prev_desc, self.prev_ids, self.next_id = None, None, 0

    def __call__(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kps, desc = self.det.detectAndCompute(gray, None)
        pts = np.array([k.pt for k in kps], dtype=np.float64).reshape(-1, 2) + 0.5
        ids = np.arange(self.next_id, self.next_id + len(pts))
        self.next_id += len(pts)
        pd_ = self.prev_desc
        if pd_ is not None and desc is not None and len(pd_) >= 2 and len(desc) >= 2:
            fwd = self.bf.knnMatch(desc, pd_, k=2)
            back = {m.queryIdx: m.trainIdx for m in self.bf.match(pd_, desc)}
            for a in fwd:
                if len(a) == 2 and a[0].distance < self.ratio * a[1].distance \
                        and back.get(a[0].trainIdx) == a[0].queryIdx:
                    ids[a[0].queryIdx] = self.prev_ids[a[0].trainIdx]
        self.prev_desc, self.prev_ids = desc, ids
        return ids, pts


def _w2c(c2w: np.ndarray) -> np.ndarray:
    return np.linalg.inv(c2w)


@dataclass
class _Run:
    """State of one estimation run (OpenCVEstimator.__call__), shared by its steps.

    K, Kinv: intrinsics of the working (resized) images, scale ``f``; tracker: the feature tracker;
    anchored / scene_depth: frame 0's depth was given / its median (metres); poses (N,4,4) c2w and
    kinds (step kind of frames 1..) so far; world: track id -> map point; prev / prev_gray: the
    previous frame's tracks and luma; kf_i / kf_obs: the keyframe's index and tracks; kf_ref: (keyframe,
    tracks it shared with its first follower); speeds: the last 16 PnP displacements; init_scales /
    why: counts for the notes; hist / moved_cache: recent frames' tracks and which frames moved."""

    K: np.ndarray
    Kinv: np.ndarray
    f: float
    tracker: object
    anchored: bool
    poses: np.ndarray
    scene_depth: float | None = None
    kinds: list = field(default_factory=list)
    world: dict = field(default_factory=dict)
    prev: dict | None = None
    prev_gray: np.ndarray | None = None
    kf_i: int = 0
    kf_obs: dict | None = None
    kf_ref: tuple | None = None
    speeds: deque = field(default_factory=lambda: deque(maxlen=16))
    init_scales: dict = field(default_factory=dict)  # which cue each re-initialisation used (notes)
    why: Counter = field(default_factory=Counter)  # which branch posed the "rotation" frames (notes)
    hist: dict = field(default_factory=dict)  # track observations per frame (for the moved-frame count)
    moved_cache: dict = field(default_factory=dict)


class OpenCVEstimator:
    """Keyframe visual odometry from tracked features (see the module docstring)."""

    name = "opencv"

    def __init__(self, feature: str = "klt", max_features: int = 1000, max_width: int | None = 512,
                 min_width: int | None = 320, blur_sigma: float = 1.0,
                 ratio: float = 0.8, fb_px: float = 0.5, ransac_px: float = 1.0, min_matches: int = 15,
                 min_pnp: int = 12, min_parallax_px: float = 5.0, kf_parallax_px: float = 12.0,
                 min_tri_deg: float = 1.0, rotation_px: float = 1.0, max_speed_jump: float = 3.0,
                 kf_keep_frac: float = 0.5, static_luma: float = 0.25,
                 rot_gate_deg: float | None = 1.0, ecc_fallback: bool = True, ecc_min_corr: float = 0.97,
                 ecc_min_tracks: int = 30, anchor_edge_ratio: float = 1.05,
                 anchor_rot_ratio: float = 1.25, anchor_rot_px: float = 0.05,
                 min_prop: int = 6, prop_mad: float = 0.25, moved_px: float = 0.5,
                 reinit_scale: str = "map+depth+moved", reinit_clamp: float | None = 2.0,
                 degenerate_zero: bool = False,
                 ransac_seed: int = 0):
        if feature not in ("klt", "orb", "sift"):
            raise ValueError(f"feature must be 'klt', 'orb' or 'sift', got {feature!r}")
        self.feature, self.max_features, self.max_width = feature, max_features, max_width
        self.min_width, self.blur_sigma = min_width, blur_sigma
        self.ratio, self.fb_px, self.ransac_px = ratio, fb_px, ransac_px
        self.min_matches, self.min_pnp = min_matches, min_pnp
        self.min_parallax_px, self.kf_parallax_px, self.min_tri_deg = min_parallax_px, kf_parallax_px, min_tri_deg
        self.rotation_px, self.max_speed_jump = rotation_px, max_speed_jump
        self.static_luma, self.ransac_seed, self.kf_keep_frac = static_luma, ransac_seed, kf_keep_frac
        self.rot_gate_deg, self.ecc_fallback, self.ecc_min_corr = rot_gate_deg, ecc_fallback, ecc_min_corr
        self.ecc_min_tracks, self.ecc_black_luma = ecc_min_tracks, 2
        self.anchor_edge_ratio, self.anchor_rot_ratio, self.anchor_rot_px = anchor_edge_ratio, anchor_rot_ratio, anchor_rot_px
        self.min_prop, self.prop_mad, self.moved_px = min_prop, prop_mad, moved_px
        self.reinit_scale, self.reinit_clamp = reinit_scale, reinit_clamp
        self.degenerate_zero = degenerate_zero

    # ------------------------------------------------------------------------------ geometry
    def _parallax(self, pa, pb, R, K, Kinv) -> float:
        """Median distance (px) between pb and pa rotated by R (frame a -> b camera rotation)."""
        h = np.column_stack([pa, np.ones(len(pa))]) @ Kinv.T @ R.T
        q = h[:, :2] / h[:, 2:3] @ K[:2, :2].T + K[:2, 2]
        return float(np.median(np.linalg.norm(q - pb, axis=1)))

    def _two_view(self, pa, pb, K, Kinv):
        """(kind, R, t_unit) of frame b relative to frame a ("rotation"/"translation") or None."""
        ha = np.column_stack([pa, np.ones(len(pa))]) @ Kinv.T
        hb = np.column_stack([pb, np.ones(len(pb))]) @ Kinv.T
        r_h = None
        H, hmask = cv2.findHomography(pa, pb, cv2.RANSAC, self.ransac_px)
        if H is not None and hmask is not None and hmask.sum() >= self.min_matches:
            inl = hmask.ravel().astype(bool)
            ba = ha[inl] / np.linalg.norm(ha[inl], axis=1, keepdims=True)
            bb = hb[inl] / np.linalg.norm(hb[inl], axis=1, keepdims=True)
            r_h = _kabsch(ba, bb)
        E, emask = cv2.findEssentialMat(pa, pb, K, method=cv2.RANSAC, prob=0.999, threshold=self.ransac_px)
        if E is None or E.shape != (3, 3) or emask is None or emask.sum() < self.min_matches:
            return ("rotation", r_h, np.zeros(3)) if r_h is not None else None
        n_in, R, t, _ = cv2.recoverPose(E, pa, pb, K, mask=emask.copy())
        inl = emask.ravel().astype(bool)
        par = self._parallax(pa[inl], pb[inl], R, K, Kinv)
        # E is ill-conditioned for pure rotations: a rotation that explains the motion to ~noise wins
        rot_fits = r_h is not None and self._parallax(pa[inl], pb[inl], r_h, K, Kinv) < self.rotation_px
        if n_in < self.min_matches or rot_fits or par < self.min_parallax_px:
            return ("rotation", r_h if r_h is not None else R, np.zeros(3))
        return "translation", R, t.ravel() / max(np.linalg.norm(t), 1e-12)

    def _rotation_fit(self, pa, pb, Kinv):
        """Rotation-only fit (frame a -> b camera rotation) of matches: RANSAC homography inliers,
        Kabsch on their bearings; None when too few inliers."""
        if len(pa) < self.min_matches:
            return None
        H, hmask = cv2.findHomography(pa, pb, cv2.RANSAC, self.ransac_px)
        if H is None or hmask is None or hmask.sum() < self.min_matches:
            return None
        inl = hmask.ravel().astype(bool)
        ha = np.column_stack([pa[inl], np.ones(inl.sum())]) @ Kinv.T
        hb = np.column_stack([pb[inl], np.ones(inl.sum())]) @ Kinv.T
        return _kabsch(ha / np.linalg.norm(ha, axis=1, keepdims=True), hb / np.linalg.norm(hb, axis=1, keepdims=True))

    def _ecc_rotation(self, ga, gb, K, Kinv):
        """Rotation a -> b from direct image alignment (ECC, homography motion model, for frames with
        too few corners, e.g. flat walls): H projected onto SO(3) through K; None if ECC fails or
        the aligned correlation is below ``ecc_min_corr``."""
        # pure-black pixels (holes of a warped / generated frame, and their blurred rims) are left out
        valid = cv2.erode((ga > self.ecc_black_luma).astype(np.uint8), np.ones((7, 7), np.uint8))
        if valid.mean() < 0.5:
            return None
        try:
            cc, H = cv2.findTransformECC(ga.astype(np.float32), gb.astype(np.float32), np.eye(3, dtype=np.float32),
                                         cv2.MOTION_HOMOGRAPHY,
                                         (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5), valid, 5)
        except cv2.error:
            return None
        if not np.isfinite(cc) or cc < self.ecc_min_corr:
            return None
        # findTransformECC(template=a, input=b) finds W with b(W x) ~ a(x): pixel x of a sits at W x in b
        # (OpenCV pixel coordinates = ours - 0.5)
        S = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
        M = Kinv @ np.linalg.inv(S) @ H.astype(np.float64) @ S @ K
        M /= np.cbrt(np.linalg.det(M))
        return _project_so3(M)

    def _triangulate(self, pa, pb, c2w_a, c2w_b, K):
        """World points (M,3) and a validity mask for matches pa (frame a) / pb (frame b)."""
        Pa, Pb = K @ _w2c(c2w_a)[:3], K @ _w2c(c2w_b)[:3]
        X = cv2.triangulatePoints(Pa, Pb, pa.T, pb.T)
        w = X[3]
        good = np.abs(w) > 1e-12
        X = (X[:3] / np.where(good, w, 1.0)).T
        ok = good.copy()
        for P, p, c2w in ((Pa, pa, c2w_a), (Pb, pb, c2w_b)):
            x = np.column_stack([X, np.ones(len(X))]) @ P.T
            z = (np.column_stack([X, np.ones(len(X))]) @ _w2c(c2w)[:3].T)[:, 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                err = np.linalg.norm(x[:, :2] / x[:, 2:3] - p, axis=1)
            ok &= (z > 0) & (err < 2.0)
        ra, rb = X - c2w_a[:3, 3], X - c2w_b[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            cosang = np.sum(ra * rb, axis=1) / (np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1))
        ok &= cosang < np.cos(np.radians(self.min_tri_deg))
        return X, ok

    def _pnp(self, X, p, K, c2w_guess):
        ok, rvec, tvec, inl = cv2.solvePnPRansac(X, p, K, None, iterationsCount=100,
                                                 reprojectionError=2.0 * self.ransac_px, confidence=0.999,
                                                 flags=cv2.SOLVEPNP_EPNP)
        if not ok or inl is None or len(inl) < self.min_pnp:
            return None
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(X[inl], p[inl], K, None, rvec, tvec)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.ravel()
        return np.linalg.inv(T)

    def _anchor_map(self, obs0: dict, depth0: np.ndarray, frame_hw, f: float, K: np.ndarray) -> dict:
        """Metric map from frame 0's planar depth: each frame-0 track whose depth is finite, positive
        and smooth (3x3 max/min ratio <= ``anchor_edge_ratio``: corners sit on silhouettes, where the
        nearest depth sample may belong to the background) is back-projected, X = d K^-1 (u, v, 1),
        in frame 0's camera = the estimator's world. ``depth0`` may have any size: a track at pixel
        (u, v) of the working image (scale ``f`` of the frames) reads depth pixel
        floor(u / f * Wd / W), floor(v / f * Hd / H) (pixel centres at +0.5)."""
        H, W = frame_hw
        hd, wd = depth0.shape
        d = np.where(np.isfinite(depth0) & (depth0 > 0), depth0, np.nan)
        filled = np.nan_to_num(d, nan=0.0).astype(np.float32)
        big = np.nan_to_num(d, nan=np.float32(1e30)).astype(np.float32)
        dmax = cv2.dilate(filled, np.ones((3, 3), np.uint8))
        dmin = cv2.erode(big, np.ones((3, 3), np.uint8))
        Kinv = np.linalg.inv(K)
        world = {}
        for k, (u, v) in obs0.items():
            x = min(max(int(np.floor(u / f * wd / W)), 0), wd - 1)
            y = min(max(int(np.floor(v / f * hd / H)), 0), hd - 1)
            z = d[y, x]
            if not np.isfinite(z) or dmin[y, x] <= 0 or dmax[y, x] / dmin[y, x] > self.anchor_edge_ratio:
                continue
            world[k] = z * (Kinv @ np.array([u, v, 1.0]))
        return world

    def _rotation_about_previous(self, prev: dict, cur: dict, c2w_prev: np.ndarray, K, Kinv):
        """(c2w, residual px) of the current frame if it only rotated about the previous camera
        centre (rotation-only fit of the consecutive frames' tracks; residual = median distance of
        the tracks from their rotated previous positions); (None, inf) when the fit fails."""
        cp = [k for k in cur if k in prev]
        pa = np.array([prev[k] for k in cp]).reshape(-1, 2)
        pb = np.array([cur[k] for k in cp]).reshape(-1, 2)
        Rp = self._rotation_fit(pa, pb, Kinv)
        if Rp is None:
            return None, float("inf")
        T = np.eye(4)
        T[:3, :3] = Rp
        return c2w_prev @ np.linalg.inv(T), self._parallax(pa, pb, Rp, K, Kinv)

    @staticmethod
    def _reproj_median(X: np.ndarray, p: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> float:
        """Median reprojection error (px) of world points X (M,3) observed at pixels p in camera c2w."""
        x = (np.column_stack([X, np.ones(len(X))]) @ _w2c(c2w)[:3].T) @ K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.linalg.norm(x[:, :2] / x[:, 2:3] - p, axis=1)
        err = np.where(x[:, 2] > 0, err, np.inf)
        return float(np.median(err))

    def _anchored_baseline(self, pa, pb, R, t_unit, c2w_a, K, scene_depth: float) -> float:
        """Metric length of a two-view translation before any PnP speed is known (anchored mode):
        triangulate with a unit baseline and scale so that the median depth of the points in the
        keyframe camera equals frame 0's median depth (the scene's depth scale)."""
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t_unit
        X, ok = self._triangulate(pa, pb, c2w_a, c2w_a @ np.linalg.inv(T), K)
        if ok.sum() < self.min_matches:
            return 0.0
        z = (np.column_stack([X[ok], np.ones(ok.sum())]) @ _w2c(c2w_a)[:3].T)[:, 2]
        return float(scene_depth / max(float(np.median(z)), 1e-9))

    def _propagated_baseline(self, pa, pb, common, world, R, t_unit, c2w_a, K):
        """Scale propagation at a re-initialisation: the length of the two-view translation (unit
        direction ``t_unit``, keyframe a -> frame b) that makes the points triangulated with it agree
        in depth with the SAME tracks' points of the current map (the tracks common to the keyframe,
        this frame and the map), seen from the keyframe: baseline = median(z_map / z_unit).
        (baseline, "map") or None when fewer than ``min_prop`` such tracks triangulate or their
        ratios disagree (log-ratio MAD above ``prop_mad``)."""
        idx = [j for j, k in enumerate(common) if k in world]
        if len(idx) < self.min_prop:
            return None
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t_unit
        X, ok = self._triangulate(pa[idx], pb[idx], c2w_a, c2w_a @ np.linalg.inv(T), K)
        if ok.sum() < self.min_prop:
            return None
        w2c = _w2c(c2w_a)[:3]
        z_unit = (np.column_stack([X[ok], np.ones(ok.sum())]) @ w2c.T)[:, 2]
        Xm = np.array([world[common[j]] for j in np.asarray(idx)[ok]])
        z_map = (np.column_stack([Xm, np.ones(len(Xm))]) @ w2c.T)[:, 2]
        good = (z_unit > 1e-9) & (z_map > 1e-9)
        if good.sum() < self.min_prop:
            return None
        lr = np.log(z_map[good] / z_unit[good])
        med = float(np.median(lr))
        if float(np.median(np.abs(lr - med))) > self.prop_mad:
            return None
        return float(np.exp(med)), "map"

    # ---------------------------------------------------------------------------------- main
    def __call__(self, frames: np.ndarray, K: np.ndarray, progress: bool = False,
                 depth0: np.ndarray | None = None) -> EstimateResult:
        """Camera poses of ``frames`` (module docstring): frame 0 starts the run, every later frame is
        posed by the first step that accepts it (static, ECC on few tracks, PnP on the map, two-view
        against the keyframe), then the notes are written."""
        frames, depth0 = self._check_inputs(frames, depth0)
        cv2.setRNGSeed(self.ransac_seed)
        n = frames.shape[0]
        run = self._start(frames, K, depth0)
        it = range(1, n)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc="pose estimation", unit="frame")
        for i in it:
            cur, gray = self._observe(run, frames[i])
            run.hist[i] = cur
            run.hist.pop(i - 128, None)
            kind = self._static_step(run, i, gray)
            if kind is None:
                kind = self._ecc_step(run, i, cur, gray)
            if kind is None:
                kind = self._pnp_step(run, i, cur)
            if kind is None:
                kind = self._two_view_step(run, i, cur, gray)
            elif kind == "pnp":
                self._grow_map(run, i, cur)
            run.kinds.append(kind)
            run.prev, run.prev_gray = cur, gray
        return EstimateResult(poses=run.poses, step_kind=run.kinds, notes=self._notes(run, n), metric=run.anchored)

    # --------------------------------------------------------------------------- run steps
    @staticmethod
    def _check_inputs(frames, depth0):
        """``frames`` as an RGB uint8 (N,H,W,3) array and ``depth0`` as a float64 (H,W) map (or None);
        ValueError otherwise."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be RGB uint8 (N,H,W,3), got {frames.dtype} {frames.shape}")
        if depth0 is not None:
            depth0 = np.asarray(depth0, dtype=np.float64)
            if depth0.ndim != 2:
                raise ValueError(f"depth0 must be a (H,W) planar depth map in metres, got shape {depth0.shape}")
        return frames, depth0

    def _working_scale(self, w: int) -> float:
        """Resize factor f of frames ``w`` pixels wide: down to ``max_width``, up to ``min_width``, else 1."""
        f = 1.0
        if self.max_width and w > self.max_width:
            f = self.max_width / w
        elif self.min_width and w < self.min_width:
            f = self.min_width / w
        return f

    def _start(self, frames: np.ndarray, K: np.ndarray, depth0: np.ndarray | None) -> _Run:
        """The run's state after frame 0: scaled intrinsics diag(f, f, 1) K, the tracker, frame 0's
        observation as the keyframe and, with the metric anchor, the map from frame 0's depth and the
        scene's median depth."""
        n, _, w = frames.shape[:3]
        f = self._working_scale(w)
        K = np.diag([f, f, 1.0]) @ np.asarray(K, dtype=np.float64)
        tracker = _KLTTracker(self.max_features, self.fb_px) if self.feature == "klt" else \
            _DescriptorTracker(self.feature, self.max_features, self.ratio)
        run = _Run(K=K, Kinv=np.linalg.inv(K), f=f, tracker=tracker, anchored=depth0 is not None,
                   poses=np.tile(np.eye(4), (n, 1, 1)))
        run.prev, run.prev_gray = self._observe(run, frames[0])
        if run.anchored:
            run.world = self._anchor_map(run.prev, depth0, frames.shape[1:3], f, K)
            fin = depth0[np.isfinite(depth0) & (depth0 > 0)]
            run.scene_depth = float(np.median(fin)) if fin.size else 1.0
        run.kf_i, run.kf_obs = 0, run.prev
        run.hist = {0: run.prev}
        return run

    def _observe(self, run: _Run, rgb: np.ndarray) -> tuple[dict, np.ndarray]:
        """One frame's tracks ({track id: pixel position}) and its working luma image (resized by the
        run's f, smoothed with ``blur_sigma``)."""
        g = _gray(rgb)
        f = run.f
        if f != 1.0:
            g = cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if self.blur_sigma > 0:
            g = cv2.GaussianBlur(g, (0, 0), self.blur_sigma)
        ids, pts = run.tracker(g)
        return dict(zip(ids.tolist(), pts)), g

    def _static_step(self, run: _Run, i: int, gray: np.ndarray) -> str | None:
        """4. static: the luma barely changed since the previous frame -> that pose is held."""
        if float(np.mean(cv2.absdiff(gray, run.prev_gray))) < self.static_luma:
            run.poses[i] = run.poses[i - 1]
            return "static"
        return None

    def _ecc_step(self, run: _Run, i: int, cur: dict, gray: np.ndarray) -> str | None:
        """0. low texture: with too few tracks from the previous frame (flat walls), direct alignment
        gives the rotation and there is no translation; None when ECC is off, not needed or rejected."""
        if not (self.ecc_fallback and sum(1 for k in cur if k in run.prev) < self.ecc_min_tracks):
            return None
        Re = self._ecc_rotation(run.prev_gray, gray, run.K, run.Kinv)
        if Re is None:
            return None
        T = np.eye(4)
        T[:3, :3] = Re
        run.poses[i] = run.poses[i - 1] @ np.linalg.inv(T)
        run.why["ecc (few tracks)"] += 1
        return "rotation"

    def _pnp_step(self, run: _Run, i: int, cur: dict) -> str | None:
        """1. tracking: PnP on the map points this frame sees, then the checks that may turn it into a
        rotation (speed jump; with the anchor, model selection on the map; else the rotation gate).
        "pnp" or "rotation", or None when too few map points are seen or PnP fails."""
        in_map = [k for k in cur if k in run.world]
        if len(in_map) < self.min_pnp:
            return None
        c2w = self._pnp(np.array([run.world[k] for k in in_map]), np.array([cur[k] for k in in_map]),
                        run.K, run.poses[i - 1])
        if c2w is None:
            return None
        step = float(np.linalg.norm(c2w[:3, 3] - run.poses[i - 1][:3, 3]))
        if run.speeds and step > self.max_speed_jump * float(np.median(run.speeds)):
            if self._speed_jump_rotation(run, i, cur):
                return "rotation"
        if run.anchored:
            if self._map_model_selection(run, i, cur, in_map, c2w):
                return "rotation"
        elif self.rot_gate_deg is not None:
            if self._pnp_rotation_gate(run, i, cur, c2w):
                return "rotation"
        run.poses[i] = c2w
        run.speeds.append(step)
        return "pnp"

    def _speed_jump_rotation(self, run: _Run, i: int, cur: dict) -> bool:
        """An implausible PnP jump is accepted only if the frame pair is not a pure rotation; if the
        two-view model selection calls it one, the frame gets that rotation (True)."""
        prev = run.prev
        cp = [k for k in cur if k in prev]
        tv = self._two_view(np.array([prev[k] for k in cp]), np.array([cur[k] for k in cp]),
                            run.K, run.Kinv) if len(cp) >= self.min_matches else None
        if tv is None or tv[0] != "rotation":
            return False
        T = np.eye(4)
        T[:3, :3] = tv[1]
        run.poses[i] = run.poses[i - 1] @ np.linalg.inv(T)
        run.why["pnp speed jump"] += 1
        return True

    def _map_model_selection(self, run: _Run, i: int, cur: dict, in_map: list, c2w: np.ndarray) -> bool:
        """Metric map: model selection between PnP and a pure rotation about the previous camera
        centre, on the same map points; True (frame posed as that rotation) when the rotation wins."""
        c2w_rot, rot_px = self._rotation_about_previous(run.prev, cur, run.poses[i - 1], run.K, run.Kinv)
        if c2w_rot is None or not rot_px < self.rotation_px:
            return False
        X = np.array([run.world[k] for k in in_map])
        p = np.array([cur[k] for k in in_map])
        e_pnp = self._reproj_median(X, p, c2w, run.K)
        e_rot = self._reproj_median(X, p, c2w_rot, run.K)
        if e_rot <= self.anchor_rot_ratio * e_pnp + self.anchor_rot_px:
            run.poses[i] = c2w_rot
            run.why["map model selection"] += 1
            return True
        return False

    def _pnp_rotation_gate(self, run: _Run, i: int, cur: dict, c2w: np.ndarray) -> bool:
        """PnP on a thin / badly triangulated map can tilt the camera: its frame-to-frame rotation must
        agree with the rotation-only fit of the consecutive frames (accurate at small baselines);
        otherwise that rotation is used with a constant-velocity translation (True)."""
        prev, poses = run.prev, run.poses
        cp = [k for k in cur if k in prev]
        Rp = self._rotation_fit(np.array([prev[k] for k in cp]).reshape(-1, 2),
                                np.array([cur[k] for k in cp]).reshape(-1, 2), run.Kinv)
        R_pnp = _w2c(c2w)[:3, :3] @ poses[i - 1][:3, :3]
        if Rp is None or not _angle_deg(Rp.T @ R_pnp) > self.rot_gate_deg:
            return False
        T = np.eye(4)
        T[:3, :3] = Rp
        if i >= 2:
            T[:3, 3] = (_w2c(poses[i - 1]) @ poses[i - 2])[:3, 3]
        poses[i] = poses[i - 1] @ np.linalg.inv(T)
        run.why["pnp rotation gate"] += 1
        return True

    def _keyframe_tracks(self, run: _Run, i: int, cur: dict) -> list:
        """The tracks this frame shares with the keyframe; if fewer than ``max(min_matches, kf_keep_frac
        * the tracks the keyframe shared with its first follower)``, the previous frame becomes the
        keyframe first."""
        common = [k for k in cur if k in run.kf_obs]
        if run.kf_ref is None or run.kf_ref[0] != run.kf_i:
            run.kf_ref = (run.kf_i, len(common))  # tracks the keyframe shares with its first follower
        if len(common) < max(self.min_matches, self.kf_keep_frac * run.kf_ref[1]):
            run.kf_i, run.kf_obs = i - 1, run.prev
            common = [k for k in cur if k in run.kf_obs]
            run.kf_ref = (run.kf_i, len(common))
        return common

    def _two_view_step(self, run: _Run, i: int, cur: dict, gray: np.ndarray) -> str:
        """2. two-view geometry against the keyframe (ECC for the rotation when it fails): a pure
        rotation ("rotation"), or a re-initialisation ("init": translation scaled by
        ``_reinit_baseline``, rotation frames since the keyframe back-filled, map re-triangulated,
        frame becomes the keyframe); "failed" (pose held) when nothing fits."""
        poses = run.poses
        common = self._keyframe_tracks(run, i, cur)
        kf_i = run.kf_i
        tv, pa, pb = None, None, None
        if len(common) >= self.min_matches:
            pa, pb = np.array([run.kf_obs[k] for k in common]), np.array([cur[k] for k in common])
            tv = self._two_view(pa, pb, run.K, run.Kinv)
        if tv is None and self.ecc_fallback:
            Re = self._ecc_rotation(run.prev_gray, gray, run.K, run.Kinv)
            if Re is not None:
                tv = ("rotation", Re @ _w2c(poses[i - 1])[:3, :3] @ poses[kf_i][:3, :3], np.zeros(3))
        if tv is None:
            poses[i] = poses[i - 1]
            return "failed"
        what, R, t = tv
        if what == "translation" and self.rot_gate_deg is not None:
            R, t = self._gate_essential_rotation(run, i, cur, pa, pb, R, t)
        baseline, how = self._reinit_baseline(run, i, what, pa, pb, common, R, t)
        if what == "translation":
            run.init_scales[how] = run.init_scales.get(how, 0) + 1
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t * baseline
        poses[i] = poses[kf_i] @ np.linalg.inv(T)
        if what == "rotation":
            # a pure rotation does not move the camera: keep the previous frame's centre
            # (the keyframe's may differ when PnP frames followed it)
            poses[i, :3, 3] = poses[i - 1, :3, 3]
            run.why["two-view"] += 1
            return "rotation"
        self._backfill(run, i)
        X, ok = self._triangulate(pa, pb, poses[kf_i], poses[i], run.K)
        run.world = {k: X[j] for j, k in enumerate(common) if ok[j]}
        run.kf_i, run.kf_obs = i, cur
        return "init"

    def _gate_essential_rotation(self, run: _Run, i: int, cur: dict, pa, pb, R, t):
        """E over a short baseline trades rotation for translation: when its rotation disagrees with the
        chained rotation-only fits since the keyframe by more than ``rot_gate_deg``, keep the chained
        rotation and solve the translation direction for it (epipolar constraint, known R, signed like
        E's t). Returns (R, t)."""
        prev, poses = run.prev, run.poses
        cp = [k for k in cur if k in prev]
        Rp = self._rotation_fit(np.array([prev[k] for k in cp]).reshape(-1, 2),
                                np.array([cur[k] for k in cp]).reshape(-1, 2), run.Kinv)
        if Rp is not None:
            R_chain = Rp @ _w2c(poses[i - 1])[:3, :3] @ poses[run.kf_i][:3, :3]
            if _angle_deg(R_chain.T @ R) > self.rot_gate_deg:
                t2 = _translation_given_rotation(pa, pb, R_chain, run.Kinv)
                R, t = R_chain, (t2 if float(t2 @ t) >= 0 else -t2)
        return R, t

    def _reinit_baseline(self, run: _Run, i: int, what: str, pa, pb, common: list, R, t) -> tuple[float, str]:
        """(length of the two-view translation, which cue gave it) per ``reinit_scale`` (module doc, 2.):
        a) scale propagation from the map, b) frame 0's depth (anchored), c) the speed prior over the
        frames since the keyframe that moved, with the a)/b) cue clamped to c) by ``reinit_clamp``;
        "none (degenerate)" (0) or "unit" (1 per frame) when nothing else applies."""
        mode = self.reinit_scale
        speeds, kf_i = run.speeds, run.kf_i
        cand, how = None, None
        if what == "translation" and "map" in mode:
            prop = self._propagated_baseline(pa, pb, common, run.world, R, t, run.poses[kf_i], run.K)
            if prop is not None:
                cand, how = prop
        depth_failed = False
        if cand is None and run.anchored and what == "translation" and (not speeds or "depth" in mode):
            cand, how = self._anchored_baseline(pa, pb, R, t, run.poses[kf_i], run.K, run.scene_depth), "depth0"
            if cand <= 0:  # nothing triangulates at a usable angle: no measurable baseline
                cand, how, depth_failed = None, None, True
        if speeds and not (depth_failed and self.degenerate_zero):
            # constant-speed prior over the frames since the keyframe that moved (frames
            # that were pure rotations about a fixed centre add no baseline)
            m = self._moved_since_kf(run, kf_i, i) if "moved" in mode else i - kf_i
            prior = float(np.median(speeds)) * max(1, m)
            if cand is None:
                cand, how = prior, "speed prior"
            elif self.reinit_clamp:
                # a scale cue that disagrees with the recent motion by more than the
                # clamp factor is limited to it (one bad re-initialisation must not
                # collapse or blow up the scale)
                c = float(self.reinit_clamp)
                clipped = min(max(cand, prior / c), prior * c)
                if clipped != cand:
                    cand, how = clipped, how + " (clamped)"
        if cand is None and depth_failed:
            cand, how = 0.0, "none (degenerate)"
        elif cand is None:
            cand, how = 1.0 * (i - kf_i), "unit"
        return cand, how

    def _moved(self, run: _Run, j: int) -> bool:
        """Frame j moved its centre (not a pure rotation about frame j-1's): the rotation-only fit
        of the pair leaves a median residual above ``moved_px``."""
        if j not in run.moved_cache:
            if j - 1 not in run.hist:
                return True  # older than the kept history: counted as moved (the plain prior)
            a, b = run.hist[j - 1], run.hist[j]
            cp = [k for k in b if k in a]
            if len(cp) < self.min_matches:
                run.moved_cache[j] = True
            else:
                _, r = self._rotation_about_previous(a, b, np.eye(4), run.K, run.Kinv)
                run.moved_cache[j] = bool(r > self.moved_px)
        return run.moved_cache[j]

    def _moved_since_kf(self, run: _Run, a: int, b: int) -> int:
        """Frames a+1..b that moved (not static, not a pure rotation); frame b always counts."""
        return sum(1 for j in range(a + 1, b + 1) if j == b or (run.kinds[j - 1] != "static" and self._moved(run, j)))

    @staticmethod
    def _backfill(run: _Run, i: int) -> None:
        """Frames since the keyframe posed as pure rotations (or static) get their camera centres
        interpolated linearly between the keyframe's and frame i's."""
        poses, kf_i = run.poses, run.kf_i
        for j in range(kf_i + 1, i):
            if run.kinds[j - 1] in ("rotation", "static"):
                a = (j - kf_i) / (i - kf_i)
                poses[j, :3, 3] = (1 - a) * poses[kf_i, :3, 3] + a * poses[i, :3, 3]

    def _grow_map(self, run: _Run, i: int, cur: dict) -> None:
        """3. after a PnP frame: when the rotation-compensated parallax to the keyframe exceeds
        ``kf_parallax_px`` or fewer than half the keyframe's map points are still tracked, the tracks
        of both frames without a map point are triangulated and the frame becomes the keyframe."""
        poses, kf_i, kf_obs = run.poses, run.kf_i, run.kf_obs
        common = [k for k in cur if k in kf_obs]
        kf_map = [k for k in kf_obs if k in run.world]
        tracked = sum(1 for k in kf_map if k in cur)
        par = 0.0
        if common:
            R_ab = _w2c(poses[i])[:3, :3] @ poses[kf_i][:3, :3]
            par = self._parallax(np.array([kf_obs[k] for k in common]),
                                 np.array([cur[k] for k in common]), R_ab, run.K, run.Kinv)
        if par > self.kf_parallax_px or tracked < 0.5 * max(len(kf_map), 1):
            new = [k for k in common if k not in run.world]
            if new:
                X, ok = self._triangulate(np.array([kf_obs[k] for k in new]),
                                          np.array([cur[k] for k in new]), poses[kf_i], poses[i], run.K)
                run.world.update({k: X[j] for j, k in enumerate(new) if ok[j]})
            run.kf_i, run.kf_obs = i, cur

    @staticmethod
    def _notes(run: _Run, n: int) -> list[str]:
        """The run's notes: re-initialisation scale cues, branches of the rotation frames, failures."""
        notes = []
        if run.init_scales:
            notes.append("opencv estimator: re-initialisation scales: " +
                         ", ".join(f"{k} {v}" for k, v in run.init_scales.items()))
        if run.why:
            notes.append("opencv estimator: rotation frames by branch: " +
                         ", ".join(f"{k} {v}" for k, v in sorted(run.why.items())))
        nf = run.kinds.count("failed")
        if nf:
            notes.append(f"opencv estimator: {nf}/{n - 1} frames failed (pose held)")
        return notes
