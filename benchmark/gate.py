"""Regression gate: compare benchmark results with a baseline, direction-aware, with measured tolerances.

Results and baselines are tidy tables with columns ``model, task, metric, value`` (plus ``family``
and ``protocol`` when present: the ``results.csv`` that ``relic bench run`` / ``relic bench score``
write, or a baseline written by ``write_baseline``). A baseline can also be a JSON file of explicit
per-model bounds::

    {"oracle": {"revisit_psnr_gt": {"min": 40.0}, "rpe_rot_deg": {"max": 0.5}}, ...}

What is gated. By default the headline metrics, ``benchmark.protocol.HEADLINE_METRICS`` (one
definition, each with its direction): ``revisit_psnr_gt`` (+), ``revisit_consistency_gain`` (+),
``rpe_trans_rel`` (-), ``rpe_rot_deg`` (-), and ``drift_psnr_late`` (+) on long-horizon tasks
only (``HEADLINE_FAMILIES``). ``metrics=[...]`` gates others (names or globs); every one must have a
known direction (``metric_direction``) and be in the baseline, or the gate refuses to run
(``UnknownMetricError``). Secondary columns (raw self-similarity ``*_self``, the ground-truth
references ``*_gtref``, counts, speed) have no direction and cannot be gated.

Refusals (ValueError, one line): baseline and results computed under different protocol versions
(``benchmark.protocol.PROTOCOL_VERSION``; a table without a ``protocol`` column counts as 1).

Failures (``GateResult.failures``), each a row with its status:

- ``missing``: a baseline model or (model, task) has no rows in the results (missing task), or a
  gated metric that is finite in the baseline is NaN / absent in the results (NaN);
- ``changed``: a gated metric that is NaN in the baseline is finite in the results (the task set a
  mean covers changed: the baseline does not come from this suite or protocol);
- ``regressed``: worse than the baseline by more than the tolerance.

A metric NaN in both is undefined by definition on that task (e.g. ``revisit_consistency_gain`` on
a task without matched control pairs) and is skipped. ``allow_missing=True`` turns ``missing`` into
``missing (allowed)``: reported, not failing (the one meaning of ``--allow-missing`` on every
command: incomplete results are accepted and labelled).

Comparison: per model and metric, the mean over the baseline's tasks where the baseline value is
finite (the same tasks on both sides; ``per_task=True`` compares each task). With ``d`` the change in
the bad direction, a metric REGRESSES when ``d > max(abs_tol, rel_tol * |baseline|)``. Tolerances
(``DEFAULT_TOLERANCES``) come from measured spread, not taste: benchmark/README.md, "Regression
gate", gives the measurement and the command that reproduces it. Identical reruns of unchanged code
on the same machine give identical numbers (zero spread); the tolerances cover the spread of
re-rendered suites (another CPU's renderer moves a few pixels by a grey level) and imperceptible
changes of a model's frames. JSON bounds: value < min or value > max regresses (no tolerance).
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import pandas as pd

from benchmark.aggregate import finite_mean
from benchmark.naming import NOISE_FLOOR_MODEL, REQUIRED_RESULT_COLUMNS, RESULT_COLUMNS
from benchmark.protocol import HEADLINE_DEFINED_BY, HEADLINE_FAMILIES, HEADLINE_METRICS, PROTOCOL_VERSION
from datagen.atomic import atomic_write


class UnknownMetricError(ValueError):
    """A gated metric the gate has no direction for, or that the baseline does not contain."""


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0

    def allowed(self, baseline: float) -> float:
        return max(self.abs, self.rel * abs(baseline))


# Headline tolerances: 3x the largest change of a model's suite mean measured under a re-rendered
# suite (5 % of the ground-truth pixel values moved by +-1 grey level, 3 seeds; the models' frames
# change imperceptibly with it), rounded up (`python perf/gate_spread.py`, reports/gate_spread.md;
# identical reruns: 0). Smoke suite, 2026-12-07, scoring protocol 6 (protocols 4 and 5 gave the same
# for the metrics they share, except rpe_trans_rel 0.017 under 4): revisit_psnr_gt 0.0042 dB,
# revisit_consistency_gain 0.0043 dB, drift_psnr_late 0.00038 dB (static; given the revisit PSNR's
# 0.02 dB, the same kind of number; the slope it replaced as the long-horizon headline: 0.0016 dB/s), rpe_trans_rel 0.0039 (protocol 3: 0.034, kept as the larger),
# rpe_rot_deg 0.175 deg (reproject; oracle 0.001) (the action-following spread is the pose
# estimator's; re-derive these when it changes). First matching glob wins; the non-headline globs
# are conservative defaults for --metrics.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "revisit_psnr_gt": Tolerance(abs=0.02),
    "revisit_consistency_gain": Tolerance(abs=0.02),
    "drift_psnr_late": Tolerance(abs=0.02),
    "drift_psnr_slope": Tolerance(abs=0.006),
    "rpe_trans_rel": Tolerance(abs=0.11),
    "rpe_rot_deg": Tolerance(abs=0.53),
    "*psnr*": Tolerance(abs=0.5),
    "*ssim*": Tolerance(abs=0.02),
    "*lpips*": Tolerance(abs=0.02),
    "rpe_rot*": Tolerance(abs=0.3, rel=0.10),
    "rpe_trans*": Tolerance(abs=0.03, rel=0.10),
    "spurious_trans": Tolerance(abs=0.02, rel=0.10),
}


def metric_direction(name: str) -> int:
    """+1 higher-better, -1 lower-better, 0 no direction (cannot be gated; see the module docstring)."""
    if name in HEADLINE_METRICS:
        return HEADLINE_METRICS[name]
    base = name.split("@", 1)[0]
    if base.startswith("est_noise_floor_") or base.startswith("n_seg"):
        return 0
    if base.startswith(("rpe_trans", "rpe_rot")) or base in ("spurious_trans", "ate"):
        return -1
    if base.startswith("revisit_") and not base.endswith(("_gtref", "_ceiling")):
        variant = base.split("_", 2)[-1]
        if variant.startswith("self") and "covis" not in variant:
            return 0  # raw self-similarity: a static video scores the maximum (secondary, never gated)
        if base.startswith(("revisit_psnr_", "revisit_ssim_")):
            return +1
        if base.startswith("revisit_lpips_"):
            return -1
    if base.startswith(("drift_psnr", "drift_ssim")) and base.endswith(("_late", "_slope", "_ratio")):
        return +1
    if base.startswith("drift_lpips") and base.endswith(("_late", "_slope", "_ratio")):
        return -1
    if base.startswith(("frames_psnr", "frames_ssim")):
        return +1
    if base.startswith("frames_lpips"):
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


def family_of(task: str) -> str:
    """A suite task id's family (``<family>__<scene>__s<seed>``)."""
    return str(task).split("__", 1)[0]


def load_results(src: Union[str, os.PathLike, pd.DataFrame]) -> pd.DataFrame:
    """A tidy results table (model, task, family, metric, value, protocol) from a DataFrame, a .csv /
    .parquet file, or a run folder holding results.csv. ``family`` is derived from the task id when
    absent; ``protocol`` comes from the table, else the run folder's run.json, else 1."""
    info_protocol = None
    if isinstance(src, pd.DataFrame):
        df = src.copy()
    else:
        path = str(src)
        if os.path.isdir(path):
            rj = os.path.join(path, "run.json")
            if os.path.isfile(rj):
                with open(rj) as f:
                    info_protocol = json.load(f).get("protocol")
            path = os.path.join(path, "results.csv")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"results file not found: {path} (write one with `relic bench run` or "
                                    "`relic bench score`)")
        df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing}; expected {REQUIRED_RESULT_COLUMNS}")
    df = df.copy()
    df["model"] = df["model"].astype(str)
    df["task"] = df["task"].astype(str)
    df["metric"] = df["metric"].astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    if "family" not in df.columns:
        df["family"] = df["task"].map(family_of)
    df["family"] = df["family"].fillna(df["task"].map(family_of)).astype(str)
    if "protocol" not in df.columns:
        df["protocol"] = int(info_protocol) if info_protocol is not None else 1
    df["protocol"] = pd.to_numeric(df["protocol"], errors="coerce").fillna(1).astype(int)
    return df[RESULT_COLUMNS].reset_index(drop=True)


def protocol_of(df: pd.DataFrame, what: str) -> int:
    """The one protocol version of a loaded table; ValueError when it mixes versions."""
    versions = sorted(set(int(v) for v in df["protocol"].unique())) if len(df) else [PROTOCOL_VERSION]
    if len(versions) > 1:
        raise ValueError(f"{what} mixes scoring protocol versions {versions}: numbers of different protocols "
                         "never share a table")
    return versions[0]


def check_same_protocol(a: int, b: int, what_a: str, what_b: str) -> None:
    """ValueError (one line, naming both versions) when two protocol versions differ."""
    if int(a) != int(b):
        raise ValueError(f"{what_a} was computed under scoring protocol {a} but {what_b} under protocol {b}: "
                         "their numbers are not comparable; re-score with the current code "
                         f"(protocol {PROTOCOL_VERSION})")


def headline_applies(metric: str, family: str) -> bool:
    fams = HEADLINE_FAMILIES.get(metric)
    return fams is None or any(str(family).startswith(f) for f in fams)


def required_metrics(df: pd.DataFrame, metrics: Optional[list[str]] = None) -> pd.DataFrame:
    """Per (task, metric): whether the metric is DEFINED on that task, so that a NaN there is a failure.

    A metric in HEADLINE_FAMILIES applies only to those families. A metric with a count in
    HEADLINE_DEFINED_BY is defined where that count (ground-truth derived, the same for every model;
    the maximum over the table's models) is > 0; without a count row anywhere, where any model of
    the table has it finite. Other metrics: defined where any model has it finite.
    Returns columns task, metric, required (bool)."""
    metrics = list(metrics or HEADLINE_METRICS)
    d = df[df["model"] != NOISE_FLOOR_MODEL]
    fam = d.drop_duplicates("task").set_index("task")["family"]
    rows = []
    for m in metrics:
        count = HEADLINE_DEFINED_BY.get(m)
        cnt = d[d["metric"] == count].groupby("task")["value"].max() if count else pd.Series(dtype=float)
        fin = d[d["metric"] == m].groupby("task")["value"].apply(lambda s: bool(np.isfinite(s).any()))
        for task, family in fam.items():
            if not headline_applies(m, family):
                req = False
            elif count and task in cnt.index and np.isfinite(cnt[task]):
                req = bool(cnt[task] > 0)
            else:
                req = bool(fin.get(task, False))
            rows.append((task, m, req))
    return pd.DataFrame(rows, columns=["task", "metric", "required"])


def incomplete_rows(df: pd.DataFrame, metrics: Optional[list[str]] = None) -> pd.DataFrame:
    """(model, task, metric) where a required metric (``required_metrics``) is NaN or absent."""
    req = required_metrics(df, metrics)
    req = req[req["required"]]
    out = []
    for model, sub in df[df["model"] != NOISE_FLOOR_MODEL].groupby("model"):
        have = sub.set_index(["task", "metric"])["value"]
        have = have[~have.index.duplicated()]
        for r in req.itertuples(index=False):
            if r.task not in set(sub["task"]):
                continue  # a missing task is reported as such, not per metric
            v = have.get((r.task, r.metric), float("nan"))
            if not np.isfinite(v):
                out.append((model, r.task, r.metric))
    return pd.DataFrame(out, columns=["model", "task", "metric"])


@dataclass
class GateResult:
    rows: pd.DataFrame  # model, task, metric, direction, baseline, value, delta_bad, allowed, status
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> pd.DataFrame:
        return self.rows[self.rows["status"].isin(["regressed", "missing", "changed"])]

    @property
    def passed(self) -> bool:
        return len(self.failures) == 0

    def __bool__(self) -> bool:
        return self.passed

    def table(self, only_failures: bool = False) -> str:
        """A readable fixed-width diff table (failures and allowed-missing rows with ``only_failures``)."""
        df = self.rows[self.rows["status"] != "ok"] if only_failures else self.rows
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
        allowed = int((self.rows["status"] == "missing (allowed)").sum()) if len(self.rows) else 0
        extra = f" ({allowed} missing, allowed by --allow-missing)" if allowed else ""
        return f"regression gate {word}: {nf} of {n} gated comparisons regressed, missing or changed{extra}"


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, (int, float, np.floating)):
        return f"{x:.4g}"
    return str(x)


_ROW_COLS = ["model", "task", "metric", "direction", "baseline", "value", "delta_bad", "allowed", "status"]


def _row(model, task, metric, direction, bv, v, bad, allowed, status) -> dict:
    return dict(model=model, task=task, metric=metric, direction=direction, baseline=bv, value=v, delta_bad=bad,
                allowed=allowed, status=status)


def _check_bounds(res: pd.DataFrame, bounds: dict, allow_missing: bool) -> GateResult:
    rows = []
    for model, mb in bounds.items():
        sub = res[res["model"] == model]
        for metric, b in mb.items():
            v = finite_mean(sub[sub["metric"] == metric]["value"]) if len(sub) else float("nan")
            lo, hi = b.get("min"), b.get("max")
            direction = +1 if lo is not None and hi is None else (-1 if hi is not None and lo is None else 0)
            if not np.isfinite(v):
                status, bad = ("missing (allowed)" if allow_missing else "missing"), float("nan")
            else:
                bad = max((lo - v) if lo is not None else -np.inf, (v - hi) if hi is not None else -np.inf)
                status = "regressed" if bad > 0 else "ok"
            rows.append(_row(model, "(mean)", metric, direction, lo if lo is not None else hi, v, bad, 0.0, status))
    return GateResult(pd.DataFrame(rows, columns=_ROW_COLS))


def resolve_metrics(names: Optional[list[str]], available: Optional[set] = None) -> list[str]:
    """The gated metric list: HEADLINE_METRICS by default, else the given names / globs expanded over
    ``available``. UnknownMetricError for a name without a direction or matching nothing."""
    if not names:
        return list(HEADLINE_METRICS)
    out: list[str] = []
    for pat in names:
        pat = pat.strip()
        if any(ch in pat for ch in "*?["):
            hits = sorted(m for m in (available or set()) if fnmatch.fnmatchcase(m, pat) and metric_direction(m))
            if not hits:
                raise UnknownMetricError(f"metric pattern {pat!r} matches no gateable metric of the baseline")
            out += [h for h in hits if h not in out]
        else:
            if metric_direction(pat) == 0:
                raise UnknownMetricError(f"unknown metric {pat!r}: no known direction, cannot be gated (gateable: "
                                         f"{', '.join(HEADLINE_METRICS)} and other revisit/rpe/frames metrics)")
            if pat not in out:
                out.append(pat)
    return out


def check_regression(results, baseline, tolerances: Optional[dict] = None, *, per_task: bool = False,
                     allow_missing: bool = False, models: Optional[list[str]] = None,
                     metrics: Optional[list[str]] = None) -> GateResult:
    """Compare ``results`` with ``baseline`` (tables, paths, or for the baseline a bounds dict / .json).

    tolerances: {metric glob: Tolerance | abs | (abs, rel)}, consulted before DEFAULT_TOLERANCES.
    models: restrict the comparison to these baseline models. metrics: gated metrics (names or globs;
    default the headline metrics). See the module docstring for statuses and refusals.
    """
    res = load_results(results)
    p_res = protocol_of(res, "the results")
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
        check_same_protocol(int(bounds.get("protocol", 1)) if "models" in bounds else 1, p_res,
                            f"baseline {baseline}", "the results")
        return _check_bounds(res, bounds.get("models", bounds), allow_missing)
    base = load_results(baseline)
    what = f"baseline {baseline}" if isinstance(baseline, (str, os.PathLike)) else "the baseline"
    check_same_protocol(protocol_of(base, what), p_res, what, "the results")
    base = base[base["model"] != NOISE_FLOOR_MODEL]
    if models:
        unknown = sorted(set(models) - set(base["model"]))
        if unknown:
            raise ValueError(f"model(s) {', '.join(unknown)} not in the baseline (it has "
                             f"{', '.join(sorted(set(base['model'])))})")
        base = base[base["model"].isin(models)]
    gated = resolve_metrics(metrics, set(base["metric"]))
    absent = [m for m in gated if m not in set(base["metric"])]
    if absent:
        raise UnknownMetricError(f"metric(s) {', '.join(absent)} not in the baseline: write the baseline with them "
                                 "(--write-baseline --metrics ...) or gate other metrics")
    notes: list[str] = []
    rows: list[dict] = []
    missing_status = "missing (allowed)" if allow_missing else "missing"
    extra = sorted(set(res["model"]) - set(base["model"]) - {NOISE_FLOOR_MODEL})
    if extra:
        notes.append(f"results models not in the baseline (not gated): {', '.join(extra)}")
    for model, b in base.groupby("model", sort=True):
        r = res[res["model"] == model]
        if r.empty:
            rows.append(_row(model, "(all)", "(model)", 0, float("nan"), float("nan"), float("nan"), 0.0,
                             missing_status))
            notes.append(f"{model}: in the baseline, absent from the results")
            continue
        tasks = sorted(set(b["task"]))
        gone = [t for t in tasks if t not in set(r["task"])]
        for t in gone:
            rows.append(_row(model, t, "(task)", 0, float("nan"), float("nan"), float("nan"), 0.0, missing_status))
        rv = r.set_index(["task", "metric"])["value"]
        rv = rv[~rv.index.duplicated()]
        bv_all = b.set_index(["task", "metric"])["value"]
        bv_all = bv_all[~bv_all.index.duplicated()]
        fam = b.drop_duplicates("task").set_index("task")["family"]
        for metric in gated:
            direction = metric_direction(metric)
            tol = tolerance_for(metric, tolerances)
            pairs = []  # (task, baseline, value) on the tasks where the baseline is finite
            for t in tasks:
                if t in gone or not headline_applies(metric, fam.get(t, family_of(t))):
                    continue
                bv = bv_all.get((t, metric), float("nan"))
                v = rv.get((t, metric), float("nan"))
                if not np.isfinite(bv):
                    if np.isfinite(v):
                        rows.append(_row(model, t, metric, direction, bv, v, float("nan"), 0.0, "changed"))
                    continue  # undefined on this task in both: nothing to compare
                if not np.isfinite(v):
                    rows.append(_row(model, t, metric, direction, bv, v, float("nan"), 0.0, missing_status))
                    continue
                pairs.append((t, bv, v))
            if not pairs:
                continue
            if not per_task:
                pairs = [(f"(mean of {len(pairs)})", float(np.mean([p[1] for p in pairs])),
                          float(np.mean([p[2] for p in pairs])))]
            for t, bv, v in pairs:
                allowed = tol.allowed(bv)
                bad = (bv - v) if direction > 0 else (v - bv)
                status = "regressed" if bad > allowed + 1e-12 else "ok"
                rows.append(_row(model, t, metric, direction, bv, v, bad, allowed, status))
    return GateResult(pd.DataFrame(rows, columns=_ROW_COLS), notes)


def write_baseline(results, path: str, metrics: Optional[list[str]] = None, allow_missing: bool = False) -> int:
    """Write the gated rows (headline metrics by default, with the counts that say where they are
    defined) of ``results`` as a baseline CSV (atomic), with its family and protocol columns.
    Refuses (ValueError) results that are incomplete (a required metric NaN) unless ``allow_missing``.
    Returns the number of rows."""
    res = load_results(results)
    protocol_of(res, "the results")
    res = res[res["model"] != NOISE_FLOOR_MODEL]
    gated = resolve_metrics(metrics, set(res["metric"]))
    bad = incomplete_rows(res, gated)
    if len(bad) and not allow_missing:
        first = bad.iloc[0]
        raise ValueError(f"refusing to write a baseline from incomplete results: {len(bad)} required metric value(s) "
                         f"are NaN (first: {first.model} / {first.task} / {first.metric}); fix the run or pass "
                         "--allow-missing")
    counts = [HEADLINE_DEFINED_BY[m] for m in gated if m in HEADLINE_DEFINED_BY]
    res = res[res["metric"].isin(gated + counts)]
    atomic_write(path, lambda tmp: res.to_csv(tmp, index=False))
    return len(res)
