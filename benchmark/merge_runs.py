"""Merge benchmark run folders on the same suite into one leaderboard, without re-running anything.

Adding a model to a published leaderboard should not cost re-scoring every baseline (the full
suite's scoring is ~10 min per model on 2 cores). ``merge_runs([A, B, ...], OUT)``:

- checks that the runs are comparable: the same scoring protocol version (``run.json`` "protocol"
  and the results' ``protocol`` column; a run without one counts as protocol 1), the same task ids
  (same suite), the same pose estimator and LPIPS setting (``run.json``), and the same estimator
  noise floor per task (the floor is the
  estimator's RPE on the ground-truth video, deterministic: different floors mean a different
  estimator version, and then RPE numbers are not comparable); any mismatch raises ``ValueError``
  naming it;
- takes each model's rows from the LAST run that has it (so a re-run of a model replaces the older
  one; reported in ``run.json`` "merged_from"), the floor rows once;
- copies each model's ``curves/``, ``trajectories/`` and ``strips/`` folders from that run, writes
  ``results.csv``/``.parquet`` and a ``run.json`` (tasks, estimator, protocol, models, failures and
  n/a declarations of the kept models, the sources; ``allow_missing`` if any source had it), then
  the leaderboard and the HTML report.

    relic bench merge RUN_A RUN_B ... --out DIR [--publish reports/full]
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.gate import check_same_protocol
from benchmark.harness import NOISE_FLOOR_MODEL, RESULT_COLUMNS, slug, write_results, write_run_info

ARTEFACT_DIRS = ("curves", "trajectories", "strips")


def _load(run: Path) -> tuple[dict, pd.DataFrame]:
    info_p, res_p = run / "run.json", run / "results.csv"
    if not info_p.exists() or not res_p.exists():
        raise ValueError(f"{run} is not a finished benchmark run (run.json and results.csv expected)")
    info, df = json.loads(info_p.read_text()), pd.read_csv(res_p)
    p_info = int(info.get("protocol", 1))
    if "protocol" not in df.columns:
        df["protocol"] = p_info
    versions = sorted(set(int(v) for v in df["protocol"].dropna().unique())) or [p_info]
    if len(versions) > 1 or versions[0] != p_info:
        raise ValueError(f"{run} mixes scoring protocol versions (run.json {p_info}, results {versions})")
    if "family" not in df.columns:
        df["family"] = df["task"].astype(str).str.split("__").str[0]
    info["protocol"] = p_info
    return info, df


def _floors(df: pd.DataFrame) -> pd.Series:
    f = df[df.model == NOISE_FLOOR_MODEL]
    return f.set_index(["task", "metric"])["value"].sort_index()


def merge_runs(runs: list[Path], out: Path, report: bool = True) -> pd.DataFrame:
    """Merge finished run folders ``runs`` (later ones win per model) into ``out``; returns the
    merged tidy table. See the module docstring for the checks."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise ValueError("merge needs at least two run folders")
    out = Path(out)
    if any(out.resolve() == r.resolve() for r in runs):
        raise ValueError("--out must be a new folder, not one of the runs being merged")
    loaded = [(r, *_load(r)) for r in runs]
    r0, info0, df0 = loaded[0]
    ids0 = [t["task_id"] for t in info0.get("tasks", [])]
    floor0 = _floors(df0)
    for r, info, df in loaded[1:]:
        check_same_protocol(info0["protocol"], info["protocol"], str(r0), str(r))
    for r, info, df in loaded[1:]:
        ids = [t["task_id"] for t in info.get("tasks", [])]
        if sorted(ids) != sorted(ids0):
            raise ValueError(f"{r} was run on different tasks than {r0} ({len(ids)} vs {len(ids0)} tasks, "
                             f"{len(set(ids) ^ set(ids0))} differ): not the same suite")
        for key in ("estimator", "lpips_requested"):
            if info.get(key) != info0.get(key):
                raise ValueError(f"{r} used {key}={info.get(key)!r} but {r0} used {info0.get(key)!r}: "
                                 "their numbers are not comparable")
        fl = _floors(df)
        if not fl.index.equals(floor0.index) or not np.allclose(fl.values, floor0.values, rtol=1e-6,
                                                                 atol=1e-9, equal_nan=True):
            raise ValueError(f"the estimator noise floor of {r} differs from {r0}'s: the runs used different "
                             "pose-estimator versions, so their RPE numbers are not comparable")
    owner: dict[str, Path] = {}
    for r, _, df in loaded:
        for m in df["model"].unique():
            if m != NOISE_FLOOR_MODEL:
                owner[m] = r
    parts = [df0[df0.model == NOISE_FLOOR_MODEL]]
    for r, _, df in loaded:
        parts.append(df[df.model.isin([m for m, o in owner.items() if o == r])])
    merged = pd.concat(parts, ignore_index=True)[RESULT_COLUMNS]
    out.mkdir(parents=True, exist_ok=True)
    for m, r in owner.items():
        for sub in ARTEFACT_DIRS:
            src = r / sub / slug(m)
            if src.is_dir():
                dst = out / sub / slug(m)
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
    write_results(merged, out)
    models, failures, not_applicable = {}, [], []
    for r, info, _ in loaded:
        for m, meta in (info.get("models") or {}).items():
            if owner.get(m) == r:
                models[m] = meta
        failures += [f for f in info.get("failures", []) if owner.get(f.get("model")) in (r, None)]
        not_applicable += [x for x in info.get("not_applicable", []) if owner.get(x.get("model")) == r]
    run_info = dict(info0)
    run_info.update({
        "models": models, "model_specs": sorted(owner), "failures": failures, "not_applicable": not_applicable,
        "allow_missing": any(bool(info.get("allow_missing")) for _, info, _ in loaded),
        "merged_from": [{"run": str(r), "models": sorted(m for m, o in owner.items() if o == r),
                         "finished_utc": info.get("finished_utc"), "wall_s": info.get("wall_s")}
                        for r, info, _ in loaded],
        "wall_s": float(sum(float(info.get("wall_s") or 0.0) for _, info, _ in loaded)),
        "finished_utc": max(str(info.get("finished_utc", "")) for _, info, _ in loaded),
        "merged_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    write_run_info(out, run_info, report)
    return merged


__all__ = ["merge_runs"]
