"""Regression gate: direction-aware comparison, tolerances, missing metrics, JSON bounds, CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import check as check_cli
from benchmark.gate import (Tolerance, check_regression, load_results, metric_direction, tolerance_for,
                            write_baseline)
from relic_cli import main as relic_main


def _results(psnr=30.0, rpe=0.05, lpips=0.2, extra_model=True) -> pd.DataFrame:
    rows = []
    for task in ("t1", "t2"):
        rows += [("oracle", task, "revisit_psnr_gt", psnr), ("oracle", task, "rpe_trans", rpe),
                 ("oracle", task, "revisit_lpips_gt", lpips), ("oracle", task, "fps", 100.0),
                 ("oracle", task, "revisit_psnr_self_ceiling", 40.0)]
        if extra_model:
            rows += [("static", task, "revisit_psnr_gt", 12.0), ("static", task, "rpe_rot_deg", 3.0)]
    return pd.DataFrame(rows, columns=["model", "task", "metric", "value"])


def test_directions():
    assert metric_direction("revisit_psnr_gt") == 1
    assert metric_direction("revisit_ssim_self_covis") == 1
    assert metric_direction("revisit_psnr_gt@gap<5s") == 1
    assert metric_direction("revisit_lpips_gt") == -1
    assert metric_direction("rpe_trans") == -1 and metric_direction("rpe_rot_deg") == -1
    assert metric_direction("revisit_psnr_self_ceiling") == 0  # depends on GT only
    assert metric_direction("fps") == 0 and metric_direction("drift_psnr_slope") == 0


def test_identical_results_pass_and_nothing_ungated_is_compared():
    base = _results()
    r = check_regression(base, base)
    assert r.passed and len(r.rows) == 5
    assert set(r.rows["metric"]) == {"revisit_psnr_gt", "rpe_trans", "revisit_lpips_gt", "rpe_rot_deg"}


@pytest.mark.parametrize("kw,bad_metric", [(dict(psnr=29.0), "revisit_psnr_gt"), (dict(rpe=0.07), "rpe_trans"),
                                           (dict(lpips=0.25), "revisit_lpips_gt")])
def test_regressions_are_caught_in_the_right_direction(kw, bad_metric):
    base = _results()
    r = check_regression(_results(**kw), base)
    assert not r.passed
    assert list(r.failures["metric"]) == [bad_metric]
    assert bad_metric in r.table(only_failures=True) and "REGRESSED" in r.table(only_failures=True)


def test_improvements_and_small_changes_pass():
    base = _results()
    assert check_regression(_results(psnr=35.0, rpe=0.01, lpips=0.1), base).passed
    assert check_regression(_results(psnr=29.6, rpe=0.054), base).passed  # within 0.5 dB / 10 %


def test_tolerances_override_and_relative():
    base = _results()
    assert tolerance_for("revisit_psnr_gt") == Tolerance(abs=0.5)
    assert not check_regression(_results(psnr=29.0), base).passed
    assert check_regression(_results(psnr=29.0), base, {"revisit_psnr*": 2.0}).passed
    assert not check_regression(_results(rpe=0.06), base, {"rpe_trans": (0.0, 0.1)}).passed
    assert check_regression(_results(rpe=0.06), base, {"rpe_trans": (0.0, 0.25)}).passed


def test_missing_model_or_metric_fails_unless_allowed():
    base = _results()
    res = _results(extra_model=False)
    r = check_regression(res, base)
    assert not r.passed and set(r.failures["model"]) == {"static"} and set(r.failures["status"]) == {"missing"}
    assert check_regression(res, base, allow_missing=True).passed
    nan = _results(lpips=float("nan"))
    assert not check_regression(nan, base).passed
    # a metric that is NaN in the baseline holds nothing to account
    assert check_regression(_results(), _results(lpips=float("nan"))).passed


def test_per_task_comparison():
    base = _results()
    res = base.copy()
    sel = (res["task"] == "t1") & (res["metric"] == "revisit_psnr_gt") & (res["model"] == "oracle")
    res.loc[sel, "value"] = 29.2  # mean drop 0.4 dB (passes), but 0.8 dB on t1
    assert check_regression(res, base).passed
    r = check_regression(res, base, per_task=True)
    assert not r.passed and list(r.failures["task"]) == ["t1"]


def test_json_bounds(tmp_path):
    bounds = {"oracle": {"revisit_psnr_gt": {"min": 29.5}, "rpe_trans": {"max": 0.06}}}
    p = tmp_path / "bounds.json"
    p.write_text(json.dumps(bounds))
    assert check_regression(_results(), str(p)).passed
    r = check_regression(_results(psnr=29.0, rpe=0.07), bounds)
    assert set(r.failures["metric"]) == {"revisit_psnr_gt", "rpe_trans"}


def test_load_results_validates(tmp_path):
    with pytest.raises(FileNotFoundError, match="results file not found"):
        load_results(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"model": ["a"], "value": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        load_results(bad)
    d = tmp_path / "run"
    d.mkdir()
    _results().assign(family="x").to_csv(d / "results.csv", index=False)  # extra columns are fine
    assert len(load_results(d)) == len(_results())


def test_cli_write_baseline_then_check(tmp_path, capsys):
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    _results().to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res), "--write-baseline"]) == 0
    assert set(pd.read_csv(base)["metric"]) == {"revisit_psnr_gt", "rpe_trans", "revisit_lpips_gt", "rpe_rot_deg"}
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 0
    assert "PASSED" in capsys.readouterr().out
    _results(psnr=25.0).to_csv(res, index=False)
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "revisit_psnr_gt" in out and "REGRESSED" in out
    assert relic_main(["bench", "check", "--baseline", str(base), "--results", str(res),
                       "--tolerance", "revisit_psnr*=6"]) == 0
    with pytest.raises(ValueError, match="GLOB=ABS"):
        check_cli.parse_tolerances(["oops"])
    assert write_baseline(_results(), str(tmp_path / "b2.csv")) == 10
    assert np.isfinite(pd.read_csv(tmp_path / "b2.csv")["value"]).all()


def test_missing_baseline_file_says_how_to_create_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="write-baseline"):
        check_regression(_results(), str(tmp_path / "none.csv"))
