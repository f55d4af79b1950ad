"""Training report: losses and probe metrics against optimizer step, per stage, in one PNG.

A training run ``RUN`` (``relic train``) writes, per stage (``autoencoder``, ``teacher``,
``student_init``, ``distill``), ``RUN/<stage>/losses.csv`` (:mod:`relic_model.train.loss_log`:
``step``, ``time_s``, ``lr`` then one column per logged value), checkpoints
``RUN/<stage>/checkpoints/step_XXXXXXXX`` (the newest few, :mod:`relic_model.train.checkpoint`)
and ``RUN/<stage>/final``. This module has three parts:

collect
    Every stage's ``losses.csv`` of one or more runs (a missing stage or file is skipped; a last
    line without its newline, i.e. a row being written while we read, is dropped; unparsable
    values become NaN) and every stage's probe cache ``RUN/<stage>/probes.csv`` (columns ``step``,
    ``probe``, ``metric``, ``value``; one row per checkpoint step, probe and metric).
probe (optional)
    For the checkpoints of the ``teacher`` and ``distill`` stages whose step is a multiple of
    ``every`` (and the ``final``; its step is read from its ``state.json``) and that
    ``probes.csv`` does not list yet, the stage's model is measured on a (small) benchmark suite
    and its rows are appended to ``probes.csv`` (rewritten atomically after each checkpoint, so an
    interrupted call loses at most the checkpoint it was on and the next call resumes there):

    - ``action_following``: :func:`benchmark.probes.action_following.probe` (its sampled tasks,
      first ``frames`` frames, 1-s RPE after Sim(3) alignment and ``dir_cos``; means over tasks from
      :func:`benchmark.probes.action_following.summary`) for the stage's model (``teacher``: the
      checkpoint's bidirectional teacher, ODE sampled; ``distill``: the checkpoint's student,
      streamed with memory), metrics ``rpe_trans``, ``rpe_rot_deg``, ``dir_cos``; the same
      metrics of the ``static`` video (frame 0 repeated) as ``action_following_static``, the
      reference a model must beat;
    - ``revisit``: the benchmark's score (:func:`benchmark.scoring.score_task`, LPIPS off) of the
      model's video over the whole task (frame 0 and the task's actions; ``teacher``:
      :func:`relic_model.inference.teacher.teacher_video`, whose clips have 1 + 4 k frames: the
      last action is repeated up to that length and the extra frames dropped; ``distill``: the
      streaming generator), averaged over the suite's tasks that have revisit pairs:
      ``revisit_psnr_gt`` and ``revisit_consistency_gain``; the static video's values (the same at
      every step) as ``revisit_static``.

    The model is assembled as the benchmark loads one (a temporary RELIC checkpoint directory,
    :mod:`relic_model.inference.checkpoint`): the checkpoint's config, ``RUN/autoencoder/final``'s
    autoencoder, the stage's network as ``dit`` and the text encoder trained with the teacher
    (the teacher checkpoint's own for ``teacher``, ``RUN/teacher/final``'s for ``distill``, whose
    action-following teacher is also ``RUN/teacher/final``).
plot
    One PNG: a row per stage found in any run; first panel its losses (every logged column but
    ``step``, ``time_s``, ``lr``, ``grad_norm*``, ``latent_frames``, ``num_blocks``, ``skipped`` (the
    spike guard's count) and ``psnr``;
    log scale when they span more than a decade; raw values faint under a running mean when there
    are more than 30 points), then the autoencoder's reconstruction ``psnr``, or for the other
    stages the probe metrics where present (action following ``rpe_trans`` and ``dir_cos``,
    ``revisit_psnr_gt``; static reference dotted, x markers); x = optimizer step; one colour per run; the run
    names in the title. Written atomically.

Command (the report in the repository was made with the first line, no probes)::

    python -m benchmark.probes.training_report runs/train_next_sf8 runs/train_next --out reports/training.png
    python -m benchmark.probes.training_report RUN --probe SUITE_DIR --every 500 --tasks 4 --frames 61
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.probes.action_following import probe as action_following_probe
from benchmark.probes.action_following import summary as action_following_summary
from benchmark.scoring import score_task
from benchmark.tasks.io import load_suite
from datagen.atomic import atomic_write
from relic_model.inference.checkpoint import load_checkpoint
from relic_model.inference.streaming import StreamingGenerator
from relic_model.inference.teacher import load_teacher, teacher_video
from relic_model.train.common import STAGES

PROBE_COLUMNS = ("step", "probe", "metric", "value")
PROBED_STAGES = ("teacher", "distill")
NOT_LOSSES = ("step", "time_s", "lr", "latent_frames", "num_blocks", "psnr", "skipped")
REVISIT_METRICS = ("revisit_psnr_gt", "revisit_consistency_gain")
AF_METRICS = ("rpe_trans", "rpe_rot_deg", "dir_cos")
# probe panels of a stage row: (title, probe, metric); the static reference is probe + "_static"
PROBE_PANELS = (("action following: RPE-trans (m)", "action_following", "rpe_trans"),
                ("action following: dir_cos", "action_following", "dir_cos"),
                ("revisit PSNR vs GT (dB)", "revisit", "revisit_psnr_gt"))


# ---------------------------------------------------------------------------------------------- collect
def read_csv_tolerant(path: Path, numeric: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A CSV being appended to: the last line is dropped when it has no newline yet; the ``numeric``
    columns (all but ``probe``/``metric`` when None) are coerced to numbers (NaN where unparsable)
    and rows without a ``step`` are dropped. Missing or empty file -> empty frame."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame()
    text = path.read_text(encoding="utf-8", errors="replace")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    if not text.strip():
        return pd.DataFrame()
    df = pd.read_csv(io.StringIO(text), on_bad_lines="skip", dtype=str)
    if "step" not in df.columns:
        return pd.DataFrame()
    for c in df.columns:
        if (c in numeric) if numeric is not None else c not in ("probe", "metric"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=["step"]).sort_values("step", kind="stable").reset_index(drop=True)


def read_probes(stage_dir: Path) -> pd.DataFrame:
    """``stage_dir/probes.csv`` as a frame with the :data:`PROBE_COLUMNS` (empty when absent)."""
    df = read_csv_tolerant(Path(stage_dir) / "probes.csv", numeric=("step", "value"))
    if df.empty or not set(PROBE_COLUMNS) <= set(df.columns):
        return pd.DataFrame(columns=list(PROBE_COLUMNS))
    df = df[list(PROBE_COLUMNS)].copy()
    df["step"] = df["step"].astype(int)
    return df


@dataclass
class RunLog:
    """What one run logged: per stage (only those with a log) its losses and its probe rows."""
    run: Path
    losses: dict[str, pd.DataFrame] = field(default_factory=dict)
    probes: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.name

    def stages(self) -> list[str]:
        return [s for s in STAGES if s in self.losses or s in self.probes]


def collect(runs) -> list[RunLog]:
    """One :class:`RunLog` per run folder (stages without ``losses.csv`` / ``probes.csv`` left out)."""
    out = []
    for run in runs:
        log = RunLog(Path(run))
        for stage in STAGES:
            d = log.run / stage
            losses = read_csv_tolerant(d / "losses.csv")
            if not losses.empty:
                log.losses[stage] = losses
            probes = read_probes(d)
            if not probes.empty:
                log.probes[stage] = probes
        out.append(log)
    return out


# ------------------------------------------------------------------------------------------------ probe
def checkpoints_to_probe(stage_dir: Path, every: int) -> list[tuple[int, Path]]:
    """(step, checkpoint dir) of the complete checkpoints whose step is a multiple of ``every``, and
    of ``final``, that ``probes.csv`` does not list yet, by step (final wins over a step twin)."""
    stage_dir = Path(stage_dir)
    found: dict[int, Path] = {}
    ck = stage_dir / "checkpoints"
    if ck.is_dir():
        for q in sorted(ck.glob("step_*")):
            if q.is_dir() and "." not in q.name and (q / "state.json").is_file():
                step = int(json.loads((q / "state.json").read_text())["step"])
                if every > 0 and step % every == 0:
                    found[step] = q
    fin = stage_dir / "final"
    if (fin / "state.json").is_file() and (fin / "model.safetensors").is_file():
        found[int(json.loads((fin / "state.json").read_text())["step"])] = fin
    done = set(read_probes(stage_dir)["step"])
    return [(s, found[s]) for s in sorted(found) if s not in done]


def append_probe_rows(stage_dir: Path, rows: list[dict]) -> Path:
    """Add ``rows`` (:data:`PROBE_COLUMNS`) to ``stage_dir/probes.csv``, rewriting it atomically."""
    path = Path(stage_dir) / "probes.csv"
    old = read_probes(stage_dir)
    new = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    both = new if old.empty else pd.concat([old, new], ignore_index=True)
    atomic_write(path, lambda tmp: both.to_csv(tmp, index=False))
    return path


def _renamed(path: Path, prefixes: dict[str, str]) -> dict:
    from safetensors.torch import load_file
    sd = load_file(str(path))
    out = {}
    for old, new in prefixes.items():
        out.update({new + k[len(old):]: v for k, v in sd.items() if k.startswith(old + ".")})
    return out


def assemble_model(run: Path, stage: str, ckpt: Path, out_dir: Path) -> tuple[Path, Path]:
    """(RELIC checkpoint directory, teacher weights) for a ``teacher`` or ``distill`` checkpoint
    (module docstring); the directory is written into ``out_dir``."""
    from safetensors.torch import save_file
    run, ckpt = Path(run), Path(ckpt)
    ae = run / "autoencoder" / "final" / "model.safetensors"
    teacher_w = ckpt / "model.safetensors" if stage == "teacher" else run / "teacher" / "final" / "model.safetensors"
    for need in (ae, teacher_w):
        if not need.is_file():
            raise FileNotFoundError(f"probing {stage} of {run} needs {need}")
    net = "teacher" if stage == "teacher" else "student"
    tensors = _renamed(ae, {"autoencoder": "autoencoder"})
    tensors.update(_renamed(ckpt / "model.safetensors", {net: "dit"}))
    tensors.update(_renamed(teacher_w, {"text": "text"}))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "relic-checkpoint"})
    shutil.copyfile(ckpt / "config.yaml", out_dir / "config.yaml")
    return out_dir, teacher_w


def revisit_scores(stage: str, model_dir: Path, teacher_w: Path, suite_dir: Path, steps: int = 16,
                   seed: int = 0) -> dict[str, dict[str, float]]:
    """{"revisit": {...}, "revisit_static": {...}}: :data:`REVISIT_METRICS` of the stage's model and
    of the static video, means over the suite's tasks with revisit pairs (NaN when none has any)."""
    cfg, dit, ae, text = load_checkpoint(model_dir, "cpu")
    teacher, teacher_text = load_teacher(teacher_w, cfg, text) if stage == "teacher" else (None, None)
    per: dict[str, list[dict]] = {"revisit": [], "revisit_static": []}
    for t in load_suite(suite_dir).tasks:
        if t.revisits is None or len(t.revisits) == 0:
            continue
        gt0 = t.gt_frames()[0]
        acts = np.asarray(t.actions[:t.num_frames - 1], np.float32)
        if stage == "teacher":  # its clips are 1 + tf k frames: the last action continues, then cropped
            pad = -len(acts) % cfg.autoencoder.temporal_factor
            padded = np.concatenate([acts, np.repeat(acts[-1:], pad, 0)])
            video = teacher_video(teacher, ae, teacher_text, cfg, gt0, t.prompt, padded, steps, seed)[:t.num_frames]
        else:
            gen = StreamingGenerator(dit, ae, text, cfg, memory=True)
            gen.reset(gt0, t.prompt, t.K, seed=seed)
            video = np.concatenate([gt0[None], gen.step(acts)])
        for name, v in (("revisit", video), ("revisit_static", np.repeat(gt0[None], t.num_frames, 0))):
            m = score_task(t, v, lpips=False, workers=1).metrics
            per[name].append({k: m[k] for k in REVISIT_METRICS})
        t.release()
    return {name: {k: float(np.nanmean([r[k] for r in rows])) if rows else float("nan") for k in REVISIT_METRICS}
            for name, rows in per.items()}


def probe_checkpoint(run: Path, stage: str, ckpt: Path, step: int, suite_dir: Path, n_tasks: int = 4,
                     frames: int = 61, steps: int = 16, seed: int = 0) -> list[dict]:
    """The probe rows (:data:`PROBE_COLUMNS`) of one checkpoint (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="relic_probe_") as tmp:
        model_dir, teacher_w = assemble_model(run, stage, ckpt, Path(tmp) / "model")
        df = action_following_probe(suite_dir, teacher_w, model_dir, n_tasks=n_tasks, frames=frames, steps=steps,
                                    seed=seed, progress=False)
        s = action_following_summary(df)
        rv = revisit_scores(stage, model_dir, teacher_w, suite_dir, steps, seed)
    model = "teacher" if stage == "teacher" else "student"
    rows = [{"step": step, "probe": probe, "metric": k, "value": float(s.loc[m, k])}
            for probe, m in (("action_following", model), ("action_following_static", "static")) for k in AF_METRICS]
    rows += [{"step": step, "probe": probe, "metric": k, "value": v} for probe, d in rv.items() for k, v in d.items()]
    return rows


def probe_run(run: Path, suite_dir: Path, every: int, n_tasks: int = 4, frames: int = 61, steps: int = 16,
              seed: int = 0, progress: bool = True) -> int:
    """Probe every checkpoint of ``run``'s teacher/distill stages still missing from its
    ``probes.csv`` (:func:`checkpoints_to_probe`); returns how many were probed."""
    n = 0
    for stage in PROBED_STAGES:
        d = Path(run) / stage
        for step, ckpt in checkpoints_to_probe(d, every):
            rows = probe_checkpoint(run, stage, ckpt, step, suite_dir, n_tasks, frames, steps, seed)
            append_probe_rows(d, rows)
            n += 1
            if progress:
                print(f"[training_report] {Path(run).name}/{stage} step {step}: " + ", ".join(
                    f"{r['probe']}.{r['metric']} {r['value']:.3f}" for r in rows if not r["probe"].endswith("static")),
                    flush=True)
    return n


# ------------------------------------------------------------------------------------------------- plot
def loss_columns(df: pd.DataFrame) -> list[str]:
    """The logged columns plotted as losses (module docstring)."""
    return [c for c in df.columns if c not in NOT_LOSSES and not c.startswith("grad_norm")
            and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]


def _curve(ax, x, y, colour: str, ls: str, label: str) -> None:
    """A logged series: raw values faint, a centred running mean (over ~1/25 of the points) on top
    when there are more than 30 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(y) > 30:
        ax.plot(x, y, color=colour, ls=ls, lw=0.6, alpha=0.25)
        y = pd.Series(y).rolling(max(3, len(y) // 25), center=True, min_periods=1).mean().to_numpy()
    ax.plot(x, y, color=colour, ls=ls, lw=1.2, label=label)


def plot(logs: list[RunLog], out: Path, dpi: int = 90) -> Path:
    """Write the report PNG of ``logs`` (:func:`collect`) to ``out`` atomically; returns ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if any(s in lg.stages() for lg in logs)]
    if not stages:
        raise ValueError("no losses.csv or probes.csv in " + ", ".join(str(lg.run) for lg in logs))
    ncols = 1 + len(PROBE_PANELS)
    fig, axes = plt.subplots(len(stages), ncols, figsize=(4.2 * ncols, 2.9 * len(stages)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ("-", "--", ":", "-.")
    for i, stage in enumerate(stages):
        row = axes[i]
        used = [False] * ncols
        row[0].set_title(f"{stage}: losses", fontsize=9)
        for j, lg in enumerate(logs):
            c = colours[j % len(colours)]
            df = lg.losses.get(stage)
            if df is not None:
                for k, col in enumerate(loss_columns(df)):
                    sel = df[["step", col]].dropna()
                    if len(sel):
                        _curve(row[0], sel["step"], sel[col], c, styles[k % len(styles)], f"{lg.name}: {col}")
                        used[0] = True
                if stage == "autoencoder" and "psnr" in df.columns and df["psnr"].notna().any():
                    sel = df[["step", "psnr"]].dropna()
                    _curve(row[1], sel["step"], sel["psnr"], c, "-", lg.name)
                    row[1].set_title(f"{stage}: reconstruction PSNR (dB)", fontsize=9)
                    used[1] = True
            pr = lg.probes.get(stage)
            if pr is None or stage == "autoencoder":
                continue
            for p, (title, probe, metric) in enumerate(PROBE_PANELS, start=1):
                for name, ls, lab in ((probe, "-o", lg.name), (probe + "_static", ":x", f"{lg.name}: static")):
                    sel = pr[(pr["probe"] == name) & (pr["metric"] == metric)].dropna(subset=["value"])
                    if len(sel):
                        row[p].plot(sel["step"], sel["value"], ls, color=c, lw=1, ms=3, label=lab)
                        row[p].set_title(f"{stage}: {title}", fontsize=9)
                        used[p] = True
        ys = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in row[0].get_lines()] or [np.ones(1)])
        if np.nanmin(ys) > 0 and np.nanmax(ys) > 10 * np.nanmin(ys):  # log scale over more than a decade
            row[0].set_yscale("log")
        for p, ax in enumerate(row):
            if used[p]:
                ax.set_xlabel("optimizer step", fontsize=8)
                ax.tick_params(labelsize=7)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=6)
                continue
            ax.axis("off")
            note = "no losses.csv" if p == 0 else \
                "not probed (--probe SUITE_DIR)" if stage in PROBED_STAGES and p == 1 else ""
            ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="grey")
    fig.suptitle("Training report: " + ", ".join(lg.name for lg in logs), fontsize=11)
    fig.tight_layout()
    out = Path(out)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), suffix=".png")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="training run folders (RUN/<stage>/losses.csv)")
    p.add_argument("--out", default="reports/training.png", help="the PNG (default: reports/training.png)")
    p.add_argument("--probe", default=None, metavar="SUITE_DIR",
                   help="first probe the teacher/distill checkpoints not yet in RUN/<stage>/probes.csv on this suite")
    p.add_argument("--every", type=int, default=1, help="probe checkpoints whose step is a multiple of N (and final)")
    p.add_argument("--tasks", type=int, default=4, help="action-following probe: tasks sampled")
    p.add_argument("--frames", type=int, default=61, help="action-following probe: frames per task")
    p.add_argument("--steps", type=int, default=16, help="teacher ODE Euler steps")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.probe:
        import torch
        torch.set_num_threads(min(2, torch.get_num_threads()))
        for run in a.runs:
            probe_run(Path(run), Path(a.probe), a.every, a.tasks, a.frames, a.steps, a.seed)
    out = plot(collect(a.runs), Path(a.out))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
