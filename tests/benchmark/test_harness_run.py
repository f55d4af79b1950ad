"""The harness on a real (mini) suite: tidy results stamped with the protocol version, speed metrics,
artefacts, recorded failures, n/a declarations and incomplete models."""
import json

import numpy as np
import pandas as pd
import pytest

from benchmark.harness import NOISE_FLOOR_MODEL, RESULT_COLUMNS, run_benchmark, slug
from benchmark.leaderboard import leaderboard_markdown, model_status
from benchmark.protocol import PROTOCOL_VERSION
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import build_suite, suite_spec

REQUIRED = ["rpe_rot_deg", "revisit_psnr_gt", "revisit_ssim_gt", "revisit_lpips_gt", "revisit_consistency_gain",
            "revisit_pairs", "revisit_gain_pairs", "revisit_psnr_self", "drift_psnr_slope", "fps", "chunk_latency_ms"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_suite_h")
    build_suite(root, suite_spec("mini"), progress=False)
    suite = load_suite(root)
    out = tmp_path_factory.mktemp("run")
    df = run_benchmark(["oracle", "static", "reproject", "relic:/nonexistent/checkpoint"], suite.tasks, out,
                       suite_name=suite.name, suite_root=str(root), lpips=True, progress=False)
    return suite, out, df


def test_tidy_table_has_required_metrics(run):
    suite, out, df = run
    csv = pd.read_csv(out / "results.csv")
    pq = pd.read_parquet(out / "results.parquet")
    assert list(csv.columns) == RESULT_COLUMNS
    pd.testing.assert_frame_equal(csv, pq, check_dtype=False)
    assert set(csv["model"]) == {"oracle", "static", "reproject", NOISE_FLOOR_MODEL}
    for model in ("oracle", "static", "reproject"):
        got = csv[csv.model == model]
        assert set(got["task"]) == {t.task_id for t in suite.tasks}
        for m in REQUIRED:
            assert m in set(got["metric"]), (model, m)
        fps = got[got.metric == "fps"]["value"]
        assert (fps > 0).all() and np.isfinite(fps).all()
    # one row per (model, task, metric)
    assert not csv.duplicated(["model", "task", "metric"]).any()


def test_every_row_and_the_run_carry_the_protocol_version(run):
    _, out, df = run
    assert set(pd.read_csv(out / "results.csv")["protocol"]) == {PROTOCOL_VERSION}
    assert json.loads((out / "run.json").read_text())["protocol"] == PROTOCOL_VERSION
    assert f"Scoring protocol {PROTOCOL_VERSION}" in (out / "leaderboard.md").read_text()


def test_failures_are_recorded_not_invented_and_the_model_is_incomplete(run):
    suite, out, df = run
    info = json.loads((out / "run.json").read_text())
    fails = [f for f in info["failures"] if f["model"].startswith("relic")]
    assert fails and fails[0]["stage"] == "build"
    assert not df["model"].str.startswith("relic").any()
    st = model_status(pd.read_csv(out / "results.csv"), info)
    bad = st["relic:/nonexistent/checkpoint"]
    assert not bad.complete and set(bad.missing) == {t.task_id for t in suite.tasks}
    assert all(st[m].complete for m in ("oracle", "static", "reproject"))
    md = (out / "leaderboard.md").read_text()
    assert "relic:/nonexistent/checkpoint (INCOMPLETE: no means, see below)" in md and "## Incomplete models" in md


def test_declared_out_of_action_space_tasks_are_na_not_missing(run, tmp_path):
    from benchmark.adapters.static import StaticModel

    suite, _, _ = run
    skip = suite.tasks[0].task_id

    class NoTranslation(StaticModel):
        name = "turn-only"

        def out_of_action_space(self, task):
            return "commands translation; this model only turns" if task.task_id == skip else None

    out = tmp_path / "na"
    df = run_benchmark(["static"], suite.tasks, out, suite_name=suite.name, lpips=False, progress=False,
                       workers=1, models={"turn-only": NoTranslation()})
    assert skip not in set(df.loc[df.model == "turn-only", "task"])
    info = json.loads((out / "run.json").read_text())
    assert info["not_applicable"] == [{"model": "turn-only", "task": skip,
                                       "reason": "commands translation; this model only turns"}]
    st = model_status(df, info)["turn-only"]
    assert st.complete and st.na == {skip: "commands translation; this model only turns"} and not st.missing
    md = leaderboard_markdown(out)
    assert f"`turn-only` on {skip}: commands translation" in md and "+ 1 n/a" in md
    assert f"### On the {len(suite.tasks) - 1} tasks every complete model ran" in md


def test_a_nan_headline_metric_makes_a_model_incomplete(run, tmp_path):
    suite, out, _ = run
    df = pd.read_csv(out / "results.csv")
    info = json.loads((out / "run.json").read_text())
    task = next(t.task_id for t in suite.tasks if len(t.revisits))
    df.loc[(df.model == "static") & (df.task == task) & (df.metric == "revisit_psnr_gt"), "value"] = np.nan
    st = model_status(df, info)["static"]
    assert not st.complete and st.nan == [(task, "revisit_psnr_gt")]
    # a metric undefined on a task for every model (no revisit pairs there) is not a NaN failure
    none = next(t.task_id for t in suite.tasks if not len(t.revisits))
    assert df[(df.task == none) & (df.metric == "revisit_psnr_gt")]["value"].isna().all()
    assert model_status(pd.read_csv(out / "results.csv"), info)["static"].complete


def test_artefacts_written(run):
    suite, out, _ = run
    for model in ("oracle", "static", "reproject"):
        for t in suite.tasks:
            with np.load(out / "curves" / slug(model) / f"{t.task_id}.npz") as z:
                assert "t_s" in z.files and "psnr" in z.files
            with np.load(out / "trajectories" / slug(model) / f"{t.task_id}.npz") as z:
                assert z["est_poses"].shape == (t.num_frames, 4, 4)
        rv = [t for t in suite.tasks if len(t.revisits)]
        assert rv and all((out / "strips" / slug(model) / f"{t.task_id}.png").exists() for t in rv)
    assert (out / "leaderboard.md").exists() and (out / "report.html").exists()


def test_interrupted_run_resumes_without_redoing_work(run, tmp_path, monkeypatch):
    import benchmark.harness as harness

    suite, ref_out, ref_df = run
    calls = {"rollout": 0, "score": 0}
    real_rollout, real_score = harness.rollout, harness.score_job

    def counting_rollout(model, task):
        calls["rollout"] += 1
        return real_rollout(model, task)

    n_tasks = len(suite.tasks)

    def failing_score(*a, **k):  # jobs: the noise floor of every task, then static's
        calls["score"] += 1
        if calls["score"] == n_tasks + 2:
            raise KeyboardInterrupt("simulated interruption")  # Ctrl-C; an Exception is recorded instead
        return real_score(*a, **k)

    monkeypatch.setattr(harness, "rollout", counting_rollout)
    monkeypatch.setattr(harness, "score_job", failing_score)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match="simulated"):
        run_benchmark(["static"], suite.tasks, out, suite_name=suite.name, lpips=False, progress=False,
                      report=False, workers=1)
    saved = n_tasks + 1
    assert calls["rollout"] == n_tasks and len(list((out / ".scores").rglob("*.pkl"))) == saved
    # every noise floor and static's score of task 0 were saved: static's frames of task 0
    # were released, its speed file kept (so resuming does not roll it out again)
    first = suite.tasks[0].task_id
    assert not (out / ".frames" / "static" / f"{first}.npy").exists()
    assert (out / ".frames" / "static" / f"{first}.speed.json").exists()
    assert len(list((out / ".frames").rglob("*.npy"))) == n_tasks - 1
    calls.update(rollout=0, score=0)

    def counting_score(*a, **k):
        calls["score"] += 1
        return real_score(*a, **k)

    monkeypatch.setattr(harness, "score_job", counting_score)
    df = run_benchmark(["static"], suite.tasks, out, suite_name=suite.name, lpips=False, progress=False,
                       report=False, workers=1, resume=True)
    assert calls["rollout"] == 0                         # every rollout reused
    assert calls["score"] == 2 * n_tasks - saved         # noise floor + static jobs, minus the saved
    info = json.loads((out / "run.json").read_text())
    assert info["resumed"] == {"rollouts": n_tasks, "scores": saved}
    assert not (out / ".frames").exists() and not (out / ".scores").exists()
    # same numbers as an uninterrupted run (LPIPS aside), including the reused speed metrics
    key = ["model", "task", "metric"]
    a = df[df.model == "static"].set_index(key).value
    b = ref_df[ref_df.model == "static"].set_index(key).value
    common = a.index.intersection(b.index)
    common = [i for i in common if "lpips" not in i[2] and i[2] not in ("fps", "chunk_latency_ms",
                                                                        "chunk_latency_p95_ms")]
    assert len(common) > 20 and np.allclose(a[common], b[common], equal_nan=True)
    assert "fps" in set(df[df.model == "static"].metric)
    # a fresh (non-resume) run starts over
    calls.update(rollout=0, score=0)
    run_benchmark(["static"], suite.tasks, out, suite_name=suite.name, lpips=False, progress=False,
                  report=False, workers=1)
    assert calls["rollout"] == n_tasks


def test_run_that_cannot_fit_its_frames_stops_before_rolling_out(run, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import benchmark.harness as harness

    suite, _, _ = run
    calls = {"rollout": 0}
    monkeypatch.setattr(harness, "rollout", lambda *a, **k: calls.__setitem__("rollout", 1))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 100 << 20))
    with pytest.raises(OSError, match=r"needs .* GiB of scratch space .* only 0\.1 GiB is free"):
        run_benchmark(["static"], suite.tasks, tmp_path / "full", suite_name=suite.name, lpips=False,
                      progress=False, report=False, workers=1)
    assert calls["rollout"] == 0


def test_ground_truth_is_not_held_for_every_task(run):
    # a full suite's ground truth is ~9 GB: the harness reads it per task and lets it go
    suite, _, _ = run
    assert all(t._frames is None and t._depth is None for t in suite.tasks)
    t = suite.tasks[0]
    frames = t.gt_frames()
    t.release()
    assert t._frames is None and np.array_equal(t.gt_frames(), frames)  # reloads on demand


def test_two_models_with_the_same_name_both_get_scored(run, tmp_path):
    # e.g. `relic` and `relic:OTHER_CHECKPOINT` both call themselves "relic": their frames once
    # shared one scratch folder (the second run's rollouts replaced the first's, then went missing)
    from benchmark.adapters.static import StaticModel

    suite, _, _ = run
    tasks = suite.tasks[:1]
    df = run_benchmark(["static"], tasks, tmp_path / "dup", suite_name=suite.name, lpips=False,
                       progress=False, report=False, workers=1, models={"static-copy": StaticModel()})
    assert set(df["model"]) == {"static", "static-copy", NOISE_FLOOR_MODEL}
    t = df.pivot_table(index="model", columns="metric", values="value")
    assert t.loc["static", "rpe_rot_deg"] == pytest.approx(t.loc["static-copy", "rpe_rot_deg"])


def test_a_scoring_failure_is_recorded_and_the_others_are_still_written(run, tmp_path, monkeypatch):
    import benchmark.harness as harness

    suite, _, _ = run
    bad = suite.tasks[0].task_id
    real = harness.score_job

    def flaky(task, frames, *a, **k):
        if task.task_id == bad and frames is not None:
            raise ValueError("estimator blew up")
        return real(task, frames, *a, **k)

    monkeypatch.setattr(harness, "score_job", flaky)
    out = tmp_path / "flaky"
    df = run_benchmark(["static"], suite.tasks, out, suite_name=suite.name, lpips=False, progress=False, workers=1)
    assert bad not in set(df.loc[df.model == "static", "task"]) and len(set(df.loc[df.model == "static", "task"])) == 2
    info = json.loads((out / "run.json").read_text())
    assert [(f["model"], f["task"], f["stage"]) for f in info["failures"]] == [("static", bad, "score")]
    st = model_status(df, info)["static"]
    assert not st.complete and "estimator blew up" in st.missing[bad]
