"""Training speed of the four RELIC stages on this machine (tiny config by default).

Runs ``relic train all`` with ``--steps N`` per stage on a corpus (``--corpus``, or a synthetic one
written at the config's resolution), then reports per stage: steps, wall time (s, from the
stage's state.json, including one-off work such as encoding clip pools and teacher ODE
trajectories), seconds per step from losses.csv (median of the per-row time deltas, so one-off work
is excluded), and final losses. Also records the 1-minute load average before and after (other
processes on a shared machine slow every number down).

    python perf/perf_training.py --steps 10 [--config tiny] [--corpus DIR] [--out DIR]

Writes reports/perf_training.md and reports/perf_training.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relic_model.config import load_config  # noqa: E402
from relic_model.data.synthetic import write_synthetic_corpus  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--reports", default=str(ROOT / "reports"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    a = ap.parse_args(argv)
    import torch
    from relic_model.train.common import STAGES, RunContext
    from relic_model.train.run import train_all

    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    for st in ("autoencoder", "student_init"):
        cfg.train.setdefault(st, {})["log_every"] = 1
    for st in ("teacher", "distill"):
        cfg.train.setdefault(st, {})["log_every"] = 1
    work = Path(a.out or tempfile.mkdtemp(prefix="perf_training_"))
    corpus = a.corpus
    if corpus is None:
        corpus = write_synthetic_corpus(work / "corpus", episodes=4, frames=96, height=cfg.data.height,
                                        width=cfg.data.width, fps=cfg.data.fps)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    ctx = RunContext(cfg, corpus, work / "run", progress=False)
    train_all(ctx, a.steps, resume=True, command=f"perf_training --steps {a.steps}")
    rows = []
    for s in STAGES:
        st = json.loads((work / "run" / s / "final" / "state.json").read_text())
        log = pd.read_csv(work / "run" / s / "losses.csv")
        dt = log["time_s"].diff().dropna()
        rows.append({"stage": s, "steps": int(st["step"]), "wall_s": round(float(st["time_s"]), 1),
                     "s_per_step_median": round(float(dt.median()), 3) if len(dt) else None,
                     "final_losses": {k: round(float(v), 5) for k, v in st.get("final_losses", {}).items()}})
    res = {"config": a.config, "steps_per_stage": a.steps, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "loadavg_1min_before": load0, "loadavg_1min_after": os.getloadavg()[0],
           "total_wall_s": round(time.time() - t0, 1), "stages": rows, "corpus": str(corpus)}
    rep = Path(a.reports)
    rep.mkdir(parents=True, exist_ok=True)
    (rep / "perf_training.json").write_text(json.dumps(res, indent=2))
    md = [f"# Training speed ({a.config} config, {a.steps} steps per stage)", "",
          f"Command: `python perf/perf_training.py --steps {a.steps} --config {a.config} --threads {a.threads}`  ",
          f"CPU cores: {res['cpu_count']}, torch threads: {res['torch_threads']}, 1-min load average before/after: "
          f"{load0:.1f} / {res['loadavg_1min_after']:.1f} (load above the core count means other jobs shared the CPU).",
          "", "| stage | steps | wall time (s, incl. one-off pools/ODE) | s/step (median) | final losses |",
          "|---|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['stage']} | {r['steps']} | {r['wall_s']} | {r['s_per_step_median']} | "
                  + ", ".join(f"{k}={v:.4g}" for k, v in r["final_losses"].items()) + " |")
    md.append(f"\nTotal wall time: {res['total_wall_s']} s.")
    (rep / "perf_training.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
