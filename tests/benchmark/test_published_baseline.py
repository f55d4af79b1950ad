"""The published regression-gate baseline (reports/baseline_smoke.csv) gates a fresh smoke run, as
benchmark/README.md ("Regression gate") says CI does: a fresh build of the smoke suite, the three
reference baselines scored on it, `relic bench check` against the committed file. It fails when the
scorer moved a headline beyond its measured tolerance, when the baseline is of another scoring
protocol (re-publish it with `--write-baseline` on a protocol bump), or when a task went missing.
Another CPU's renderer may build a suite with another content hash; the tolerances cover that
(reports/gate_spread.md)."""
from pathlib import Path

import pandas as pd

import relic_cli
from benchmark.protocol import PROTOCOL_VERSION

BASELINE = Path(__file__).resolve().parents[2] / "reports" / "baseline_smoke.csv"


def test_published_baseline_is_of_this_protocol():
    base = pd.read_csv(BASELINE)
    assert set(base["protocol"]) == {PROTOCOL_VERSION}
    assert set(base["model"]) == {"oracle", "static", "reproject"}


def test_published_baseline_gates_a_fresh_smoke_run(tmp_path, capsys):
    suite, run = tmp_path / "suite", tmp_path / "run"
    assert relic_cli.main(["bench", "tasks", "--suite", "smoke", "--out", str(suite), "--quiet"]) == 0
    assert relic_cli.main(["bench", "run", "--models", "oracle,static,reproject", "--tasks", str(suite),
                           "--out", str(run), "--no-lpips", "--quiet"]) == 0
    capsys.readouterr()
    rc = relic_cli.main(["bench", "check", "--baseline", str(BASELINE), "--results", str(run)])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
