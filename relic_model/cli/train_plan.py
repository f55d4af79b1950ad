"""`relic train plan`: per-stage, per-GPU memory and step FLOPs of a training config.

    python -m relic_model.cli.train_plan --config relic_model/configs/gpu.yaml [--gpus 8 --gpu-mem 80]
        [--context-parallel N]   # override the config's train.context_parallel (what-if)
        [--teacher-dtype fp32|bf16] [--teacher-shard | --no-teacher-shard]
                                 # override train.teacher_dtype / train.teacher_shard (the frozen
                                 # teacher of student init and distillation)

Prints a Markdown table (relic_model/train/plan.py explains every column and formula) and says
which stages fit; exit code 0 whether or not they fit (it is a plan, not a check).
"""
from __future__ import annotations

import argparse
import sys

from relic_model.config import load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="RelicConfig YAML or bundled name (tiny, small, gpu, gpu14b)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs (ranks) the run uses")
    parser.add_argument("--gpu-mem", type=float, default=80.0, help="memory per GPU in GiB")
    parser.add_argument("--context-parallel", type=int, default=None,
                        help="context-parallel degree (default: the config's train.context_parallel)")
    parser.add_argument("--teacher-dtype", choices=("fp32", "bf16"), default=None,
                        help="frozen teacher's dtype (default: the config's train.teacher_dtype)")
    parser.add_argument("--teacher-shard", action=argparse.BooleanOptionalAction, default=None,
                        help="frozen teacher FSDP2-sharded over the GPUs (default: the config's train.teacher_shard)")


def run(args) -> int:
    from relic_model.train.plan import format_plan, plan_stages
    if args.gpus < 1 or args.gpu_mem <= 0:
        raise ValueError("--gpus must be >= 1 and --gpu-mem > 0")
    cfg = load_config(args.config)
    plans = plan_stages(cfg, args.gpus, args.gpu_mem, context_parallel=args.context_parallel,
                        teacher_dtype=args.teacher_dtype, teacher_shard=args.teacher_shard)
    sys.stdout.write(format_plan(cfg, plans, args.gpus, args.gpu_mem))
    bad = [f"{p.stage} ({p.phase})" for p in plans if not p.fits]
    print(f"\n{len(plans) - len(bad)} of {len(plans)} phases fit on {args.gpus} x {args.gpu_mem:g} GiB" +
          (f"; do not fit: {', '.join(bad)}" if bad else ""))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="relic train plan", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
