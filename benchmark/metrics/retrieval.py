"""Spatial-memory retrieval on revisit pairs: does the model show the same place again?

A task's revisit pair (later, earlier) says the camera at frame ``later`` (near-)revisits the view of
frame ``earlier``; ``gap_s`` is the time between the visits. For generated frames G, ground truth
T (RGB uint8), GT planar depth D (metres, inf = sky), GT poses (c2w) and intrinsics K:

Co-visible region of a pair (mask over the LATER image, from GT geometry only)
    Every later pixel with finite depth is unprojected with D[later] (pixel centres at
    integer + 0.5), moved into the earlier camera, and projected. It is co-visible when it lands
    inside the earlier image, in front of the camera, and agrees with the earlier depth map
    (nearest pixel) within ``rel_tol`` (5 %) relative depth (not occluded there). The same
    projection gives sampling maps used to warp an EARLIER image into the later view (bilinear,
    ``cv2.remap``); outside the mask the warped image is filled with the image it is compared to,
    so SSIM / LPIPS windows straddling the mask border see no artificial holes.

Per pair (all PSNR / SSIM / LPIPS as defined in benchmark.metrics.image_quality):
    *_gt          G[later] vs T[later]                                  (against ground truth)
    *_self        G[later] vs G[earlier]                                (self-consistency)
    *_self_ceiling T[later] vs T[earlier]                               (what a perfect model gets
                  on *_self: GT later and earlier views differ whenever the poses do)
    *_gt_covis    G[later] vs T[later], inside the co-visible mask
    *_self_covis  G[later] vs warp(G[earlier]), inside the mask          (pose difference removed)
    *_self_covis_ceiling  T[later] vs warp(T[earlier]), inside the mask (resampling limit)
Summary metrics are means over pairs (NaN entries skipped), named ``revisit_<metric>_<variant>``
e.g. ``revisit_psnr_gt``, ``revisit_lpips_self_covis``; ``revisit_covis_frac`` is the mean mask
fraction and ``revisit_pairs`` the number of pairs scored. Gap bins (seconds):
``@gap<5s`` (gap < 5), ``@5-15s`` (5 <= gap < 15), ``@>15s`` (gap >= 15) for the _gt and _self
variants, e.g. ``revisit_psnr_gt@gap<5s`` (NaN when a bin is empty). When a task has more than
``max_pairs`` pairs, ``max_pairs`` pairs evenly spaced in the (later, earlier)-sorted list are scored.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import pandas as pd

from benchmark.metrics.image_quality import LPIPSMetric, mean_or_nan, psnr, psnr_masked, ssim, ssim_masked

GAP_BINS = (("gap<5s", 0.0, 5.0), ("5-15s", 5.0, 15.0), (">15s", 15.0, float("inf")))
VARIANTS = ("gt", "self", "self_ceiling", "gt_covis", "self_covis", "self_covis_ceiling")
KINDS = ("psnr", "ssim", "lpips")


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


def score_revisits(frames: np.ndarray, gt: np.ndarray, gt_depth: np.ndarray, gt_poses: np.ndarray,
                   K: np.ndarray, revisits: pd.DataFrame, frame_metrics: dict[str, np.ndarray],
                   lpips_metric: Optional[LPIPSMetric], max_pairs: Optional[int] = 24,
                   rel_tol: float = 0.05) -> tuple[dict[str, float], pd.DataFrame]:
    """Revisit metrics (module docstring) -> (summary metrics, per-pair table).

    ``frame_metrics`` holds the per-frame full-reference values against GT ({"psnr","ssim","lpips"}:
    (N,) arrays), reused for the *_gt variants. ``lpips_metric`` None or unavailable -> LPIPS NaN.
    """
    pairs = select_pairs(revisits, max_pairs)
    use_lpips = lpips_metric is not None and lpips_metric.available
    rows = []
    for r in pairs.itertuples(index=False):
        a, b = int(r.later), int(r.earlier)
        row = {"later": a, "earlier": b, "gap_s": float(r.gap_s)}
        row.update({f"{k}_gt": float(frame_metrics[k][a]) for k in KINDS})
        g_l, g_e, t_l, t_e = frames[a], frames[b], gt[a], gt[b]
        row["psnr_self"], row["psnr_self_ceiling"] = psnr(np.stack([g_l, t_l]), np.stack([g_e, t_e]))
        row["ssim_self"], row["ssim_self_ceiling"] = ssim(np.stack([g_l, t_l]), np.stack([g_e, t_e]))
        if use_lpips:
            row["lpips_self"], row["lpips_self_ceiling"] = lpips_metric(np.stack([g_l, t_l]), np.stack([g_e, t_e]))
        else:
            row["lpips_self"] = row["lpips_self_ceiling"] = float("nan")
        mask, mx, my = covisibility(K, gt_depth[a], gt_poses[a], gt_depth[b], gt_poses[b], rel_tol)
        row["covis_frac"] = float(mask.mean())
        w_g = warp_earlier(g_e, mx, my, mask, fill=g_l)
        w_t = warp_earlier(t_e, mx, my, mask, fill=t_l)
        comps = {"gt_covis": (g_l, t_l), "self_covis": (g_l, w_g), "self_covis_ceiling": (t_l, w_t)}
        for var, (p, q) in comps.items():
            row[f"psnr_{var}"] = psnr_masked(p, q, mask)
            row[f"ssim_{var}"] = ssim_masked(p, q, mask)
            row[f"lpips_{var}"] = lpips_metric.masked(p, q, mask) if use_lpips else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows)
    out: dict[str, float] = {"revisit_pairs": float(len(table))}
    for k in KINDS:
        for var in VARIANTS:
            col = f"{k}_{var}"
            out[f"revisit_{col}"] = mean_or_nan(table[col]) if len(table) else float("nan")
        for var in ("gt", "self"):
            for name, lo, hi in GAP_BINS:
                sel = table[(table["gap_s"] >= lo) & (table["gap_s"] < hi)] if len(table) else table
                out[f"revisit_{k}_{var}@{name}"] = mean_or_nan(sel[f"{k}_{var}"]) if len(sel) else float("nan")
    out["revisit_covis_frac"] = mean_or_nan(table["covis_frac"]) if len(table) else float("nan")
    return out, table
