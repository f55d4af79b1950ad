"""Merging finished runs: union of models, later run wins, artefacts copied, incomparable runs refused."""
import json

import pandas as pd
import pytest

from benchmark.protocol import PROTOCOL_VERSION

import relic_cli
from benchmark.harness import NOISE_FLOOR_MODEL, run_benchmark, slug
from benchmark.merge_runs import merge_runs
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import build_suite, suite_spec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_suite_m")
    build_suite(root, suite_spec("mini"), progress=False)
    suite = load_suite(root)
    a, b = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    kw = dict(suite_name=suite.name, suite_root=str(root), lpips=False, progress=False, report=False, workers=1)
    run_benchmark(["static", "oracle"], suite.tasks, a, **kw)
    run_benchmark(["reproject", "static"], suite.tasks, b, **kw)
    return suite, a, b


def test_merge_takes_the_union_and_the_later_run_per_model(runs, tmp_path):
    suite, a, b = runs
    out = tmp_path / "merged"
    assert relic_cli.main(["bench", "merge", str(a), str(b), "--out", str(out)]) == 0
    m = pd.read_csv(out / "results.csv")
    assert set(m.model) == {"static", "oracle", "reproject", NOISE_FLOOR_MODEL}
    ra, rb = pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")
    key = ["model", "task", "metric"]
    pd.testing.assert_frame_equal(  # static from run b (the later one), oracle from run a
        m[m.model == "static"].sort_values(key).reset_index(drop=True),
        rb[rb.model == "static"].sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(
        m[m.model == "oracle"].sort_values(key).reset_index(drop=True),
        ra[ra.model == "oracle"].sort_values(key).reset_index(drop=True))
    assert len(m[m.model == NOISE_FLOOR_MODEL]) == len(ra[ra.model == NOISE_FLOOR_MODEL])
    assert not m.duplicated(key).any()
    for model in ("static", "oracle", "reproject"):
        assert (out / "curves" / slug(model)).is_dir() and (out / "trajectories" / slug(model)).is_dir()
    info = json.loads((out / "run.json").read_text())
    assert [s["models"] for s in info["merged_from"]] == [["oracle"], ["reproject", "static"]]
    lb = (out / "leaderboard.md").read_text()
    assert "reproject (ref)" in lb and "oracle (ref)" in lb and "merged: reproject, static" in lb
    assert (out / "report.html").exists()


def test_incomparable_runs_are_refused(runs, tmp_path):
    suite, a, b = runs
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.csv").write_text((b / "results.csv").read_text())
    info = json.loads((b / "run.json").read_text())
    (bad / "run.json").write_text(json.dumps({**info, "estimator": "opencv-sift"}))
    with pytest.raises(ValueError, match="estimator='opencv-sift'"):
        merge_runs([a, bad], tmp_path / "o1", report=False)
    df = pd.read_csv(b / "results.csv")
    df.loc[df.model == NOISE_FLOOR_MODEL, "value"] += 0.5     # another estimator version's floor
    df.to_csv(bad / "results.csv", index=False)
    (bad / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="noise floor"):
        merge_runs([a, bad], tmp_path / "o2", report=False)
    (bad / "run.json").write_text(json.dumps({**info, "tasks": info["tasks"][:-1]}))
    with pytest.raises(ValueError, match="different tasks"):
        merge_runs([a, bad], tmp_path / "o3", report=False)
    # a run of another scoring protocol version: refused, naming both versions
    df = pd.read_csv(b / "results.csv")
    (bad / "results.csv").write_text((b / "results.csv").read_text())
    (bad / "run.json").write_text(json.dumps({**info, "protocol": 1}))
    df.assign(protocol=1).to_csv(bad / "results.csv", index=False)
    with pytest.raises(ValueError, match=rf"protocol {PROTOCOL_VERSION} but .* under protocol 1"):
        merge_runs([a, bad], tmp_path / "o5", report=False)
    df.drop(columns="protocol").to_csv(bad / "results.csv", index=False)  # old run: no version at all = 1
    info_old = {k: v for k, v in info.items() if k != "protocol"}
    (bad / "run.json").write_text(json.dumps(info_old))
    with pytest.raises(ValueError, match="protocol"):
        merge_runs([a, bad], tmp_path / "o6", report=False)
    rc = relic_cli.main(["bench", "merge", str(a), str(bad), "--out", str(tmp_path / "o7")])
    assert rc == 1
    with pytest.raises(ValueError, match="not a finished benchmark run"):
        merge_runs([a, tmp_path / "nothing"], tmp_path / "o4", report=False)
    with pytest.raises(ValueError, match="new folder"):
        merge_runs([a, b], a, report=False)
