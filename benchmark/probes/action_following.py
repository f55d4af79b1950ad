"""Which training stage loses action following? Teacher vs student vs ground truth on one benchmark suite.

For the first ``frames`` (default 61 = 16 latent frames, the bundled teacher's longest training
clip) of each sampled task with at least that many frames, four videos are made from the same
first frame, prompt and actions:

- ``oracle``: the ground-truth renders (the estimator's noise floor);
- ``static``: frame 0 repeated (no action following);
- ``student``: the streaming checkpoint (:class:`relic_model.inference.streaming.StreamingGenerator`,
  memory on, the benchmark's ``relic`` model);
- ``teacher``: the bidirectional stage-2 teacher (``teacher.``/``text.`` weights of a teacher stage
  checkpoint, e.g. ``RUN/teacher/final/model.safetensors``), probability-flow ODE (``steps`` Euler
  steps) from seeded noise with the checkpoint's autoencoder, conditioned exactly as in training
  (:mod:`relic_model.inference.teacher`: :func:`relic_model.nn.control.latent_controls`, poses
  integrated from the actions in label units).

Each video goes through the benchmark's pose estimator (metric anchor: frame 0's depth) and is
scored with the benchmark's 1-s RPE after Sim(3) alignment (:func:`benchmark.metrics.rpe.compute_rpe`),
plus ``dir_cos``: the median, over 1-s segments whose commanded translation exceeds ``min_move_m``,
of the cosine between the commanded and the estimated camera-frame translation (1 = follows the
direction, 0 = unrelated; NaN when the video shows no translation or the task has no such segment).

Command (results in the docs were made with it)::

    python -m benchmark.probes.action_following --suite SUITE_DIR \
        --teacher runs/train_bundled/teacher/final/model.safetensors --tasks 40 --out reports/diag_action_following.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.leaderboard import md_table
from benchmark.metrics.rpe import compute_rpe
from benchmark.pose_estimation.registry import run_estimator
from benchmark.tasks.io import load_suite
from datagen.atomic import atomic_write_text
from relic_model.inference.checkpoint import BUNDLED, load_checkpoint
from relic_model.inference.streaming import StreamingGenerator
from relic_model.inference.teacher import load_teacher, teacher_video

MODELS = ("oracle", "static", "student", "teacher")


def direction_cosine(ref: np.ndarray, est: np.ndarray, delta: int, min_move_m: float = 0.15) -> float:
    """Median cosine between the commanded and estimated camera-frame translation over ``delta``
    frames (segments every 4 frames whose commanded translation exceeds ``min_move_m``)."""
    cs = []
    for i in range(0, len(ref) - delta, 4):
        a = (np.linalg.inv(ref[i]) @ ref[i + delta])[:3, 3]
        b = (np.linalg.inv(est[i]) @ est[i + delta])[:3, 3]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na > min_move_m and nb > 1e-6:
            cs.append(float(a @ b) / (na * nb))
    return float(np.median(cs)) if cs else float("nan")


def probe(suite_dir: str | Path, teacher_weights: str | Path, checkpoint: str | Path | None = None,
          n_tasks: int = 40, frames: int = 61, steps: int = 16, seed: int = 0, estimator: str = "opencv",
          progress: bool = True) -> pd.DataFrame:
    """One row per (task, model) with ``rpe_trans``, ``rpe_rot_deg``, ``dir_cos``."""
    cfg, dit, ae, text = load_checkpoint(checkpoint or BUNDLED, "cpu")
    tf = cfg.autoencoder.temporal_factor
    if frames < 1 + tf or (frames - 1) % tf:
        raise ValueError(f"frames must be 1 + {tf} k (k >= 1), got {frames}")
    teacher, teacher_text = load_teacher(teacher_weights, cfg, text)
    suite = load_suite(suite_dir)
    tasks = [t for t in suite.tasks if t.num_frames >= frames]
    if not tasks:
        raise ValueError(f"no task in {suite_dir} has {frames} frames")
    pick = np.random.default_rng(seed).choice(len(tasks), min(n_tasks, len(tasks)), replace=False)
    rows = []
    for i, j in enumerate(sorted(pick)):
        t = tasks[j]
        gt = t.gt_frames()[:frames]
        acts = np.asarray(t.actions[:frames - 1], np.float32)
        gen = StreamingGenerator(dit, ae, text, cfg, memory=True)
        gen.reset(gt[0], t.prompt, t.K, seed=seed)
        vids = {"oracle": gt, "static": np.repeat(gt[:1], frames, 0),
                "student": np.concatenate([gt[:1], gen.step(acts)]),
                "teacher": teacher_video(teacher, ae, teacher_text, cfg, gt[0], t.prompt, acts, steps, seed)}
        depth0 = t.gt_depth()[0]
        ref = t.gt_poses[:frames]
        for m in MODELS:
            est = run_estimator(estimator, vids[m], t.K, depth0=depth0)
            r = compute_rpe(ref, est.poses, t.fps, gamma=t.gamma, est_metric=bool(est.metric)).as_metrics()
            rows.append({"task": t.task_id, "model": m, "rpe_trans": r["rpe_trans"], "rpe_rot_deg": r["rpe_rot_deg"],
                         "dir_cos": direction_cosine(ref, est.poses, max(1, int(round(t.fps))))})
        t.release()
        if progress:
            print(f"[{i + 1}/{len(pick)}] {t.task_id}: " + ", ".join(
                f"{r['model']} {r['rpe_trans']:.3f} m / {r['dir_cos']:.2f}" for r in rows[-len(MODELS):]), flush=True)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Means over tasks per model (``dir_cos`` over the tasks where it is defined)."""
    return df.groupby("model")[["rpe_trans", "rpe_rot_deg", "dir_cos"]].mean().reindex(list(MODELS))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, help="benchmark suite directory (relic bench tasks build)")
    p.add_argument("--teacher", required=True, help="teacher stage weights, e.g. RUN/teacher/final/model.safetensors")
    p.add_argument("--checkpoint", default=None, help="student checkpoint directory (default: the bundled one)")
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--frames", type=int, default=61)
    p.add_argument("--steps", type=int, default=16, help="teacher ODE Euler steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="Markdown report (a .csv of the rows is written beside it)")
    a = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    df = probe(a.suite, a.teacher, a.checkpoint, a.tasks, a.frames, a.steps, a.seed)
    s = summary(df)
    print(s.round(3).to_string())
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out.with_suffix(".csv"), index=False)
        cmd = " ".join(["python -m benchmark.probes.action_following", f"--suite {a.suite}",
                        f"--teacher {a.teacher}", f"--tasks {a.tasks}", f"--frames {a.frames}", f"--steps {a.steps}"]
                       + ([f"--checkpoint {a.checkpoint}"] if a.checkpoint else []))
        n = df["task"].nunique()
        atomic_write_text(out, "\n".join([
            "# Action following by training stage (teacher vs student)", "",
            f"`{cmd}`", "",
            f"{n} tasks, first {a.frames} frames each; 1-s RPE after Sim(3) alignment (benchmark estimator, "
            "frame-0 depth anchor) and `dir_cos` = median cosine between commanded and estimated 1-s "
            "translation on segments moving > 0.15 m (1 = follows, 0 = unrelated). Means over tasks.", "",
            md_table(s, [("rpe_trans", "RPE-trans (m)", -1), ("rpe_rot_deg", "RPE-rot (deg)", -1),
                         ("dir_cos", "dir_cos", +1)]), "",
            "Per-task rows: `" + out.with_suffix(".csv").name + "`.", ""]))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
