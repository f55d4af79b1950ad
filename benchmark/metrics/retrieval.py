"""Spatial memory on revisit pairs: does the model show the same place again, and does it show it
the way it showed it the first time?

A task's revisit pair (later, earlier) says the camera at frame ``later`` (near-)revisits the view of
frame ``earlier`` (``revisits.csv``, found by the suite builder on a 24 x 16 sample grid); ``gap_s``
is the time between the visits. For generated frames G, ground truth T (RGB uint8), GT planar depth
D (metres, inf = sky), GT poses (c2w) and intrinsics K:

Co-visible region of a pair (mask over the LATER image, from GT geometry only)
    Every later pixel with finite depth is unprojected with D[later] (pixel centres at
    integer + 0.5), moved into the earlier camera, and projected. It is co-visible when it lands
    inside the earlier image, in front of the camera, and agrees with the earlier depth map
    (nearest pixel) within ``rel_tol`` (5 %) relative depth (not occluded there). The same
    projection gives sampling maps used to warp an EARLIER image into the later view (bilinear,
    ``cv2.remap``); outside the mask the warped image is filled with the image it is compared to,
    so SSIM / LPIPS windows straddling the mask border see no artificial holes.
    The co-visible fraction c(i -> j) is |co-visible pixels of i| / |finite-depth pixels of i| (0
    when frame i shows no surface at all).

Re-observation gate (after WRBench's: a revisit counts only if the view really returns)
    An annotated pair is scored only when the ground truth really re-observes: c(later -> earlier)
    >= ``REOBSERVE_MIN`` (0.5) at full resolution, i.e. at least half of the surfaces the later view
    shows were visible, unoccluded, in the earlier view. ``revisit_pairs_annotated`` counts the
    task's pairs, ``revisit_pairs_reobserved`` those that pass, ``revisit_pairs`` those scored (at
    most ``max_pairs``, evenly spaced in the (later, earlier)-sorted list of passing pairs).

Headline: ``revisit_consistency_gain`` (dB, higher is better)
    Is the model's frame at a revisit more like the frame it showed at that place before than like
    the frames it showed at OTHER places around the same time? Similarity S(x, y) is the PSNR (capped
    at 60 dB, benchmark.metrics.image_quality) of the two frames' ``THUMB_WIDTH``-pixel-wide
    thumbnails (area downsampling, aspect kept): a revisit is up to 1.5 m / 45 deg away from the
    first visit, so full-resolution pixels do not line up even for the ground truth; the thumbnail
    compares what is seen, not where each pixel lands. For a scored pair (a, b) the controls are
    earlier frames j (1 <= j < a, j != b) that do NOT see what frame a sees: co-visibility at most
    ``CONTROL_COVIS_MAX`` (0.1) in BOTH directions (max(c(a -> j), c(j -> a)) <= 0.1, evaluated on GT
    depth resized to <= ``CONTROL_GRID_WIDTH`` px wide); candidates are tested in order of |j - b|
    (nearest to the first visit first, so the controls are as old as the first visit), at most
    ``CONTROL_CANDIDATES`` (256) of them, and the first ``MAX_CONTROLS`` (8) that qualify are used. Then

        gain(a, b) = S(G[a], G[b]) - mean over controls j of S(G[a], G[j])

    and ``revisit_consistency_gain`` is the mean of gain over the scored pairs that have at least one
    control. It is NaN when no scored pair has a control (every earlier frame sees part of what the
    later one sees: a small room, a short task); ``revisit_gain_pairs`` (pairs with controls) and
    ``revisit_gain_controls`` (control frames used) give the n. Controls depend on the ground truth
    only, so they are the same for every model of a task. Frame 0 (the given first frame, not a
    generated one) is never a control: it may be the first visit of a pair (b = 0: does the model show
    the given view again?), and a video that leaves it behind for anything else loses there.
    Properties: a static video scores 0 (every S is the 60 dB cap); a video that shows nothing after
    frame 0 (its mean colour, held or faded into) scores <= 0: it is the same everywhere, and unlike
    the given view at the b = 0 pairs (protocol 6 matched controls by time gap anywhere in the video,
    so such a video scored 13-20 dB on the smoke suite, above the ground truth's 11.3); shuffled frames
    score ~0; the ground truth scores clearly positive (smoke suite: benchmark/README.md); a model that
    remembers what it showed scores positive even where what it showed is not the ground truth. It
    measures CONSISTENCY, not fidelity (a model whose frames depend only on the commanded pose would
    score well), so it is always read beside ``revisit_psnr_gt``.

Per pair (all PSNR / SSIM / LPIPS as defined in benchmark.metrics.image_quality):
    *_gt           G[later] vs T[later]                               (fidelity: against ground truth)
    *_self         G[later] vs G[earlier]                             SECONDARY: raw self-similarity;
                   a static video scores the maximum (60 dB / 1.0), so it is never a ranking, gate or
                   validity target: ``revisit_consistency_gain`` is the self-consistency headline
    *_self_gtref   T[later] vs T[earlier]                             (what the ground truth scores on
                   *_self: a reference, not a bound)
    *_gt_covis     G[later] vs T[later], inside the co-visible mask
    *_self_covis   G[later] vs warp(G[earlier]), inside the mask       (pose difference removed)
    *_self_covis_gtref  T[later] vs warp(T[earlier]), inside the mask (the ground truth's value; a
                   reference, not a bound: a video with less detail warps better than the GT does)
Summary metrics are means over the scored pairs (NaN entries skipped), named
``revisit_<metric>_<variant>`` e.g. ``revisit_psnr_gt``, ``revisit_lpips_self_covis``;
``revisit_covis_frac`` is the mean co-visible fraction c(later -> earlier). Gap bins (seconds):
``@gap<5s`` (gap < 5), ``@5-15s`` (5 <= gap < 15), ``@>15s`` (gap >= 15) for the _gt and _self
variants, e.g. ``revisit_psnr_gt@gap<5s`` (NaN when a bin is empty). Every metric is NaN when the
task has no scored pair.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import pandas as pd

from benchmark.metrics.image_quality import LPIPSMetric, mean_or_nan, psnr, psnr_masked, ssim, ssim_masked

GAP_BINS = (("gap<5s", 0.0, 5.0), ("5-15s", 5.0, 15.0), (">15s", 15.0, float("inf")))
VARIANTS = ("gt", "self", "self_gtref", "gt_covis", "self_covis", "self_covis_gtref")
KINDS = ("psnr", "ssim", "lpips")
REOBSERVE_MIN = 0.5
CONTROL_COVIS_MAX = 0.1
THUMB_WIDTH = 32
MAX_CONTROLS = 8
CONTROL_CANDIDATES = 256
CONTROL_GRID_WIDTH = 64
COUNT_METRICS = ("revisit_pairs_annotated", "revisit_pairs_reobserved", "revisit_pairs", "revisit_gain_pairs",
                 "revisit_gain_controls")


def covisibility(K: np.ndarray, depth_later: np.ndarray, c2w_later: np.ndarray, depth_earlier: np.ndarray,
                 c2w_earlier: np.ndarray, rel_tol: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask (H,W) bool over the later image, map_x, map_y (H,W) float32 for cv2.remap of an earlier
    image into the later view, in OpenCV pixel coordinates). Definition in the module docstring."""
    h, w = depth_later.shape
    K = np.asarray(K, dtype=np.float64)
    rel = np.linalg.inv(np.asarray(c2w_earlier, dtype=np.float64)) @ np.asarray(c2w_later, dtype=np.float64)
    # camera ray of every later pixel (z = 1), then points = ray * depth, in float32
    u = ((np.arange(w, dtype=np.float32) + 0.5) - np.float32(K[0, 2])) / np.float32(K[0, 0])
    v = ((np.arange(h, dtype=np.float32) + 0.5) - np.float32(K[1, 2])) / np.float32(K[1, 1])
    z = depth_later.astype(np.float32)
    fin = np.isfinite(z) & (z > 0)
    z = np.where(fin, z, np.float32(0.0))
    R = rel[:3, :3].astype(np.float32)
    t = rel[:3, 3].astype(np.float32)
    # p_e = R @ (z * [u, v, 1]) + t, evaluated with broadcasting
    X = z * (R[0, 0] * u[None, :] + R[0, 1] * v[:, None] + R[0, 2]) + t[0]
    Y = z * (R[1, 0] * u[None, :] + R[1, 1] * v[:, None] + R[1, 2]) + t[1]
    Z = z * (R[2, 0] * u[None, :] + R[2, 1] * v[:, None] + R[2, 2]) + t[2]
    front = fin & (Z > 1e-6)
    Zs = np.where(front, Z, np.float32(1.0))
    ue = np.float32(K[0, 0]) * X / Zs + np.float32(K[0, 2])
    ve = np.float32(K[1, 1]) * Y / Zs + np.float32(K[1, 2])
    inside = front & (ue >= 0) & (ue < w) & (ve >= 0) & (ve < h)
    iu = np.clip(ue, 0, w - 1).astype(np.int32)
    iv = np.clip(ve, 0, h - 1).astype(np.int32)
    de = depth_earlier.astype(np.float32)[iv, iu]
    with np.errstate(invalid="ignore"):
        agree = np.isfinite(de) & (np.abs(de - Z) <= np.float32(rel_tol) * de)
    mask = inside & agree
    map_x = np.where(mask, ue - np.float32(0.5), np.float32(-1.0)).astype(np.float32)
    map_y = np.where(mask, ve - np.float32(0.5), np.float32(-1.0)).astype(np.float32)
    return mask, map_x, map_y


def covisible_fraction(mask: np.ndarray, depth_later: np.ndarray) -> float:
    """c(later -> earlier): co-visible pixels / finite-depth pixels of the later frame (0 if none)."""
    d = np.asarray(depth_later)
    n = int(np.count_nonzero(np.isfinite(d) & (d > 0)))
    return float(np.count_nonzero(mask)) / n if n else 0.0


def warp_earlier(img_earlier: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, mask: np.ndarray,
                 fill: np.ndarray) -> np.ndarray:
    """Warp an earlier RGB uint8 image into the later view; pixels outside ``mask`` come from ``fill``."""
    warped = cv2.remap(img_earlier, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.where(mask[..., None], warped, fill)


def select_pairs(revisits: pd.DataFrame, max_pairs: Optional[int]) -> pd.DataFrame:
    r = revisits.sort_values(["later", "earlier"]).reset_index(drop=True)
    if max_pairs is not None and len(r) > max_pairs:
        idx = np.unique(np.round(np.linspace(0, len(r) - 1, max_pairs)).astype(int))
        r = r.iloc[idx].reset_index(drop=True)
    return r


def thumbnail(img: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """``width``-px-wide area-downsampled copy of an RGB uint8 image (aspect kept; unchanged if narrower)."""
    h, w = img.shape[:2]
    if w <= width:
        return img
    return cv2.resize(img, (width, max(1, int(round(width * h / w)))), interpolation=cv2.INTER_AREA)


class _ControlFinder:
    """Control frames of a revisit pair (module docstring): earlier generated frames co-visible with
    the later frame at most CONTROL_COVIS_MAX both ways. Co-visibility is evaluated on GT depth
    resized (nearest) to <= CONTROL_GRID_WIDTH px wide and cached per frame pair."""

    def __init__(self, K: np.ndarray, depth: np.ndarray, poses: np.ndarray, rel_tol: float):
        self.n, h, w = depth.shape
        s = min(1.0, CONTROL_GRID_WIDTH / w)
        self.size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
        self.K = np.diag([self.size[0] / w, self.size[1] / h, 1.0]) @ np.asarray(K, dtype=np.float64)
        self.depth, self.poses, self.rel_tol = depth, poses, rel_tol
        self._small: dict[int, np.ndarray] = {}
        self._c: dict[tuple[int, int], float] = {}

    def _d(self, i: int) -> np.ndarray:
        if i not in self._small:
            d = np.asarray(self.depth[i], dtype=np.float32)
            self._small[i] = d if d.shape[::-1] == self.size else cv2.resize(d, self.size,
                                                                              interpolation=cv2.INTER_NEAREST)
        return self._small[i]

    def frac(self, i: int, j: int) -> float:
        if (i, j) not in self._c:
            m = covisibility(self.K, self._d(i), self.poses[i], self._d(j), self.poses[j], self.rel_tol)[0]
            self._c[(i, j)] = covisible_fraction(m, self._d(i))
        return self._c[(i, j)]

    def controls(self, later: int, earlier: int) -> list[int]:
        """Control frames of pair (later, earlier): generated frames before ``later`` (never frame 0,
        never ``earlier``) that do not see what ``later`` sees, nearest to ``earlier`` first."""
        cand = sorted((j for j in range(1, later) if j != earlier), key=lambda j: (abs(j - earlier), j))
        ok: list[int] = []
        for j in cand[:CONTROL_CANDIDATES]:
            if max(self.frac(later, j), self.frac(j, later)) <= CONTROL_COVIS_MAX:
                ok.append(j)
                if len(ok) == MAX_CONTROLS:
                    break
        return ok


def empty_summary() -> dict[str, float]:
    """Every summary metric name, NaN (counts 0): a task without revisit pairs."""
    out = {k: float("nan") for k in summary_names()}
    out.update({k: 0.0 for k in COUNT_METRICS})
    return out


def summary_names() -> list[str]:
    names = list(COUNT_METRICS) + ["revisit_consistency_gain", "revisit_covis_frac"]
    for k in KINDS:
        names += [f"revisit_{k}_{var}" for var in VARIANTS]
        names += [f"revisit_{k}_{var}@{b}" for var in ("gt", "self") for b, _, _ in GAP_BINS]
    return names


def score_revisits(frames: np.ndarray, gt: np.ndarray, gt_depth: np.ndarray, gt_poses: np.ndarray,
                   K: np.ndarray, revisits: pd.DataFrame, frame_metrics: dict[str, np.ndarray],
                   lpips_metric: Optional[LPIPSMetric], max_pairs: Optional[int] = 24,
                   rel_tol: float = 0.05) -> tuple[dict[str, float], pd.DataFrame]:
    """Revisit metrics (module docstring) -> (summary metrics, per-pair table of the scored pairs).

    ``frame_metrics`` holds the per-frame full-reference values against GT ({"psnr","ssim","lpips"}:
    (N,) arrays), reused for the *_gt variants. ``lpips_metric`` None or unavailable -> LPIPS NaN.
    """
    n_annot = 0 if revisits is None else len(revisits)
    if n_annot == 0:
        return empty_summary(), pd.DataFrame()
    # re-observation gate on every annotated pair (GT only), then the evenly spaced selection
    ann = revisits.sort_values(["later", "earlier"]).reset_index(drop=True)
    geo, keep = {}, []
    for r in ann.itertuples(index=False):
        a, b = int(r.later), int(r.earlier)
        mask, mx, my = covisibility(K, gt_depth[a], gt_poses[a], gt_depth[b], gt_poses[b], rel_tol)
        c = covisible_fraction(mask, gt_depth[a])
        keep.append(c >= REOBSERVE_MIN)
        if keep[-1]:
            geo[(a, b)] = (mask, mx, my, c)
    pairs = select_pairs(ann[np.array(keep, dtype=bool)], max_pairs)
    finder = _ControlFinder(K, gt_depth, gt_poses, rel_tol)
    thumbs: dict[int, np.ndarray] = {}

    def thumb(i):
        if i not in thumbs:
            thumbs[i] = thumbnail(frames[i])
        return thumbs[i]

    def sim(i, j):
        return float(psnr(thumb(i), thumb(j))[0])

    use_lpips = lpips_metric is not None and lpips_metric.available
    rows = []
    n_controls = 0
    for r in pairs.itertuples(index=False):
        a, b = int(r.later), int(r.earlier)
        row = {"later": a, "earlier": b, "gap_s": float(r.gap_s)}
        row.update({f"{k}_gt": float(frame_metrics[k][a]) for k in KINDS})
        g_l, g_e, t_l, t_e = frames[a], frames[b], gt[a], gt[b]
        row["psnr_self"], row["psnr_self_gtref"] = psnr(np.stack([g_l, t_l]), np.stack([g_e, t_e]))
        row["ssim_self"], row["ssim_self_gtref"] = ssim(np.stack([g_l, t_l]), np.stack([g_e, t_e]))
        if use_lpips:
            row["lpips_self"], row["lpips_self_gtref"] = lpips_metric(np.stack([g_l, t_l]), np.stack([g_e, t_e]))
        else:
            row["lpips_self"] = row["lpips_self_gtref"] = float("nan")
        mask, mx, my, row["covis_frac"] = geo[(a, b)]
        w_g = warp_earlier(g_e, mx, my, mask, fill=g_l)
        w_t = warp_earlier(t_e, mx, my, mask, fill=t_l)
        comps = {"gt_covis": (g_l, t_l), "self_covis": (g_l, w_g), "self_covis_gtref": (t_l, w_t)}
        for var, (p, q) in comps.items():
            row[f"psnr_{var}"] = psnr_masked(p, q, mask)
            row[f"ssim_{var}"] = ssim_masked(p, q, mask)
            row[f"lpips_{var}"] = lpips_metric.masked(p, q, mask) if use_lpips else float("nan")
        ctrl = finder.controls(a, b)
        row["n_controls"] = len(ctrl)
        row["thumb_psnr_revisit"] = sim(a, b)
        row["thumb_psnr_control"] = float(np.mean([sim(a, j) for j in ctrl])) if ctrl else float("nan")
        row["gain"] = row["thumb_psnr_revisit"] - row["thumb_psnr_control"]
        n_controls += len(ctrl)
        rows.append(row)
    table = pd.DataFrame(rows)
    out = empty_summary()
    out.update({"revisit_pairs_annotated": float(n_annot), "revisit_pairs_reobserved": float(sum(keep)),
                "revisit_pairs": float(len(table))})
    if not len(table):
        return out, table
    for k in KINDS:
        for var in VARIANTS:
            out[f"revisit_{k}_{var}"] = mean_or_nan(table[f"{k}_{var}"])
        for var in ("gt", "self"):
            for name, lo, hi in GAP_BINS:
                sel = table[(table["gap_s"] >= lo) & (table["gap_s"] < hi)]
                out[f"revisit_{k}_{var}@{name}"] = mean_or_nan(sel[f"{k}_{var}"]) if len(sel) else float("nan")
    out["revisit_covis_frac"] = mean_or_nan(table["covis_frac"])
    has = table["n_controls"] > 0
    out["revisit_gain_pairs"] = float(has.sum())
    out["revisit_gain_controls"] = float(n_controls)
    out["revisit_consistency_gain"] = mean_or_nan(table.loc[has, "gain"]) if has.any() else float("nan")
    return out, table
