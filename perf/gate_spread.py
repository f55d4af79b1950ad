"""Measure the spread the regression gate's tolerances must cover (benchmark.gate.DEFAULT_TOLERANCES).

Two sources of spread, per model and headline metric (benchmark.protocol.HEADLINE_METRICS), on the
per-model suite means the gate compares:

1. an identical rerun of unchanged code on the same suite (must be exactly 0: the scorer is
   deterministic);
2. a "re-rendered" suite: a copy of the suite whose ground-truth frames (the reference every model
   is scored against, and frame 0 that every model starts from) have 5 % of their pixel values moved
   by +-1 grey level (seeded; PSNR > 55 dB against the original), which is what another CPU's
   renderer produces. The models' frames change imperceptibly with it (oracle: the perturbed ground
   truth; static / reproject: the perturbed frame 0), so this covers both imperceptible input changes
   and re-rendered suites. ``--seeds`` perturbations are run.

Writes OUT/gate_spread.md and .json: per (model, metric) the rerun difference, each seed's
difference, the maximum |difference| and the tolerance the gate uses beside it.

    python perf/gate_spread.py --suite SUITE_DIR --work /tmp/gate_spread [--seeds 1,2,3]
        [--models oracle,static,reproject] [--out reports] [--reuse]

``--reuse`` takes the finished runs already in WORK (only valid when the code has not changed since).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmark.gate import headline_applies, tolerance_for
from benchmark.protocol import HEADLINE_FAMILIES, HEADLINE_METRICS

FLIP_FRAC = 0.05


def perturb_suite(src: Path, dst: Path, seed: int) -> None:
    """Copy the suite folder ``src`` to ``dst`` with 5 % of every GT frame's values moved by +-1."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    for task in sorted((dst / "tasks").iterdir()):
        files = sorted((task / "frames").glob("*.png"))
        for i, f in enumerate(files):
            img = np.asarray(Image.open(f).convert("RGB")).astype(np.int16)
            flip = (rng.random(img.shape) < FLIP_FRAC) * rng.choice(np.array([-1, 1], np.int16), size=img.shape)
            out = np.clip(img + flip, 0, 255).astype(np.uint8)
            Image.fromarray(out).save(f)
            if i == 0:
                Image.fromarray(out).save(task / "first_frame.png")


def run(relic: str, suite: Path, out: Path, models: str, reuse: bool = False) -> pd.DataFrame:
    if reuse and (out / "results.csv").exists():
        return pd.read_csv(out / "results.csv")
    if out.exists():
        shutil.rmtree(out)
    cmd = [relic, "bench", "run", "--models", models, "--tasks", str(suite), "--out", str(out), "--no-lpips",
           "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return pd.read_csv(out / "results.csv")


def headline_rows(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["metric"].isin(list(HEADLINE_METRICS)) & (df["model"] != "estimator-noise-floor")]
    return d[[headline_applies(m, f) for m, f in zip(d["metric"], d["family"])]]


def suite_means(df: pd.DataFrame) -> pd.Series:
    """Per (model, metric) the mean over the tasks where the metric applies (the gate's comparison)."""
    return headline_rows(df).groupby(["model", "metric"])["value"].mean()


def task_values(df: pd.DataFrame) -> pd.Series:
    return headline_rows(df).set_index(["model", "metric", "task"])["value"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--models", default="oracle,static,reproject")
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--relic", default=str(Path(sys.executable).with_name("relic")))
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs in --work (same code only)")
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    first = run(args.relic, args.suite, args.work / "run_a", args.models, args.reuse)
    base, base_t = suite_means(first), task_values(first)
    again = run(args.relic, args.suite, args.work / "run_b", args.models, args.reuse)
    cols = {"rerun": suite_means(again) - base}
    rerun_task_max = float((task_values(again) - base_t).abs().max())
    per_task = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        ps = args.work / f"suite_p{seed}"
        if not (args.reuse and (args.work / f"run_p{seed}" / "results.csv").exists()):
            perturb_suite(args.suite, ps, seed)
        res = run(args.relic, ps, args.work / f"run_p{seed}", args.models, args.reuse)
        cols[f"perturbed seed {seed}"] = suite_means(res) - base
        per_task.append((task_values(res) - base_t).abs())
    tab = pd.DataFrame(cols)
    tab.insert(0, "baseline", base)
    pert = [c for c in tab.columns if c.startswith("perturbed")]
    tab["max |diff|"] = tab[pert].abs().max(axis=1)
    task_max = pd.concat(per_task, axis=1).max(axis=1).groupby(level=["model", "metric"]).max()
    tab["max |diff| one task"] = task_max.reindex(tab.index)
    tab["gate tolerance"] = [tolerance_for(m).allowed(b) for (_, m), b in zip(tab.index, tab["baseline"])]
    args.out.mkdir(parents=True, exist_ok=True)
    worst = tab.groupby(level="metric")["max |diff|"].max()
    lines = ["# Regression-gate spread: identical reruns and re-rendered (perturbed) suites", "",
             f"Command: `python perf/gate_spread.py --suite {args.suite} --work {args.work} --seeds "
             f"{args.seeds} --models {args.models}` ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, "
             f"{time.time() - t0:.0f} s).", "",
             "Suite means per model of the headline metrics ("
             + "; ".join(f"{m}: {'/'.join(f)} tasks" for m, f in HEADLINE_FAMILIES.items()) + "); differences "
             "are against the first run. Perturbed: 5 % of every ground-truth pixel value moved by +-1 grey level "
             "(frame 0 included, so every model's frames change imperceptibly too).", "",
             "| model | metric | baseline | " + " | ".join(c for c in tab.columns if c not in ("baseline",)) + " |",
             "|---|---|" + "---:|" * (len(tab.columns))]
    for (model, metric), r in tab.iterrows():
        lines.append(f"| {model} | {metric} | " + " | ".join(f"{v:.4g}" for v in r.values) + " |")
    worst_task = tab.groupby(level="metric")["max |diff| one task"].max()
    lines += ["", f"Identical rerun: largest |difference| of any per-task value {rerun_task_max:.3g}.",
              "Largest |difference| of a suite mean per metric over models and seeds: "
              + ", ".join(f"{m} {v:.4g}" for m, v in worst.items()) + ".",
              "Largest |difference| of one task's value (what --per-task compares): "
              + ", ".join(f"{m} {v:.4g}" for m, v in worst_task.items()) + ".", ""]
    (args.out / "gate_spread.md").write_text("\n".join(lines))
    (args.out / "gate_spread.json").write_text(json.dumps(
        {"suite": str(args.suite), "seeds": args.seeds, "models": args.models,
         "rows": [{"model": m, "metric": k, **{c: float(v) for c, v in r.items()}} for (m, k), r in tab.iterrows()],
         "max_abs_diff": {m: float(v) for m, v in worst.items()},
         "max_abs_diff_one_task": {m: float(v) for m, v in worst_task.items()},
         "rerun_max_abs_diff_any_task": rerun_task_max}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
