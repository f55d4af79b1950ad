"""Shared argument parsing and setup of the ``relic train STAGE`` commands.

    relic train STAGE --config FILE --corpus DIR --out DIR [--resume] [--steps N]
                      [--threads N] [--device cpu|cuda] [--no-progress]

Under ``torchrun --nproc_per_node N -m relic_cli train STAGE ...`` every process joins the default
process group (gloo on CPU, nccl on GPU); only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from datagen.cli_common import positive_int
from relic_model.config import load_config


def add_train_arguments(p: argparse.ArgumentParser, all_stages: bool = False) -> None:
    p.add_argument("--config", required=True,
                   help="RelicConfig YAML (or a bundled name: tiny, small, gpu); its train: section sets the stages' "
                        "hyper-parameters (relic_model/train/settings.py)")
    p.add_argument("--corpus", required=True, help="corpus directory built by `relic datagen build`")
    p.add_argument("--out", required=True, help="run directory (one sub-folder per stage)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint" + (" (default for `all`)" if all_stages else ""))
    p.add_argument("--steps", type=positive_int, default=None,
                   help="total optimisation steps" + (" per stage" if all_stages else "") +
                        " (curricula are rescaled proportionally); default: the config")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores, or 1 when the "
                   "load average already reaches the core count)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def make_context(args):
    import torch
    from relic_model.train.common import RunContext
    from relic_model.distributed import init_distributed

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if not Path(args.corpus).is_dir():
        raise FileNotFoundError(f"--corpus {args.corpus} does not exist (build one with `relic datagen build`)")
    if args.threads:
        torch.set_num_threads(int(args.threads))
    elif os.getloadavg()[0] >= (os.cpu_count() or 1):
        # a busy shared CPU: OpenMP spin-waiting with several threads makes small models 10-100x
        # slower than one thread (measured on the 2-core machine); pass --threads to override
        torch.set_num_threads(1)
        print(f"relic train: load average {os.getloadavg()[0]:.1f} >= {os.cpu_count()} cores, using 1 torch "
              "thread (--threads N to override)", file=sys.stderr)
    cfg = load_config(args.config)
    info = init_distributed(args.device)
    return RunContext(cfg, args.corpus, Path(args.out), info, progress=not args.no_progress)


def run_one(args, stage: str) -> int:
    from relic_model.train.run import run_stage_named
    ctx = make_context(args)
    res = run_stage_named(ctx, stage, args.steps, resume=args.resume)
    if ctx.info.is_main:
        losses = ", ".join(f"{k}={v:.4g}" for k, v in res["final_losses"].items())
        print(f"{stage}: {res['steps']} steps in {res['time_s']:.1f} s; final losses: {losses}")
        if res["final_dir"]:
            print(f"weights: {res['final_dir']}")
    return 0
