"""Metric validity: orderings that independent videos must show if the metrics mean what they claim.

Every check compares quantities computed from DIFFERENT videos (or a video with a fixed target),
never a value with a copy of itself, and each can fail: ``tests/benchmark/test_report_validity.py``
feeds each one a corrupted table and sees it FAIL. Checks run on task means
(:func:`benchmark.aggregate.aggregate`) and only when the models they need are in the run; a
NaN input fails the check. Ground truth is the ``oracle`` model (its frames are the ground truth),
or, without it, the estimator-noise-floor rows (the ground-truth frames through the same scorer).

Memory
- static ``revisit_consistency_gain`` within +-``STATIC_GAIN_TOL_DB`` (0.5 dB) of 0: a frozen video
  cannot win the self-consistency headline (raw self-PSNR gives it the maximum, 60 dB);
- ground truth ``revisit_consistency_gain`` >= static's + ``GT_GAIN_MARGIN_DB`` (3 dB);
- blank (frame 0, then its mean colour: shows nothing) ``revisit_consistency_gain`` <= static's +
  ``STATIC_GAIN_TOL_DB``: a video without content cannot win the memory headline (under protocol 6
  it scored 13.2 dB on the smoke suite, above the ground truth's 11.3).

Action following (benchmark.metrics.action_following; static = a video that does not move)
- ground truth ``rpe_trans_rel`` <= 0.25 x static's, ``rpe_rot_deg`` <= 0.2 x static's;
- reproject (frame 0 warped to the commanded poses) ``rpe_trans_rel`` and ``rpe_rot_deg`` < static's.

Corruption chains: each noisy-oracle kind degrades its target metrics strictly monotonically in its
strength, with the oracle as strength 0: drift -> ``rpe_trans_rel`` and ``rpe_rot_deg`` increase,
``drift_psnr_late`` (the long-horizon headline) decreases; blur -> ``drift_ssim_slope``,
``drift_sharpness_ratio`` and ``drift_psnr_late`` decrease; forget -> ``revisit_psnr_gt``,
``revisit_psnr_gt_covis`` and ``revisit_consistency_gain`` decrease (forgetting blends the revisit
frames with another scene: the model no longer shows again what it showed). (Not
``drift_psnr_slope``: PSNR is logarithmic in the error, so for a corruption whose error grows like
strength x time its slope over time does not depend on the strength; that is why the headline is
the late level, protocol 6.)

No check compares the oracle with the estimator noise floor (the same frames: equal by
construction) or the oracle's revisit PSNR with its 60 dB cap (identical frames: true by
construction); those were removed.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import pandas as pd

from benchmark.aggregate import aggregate
from benchmark.naming import NOISE_FLOOR_MODEL

STATIC_GAIN_TOL_DB = 0.5
GT_GAIN_MARGIN_DB = 3.0
GT_TRANS_REL_FACTOR = 0.25
GT_ROT_FACTOR = 0.2
TARGETS = {"drift": [("rpe_trans_rel", +1), ("rpe_rot_deg", +1), ("drift_psnr_late", -1)],
           "blur": [("drift_ssim_slope", -1), ("drift_sharpness_ratio", -1), ("drift_psnr_late", -1)],
           "forget": [("revisit_psnr_gt", -1), ("revisit_psnr_gt_covis", -1), ("revisit_consistency_gain", -1)]}


@dataclass
class Check:
    key: str
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
    agg = aggregate(df)
    if agg.empty:
        return []
    models = set(agg.index)
    out: list[Check] = []
    gt = "oracle" if "oracle" in models else (NOISE_FLOOR_MODEL if NOISE_FLOOR_MODEL in models else None)

    def cmp(key, desc, a_model, b_model, metric, op, factor=1.0, offset=0.0):
        """a op factor * b + offset, on task means of two different models."""
        a, b = _get(agg, a_model, metric), _get(agg, b_model, metric)
        if metric not in agg.columns:
            return
        ok = math.isfinite(a) and math.isfinite(b) and op(a, factor * b + offset)
        out.append(Check(key, desc, bool(ok), {f"{a_model} {metric}": a, f"{b_model} {metric}": b}))

    if "static" in models and "revisit_consistency_gain" in agg.columns:
        v = _get(agg, "static", "revisit_consistency_gain")
        out.append(Check("static_gain_zero",
                         f"static revisit_consistency_gain within ±{STATIC_GAIN_TOL_DB:g} dB of 0 (a frozen video "
                         "cannot win)", math.isfinite(v) and abs(v) <= STATIC_GAIN_TOL_DB,
                         {"static revisit_consistency_gain": v}))
    if "static" in models and gt == "oracle":
        cmp("gt_gain_above_static", f"ground truth revisit_consistency_gain >= static + {GT_GAIN_MARGIN_DB:g} dB",
            "oracle", "static", "revisit_consistency_gain", operator.ge, offset=GT_GAIN_MARGIN_DB)
    if "blank" in models and "static" in models:
        cmp("blank_gain_not_above_static", f"blank (shows nothing after frame 0) revisit_consistency_gain <= "
            f"static + {STATIC_GAIN_TOL_DB:g} dB", "blank", "static", "revisit_consistency_gain", operator.le,
            offset=STATIC_GAIN_TOL_DB)
    if "static" in models and gt is not None:
        cmp("gt_trans_vs_static", f"ground truth rpe_trans_rel <= {GT_TRANS_REL_FACTOR:g} x static's",
            gt, "static", "rpe_trans_rel", operator.le, factor=GT_TRANS_REL_FACTOR)
        cmp("gt_rot_vs_static", f"ground truth rpe_rot_deg <= {GT_ROT_FACTOR:g} x static's",
            gt, "static", "rpe_rot_deg", operator.le, factor=GT_ROT_FACTOR)
    if "reproject" in models and "static" in models:
        for m in ("rpe_trans_rel", "rpe_rot_deg"):
            cmp(f"reproject_{m}", f"reproject {m} < static's (reproject follows the actions)", "reproject", "static",
                m, operator.lt)
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
            if metric not in agg.columns:
                continue
            vals = [_get(agg, m, metric) for _, m in chain]
            ok = all(math.isfinite(v) for v in vals) and all((b - a) * sign > 0 for a, b in zip(vals, vals[1:]))
            word = "increases" if sign > 0 else "decreases"
            out.append(Check(f"{kind}_{metric}", f"noisy-oracle {kind}: {metric} {word} with strength "
                             f"({', '.join(f'{s:g}' for s, _ in chain)})", bool(ok),
                             {f"{kind}={s:g}": v for (s, _), v in zip(chain, vals)}))
    return out
