"""Regression gate: headline metrics by default, direction-aware tolerances, and no holes: missing
tasks, NaN, unknown metrics and mixed protocol versions fail; an unchanged rerun passes."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import check as check_cli
from benchmark.gate import (Tolerance, UnknownMetricError, check_regression, load_results, metric_direction,
                            required_metrics, tolerance_for, write_baseline)
from benchmark.protocol import HEADLINE_METRICS, PROTOCOL_VERSION
from relic_cli import main as relic_main

TASKS = ("revisit_loop__a__s1", "revisit_pan360__b__s2", "long_horizon__c__s3")


def _results(psnr=30.0, gain=4.0, trans=0.3, rot=2.0, late=20.0, protocol=PROTOCOL_VERSION,
             models=("oracle", "static")) -> pd.DataFrame:
    rows = []
    for model in models:
        k = 1.0 if model == "oracle" else 0.5
        for task in TASKS:
            fam = task.split("__")[0]
            pan = fam == "revisit_pan360"
            rows += [(model, task, fam, "revisit_psnr_gt", psnr * k), (model, task, fam, "revisit_pairs", 6.0),
                     # pan360: no control pairs, so the gain is undefined there for every model
                     (model, task, fam, "revisit_consistency_gain", float("nan") if pan else gain * k),
                     (model, task, fam, "revisit_gain_pairs", 0.0 if pan else 5.0),
                     (model, task, fam, "rpe_trans_rel", float("nan") if pan else trans / k),
                     (model, task, fam, "n_seg_trans", 0.0 if pan else 40.0),
                     (model, task, fam, "rpe_rot_deg", rot / k), (model, task, fam, "n_seg", 50.0),
                     (model, task, fam, "drift_psnr_late", late * k), (model, task, fam, "fps", 100.0),
                     (model, task, fam, "revisit_psnr_self", 60.0)]
    df = pd.DataFrame(rows, columns=["model", "task", "family", "metric", "value"])
    df["protocol"] = protocol
    return df


def test_directions():
    for m, d in HEADLINE_METRICS.items():
        assert metric_direction(m) == d
    assert metric_direction("revisit_ssim_self_covis") == 1 and metric_direction("revisit_psnr_gt@gap<5s") == 1
    assert metric_direction("revisit_lpips_gt") == -1 and metric_direction("spurious_trans") == -1
    # secondary columns have no direction: raw self-similarity rewards a static video
    for m in ("revisit_psnr_self", "revisit_ssim_self", "revisit_psnr_self_gtref", "revisit_psnr_self_covis_gtref",
              "fps", "n_seg_trans", "est_noise_floor_rpe_trans_rel"):
        assert metric_direction(m) == 0, m


def test_unchanged_results_pass_and_only_headline_metrics_are_gated():
    base = _results()
    r = check_regression(base, base)
    assert r.passed, r.table()
    assert set(r.rows["metric"]) == set(HEADLINE_METRICS)
    # drift_psnr_late only on the long-horizon task; NaN-in-both (pan360 gain) is skipped, not failed
    assert r.rows.set_index(["model", "metric"]).loc[("oracle", "drift_psnr_late"), "task"] == "(mean of 1)"
    assert r.rows.set_index(["model", "metric"]).loc[("oracle", "revisit_consistency_gain"), "task"] == "(mean of 2)"


DEFAULTS = dict(psnr=30.0, gain=4.0, trans=0.3, rot=2.0, late=20.0)
KW_OF = dict(revisit_psnr_gt="psnr", revisit_consistency_gain="gain", rpe_trans_rel="trans", rpe_rot_deg="rot",
             drift_psnr_late="late")


@pytest.mark.parametrize("bad", list(HEADLINE_METRICS))
def test_regressions_beyond_the_tolerance_are_caught_in_the_right_direction(bad):
    """Every task value moves by a multiple of the metric's tolerance (static's values are the
    oracle's x 2 or / 2, so its mean moves by at most twice as much)."""
    k, tol, d = KW_OF[bad], tolerance_for(bad).abs, HEADLINE_METRICS[bad]
    r = check_regression(_results(**{k: DEFAULTS[k] - 3 * tol * d}), _results())
    assert not r.passed and set(r.failures["metric"]) == {bad}, r.table()
    assert "REGRESSED" in r.table(only_failures=True)
    assert check_regression(_results(**{k: DEFAULTS[k] + 3 * tol * d}), _results()).passed  # better
    assert check_regression(_results(**{k: DEFAULTS[k] - 0.4 * tol * d}), _results()).passed  # within


def test_missing_task_fails_unless_allowed():
    base = _results()
    res = base[~((base.model == "static") & (base.task == TASKS[0]))]
    r = check_regression(res, base)
    assert not r.passed
    f = r.failures
    assert list(f["task"]) == [TASKS[0]] and list(f["status"]) == ["missing"] and list(f["metric"]) == ["(task)"]
    ok = check_regression(res, base, allow_missing=True)
    assert ok.passed and "missing (allowed)" in set(ok.rows["status"])
    assert "allowed by --allow-missing" in ok.summary()


def test_missing_model_fails():
    base = _results()
    r = check_regression(base[base.model == "oracle"], base)
    assert not r.passed and set(r.failures["model"]) == {"static"}


@pytest.mark.parametrize("metric", list(HEADLINE_METRICS))
def test_nan_in_a_headline_metric_fails(metric):
    base = _results()
    res = base.copy()
    task = TASKS[2] if metric == "drift_psnr_late" else TASKS[0]
    res.loc[(res.model == "oracle") & (res.task == task) & (res.metric == metric), "value"] = np.nan
    r = check_regression(res, base)
    assert not r.passed
    assert list(r.failures[["task", "metric", "status"]].itertuples(index=False, name=None)) == [(task, metric, "missing")]


def test_a_value_where_the_baseline_has_none_fails():
    base = _results()
    res = base.copy()
    res.loc[(res.task == TASKS[1]) & (res.metric == "revisit_consistency_gain"), "value"] = 5.0
    r = check_regression(res, base)
    assert not r.passed and set(r.failures["status"]) == {"changed"}


def test_unknown_metrics_are_refused():
    base = _results()
    with pytest.raises(UnknownMetricError, match="unknown metric 'revisit_psnr_selfish'"):
        check_regression(base, base, metrics=["revisit_psnr_selfish"])
    with pytest.raises(UnknownMetricError, match="no known direction|unknown metric 'fps'"):
        check_regression(base, base, metrics=["fps"])
    with pytest.raises(UnknownMetricError, match="not in the baseline"):
        check_regression(base, base, metrics=["revisit_ssim_gt"])
    with pytest.raises(UnknownMetricError, match="matches no gateable"):
        check_regression(base, base, metrics=["nothing*"])
    assert check_regression(base, base, metrics=["rpe_*"]).passed


def test_mixed_protocol_versions_are_refused():
    base = _results(protocol=1)
    with pytest.raises(ValueError, match=f"protocol 1 but the results under protocol {PROTOCOL_VERSION}"):
        check_regression(_results(), base)
    mixed = pd.concat([_results(), _results(protocol=1)])
    with pytest.raises(ValueError, match="mixes scoring protocol versions"):
        check_regression(mixed, _results())
    # a table without a protocol column is protocol 1
    assert int(load_results(_results().drop(columns="protocol"))["protocol"].iloc[0]) == 1


def test_tolerances_and_per_task():
    base = _results()
    assert tolerance_for("rpe_rot_deg", {"rpe_rot*": 0.3}) == Tolerance(abs=0.3)
    assert tolerance_for("rpe_rot_deg", {"rpe_rot*": (0.1, 0.2)}) == Tolerance(0.1, 0.2)
    small = _results(psnr=30.0 - 0.01)
    assert check_regression(small, base).passed
    assert not check_regression(small, base, {"revisit_psnr*": 0.001}).passed
    res = base.copy()
    sel = (res.task == TASKS[0]) & (res.metric == "rpe_rot_deg") & (res.model == "oracle")
    res.loc[sel, "value"] += 0.6  # +0.2 deg on the mean (within 0.3), +0.6 on one task
    assert check_regression(res, base, {"rpe_rot_deg": 0.3}).passed
    r = check_regression(res, base, {"rpe_rot_deg": 0.3}, per_task=True)
    assert not r.passed and list(r.failures["task"]) == [TASKS[0]]


def test_required_metrics_follow_the_counts():
    req = required_metrics(_results()).set_index(["task", "metric"])["required"]
    assert not req[(TASKS[1], "revisit_consistency_gain")] and req[(TASKS[0], "revisit_consistency_gain")]
    assert not req[(TASKS[1], "rpe_trans_rel")] and req[(TASKS[2], "drift_psnr_late")]
    assert not req[(TASKS[0], "drift_psnr_late")]  # long-horizon only


def test_json_bounds(tmp_path):
    bounds = {"protocol": PROTOCOL_VERSION, "models": {"oracle": {"revisit_psnr_gt": {"min": 29.5},
                                                                  "rpe_rot_deg": {"max": 2.5}}}}
    p = tmp_path / "bounds.json"
    p.write_text(json.dumps(bounds))
    assert check_regression(_results(), str(p)).passed
    assert not check_regression(_results(psnr=29.0, rot=3.0), str(p)).passed
    p.write_text(json.dumps(bounds["models"]))  # no protocol: version 1
    with pytest.raises(ValueError, match="protocol 1"):
        check_regression(_results(), str(p))


def test_write_baseline_refuses_incomplete_results(tmp_path):
    res = _results()
    res.loc[(res.model == "static") & (res.metric == "rpe_rot_deg"), "value"] = np.nan
    with pytest.raises(ValueError, match="incomplete results"):
        write_baseline(res, str(tmp_path / "b.csv"))
    assert write_baseline(res, str(tmp_path / "b.csv"), allow_missing=True) > 0


def test_cli_baseline_then_check(tmp_path, capsys):
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    _results().to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res), "--write-baseline"]) == 0
    b = pd.read_csv(base)
    assert set(b["metric"]) == set(HEADLINE_METRICS) | {"revisit_pairs", "revisit_gain_pairs", "n_seg_trans", "n_seg"}
    assert set(b["protocol"]) == {PROTOCOL_VERSION} and "family" in b.columns
    # bar: exit 0 when R equals B
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 0
    assert "PASSED" in capsys.readouterr().out
    # bar: non-zero when one task is missing from R
    df = _results()
    df[df.task != TASKS[0]].to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 1
    assert "MISSING" in capsys.readouterr().out
    # bar: non-zero when R has NaN in a headline metric
    df = _results()
    df.loc[(df.model == "oracle") & (df.task == TASKS[0]) & (df.metric == "revisit_psnr_gt"), "value"] = np.nan
    df.to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 1
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res), "--allow-missing"]) == 0
    _results(psnr=25.0).to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "revisit_psnr_gt" in out and "REGRESSED" in out
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res),
                       "--tolerance", "revisit_psnr*=6"]) == 0
    # one-line errors: unknown metric, protocol mismatch
    _results().to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res), "--metrics", "nope"]) == 1
    _results(protocol=1).to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 1
    err = capsys.readouterr().err
    assert "unknown metric 'nope'" in err and "protocol" in err and err.count("relic: error:") == 2
    with pytest.raises(ValueError, match="GLOB=ABS"):
        check_cli.parse_tolerances(["oops"])


def test_missing_baseline_file_says_how_to_create_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="write-baseline"):
        check_regression(_results(), str(tmp_path / "none.csv"))
