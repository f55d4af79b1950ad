"""`relic bench check`: the regression gate (benchmark.gate) for CI.

Exit status 0 when no gated metric regressed, is missing (a task, a model, a NaN where the baseline
has a value) or changed; 1 with a diff table otherwise, or with a one-line error when the inputs
cannot be compared (different scoring protocol versions, unknown metrics, a missing file).
"""
from __future__ import annotations

import argparse

from benchmark.gate import check_regression, write_baseline


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", required=True,
                   help="baseline CSV (model,task,family,metric,value,protocol, from --write-baseline) or JSON "
                        'of per-model bounds {"protocol": 2, "models": {"model": {"metric": {"min"|"max": x}}}}')
    p.add_argument("--results", default=None,
                   help="results.csv / .parquet, or a run folder holding results.csv (from `relic bench run`)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metrics or globs to gate (default: the headline metrics of "
                        "benchmark.protocol.HEADLINE_METRICS); each needs a known direction")
    p.add_argument("--tolerance", action="append", default=[], metavar="GLOB=ABS[,REL]",
                   help="tolerance for metrics matching GLOB: absolute, optionally relative (fraction of the "
                        "baseline), e.g. 'revisit_psnr*=1.0' or 'rpe_trans_rel=0.05,0.2'; repeatable "
                        "(default: the measured tolerances in benchmark.gate.DEFAULT_TOLERANCES)")
    p.add_argument("--per-task", action="store_true", help="compare every task instead of per-model means")
    p.add_argument("--allow-missing", action="store_true",
                   help="accept incomplete results: missing tasks/models and NaN where the baseline has a value "
                        "are reported as 'missing (allowed)' instead of failing")
    p.add_argument("--models", default=None, help="comma-separated models to gate (default: all in the baseline)")
    p.add_argument("--all-rows", action="store_true", help="print every comparison, not only failures")
    p.add_argument("--write-baseline", action="store_true",
                   help="write the gated rows of --results to --baseline and exit 0 (refuses incomplete "
                        "results unless --allow-missing)")


def parse_tolerances(items: list[str]) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--tolerance {it!r}: use GLOB=ABS or GLOB=ABS,REL")
        pat, val = it.split("=", 1)
        parts = val.split(",")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            raise ValueError(f"--tolerance {it!r}: ABS and REL must be numbers") from None
        if len(nums) not in (1, 2) or any(not (x >= 0) for x in nums):
            raise ValueError(f"--tolerance {it!r}: give one or two non-negative numbers")
        out[pat.strip()] = (nums[0], nums[1] if len(nums) == 2 else 0.0)
    return out


def run(args) -> int:
    if args.results is None:
        raise ValueError("pass --results RESULTS.csv (or the run folder of `relic bench run --out DIR`)")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.write_baseline:
        n = write_baseline(args.results, args.baseline, metrics=metrics, allow_missing=args.allow_missing)
        print(f"wrote baseline {args.baseline} ({n} rows)")
        return 0
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    res = check_regression(args.results, args.baseline, parse_tolerances(args.tolerance), per_task=args.per_task,
                           allow_missing=args.allow_missing, models=models, metrics=metrics)
    for n in res.notes:
        print(f"note: {n}")
    print(res.table(only_failures=not args.all_rows))
    print(res.summary())
    return 0 if res.passed else 1
