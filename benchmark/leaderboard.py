"""Leaderboard: aggregate a run's tidy results into tables that compare like with like; ``leaderboard.md``.

Task sets. The suite's tasks are the run's (``run.json`` "tasks"). Per model
(:func:`model_status`):

- n/a: tasks the model declared outside its action space (run.json "not_applicable", with the
  reason): excluded explicitly and listed, never counted as missing;
- missing: suite tasks that are neither n/a nor in the results (a rollout that failed, a video that
  could not be read, a model that could not be built), with the reason from run.json "failures";
- NaN: (task, headline metric) pairs where the metric is DEFINED on the task (benchmark.gate.
  required_metrics: its ground-truth count is > 0, e.g. the task has scored revisit pairs) but the
  model's value is NaN.

A model with a missing task or a NaN is INCOMPLETE: its row is marked and shows no means (they would
cover other tasks than the rows beside it: a broken submission could look better than ground
truth), and ``relic bench run`` / ``score`` exit non-zero. With ``--allow-missing`` (run.json
"allow_missing") the row shows its means over the tasks it has, labelled "k of N tasks,
--allow-missing".

Aggregation: for every complete model and metric, the mean over its tasks (all suite tasks minus
its n/a ones) of the per-task values; a NaN there is a metric undefined on that task for every model
(e.g. ``revisit_consistency_gain`` on a task without control pairs), so every complete row averages
the same tasks. ``drift_psnr_late`` in the main table is the mean over long-horizon tasks only (its
headline definition, benchmark.protocol). A cell is "n/a" when no task defines it. When any model
declares n/a tasks, a second table compares every complete model on the tasks all of them ran.
``fps`` is the mean of per-task fps for models that generate; reference baselines (which read
ground truth) and video folders (speed unknown) get n/a.

Rows: our measured models first (world models, then reference baselines marked "ref"), the
estimator's noise floor (ground-truth frames through the same scorer), then the paper's Table 2
rows, labelled "reported by the paper, different test set".
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.aggregate import aggregate
from benchmark.gate import family_of, incomplete_rows
from benchmark.naming import NOISE_FLOOR_MODEL, is_reference, model_sort_key
from benchmark.paper_results import PAPER_LABEL, PAPER_SOURCE, paper_table
from benchmark.protocol import HEADLINE_FAMILIES, HEADLINE_METRICS, PROTOCOL_VERSION
from benchmark.report_validity import validity_checks
from datagen.atomic import atomic_write_text

# (metric, header, direction) direction: +1 higher is better, -1 lower is better, 0 neutral
MAIN_COLUMNS = [
    ("revisit_psnr_gt", "revisit PSNR vs GT (dB)", +1),
    ("revisit_consistency_gain", "revisit consistency gain (dB)", +1),
    ("rpe_trans_rel", "RPE-trans rel.", -1),
    ("rpe_rot_deg", "RPE-rot (deg)", -1),
    ("drift_psnr_late", "late PSNR vs GT, long-horizon (dB)", +1),
    ("revisit_ssim_gt", "revisit SSIM vs GT", +1),
    ("revisit_lpips_gt", "revisit LPIPS vs GT", -1),
    ("revisit_psnr_self", "revisit PSNR self (secondary: static = 60)", 0),
    ("fps", "gen. FPS", +1),
    ("pose_est_failed_frac", "pose-est. failed frames", 0),
]
#: main-table columns averaged over some families only (their headline definition)
COLUMN_FAMILIES = HEADLINE_FAMILIES
MEMORY_COLUMNS = [
    ("revisit_psnr_gt", "PSNR vs GT (dB)", +1),
    ("revisit_consistency_gain", "consistency gain (dB)", +1),
    ("revisit_psnr_gt_covis", "PSNR vs GT, co-visible (dB)", +1),
    ("revisit_psnr_self_covis", "PSNR self, co-visible, warped (dB)", +1),
    ("revisit_psnr_self", "PSNR self (secondary)", 0),
    ("revisit_psnr_self_gtref", "PSNR self of GT (reference)", 0),
]
ACTION_COLUMNS = [
    ("rpe_trans_rel", "RPE-trans rel.", -1),
    ("rpe_trans", "RPE-trans (m)", -1),
    ("rpe_rot_deg", "RPE-rot (deg)", -1),
    ("rpe_rot_rel", "RPE-rot rel.", -1),
    ("spurious_trans", "spurious trans. (m/s)", -1),
]
LONG_COLUMNS = [
    ("drift_psnr_late", "late PSNR vs GT (dB)", +1),
    ("drift_psnr_slope", "PSNR slope (dB/s)", +1),
    ("drift_psnr_ratio", "PSNR last/first", +1),
    ("drift_ssim_slope", "SSIM slope (/s)", +1),
    ("drift_sharpness_ratio", "sharpness last/first", 0),
    ("revisit_psnr_gt", "revisit PSNR vs GT (dB)", +1),
    ("revisit_consistency_gain", "revisit consistency gain (dB)", +1),
    ("rpe_trans_rel", "RPE-trans rel.", -1),
]
FAMILY_COLUMNS = [
    ("revisit_psnr_gt", "revisit PSNR vs GT", +1),
    ("revisit_consistency_gain", "consistency gain (dB)", +1),
    ("rpe_trans_rel", "RPE-trans rel.", -1),
    ("rpe_rot_deg", "RPE-rot (deg)", -1),
]
# action following on the 1-s segments that still show frame 0's content (protocol 1 only)
FIRST_VIEW_COLUMNS = [
    ("rpe_trans@first_view", "RPE-trans in first view", -1),
    ("rpe_rot_deg@first_view", "RPE-rot in first view (deg)", -1),
    ("first_view_seg_frac", "first-view segments", 0),
]
FIRST_VIEW_NOTE = ("RPE over the 1-s segments whose frames all still show at least half of what frame 0 saw "
                   "(ground-truth co-visibility; the same segments for every model), with the Sim(3) alignment "
                   "fitted on those frames (the first view scored as its own clip).")
REVISIT_COUNT_COLUMNS = [
    ("revisit_pairs_annotated", "annotated"), ("revisit_pairs_reobserved", "re-observed (gate)"),
    ("revisit_pairs", "scored"), ("revisit_gain_pairs", "with controls"), ("revisit_gain_controls", "controls"),
]
MEMORY_NOTE = ("Revisit consistency gain: how much more alike the model's own frames are at the revisit pairs "
               "than at control pairs with the same time gap that see different places (ground-truth "
               "co-visibility <= 10 %; PSNR of 32-px thumbnails; benchmark.metrics.retrieval). A static video "
               "scores 0, the ground truth clearly positive. It measures consistency, not fidelity: read it beside "
               "revisit PSNR vs GT (reproject, whose frames depend only on the commanded pose, scores the highest "
               "gain and a low revisit PSNR vs GT). n/a on a task without control pairs (the camera sees the same place at every "
               "pair with that gap). Raw revisit PSNR self is secondary: a static video scores its maximum, 60 dB. "
               "A revisit pair counts only if the ground truth re-observes at least half of the later view "
               "(re-observation gate).")


def load_results(run_dir: Path) -> pd.DataFrame:
    p = Path(run_dir) / "results.csv"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: run `relic bench run --out {run_dir}` first")
    df = pd.read_csv(p)
    if "family" not in df.columns:
        df["family"] = df["task"].map(family_of)
    return df


def load_run_info(run_dir: Path) -> dict:
    p = Path(run_dir) / "run.json"
    return json.loads(p.read_text()) if p.exists() else {}


@dataclass
class ModelStatus:
    """How completely a model covers the suite (module docstring)."""

    model: str
    suite_tasks: list[str]
    tasks: list[str]                                       # tasks with results
    missing: dict[str, str] = field(default_factory=dict)  # task -> reason
    nan: list[tuple[str, str]] = field(default_factory=list)  # (task, metric)
    na: dict[str, str] = field(default_factory=dict)       # task -> reason (out of action space)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.nan

    def label(self) -> str:
        n, k = len(self.suite_tasks), len(self.tasks)
        na = f" + {len(self.na)} n/a" if self.na else ""
        if self.complete:
            return f"{k}/{n}{na}"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.nan:
            parts.append(f"{len(self.nan)} NaN")
        return f"INCOMPLETE {k}/{n}{na}: {', '.join(parts)}"

    def problems(self) -> list[str]:
        """One line per problem (missing task with its reason, NaN headline metric)."""
        out = [f"{self.model}: task {t} missing ({r})" for t, r in sorted(self.missing.items())]
        out += [f"{self.model}: task {t}: {m} is NaN where the task defines it" for t, m in self.nan]
        return out


def model_status(df: pd.DataFrame, info: dict) -> dict[str, ModelStatus]:
    """Per model (results models and models that failed to build): tasks, missing, NaN, n/a."""
    suite = [t["task_id"] for t in info.get("tasks", [])] or sorted(set(df["task"]))
    fails: dict[tuple[str, str | None], str] = {}
    for f in info.get("failures", []):
        fails.setdefault((f.get("model"), f.get("task")), f"{f.get('stage', '?')}: {f.get('error', '?')}")
    na: dict[str, dict[str, str]] = {}
    for r in info.get("not_applicable", []):
        na.setdefault(r["model"], {})[r["task"]] = r["reason"]
    models = [m for m in df["model"].unique() if m != NOISE_FLOOR_MODEL]
    models += [m for (m, t) in fails if t is None and m not in models]
    nan = incomplete_rows(df, list(HEADLINE_METRICS)) if len(df) else pd.DataFrame(columns=["model", "task", "metric"])
    out = {}
    for m in models:
        have = sorted(set(df.loc[df["model"] == m, "task"]) & set(suite))
        mna = {t: r for t, r in na.get(m, {}).items() if t in suite}
        missing = {}
        for t in suite:
            if t in have or t in mna:
                continue
            missing[t] = fails.get((m, t)) or fails.get((m, None)) or "no results"
        rows = nan[nan["model"] == m]
        out[m] = ModelStatus(m, suite, have, missing, [(r.task, r.metric) for r in rows.itertuples()], mna)
    return out


def fmt(v, metric: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    v = float(v)
    if abs(v) < 5e-5:
        v = 0.0  # no "-0.0000"
    if metric == "fps" or metric.endswith("_ms"):
        return f"{v:.1f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.4f}"


@dataclass
class TableRow:
    model: str
    label: str
    kind: str        # "" (world model), "ref", "floor", "incomplete"
    cells: list[str]


def label_of(model: str) -> str:
    if model == NOISE_FLOOR_MODEL:
        return "estimator noise floor (GT frames)"
    return f"{model} (ref)" if is_reference(model) else model


def table_rows(df: pd.DataFrame, info: dict, columns, statuses: dict[str, ModelStatus] | None = None, *,
               family: str | None = None, families: list[str] | None = None, tasks: list[str] | None = None,
               main: bool = False, with_tasks: bool = False) -> list[TableRow]:
    """Rows of one leaderboard table (module docstring for the rules). ``main``: restrict the columns in
    COLUMN_FAMILIES to their families. ``with_tasks``: add the task-coverage cell."""
    statuses = statuses if statuses is not None else model_status(df, info)
    allow = bool(info.get("allow_missing"))
    agg = aggregate(df, family=family, families=families, tasks=tasks)
    fam_aggs = {}
    if main:
        for m, fams in COLUMN_FAMILIES.items():
            sub = df[df["family"].map(lambda f: any(str(f).startswith(x) for x in fams))]
            if tasks is not None:
                sub = sub[sub["task"].isin(tasks)]
            fam_aggs[m] = aggregate(sub)
    models = list(agg.index) if len(agg) else []
    models += [m for m in statuses if m not in models and family is None and families is None]
    rows = []
    for model in sorted(models, key=model_sort_key):
        st = statuses.get(model)
        label, kind = label_of(model), ("floor" if model == NOISE_FLOOR_MODEL else
                                        "ref" if is_reference(model) else "")
        show = True
        if st is not None and not st.complete:
            kind = "incomplete"
            if allow:
                label += f" (INCOMPLETE: {len(st.tasks)} of {len(st.suite_tasks)} tasks, --allow-missing)"
            else:
                label += " (INCOMPLETE: no means, see below)"
                show = False
        cells = []
        for m, _, _ in columns:
            if not show:
                cells.append("incomplete")
                continue
            src = fam_aggs.get(m, agg)
            v = src.loc[model, m] if (len(src) and model in src.index and m in src.columns) else float("nan")
            if m == "fps" and (is_reference(model) or model == NOISE_FLOOR_MODEL):
                cells.append("n/a (ref)" if model != NOISE_FLOOR_MODEL else "n/a")
            else:
                cells.append(fmt(v, m))
        if model == NOISE_FLOOR_MODEL and all(c.startswith("n/a") for c in cells):
            continue  # the floor carries action-following metrics only
        if with_tasks:
            cells.append(st.label() if st is not None else "")
        rows.append(TableRow(model, label, kind, cells))
    return rows


def headers(columns, with_tasks: bool = False) -> list[str]:
    arrow = {+1: " ↑", -1: " ↓", 0: ""}
    return [h + arrow[d] for _, h, d in columns] + (["tasks"] if with_tasks else [])


def md_table(rows, columns, with_tasks: bool = False) -> str:
    """Markdown table of ``table_rows`` output, or of a plain model x metric DataFrame of means."""
    if isinstance(rows, pd.DataFrame):
        rows = [TableRow(m, label_of(m), "", [fmt(r.get(c, float("nan")), c) for c, _, _ in columns])
                for m, r in rows.iterrows()]
    hs = headers(columns, with_tasks)
    lines = ["| model | " + " | ".join(hs) + " |", "|---|" + "---:|" * len(hs)]
    for r in rows:
        lines.append(f"| {r.label} | " + " | ".join(r.cells) + " |")
    return "\n".join(lines)


def paper_md() -> str:
    p = paper_table()
    lines = ["| model | source | VBench avg ↑ | imaging q. ↑ | aesthetic ↑ | RPE-trans ↓ | RPE-rot ↓ |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for _, r in p.iterrows():
        lines.append(f"| {r['model']} | *{PAPER_LABEL}* | {r['vbench_avg']:.4f} | {r['imaging_quality']:.4f} | "
                     f"{r['aesthetic_quality']:.4f} | {r['rpe_trans']:.4f} | {r['rpe_rot']:.2f} |")
    return "\n".join(lines)


def lpips_note(df: pd.DataFrame) -> str:
    lp = df[df["metric"] == "revisit_lpips_gt"]["value"]
    if len(lp) and lp.isna().all():
        return ("LPIPS columns are n/a: no SHA-256-verified AlexNet backbone file was available on the machine "
                "that ran this (they are never downloaded; pass --lpips-weights PATH); nothing is invented.")
    return ""


def common_tasks(statuses: dict[str, ModelStatus]) -> list[str] | None:
    """The tasks every complete model ran, when some model declared n/a tasks (else None)."""
    done = [s for s in statuses.values() if s.complete]
    if not any(s.na for s in done):
        return None
    return sorted(set.intersection(*(set(s.tasks) for s in done))) if done else []


def revisit_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per task, the revisit pair counts (ground-truth derived: the maximum over models)."""
    names = [m for m, _ in REVISIT_COUNT_COLUMNS]
    d = df[df["metric"].isin(names) & (df["model"] != NOISE_FLOOR_MODEL)]
    if d.empty:
        return pd.DataFrame()
    t = d.pivot_table(index="task", columns="metric", values="value", aggfunc="max")
    return t[[m for m in names if m in t.columns]]


def header_text(info: dict) -> list[str]:
    out = []
    tasks = info.get("tasks", [])
    if tasks:
        fams = sorted({t["family"] for t in tasks})
        res = {(t["width"], t["height"]) for t in tasks}
        out.append(f"Suite **{info.get('suite', '?')}**: {len(tasks)} tasks on held-out (test-split) scenes, "
                   f"families {', '.join(fams)}; resolution {', '.join(f'{w}x{h}' for w, h in sorted(res))}; "
                   f"total {sum(t['num_frames'] for t in tasks)} frames. Scoring protocol "
                   f"{info.get('protocol', 1)}. Run finished {info.get('finished_utc', '?')} in "
                   f"{info.get('wall_s', float('nan')):.1f} s on {info.get('cpu_count', '?')} CPU(s).")
        if info.get("suite_content_sha256"):
            out.append(f"Suite content SHA-256 `{info['suite_content_sha256'][:16]}`, pose estimator "
                       f"`{info.get('estimator', '?')}`: runs on suites with the same hash scored bit-identical "
                       "inputs and ground truth; a machine whose renderer rounds differently builds another hash, "
                       "and its numbers agree with these within the gate's tolerances (benchmark/README.md).")
    return out


INTRO = ("Values are means over tasks; every complete row averages the same tasks (a model missing a task or "
         "with a NaN in a headline metric is marked INCOMPLETE). ↑ higher is better, ↓ lower is better. "
         "\"(ref)\" marks reference baselines that read ground truth (oracle: GT frames; reproject: frame-0 GT "
         "depth; noisy-oracle: GT with a controlled corruption); they do not generate, so no FPS. PSNR is capped "
         "at 60 dB. RPE-trans rel.: translation error / commanded length over the 1-s segments that translate "
         "(static ~1, perfect 0); RPE-rot: rotation error over all 1-s segments (benchmark.metrics.action_following). "
         "\"pose-est. failed frames\": fraction of a video's frames on which the pose estimator failed and held "
         "the previous pose.")


def leaderboard_markdown(run_dir: Path) -> str:
    """The whole leaderboard.md text for a run directory."""
    run_dir = Path(run_dir)
    df = load_results(run_dir)
    info = load_run_info(run_dir)
    st = model_status(df, info)
    out = ["# relic-suite leaderboard", ""]
    head = header_text(info)
    if head:
        out += head
        if info.get("merged_from"):
            out.append("")
        for src in info.get("merged_from", []):
            out.append(f"- merged: {', '.join(src['models'])} from run `{Path(src['run']).name}` "
                       f"(finished {src.get('finished_utc', '?')}).")
        out.append("")
    out += [INTRO, ""]
    note = lpips_note(df)
    if note:
        out += [note, ""]
    out += ["## All tasks", "", md_table(table_rows(df, info, MAIN_COLUMNS, st, main=True, with_tasks=True),
                                         MAIN_COLUMNS, with_tasks=True), ""]
    common = common_tasks(st)
    if common is not None:
        out += [f"### On the {len(common)} tasks every complete model ran", "",
                "Some models declared tasks outside their action space (n/a below); this table compares every "
                "complete model on the same tasks.", "",
                md_table(table_rows(df, info, MAIN_COLUMNS, st, tasks=common, main=True), MAIN_COLUMNS), ""]
    out += ["### Reported by the paper (different test set, not comparable)", "",
            f"Source: {PAPER_SOURCE}. These rows were **{PAPER_LABEL}**; the paper reports no memory metrics.", "",
            paper_md(), ""]
    metrics = set(df["metric"].unique())
    out += ["## Memory", "", MEMORY_NOTE, "", md_table(table_rows(df, info, MEMORY_COLUMNS, st), MEMORY_COLUMNS), ""]
    counts = revisit_counts(df)
    if len(counts):
        cols = [(m, h) for m, h in REVISIT_COUNT_COLUMNS if m in counts.columns]
        out += ["Revisit pairs per task (ground truth; the same for every model):", "",
                "| task | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
        for task, r in counts.iterrows():
            out.append(f"| {task} | " + " | ".join(fmt(r[m]) if not np.isfinite(r[m]) else str(int(r[m]))
                                                for m, _ in cols) + " |")
        out.append("")
    if "rpe_trans_rel" in metrics:
        out += ["## Action following by segment type", "",
                md_table(table_rows(df, info, ACTION_COLUMNS, st), ACTION_COLUMNS), ""]
    fams = sorted(df["family"].dropna().unique())
    long_f = [f for f in fams if f.startswith("long")]
    if long_f:
        out += ["## Long-horizon tasks", "", md_table(table_rows(df, info, LONG_COLUMNS, st, families=long_f),
                                                      LONG_COLUMNS), ""]
    if "rpe_trans@first_view" in metrics:
        out += ["## Action following in the first view", "", FIRST_VIEW_NOTE, "",
                md_table(table_rows(df, info, FIRST_VIEW_COLUMNS, st), FIRST_VIEW_COLUMNS), ""]
    out += ["## Per family", ""]
    for f in fams:
        out += [f"### {f}", "", md_table(table_rows(df, info, FAMILY_COLUMNS, st, family=f), FAMILY_COLUMNS), ""]
    checks = validity_checks(df)
    if checks:
        out += ["## Metric validity", "",
                "Expected orderings between independent videos (reference baselines); each must hold for the "
                "metrics to mean what they claim.", "", "| check | result | values |", "|---|---|---|"]
        for c in checks:
            out.append(f"| {c.description} | {'PASS' if c.passed else 'FAIL'} | {c.values_text} |")
        out.append("")
    out += completeness_md(st, info)
    return "\n".join(out)


def completeness_md(st: dict[str, ModelStatus], info: dict) -> list[str]:
    out = []
    na = [(m, t, r) for m, s in st.items() for t, r in sorted(s.na.items())]
    if na:
        out += ["## Not applicable (declared outside the model's action space)", ""]
        out += [f"- `{m}` on {t}: {r}" for m, t, r in na]
        out.append("")
    bad = [s for s in st.values() if not s.complete]
    if bad:
        allow = bool(info.get("allow_missing"))
        out += ["## Incomplete models", "",
                ("Run with --allow-missing: their rows above average only the tasks they have." if allow else
                 "Their rows above show no means (they would cover other tasks than the rows beside them); the "
                 "run exited non-zero. Re-run with --allow-missing to see means over the tasks they have."), ""]
        for s in sorted(bad, key=lambda s: model_sort_key(s.model)):
            out += [f"- {line}" for line in s.problems()]
        out.append("")
    return out


def write_leaderboard(run_dir: Path, dest: Path | None = None) -> Path:
    """Write ``leaderboard.md`` into ``run_dir`` (or ``dest``) atomically; returns its path."""
    text = leaderboard_markdown(run_dir)
    dest = Path(dest) if dest else Path(run_dir) / "leaderboard.md"
    return atomic_write_text(dest, text)


def incomplete_summary(run_dir: Path) -> list[str]:
    """One line per problem of every incomplete model of a run ([] when every model is complete)."""
    df = load_results(run_dir)
    st = model_status(df, load_run_info(run_dir))
    return [line for s in sorted(st.values(), key=lambda s: model_sort_key(s.model)) for line in s.problems()]


__all__ = ["aggregate", "leaderboard_markdown", "write_leaderboard", "model_status", "incomplete_summary",
           "MAIN_COLUMNS", "PROTOCOL_VERSION"]
