"""The training report: collecting losses.csv / probes.csv of runs (a row being written, a missing
stage), the PNG, and the resumable probe cache (on the mini suite with random micro checkpoints)."""
import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.probes.training_report import (PROBE_COLUMNS, append_probe_rows, checkpoints_to_probe, collect,
                                              loss_columns, main, plot, probe_run, read_probes)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_run(run, truncated=True):
    ae = run / "autoencoder"
    ae.mkdir(parents=True)
    rows = "".join(f"{s},{s * 0.5},0.001,{1 / s},{0.5 / s},{14 + s / 10},{1.2 / s},1.0\n" for s in range(10, 110, 10))
    tail = "110,55.0,0.001,0.0" if truncated else ""  # the next row, caught while being written
    (ae / "losses.csv").write_text("step,time_s,lr,l1,mse,psnr,loss,grad_norm\n" + rows + tail)
    te = run / "teacher"
    te.mkdir()
    (te / "losses.csv").write_text("step,time_s,lr,loss,grad_norm,latent_frames\n"
                                   + "".join(f"{s},{s},0.0005,{2 - s / 100},1.1,4.0\n" for s in range(10, 60, 10)))
    append_probe_rows(te, [{"step": s, "probe": p, "metric": m, "value": v}
                           for s in (20, 40) for p, m, v in (("action_following", "rpe_trans", 0.5 - s / 200),
                                                             ("action_following", "dir_cos", s / 50),
                                                             ("action_following_static", "rpe_trans", 0.48),
                                                             ("revisit", "revisit_psnr_gt", 12 + s / 10),
                                                             ("revisit_static", "revisit_psnr_gt", 15.0))])
    return run


def test_collect_drops_a_partial_last_line_and_skips_missing_stages(tmp_path):
    (log,) = collect([_write_run(tmp_path / "runA")])
    assert log.name == "runA" and log.stages() == ["autoencoder", "teacher"]  # no student_init, distill
    ae = log.losses["autoencoder"]
    assert list(ae["step"]) == list(range(10, 110, 10)) and ae["psnr"].iloc[-1] == pytest.approx(24.0)
    assert log.losses["teacher"]["loss"].iloc[0] == pytest.approx(1.9)
    pr = log.probes["teacher"]
    assert list(pr.columns) == list(PROBE_COLUMNS) and len(pr) == 10 and set(pr["step"]) == {20, 40}
    (empty,) = collect([tmp_path / "nothing_here"])
    assert empty.stages() == [] and empty.losses == {} and empty.probes == {}


def test_a_row_with_a_bad_value_becomes_nan_not_an_error(tmp_path):
    run = _write_run(tmp_path / "runB", truncated=False)
    with open(run / "teacher" / "losses.csv", "a") as fh:
        fh.write("60,60,0.0005,nan,1.1,4.0\n70,70,0.0005,garbage,1.1,4.0\n")
    (log,) = collect([run])
    te = log.losses["teacher"]
    assert list(te["step"]) == [10, 20, 30, 40, 50, 60, 70] and te["loss"].iloc[-2:].isna().all()


def test_plot_writes_a_png_for_several_runs(tmp_path):
    a, b = _write_run(tmp_path / "runA"), _write_run(tmp_path / "runB", truncated=False)
    out = plot(collect([a, b]), tmp_path / "rep" / "training.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    import matplotlib.image as mpimg
    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    assert [p.name for p in out.parent.iterdir()] == ["training.png"]  # no temporary file left
    cli = tmp_path / "cli.png"
    assert main([str(a), str(tmp_path / "missing_run"), "--out", str(cli)]) == 0
    assert cli.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="no losses.csv"):
        plot(collect([tmp_path / "missing_run"]), tmp_path / "none.png")


def test_counts_and_norms_are_not_plotted_as_losses():
    df = pd.DataFrame({"step": [1, 2], "time_s": [0.1, 0.2], "lr": [1e-3, 1e-3], "l1": [0.2, 0.1], "mse": [0.05, 0.04],
                       "psnr": [20.0, 21.0], "loss": [0.3, 0.2], "grad_norm": [1.0, 2.0], "skipped": [0.0, 1.0]})
    assert loss_columns(df) == ["l1", "mse", "loss"]


def test_append_probe_rows_keeps_old_rows(tmp_path):
    append_probe_rows(tmp_path, [{"step": 5, "probe": "revisit", "metric": "revisit_psnr_gt", "value": 11.0}])
    append_probe_rows(tmp_path, [{"step": 9, "probe": "revisit", "metric": "revisit_psnr_gt", "value": float("nan")}])
    df = read_probes(tmp_path)
    assert list(df["step"]) == [5, 9] and df["value"].iloc[0] == 11.0 and np.isnan(df["value"].iloc[1])
    assert pd.read_csv(tmp_path / "probes.csv").columns.tolist() == list(PROBE_COLUMNS)


# ---- probe: random micro networks in the layout of a training run, the mini suite
@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    from benchmark.tasks.suite import build_suite, suite_spec
    from relic_model.train.checkpoint import CheckpointManager
    from relic_model.train.common import build_autoencoder, build_dit, build_text
    from relic_model.train.presets import micro_config
    suite = tmp_path_factory.mktemp("mini_suite_tr")
    build_suite(suite, suite_spec("mini"), progress=False)
    cfg = micro_config()
    torch.manual_seed(0)
    ae, teacher, text, student = build_autoencoder(cfg), build_dit(cfg), build_text(cfg), build_dit(cfg)
    run = tmp_path_factory.mktemp("runs") / "micro"
    CheckpointManager(run / "autoencoder").save_final({"autoencoder": ae}, cfg, {"stage": "autoencoder", "step": 3})
    te = CheckpointManager(run / "teacher", keep=3)
    for step in (2, 4):
        te.save(step, {"teacher": teacher, "text": text}, {}, cfg, {"stage": "teacher"})
    te.save_final({"teacher": teacher, "text": text}, cfg, {"stage": "teacher", "step": 4})
    CheckpointManager(run / "distill").save(4, {"student": student}, {}, cfg, {"stage": "distill"})
    return run, suite


def test_probe_appends_once_and_resumes(micro_run):
    run, suite = micro_run
    assert [s for s, _ in checkpoints_to_probe(run / "teacher", every=4)] == [4]  # step 4 = final, once
    assert [s for s, _ in checkpoints_to_probe(run / "teacher", every=1)] == [2, 4]
    kw = dict(n_tasks=1, frames=9, steps=1, progress=False)
    assert probe_run(run, suite, every=4, **kw) == 2  # teacher 4 (final), distill 4
    first = {s: (run / s / "probes.csv").read_bytes() for s in ("teacher", "distill")}
    te, di = read_probes(run / "teacher"), read_probes(run / "distill")
    assert list(set(te["step"])) == [4] and list(set(di["step"])) == [4]
    for df in (te, di):
        assert set(df["probe"]) == {"action_following", "action_following_static", "revisit", "revisit_static"}
        af = df[df["probe"] == "action_following"].set_index("metric")["value"]
        assert set(af.index) == {"rpe_trans", "rpe_rot_deg", "dir_cos"} and np.isfinite(af["rpe_trans"])
        rv = df[df["probe"].str.startswith("revisit")].set_index(["probe", "metric"])["value"]
        assert np.isfinite(rv["revisit", "revisit_psnr_gt"]) and np.isfinite(rv["revisit_static", "revisit_psnr_gt"])
    # the static video is the same for both stages
    st = pd.concat([te, di])
    assert st[(st["probe"] == "revisit_static") & (st["metric"] == "revisit_psnr_gt")]["value"].nunique() == 1
    # resumable: a second call finds nothing left to probe and leaves the caches as they were
    assert probe_run(run, suite, every=4, **kw) == 0
    assert all((run / s / "probes.csv").read_bytes() == b for s, b in first.items())
    assert [s for s, _ in checkpoints_to_probe(run / "teacher", every=1)] == [2]  # only what is missing
    out = plot(collect([run]), run / "training.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
