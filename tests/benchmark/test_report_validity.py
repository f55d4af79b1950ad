"""Every metric-validity check compares independent quantities and can fail: on a table with the
expected orderings all pass; corrupting the input of one check makes exactly that check FAIL."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.report_validity import validity_checks

GOOD = {  # task means per model (two tasks with these values)
    "oracle": dict(revisit_consistency_gain=11.0, rpe_trans_rel=0.1, rpe_rot_deg=2.0, drift_ssim_slope=0.0,
                   drift_sharpness_ratio=1.0, revisit_psnr_gt=60.0, revisit_psnr_gt_covis=60.0, drift_psnr_late=60.0),
    "static": dict(revisit_consistency_gain=0.0, rpe_trans_rel=1.0, rpe_rot_deg=20.0, drift_ssim_slope=0.0,
                   drift_sharpness_ratio=1.0, revisit_psnr_gt=12.0, revisit_psnr_gt_covis=11.0, drift_psnr_late=13.0),
    "reproject": dict(revisit_consistency_gain=30.0, rpe_trans_rel=0.5, rpe_rot_deg=5.0, revisit_psnr_gt=8.0),
    "noisy-oracle:drift=0.5": dict(rpe_trans_rel=0.3, rpe_rot_deg=6.0, drift_psnr_late=18.0),
    "noisy-oracle:drift=2": dict(rpe_trans_rel=0.6, rpe_rot_deg=10.0, drift_psnr_late=14.0),
    "noisy-oracle:blur=1": dict(drift_ssim_slope=-0.01, drift_sharpness_ratio=0.5, drift_psnr_late=30.0),
    "noisy-oracle:blur=2.5": dict(drift_ssim_slope=-0.02, drift_sharpness_ratio=0.2, drift_psnr_late=25.0),
    "noisy-oracle:forget=0.5": dict(revisit_psnr_gt=25.0, revisit_psnr_gt_covis=24.0, revisit_consistency_gain=1.5),
    "noisy-oracle:forget=1": dict(revisit_psnr_gt=15.0, revisit_psnr_gt_covis=14.0, revisit_consistency_gain=0.3),
    "blank": dict(revisit_consistency_gain=-3.0),
}

# check key -> (model, metric, corrupted task-mean value): the input a broken metric would produce
CORRUPTIONS = {
    "static_gain_zero": ("static", "revisit_consistency_gain", 1.0),
    "gt_gain_above_static": ("oracle", "revisit_consistency_gain", 2.0),
    "gt_trans_vs_static": ("oracle", "rpe_trans_rel", 0.27),            # estimator noise as large as the motion
    "gt_rot_vs_static": ("oracle", "rpe_rot_deg", 5.0),
    "reproject_rpe_trans_rel": ("reproject", "rpe_trans_rel", 1.0),
    "reproject_rpe_rot_deg": ("reproject", "rpe_rot_deg", 21.0),
    "drift_rpe_trans_rel": ("noisy-oracle:drift=2", "rpe_trans_rel", 0.2),
    "drift_rpe_rot_deg": ("noisy-oracle:drift=0.5", "rpe_rot_deg", 1.0),
    "blur_drift_ssim_slope": ("noisy-oracle:blur=2.5", "drift_ssim_slope", 0.0),
    "blur_drift_sharpness_ratio": ("noisy-oracle:blur=1", "drift_sharpness_ratio", 0.1),
    "drift_drift_psnr_late": ("noisy-oracle:drift=2", "drift_psnr_late", 18.5),     # a slope-like blind spot
    "blur_drift_psnr_late": ("noisy-oracle:blur=2.5", "drift_psnr_late", 60.0),
    "forget_revisit_psnr_gt": ("noisy-oracle:forget=1", "revisit_psnr_gt", 30.0),
    "forget_revisit_psnr_gt_covis": ("noisy-oracle:forget=0.5", "revisit_psnr_gt_covis", 61.0),
    "forget_revisit_consistency_gain": ("noisy-oracle:forget=1", "revisit_consistency_gain", 1.6),
    "blank_gain_not_above_static": ("blank", "revisit_consistency_gain", 13.2),  # protocol 6 on smoke
}


def _table(values: dict) -> pd.DataFrame:
    rows = []
    for model, metrics in values.items():
        for metric, v in metrics.items():
            for task, dv in (("t1", -0.001), ("t2", +0.001)):  # two tasks, mean = v
                rows.append((model, task, "fam", metric, v + dv))
    return pd.DataFrame(rows, columns=["model", "task", "family", "metric", "value"])


def _corrupt(model, metric, value) -> pd.DataFrame:
    vals = {m: dict(d) for m, d in GOOD.items()}
    vals[model][metric] = value
    return _table(vals)


def test_every_check_passes_on_the_expected_orderings():
    checks = validity_checks(_table(GOOD))
    assert {c.key for c in checks} == set(CORRUPTIONS)
    assert all(c.passed for c in checks), [c.description for c in checks if not c.passed]


@pytest.mark.parametrize("key", sorted(CORRUPTIONS))
def test_each_check_fails_on_corrupted_input(key):
    checks = {c.key: c for c in validity_checks(_corrupt(*CORRUPTIONS[key]))}
    assert not checks[key].passed, checks[key].values_text
    assert [k for k, c in checks.items() if not c.passed] == [key]


def test_nan_input_fails_and_no_check_compares_a_model_with_itself():
    checks = {c.key: c for c in validity_checks(_corrupt("static", "revisit_consistency_gain", np.nan))}
    assert not checks["static_gain_zero"].passed and not checks["gt_gain_above_static"].passed
    for c in validity_checks(_table(GOOD)):
        models = [k.split(" ")[0] for k in c.values]
        assert len(set(models)) == len(models), c.description  # different videos on every side


def test_checks_use_the_noise_floor_rows_without_an_oracle():
    vals = {m: d for m, d in GOOD.items() if m != "oracle" and not m.startswith("noisy")}
    vals["estimator-noise-floor"] = dict(rpe_trans_rel=0.1, rpe_rot_deg=2.0)
    checks = {c.key: c for c in validity_checks(_table(vals))}
    assert checks["gt_trans_vs_static"].passed and "estimator-noise-floor rpe_trans_rel" in checks["gt_trans_vs_static"].values
    assert "gt_gain_above_static" not in checks  # needs the ground-truth video's own frames
