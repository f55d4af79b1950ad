"""Metric validity: the orderings reference baselines must show if the metrics mean what they claim.

Every check runs on task means (see :func:`benchmark.leaderboard.aggregate`) and only when the
models it needs are in the run. Checks:

- oracle action following equals the estimator's noise floor (same frames): oracle RPE-trans and
  RPE-rot <= noise floor * 1.05 + 1e-9.
- oracle revisit PSNR vs GT >= 40 dB (it is capped at 60 for identical frames).
- static has a larger RPE-trans and RPE-rot than oracle.
- reproject follows actions: its RPE-trans and RPE-rot are smaller than static's; and on the
  first-view segments (``@first_view``, benchmark.metrics.first_view: where its frames are not
  mostly holes) its RPE is near the oracle's (within 1.25 x the estimator's noise floor there).
  (No "below static" check in the first view: the first view is where the camera has moved least,
  so static's penalty, the commanded motion, is smallest there by construction.)
- reproject retrieves less than oracle (occluded content stays black): revisit PSNR vs GT lower.
- each noisy-oracle kind degrades its target metric monotonically in its strength, with the oracle as
  strength 0: drift -> rpe_trans and rpe_rot_deg increase; blur -> drift_ssim_slope and
  drift_sharpness_ratio decrease; forget -> revisit_psnr_gt and revisit_psnr_self decrease (strictly,
  across all strengths run). (Not drift_psnr_slope: PSNR is logarithmic in the error, so for a
  corruption whose error grows like strength x time, PSNR(t) = c - 20 log10(strength) - 20 log10(t)
  and its slope over time does not depend on the strength; it is also capped at 60 dB at frame 0.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

NOISE_FLOOR_MODEL = "estimator-noise-floor"
TARGETS = {"drift": [("rpe_trans", +1), ("rpe_rot_deg", +1)],
           "blur": [("drift_ssim_slope", -1), ("drift_sharpness_ratio", -1)],
           "forget": [("revisit_psnr_gt", -1), ("revisit_psnr_self", -1)]}


@dataclass
class Check:
    description: str
    passed: bool
    values: dict

    @property
    def values_text(self) -> str:
        return ", ".join(f"{k}: {_f(v)}" for k, v in self.values.items())


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.4g}"


def _get(agg: pd.DataFrame, model: str, metric: str) -> float:
    if model not in agg.index or metric not in agg.columns:
        return float("nan")
    return float(agg.loc[model, metric])


def validity_checks(df: pd.DataFrame) -> list[Check]:
    """All applicable checks for a tidy results table (model, task, family, metric, value)."""
    from benchmark.leaderboard import aggregate

    agg = aggregate(df)
    if agg.empty:
        return []
    models = set(agg.index)
    out: list[Check] = []

    def cmp(desc, a_model, b_model, metric, op):
        a, b = _get(agg, a_model, metric), _get(agg, b_model, metric)
        ok = math.isfinite(a) and math.isfinite(b) and op(a, b)
        out.append(Check(desc, bool(ok), {f"{a_model} {metric}": a, f"{b_model} {metric}": b}))

    if "oracle" in models and NOISE_FLOOR_MODEL in models:
        for m in ("rpe_trans", "rpe_rot_deg"):
            cmp(f"oracle {m} within the estimator noise floor", "oracle", NOISE_FLOOR_MODEL, m,
                lambda a, b: a <= b * 1.05 + 1e-9)
    if "oracle" in models:
        v = _get(agg, "oracle", "revisit_psnr_gt")
        out.append(Check("oracle revisit_psnr_gt >= 40 dB (very high)", math.isfinite(v) and v >= 40.0,
                         {"oracle revisit_psnr_gt": v}))
    if "static" in models and "oracle" in models:
        for m in ("rpe_trans", "rpe_rot_deg"):
            cmp(f"static {m} > oracle {m} (static does not follow actions)", "static", "oracle", m,
                lambda a, b: a > b)
    if "reproject" in models and "static" in models:
        for m in ("rpe_trans", "rpe_rot_deg"):
            cmp(f"reproject {m} < static {m} (reproject follows actions)", "reproject", "static",
                m, lambda a, b: a < b)
    if "reproject" in models and NOISE_FLOOR_MODEL in models:
        for m in ("rpe_trans@first_view", "rpe_rot_deg@first_view"):
            if m in agg.columns:
                cmp(f"reproject {m} near-oracle (within 1.25x the estimator noise floor in the first view)",
                    "reproject", NOISE_FLOOR_MODEL, m, lambda a, b: a <= 1.25 * b + 1e-9)
    if "reproject" in models and "oracle" in models:
        cmp("reproject revisit_psnr_gt < oracle (occluded content stays black)", "reproject", "oracle",
            "revisit_psnr_gt", lambda a, b: a < b)
    for kind, targets in TARGETS.items():
        variants = []
        for m in models:
            if m.startswith(f"noisy-oracle:{kind}="):
                try:
                    variants.append((float(m.split("=", 1)[1]), m))
                except ValueError:
                    continue
        if not variants:
            continue
        chain = ([(0.0, "oracle")] if "oracle" in models else []) + sorted(variants)
        if len(chain) < 2:
            continue
        for metric, sign in targets:
            vals = [_get(agg, m, metric) for _, m in chain]
            ok = all(math.isfinite(v) for v in vals) and all(
                (b - a) * sign > 0 for a, b in zip(vals, vals[1:]))
            word = "increases" if sign > 0 else "decreases"
            out.append(Check(f"noisy-oracle {kind}: {metric} {word} with strength "
                             f"({', '.join(f'{s:g}' for s, _ in chain)})", bool(ok),
                             {f"{kind}={s:g}": v for (s, _), v in zip(chain, vals)}))
    return out
