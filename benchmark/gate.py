"""Regression gate: compare benchmark results with a baseline, direction-aware, with tolerances.

Results and baselines are tidy tables with columns ``model, task, metric, value`` (the
``results.csv`` that ``relic bench run`` / ``relic bench score`` write). A baseline can also be a
JSON file of explicit per-model bounds::

    {"oracle": {"revisit_psnr_gt": {"min": 40.0}, "rpe_rot_deg": {"max": 0.5}}, ...}

Gated metrics: action following (``rpe_trans``, ``rpe_rot_deg``, their ``_mean`` variants, ``ate``)
and memory retrieval (every ``revisit_{psnr,ssim,lpips}_*`` metric except the ``*_ceiling`` ones,
which depend on the ground truth only). Direction: PSNR and SSIM are higher-better; RPE, ATE and
LPIPS are lower-better.

Comparison (CSV baseline): per model and metric, the mean over the tasks present in BOTH tables
(finite values only; ``per_task=True`` compares each task instead). With ``d`` the change in the
bad direction (baseline - value for higher-better, value - baseline for lower-better), the metric
REGRESSES when ``d > max(abs_tol, rel_tol * |baseline|)``. Default tolerances (``DEFAULT_TOLERANCES``,
first matching glob wins): psnr 0.5 dB, ssim 0.02, lpips 0.02, rpe_rot_deg 0.05 deg or 10 %,
rpe_trans/ate 0.002 m or 10 %. A metric that is finite in the baseline but missing or NaN in the
results is "missing" and fails unless ``allow_missing``; a baseline model absent from the results
fails the same way. JSON bounds: value < min or value > max regresses (no extra tolerance).
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import pandas as pd

RESULT_COLUMNS = ["model", "task", "metric", "value"]


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0

    def allowed(self, baseline: float) -> float:
        return max(self.abs, self.rel * abs(baseline))


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "*psnr*": Tolerance(abs=0.5),
    "*ssim*": Tolerance(abs=0.02),
    "*lpips*": Tolerance(abs=0.02),
    "rpe_rot_deg*": Tolerance(abs=0.05, rel=0.10),
    "rpe_trans*": Tolerance(abs=0.002, rel=0.10),
    "ate": Tolerance(abs=0.002, rel=0.10),
}


def metric_direction(name: str) -> int:
    """+1 higher-better, -1 lower-better, 0 not gated (see the module docstring)."""
    base = name.split("@", 1)[0]
    if base.startswith("rpe_trans") or base.startswith("rpe_rot_deg") or base == "ate":
        return -1
    if base.startswith("revisit_") and not base.endswith("_ceiling"):
        if base.startswith(("revisit_psnr_", "revisit_ssim_")):
            return +1
        if base.startswith("revisit_lpips_"):
            return -1
    return 0


def tolerance_for(metric: str, tolerances: Optional[dict] = None) -> Tolerance:
    """First matching glob in ``tolerances`` (then DEFAULT_TOLERANCES); values may be Tolerance,
    a number (absolute) or an (abs, rel) pair."""
    for table in (tolerances or {}, DEFAULT_TOLERANCES):
        for pat, tol in table.items():
            if fnmatch.fnmatchcase(metric, pat):
                if isinstance(tol, Tolerance):
                    return tol
                if isinstance(tol, (tuple, list)):
                    return Tolerance(float(tol[0]), float(tol[1]))
                return Tolerance(abs=float(tol))
    return Tolerance()


def load_results(src: Union[str, os.PathLike, pd.DataFrame]) -> pd.DataFrame:
    """A tidy results table from a DataFrame, a .csv / .parquet file, or a folder holding results.csv."""
    if isinstance(src, pd.DataFrame):
        df = src.copy()
    else:
        path = str(src)
        if os.path.isdir(path):
            path = os.path.join(path, "results.csv")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"results file not found: {path} (write one with `relic bench run` or "
                                    "`relic bench score`)")
        df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing}; expected {RESULT_COLUMNS}")
    df = df[RESULT_COLUMNS].copy()
    df["model"] = df["model"].astype(str)
    df["task"] = df["task"].astype(str)
    df["metric"] = df["metric"].astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    return df


@dataclass
class GateResult:
    rows: pd.DataFrame  # model, task, metric, direction, baseline, value, delta_bad, allowed, status
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> pd.DataFrame:
        return self.rows[self.rows["status"].isin(["regressed", "missing"])]

    @property
    def passed(self) -> bool:
        return len(self.failures) == 0

    def __bool__(self) -> bool:
        return self.passed

    def table(self, only_failures: bool = False) -> str:
        """A readable fixed-width diff table."""
        df = self.failures if only_failures else self.rows
        if df.empty:
            return "(no gated metrics compared)" if self.rows.empty else "(no regressions)"
        cols = ["status", "model", "task", "metric", "dir", "baseline", "value", "worse_by", "allowed"]
        lines = []
        for r in df.itertuples(index=False):
            lines.append([r.status.upper() if r.status != "ok" else "ok", r.model, r.task, r.metric,
                          {1: "higher", -1: "lower"}.get(r.direction, "?"), _fmt(r.baseline), _fmt(r.value),
                          _fmt(r.delta_bad), _fmt(r.allowed)])
        widths = [max(len(c), *(len(str(x[i])) for x in lines)) for i, c in enumerate(cols)]
        out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        out.append("  ".join("-" * w for w in widths))
        out += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
        return "\n".join(out)

    def summary(self) -> str:
        n, nf = len(self.rows), len(self.failures)
        word = "PASSED" if self.passed else "FAILED"
        return f"regression gate {word}: {nf} of {n} gated comparisons regressed or missing"


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, (int, float, np.floating)):
        return f"{x:.4g}"
    return str(x)


def _finite_mean(s: pd.Series) -> float:
    v = s.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _check_bounds(res: pd.DataFrame, bounds: dict, allow_missing: bool) -> GateResult:
    rows = []
    for model, mb in bounds.items():
        sub = res[res["model"] == model]
        for metric, b in mb.items():
            v = _finite_mean(sub[sub["metric"] == metric]["value"]) if len(sub) else float("nan")
            lo, hi = b.get("min"), b.get("max")
            direction = +1 if lo is not None and hi is None else (-1 if hi is not None and lo is None else 0)
            if not np.isfinite(v):
                status, bad = ("ok" if allow_missing else "missing"), float("nan")
            else:
                bad = max((lo - v) if lo is not None else -np.inf, (v - hi) if hi is not None else -np.inf)
                status = "regressed" if bad > 0 else "ok"
            rows.append(dict(model=model, task="(mean)", metric=metric, direction=direction,
                             baseline=lo if lo is not None else hi, value=v, delta_bad=bad, allowed=0.0,
                             status=status))
    return GateResult(pd.DataFrame(rows, columns=_ROW_COLS))


_ROW_COLS = ["model", "task", "metric", "direction", "baseline", "value", "delta_bad", "allowed", "status"]


def check_regression(results, baseline, tolerances: Optional[dict] = None, *, per_task: bool = False,
                     allow_missing: bool = False, models: Optional[list[str]] = None,
                     metrics: Optional[list[str]] = None) -> GateResult:
    """Compare ``results`` with ``baseline`` (tables, paths, or for the baseline a bounds dict / .json).

    tolerances: {metric glob: Tolerance | abs | (abs, rel)}, consulted before DEFAULT_TOLERANCES.
    models / metrics: restrict the comparison (metric names may be globs).
    """
    res = load_results(results)
    if models:
        res = res[res["model"].isin(models)]
    if isinstance(baseline, dict):
        return _check_bounds(res, baseline, allow_missing)
    if isinstance(baseline, (str, os.PathLike)) and not os.path.exists(baseline):
        raise FileNotFoundError(f"baseline not found: {baseline} (create one from a trusted run with "
                                "`relic bench check --baseline FILE --results RUN --write-baseline`)")
    if isinstance(baseline, (str, os.PathLike)) and str(baseline).endswith(".json"):
        with open(baseline) as f:
            bounds = json.load(f)
        return _check_bounds(res, bounds.get("models", bounds), allow_missing)
    base = load_results(baseline)
    if models:
        base = base[base["model"].isin(models)]
    base = base[base["metric"].map(metric_direction) != 0]
    if metrics:
        base = base[base["metric"].map(lambda m: any(fnmatch.fnmatchcase(m, p) for p in metrics))]
    notes = []
    rows = []
    for (model, metric), b in base.groupby(["model", "metric"], sort=True):
        r = res[(res["model"] == model) & (res["metric"] == metric)]
        direction = metric_direction(metric)
        tol = tolerance_for(metric, tolerances)
        if per_task:
            pairs = []
            for task, bt in b.groupby("task"):
                rt = r[r["task"] == task]
                pairs.append((task, _finite_mean(bt["value"]), _finite_mean(rt["value"]) if len(rt) else float("nan")))
        else:
            common = sorted(set(b["task"]) & set(r["task"]))
            if not common:
                pairs = [("(mean)", _finite_mean(b["value"]), float("nan"))]
            else:
                if len(common) < b["task"].nunique():
                    notes.append(f"{model}/{metric}: compared on {len(common)} of {b['task'].nunique()} baseline tasks")
                pairs = [(f"(mean of {len(common)})", _finite_mean(b[b["task"].isin(common)]["value"]),
                          _finite_mean(r[r["task"].isin(common)]["value"]))]
        for task, bv, v in pairs:
            if not np.isfinite(bv):
                continue  # nothing to hold the result to
            allowed = tol.allowed(bv)
            if not np.isfinite(v):
                status, bad = ("ok" if allow_missing else "missing"), float("nan")
            else:
                bad = (bv - v) if direction > 0 else (v - bv)
                status = "regressed" if bad > allowed + 1e-12 else "ok"
            rows.append(dict(model=model, task=task, metric=metric, direction=direction, baseline=bv, value=v,
                             delta_bad=bad, allowed=allowed, status=status))
    return GateResult(pd.DataFrame(rows, columns=_ROW_COLS), notes)


def write_baseline(results, path: str) -> int:
    """Write the gated rows of ``results`` as a baseline CSV (atomic). Returns the number of rows."""
    res = load_results(results)
    res = res[res["metric"].map(metric_direction) != 0]
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".baseline-", suffix=".tmp")
    os.close(fd)
    try:
        res.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return len(res)
