"""`relic demo`: the README's main job, end to end on the embedded default.

Top-level composition (beside ``relic_cli.py``, above datagen, relic_model and benchmark): every
step runs the same ``relic`` command a user would type, in a child process (``python -m relic_cli``:
the same exit codes and messages, and no import loop between this module and the CLI that
dispatches to it).

Steps (each prints what it does and how long it took; a piece that is not available is skipped
with a message that says why, and is never replaced by invented results):

1. build a small corpus with ``relic datagen build`` (default corpus config) into OUT/corpus;
2. optionally fine-tune briefly with ``relic train`` (``--train-steps N``, 0 = skip);
3. build the smoke suite into OUT/suite (held-out scenes);
4. benchmark the bundled RELIC model (when a checkpoint is bundled), ``relic-nomem``, the
   baselines (oracle, static, reproject) and, with ``--validity``, the noisy-oracle variants of the
   metric-validity section, into OUT/bench;
5. write OUT/bench/leaderboard.md and OUT/bench/report.html and print where to open them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmark.adapters import BASELINES, VALIDITY_VARIANTS, parse_models
from benchmark.cli.run import publish
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import build_suite, suite_spec
from datagen.cli_common import ensure_output_dir, int_at_least, positive_int

# what `relic demo` writes into --out
DEMO_ENTRIES = ("corpus", "train", "suite", "bench")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"),
                   help="output folder (a non-empty folder that is not a demo run is refused unless --force)")
    p.add_argument("--force", action="store_true", help="write into --out even when it holds other files")
    p.add_argument("--quick", action="store_true",
                   help="fastest path: capture at most --corpus-limit (default 4) corpus episodes")
    p.add_argument("--validity", action="store_true",
                   help="also run the six noisy-oracle variants of the report's metric-validity section "
                        "(about as long again as the baselines)")
    p.add_argument("--train-steps", type=int_at_least(0), default=0,
                   help="steps of a short fine-tune with `relic train` to show training works (0 = skip)")
    p.add_argument("--train-config", default="tiny", help="RelicConfig for the fine-tune (default: tiny)")
    p.add_argument("--corpus-config", default=None, help="corpus YAML (default: datagen's default config)")
    p.add_argument("--corpus-limit", type=positive_int, default=None,
                   help="capture at most this many episodes (default: all; --quick: 4)")
    p.add_argument("--skip-corpus", action="store_true", help="do not build the corpus")
    p.add_argument("--models", default=None, help="override the benchmarked models (comma-separated specs)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--publish", type=Path, default=None, help="also copy leaderboard.md, report.html and results.csv here")


def _step(title: str):
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _done(t0: float, what: str = "done") -> None:
    print(f"   {what} in {time.perf_counter() - t0:.1f} s", flush=True)


def _relic_cli(argv: list[str]) -> int:
    """Exit status of `relic ARGV`, run as a child process with this interpreter."""
    return subprocess.run([sys.executable, "-m", "relic_cli", *argv], check=False).returncode


def build_corpus(args) -> Path | None:
    t0 = _step("1/5 corpus: relic datagen build (embedded renderer)")
    out = args.out / "corpus"
    argv = ["datagen", "build", "--out", str(out), "--no-progress"]
    if args.corpus_config:
        argv += ["--config", str(args.corpus_config)]
    limit = args.corpus_limit if args.corpus_limit is not None else (4 if args.quick else None)
    if limit is not None:
        argv += ["--limit", str(limit)]
    try:
        rc = _relic_cli(argv)
    except SystemExit as e:  # argparse error or a missing command
        rc = int(e.code or 1)
    except Exception as e:  # noqa: BLE001 - an optional step of the demo: report and go on
        print(f"   corpus build failed: {type(e).__name__}: {e}")
        rc = 1
    if rc != 0:
        print(f"   corpus build did not finish (exit {rc}); continuing with the benchmark")
        return None
    _done(t0)
    return out


def fine_tune(args, corpus: Path | None) -> None:
    t0 = _step("2/5 fine-tune: relic train")
    if args.train_steps <= 0:
        print("   skipped (pass --train-steps N to run a short fine-tune)")
        return
    if corpus is None:
        print("   skipped: no corpus was built")
        return
    try:
        import relic_model.cli.train_all  # noqa: F401
    except ImportError as e:
        print(f"   skipped: relic_model training is not available in this installation ({e})")
        return
    argv = ["train", "all", "--config", args.train_config, "--corpus", str(corpus), "--out", str(args.out / "train"),
            "--steps", str(args.train_steps), "--no-progress"]
    print(f"   relic {' '.join(argv)}")
    try:
        rc = _relic_cli(argv)
    except SystemExit as e:
        rc = int(e.code or 1)
    except Exception as e:  # noqa: BLE001 - an optional step of the demo: report and go on
        print(f"   fine-tune failed: {type(e).__name__}: {e}")
        rc = 1
    if rc != 0:
        print(f"   fine-tune failed (exit {rc}); the benchmark uses the bundled checkpoint")
        return
    _done(t0, f"trained {args.train_steps} steps per stage -> {args.out / 'train'} (the benchmark below uses the "
              "bundled checkpoint; benchmark this run with --models relic:" + str(args.out / "train" / "bundle") + ")")


def default_models(validity: bool) -> list[str]:
    models = ["relic", "relic-nomem", *BASELINES]
    if validity:
        models += list(VALIDITY_VARIANTS)
    return models


def run(args) -> int:
    from benchmark.harness import run_benchmark  # deferred: it imports torch

    t_all = time.perf_counter()
    ensure_output_dir(args.out, ours=DEMO_ENTRIES, what="demo run", force=args.force)
    corpus = None if args.skip_corpus else build_corpus(args)
    if args.skip_corpus:
        print("\n== 1/5 corpus: skipped (--skip-corpus)")
    fine_tune(args, corpus)

    t0 = _step("3/5 smoke suite on held-out scenes: relic bench tasks --suite smoke")
    suite_dir = args.out / "suite"
    build_suite(suite_dir, suite_spec("smoke"), progress=False)
    suite = load_suite(suite_dir)
    _done(t0, f"{len(suite.tasks)} tasks, {sum(t.num_frames for t in suite.tasks)} frames")

    t0 = _step("4/5 benchmark: relic bench run")
    models = parse_models(args.models) if args.models else default_models(args.validity)
    print(f"   models: {', '.join(models)}")
    run_benchmark(models, suite.tasks, args.out / "bench", suite_name=suite.name, suite_root=str(suite_dir),
                  lpips=not args.no_lpips, progress=True)
    _done(t0)

    t0 = _step("5/5 report")
    bench = args.out / "bench"
    info = json.loads((bench / "run.json").read_text())
    for f in info.get("failures", []):
        where = f" on {f['task']}" if f.get("task") else ""
        print(f"   NOT RUN: {f['model']}{where}: {f['error']}")
    if args.publish:
        publish(bench, args.publish)
        print(f"   published to {args.publish}/")
    print(f"   leaderboard: {bench / 'leaderboard.md'}")
    print(f"   open the report: file://{(bench / 'report.html').resolve()}")
    print(f"\nrelic demo finished in {time.perf_counter() - t_all:.1f} s")
    return 0
