"""Leaderboard: aggregate a run's tidy results into tables, write ``leaderboard.md``.

Aggregation: for every (model, metric), the mean over the suite's tasks of the per-task values,
ignoring NaN (a metric a task cannot define, e.g. revisit metrics on a task without revisit pairs,
or LPIPS when its backbone weights are unavailable). A cell is "n/a" when every task is NaN.
Per-family tables average over the tasks of one family. ``fps`` rows are the mean of per-task fps.

Rows: our measured models first (world models, then reference baselines marked "ref", which read
ground truth), the estimator's noise floor (ground-truth frames through the same scorer), then the
paper's Table 2 rows, labelled "reported by the paper, different test set".
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from benchmark.paper_results import PAPER_LABEL, PAPER_SOURCE, paper_table

NOISE_FLOOR_MODEL = "estimator-noise-floor"

# (metric, header, direction) direction: +1 higher is better, -1 lower is better, 0 neutral
MAIN_COLUMNS = [
    ("rpe_trans", "RPE-trans", -1),
    ("rpe_rot_deg", "RPE-rot (deg)", -1),
    ("revisit_psnr_gt", "revisit PSNR vs GT (dB)", +1),
    ("revisit_ssim_gt", "revisit SSIM vs GT", +1),
    ("revisit_lpips_gt", "revisit LPIPS vs GT", -1),
    ("revisit_psnr_self", "revisit PSNR self (dB)", +1),
    ("drift_psnr_slope", "drift PSNR slope (dB/s)", +1),
    ("fps", "gen. FPS", +1),
    ("pose_est_failed_frac", "pose-est. failed frames", 0),
]
LONG_COLUMNS = [
    ("drift_psnr_slope", "PSNR slope (dB/s)", +1),
    ("drift_psnr_ratio", "PSNR last/first", +1),
    ("drift_ssim_slope", "SSIM slope (/s)", +1),
    ("drift_sharpness_ratio", "sharpness last/first", 0),
]
# action following on the 1-s segments that still show frame 0's content (benchmark.metrics.first_view)
FIRST_VIEW_COLUMNS = [
    ("rpe_trans@first_view", "RPE-trans in first view", -1),
    ("rpe_rot_deg@first_view", "RPE-rot in first view (deg)", -1),
    ("first_view_seg_frac", "first-view segments", 0),
    ("rpe_trans", "RPE-trans (all)", -1),
]
FIRST_VIEW_NOTE = ("RPE over the 1-s segments whose frames all still show at least half of what frame 0 saw "
                   "(ground-truth co-visibility; the same segments for every model), with the Sim(3) alignment "
                   "fitted on those frames (the first view scored as its own clip): there a model can follow "
                   "the actions without inventing content, and the reproject baseline is not mostly black holes.")
REFERENCE_PREFIXES = ("oracle", "static", "reproject", "noisy-oracle")
MODEL_ORDER = ("relic", "relic-nomem")


def is_reference(model: str) -> bool:
    return model.split(":")[0] in REFERENCE_PREFIXES


def model_sort_key(model: str) -> tuple:
    if model == NOISE_FLOOR_MODEL:
        return (3, 0, model)
    if model in MODEL_ORDER:
        return (0, MODEL_ORDER.index(model), model)
    if not is_reference(model):
        return (1, 0, model)
    base = model.split(":")[0]
    return (2, REFERENCE_PREFIXES.index(base), model)


def load_results(run_dir: Path) -> pd.DataFrame:
    p = Path(run_dir) / "results.csv"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: run `relic bench run --out {run_dir}` first")
    return pd.read_csv(p)


def load_run_info(run_dir: Path) -> dict:
    p = Path(run_dir) / "run.json"
    return json.loads(p.read_text()) if p.exists() else {}


def aggregate(df: pd.DataFrame, family: str | None = None, families: list[str] | None = None) -> pd.DataFrame:
    """model x metric table of task means (NaN ignored), models in leaderboard order."""
    d = df
    if family is not None:
        d = d[d["family"] == family]
    if families is not None:
        d = d[d["family"].isin(families)]
    if d.empty:
        return pd.DataFrame()
    t = d.pivot_table(index="model", columns="metric", values="value", aggfunc="mean", dropna=False)
    return t.loc[sorted(t.index, key=model_sort_key)]


def fmt(v, metric: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    v = float(v)
    if metric == "fps" or metric.endswith("_ms"):
        return f"{v:.1f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.4f}"


def md_table(agg: pd.DataFrame, columns, label_ref: bool = True) -> str:
    cols = [(m, h, d) for m, h, d in columns]
    arrow = {+1: " ↑", -1: " ↓", 0: ""}
    head = "| model | " + " | ".join(h + arrow[d] for _, h, d in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for model, row in agg.iterrows():
        label = model
        if label_ref and is_reference(model):
            label = f"{model} (ref)"
        if model == NOISE_FLOOR_MODEL:
            label = "estimator noise floor (GT frames)"
        cells = [fmt(row.get(m, float("nan")), m) for m, _, _ in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_md() -> str:
    p = paper_table()
    lines = [f"| model | source | VBench avg ↑ | imaging q. ↑ | aesthetic ↑ | RPE-trans ↓ | RPE-rot ↓ |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for _, r in p.iterrows():
        lines.append(f"| {r['model']} | *{PAPER_LABEL}* | {r['vbench_avg']:.4f} | {r['imaging_quality']:.4f} | "
                     f"{r['aesthetic_quality']:.4f} | {r['rpe_trans']:.4f} | {r['rpe_rot']:.2f} |")
    return "\n".join(lines)


def lpips_note(df: pd.DataFrame) -> str:
    lp = df[df["metric"] == "revisit_lpips_gt"]["value"]
    if len(lp) and lp.isna().all():
        return ("LPIPS columns are n/a: the LPIPS backbone's ImageNet weights are not in torchvision's "
                "local cache on the machine that ran this (they are never downloaded); nothing is invented.")
    return ""


def leaderboard_markdown(run_dir: Path) -> str:
    """The whole leaderboard.md text for a run directory."""
    from benchmark.report_validity import validity_checks

    run_dir = Path(run_dir)
    df = load_results(run_dir)
    info = load_run_info(run_dir)
    out = ["# relic-suite leaderboard", ""]
    tasks = info.get("tasks", [])
    if tasks:
        fams = sorted({t["family"] for t in tasks})
        res = {(t["width"], t["height"]) for t in tasks}
        out.append(f"Suite **{info.get('suite', '?')}**: {len(tasks)} tasks on held-out (test-split) scenes, "
                   f"families {', '.join(fams)}; resolution {', '.join(f'{w}x{h}' for w, h in sorted(res))}; "
                   f"total {sum(t['num_frames'] for t in tasks)} frames. Run finished {info.get('finished_utc', '?')} "
                   f"in {info.get('wall_s', float('nan')):.1f} s on {info.get('cpu_count', '?')} CPU(s).")
        if info.get("merged_from"):
            out.append("")
        for src in info.get("merged_from", []):
            out.append(f"- merged: {', '.join(src['models'])} from run `{Path(src['run']).name}` "
                       f"(finished {src.get('finished_utc', '?')}).")
        out.append("")
    out += ["Values are means over tasks. ↑ higher is better, ↓ lower is better. \"(ref)\" marks reference "
            "baselines that read ground truth (oracle: GT frames; reproject: frame-0 GT depth; noisy-oracle: "
            "GT with a controlled corruption). PSNR is capped at 60 dB (identical images score exactly 60). "
            "RPE over 1-s segments (16 frames) after Sim(3) alignment to the commanded trajectory; RPE-trans is in the aligned trajectory's "
            "metres. \"pose-est. failed frames\": fraction of a video's frames on which the pose estimator "
            "failed and held the previous pose; where it is high, that model's RPE says more about the "
            "estimator than about the model (a held pose is a static camera).", ""]
    note = lpips_note(df)
    if note:
        out += [note, ""]
    agg = aggregate(df)
    out += ["## All tasks", "", md_table(agg, MAIN_COLUMNS), ""]
    out += ["### Reported by the paper (different test set, not comparable)", "",
            f"Source: {PAPER_SOURCE}. These rows were **{PAPER_LABEL}**; the paper reports no memory metrics.", "",
            paper_md(), ""]
    fams = sorted(df["family"].dropna().unique())
    long_f = [f for f in fams if f.startswith("long")]
    if long_f:
        la = aggregate(df, families=long_f)
        out += ["## Long-horizon tasks", "", md_table(la, LONG_COLUMNS + [MAIN_COLUMNS[2], MAIN_COLUMNS[0]]), ""]
    if "rpe_trans@first_view" in df["metric"].unique():
        out += ["## Action following in the first view", "", FIRST_VIEW_NOTE, "", md_table(agg, FIRST_VIEW_COLUMNS), ""]
    out += ["## Per family", ""]
    fam_cols = [("revisit_psnr_gt", "revisit PSNR vs GT", +1), ("revisit_psnr_self", "revisit PSNR self", +1),
                ("rpe_trans", "RPE-trans", -1), ("rpe_rot_deg", "RPE-rot", -1)]
    for f in fams:
        out += [f"### {f}", "", md_table(aggregate(df, family=f), fam_cols), ""]
    checks = validity_checks(df)
    if checks:
        out += ["## Metric validity", "",
                "Expected orderings between reference baselines; each must hold for the metrics to mean "
                "what they claim.", "", "| check | result | values |", "|---|---|---|"]
        for c in checks:
            out.append(f"| {c.description} | {'PASS' if c.passed else 'FAIL'} | {c.values_text} |")
        out.append("")
    fails = info.get("failures", [])
    if fails:
        out += ["## Not run / failed", ""]
        for f in fails:
            where = f" on {f['task']}" if f.get("task") else ""
            out.append(f"- `{f['model']}`{where} ({f['stage']}): {f['error']}")
        out.append("")
    return "\n".join(out)


def write_leaderboard(run_dir: Path, dest: Path | None = None) -> Path:
    """Write ``leaderboard.md`` into ``run_dir`` (or ``dest``) atomically; returns its path."""
    text = leaderboard_markdown(run_dir)
    dest = Path(dest) if dest else Path(run_dir) / "leaderboard.md"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, dest)
    return dest


__all__ = ["aggregate", "leaderboard_markdown", "write_leaderboard", "MAIN_COLUMNS"]
