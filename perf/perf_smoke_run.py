"""Bar: the smoke suite with all runnable baselines finishes in under 2 minutes on this machine.

Measures (1) building the smoke suite (``relic bench tasks --suite smoke``) and (2) running and
scoring ``oracle,static,reproject`` on it (``relic bench run``: rollouts, noise floor, scoring,
leaderboard and report), each as wall and CPU seconds, with the machine's load average before and
after (the machine is shared, so a loaded run is slower than the bar's "quiet" condition).
Writes reports/perf_smoke_run.md and .json.

    python perf/perf_smoke_run.py [--out reports] [--models oracle,static,reproject]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from benchmark.adapters import parse_models
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import build_suite, suite_spec

BAR_S = 120.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--models", default="oracle,static,reproject")
    args = ap.parse_args()

    from benchmark.harness import run_benchmark

    work = Path(tempfile.mkdtemp(prefix="perf_smoke_"))
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), _cpu()
    build_suite(work / "suite", suite_spec("smoke"), progress=False)
    build = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0}
    suite = load_suite(work / "suite")
    t0, c0 = time.perf_counter(), _cpu()
    run_benchmark(parse_models(args.models), suite.tasks, work / "run", suite_name="smoke",
                  suite_root=str(work / "suite"), lpips=True, progress=False)
    run = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0}
    load1 = os.getloadavg()
    info = json.loads((work / "run" / "run.json").read_text())
    res = {"models": parse_models(args.models), "tasks": len(suite.tasks),
           "frames": sum(t.num_frames for t in suite.tasks), "build": build, "run": run,
           "run_timings": info.get("timings"), "scoring_workers": info.get("scoring_workers"),
           "bar_s": BAR_S, "run_meets_bar": run["wall_s"] < BAR_S, "cpu_count": os.cpu_count(),
           "loadavg_before": load0, "loadavg_after": load1,
           "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perf_smoke_run.json").write_text(json.dumps(res, indent=1))
    md = [
        "# Smoke suite with the runnable baselines: time to finish",
        "",
        f"Command: `python perf/perf_smoke_run.py --models {args.models}` "
        f"({res['measured_utc']}, {os.cpu_count()} CPUs, load average before {load0[0]:.1f}, after {load1[0]:.1f}).",
        "",
        f"Suite: smoke, {res['tasks']} tasks, {res['frames']} frames at 112x64. Bar: `relic bench run` under "
        f"{BAR_S:.0f} s.",
        "",
        "| step | wall (s) | CPU (s) |",
        "|---|---:|---:|",
        f"| build the smoke suite (`relic bench tasks --suite smoke`) | {build['wall_s']:.1f} | {build['cpu_s']:.1f} |",
        f"| run + score + report (`relic bench run --models {args.models}`) | {run['wall_s']:.1f} | {run['cpu_s']:.1f} |",
        "",
        f"Bar (run under {BAR_S:.0f} s): **{'met' if res['run_meets_bar'] else 'MISSED'}**. Rollout seconds per "
        f"model: {res['run_timings']['rollout_s'] if res['run_timings'] else 'n/a'}; scoring "
        f"{res['run_timings']['scoring_s'] if res['run_timings'] else 'n/a'} s with {res['scoring_workers']} "
        "process(es). The machine is shared: a load average above the CPU count means other jobs ran at "
        "the same time and the wall times are upper bounds.",
    ]
    (args.out / "perf_smoke_run.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
