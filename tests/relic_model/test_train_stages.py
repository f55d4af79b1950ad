"""Training stages on the micro config: checkpoint contents, deterministic resume after a stop and
after a SIGKILL, loss logs, samples, and `relic train all` writing a loadable bundle."""
import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import relic_cli
from relic_model.data.synthetic import write_synthetic_corpus
from relic_model.train.common import RunContext
from relic_model.train.presets import micro_config, write_micro_config
from relic_model.train.run import run_stage_named



ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("corpus"), episodes=2, frames=30, height=32, width=48)


def _weights(path):
    return load_file(str(path))


def test_autoencoder_checkpoint_layout_and_stop_resume_is_exact(corpus, tmp_path):
    cfg = micro_config(autoencoder={"steps": 4, "ckpt_every": 2})
    full = RunContext(cfg, corpus, tmp_path / "full", progress=False)
    run_stage_named(full, "autoencoder")
    part = RunContext(micro_config(autoencoder={"steps": 4, "ckpt_every": 2}), corpus, tmp_path / "part", progress=False)
    r = run_stage_named(part, "autoencoder", stop_after=3)
    assert r["final_dir"] is None and r["steps"] == 3
    ck = tmp_path / "part/autoencoder/checkpoints/step_00000003"
    assert {p.name for p in ck.iterdir()} == {"model.safetensors", "optimizer.pt", "config.yaml", "state.json"}
    st = json.loads((ck / "state.json").read_text())
    assert st["step"] == 3 and st["stage"] == "autoencoder" and "loss" in st["losses"]
    with pytest.raises(RuntimeError, match="--resume"):
        run_stage_named(part, "autoencoder")
    run_stage_named(part, "autoencoder", resume=True)
    a = _weights(tmp_path / "full/autoencoder/final/model.safetensors")
    b = _weights(tmp_path / "part/autoencoder/final/model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert float(a["autoencoder.latent_std"].min()) > 0 and not torch.all(a["autoencoder.latent_std"] == 1)
    log = pd.read_csv(tmp_path / "part/autoencoder/losses.csv")
    assert list(log["step"]) == [1, 2, 3, 4] and {"l1", "mse", "psnr", "fast_l1"} <= set(log.columns)
    assert (tmp_path / "part/autoencoder/samples/step_00000004.png").is_file()
    assert (tmp_path / "part/autoencoder/samples/step_00000004.gif").is_file()


def test_sigkill_then_resume_reaches_the_uninterrupted_parameters(corpus, tmp_path):
    steps = 40
    cfg_path = write_micro_config(tmp_path / "micro.yaml", autoencoder={"steps": steps, "ckpt_every": 1,
                                                                        "sample_every": 0, "stats_clips": 2})
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = ["train", "autoencoder", "--config", str(cfg_path), "--corpus", str(corpus), "--out",
            str(tmp_path / "killed"), "--no-progress"]
    cmd = [sys.executable, "-m", "relic_cli", *args, "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = tmp_path / "killed/autoencoder/checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ck.is_dir() and any(p.name == "step_00000003" for p in ck.iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed/autoencoder/final").exists()  # really interrupted
    assert relic_cli.main(args + ["--resume"]) == 0
    assert relic_cli.main(["train", "autoencoder", "--config", str(cfg_path), "--corpus", str(corpus), "--out",
                           str(tmp_path / "clean"), "--no-progress"]) == 0
    a = _weights(tmp_path / "killed/autoencoder/final/model.safetensors")
    b = _weights(tmp_path / "clean/autoencoder/final/model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    st = json.loads((tmp_path / "killed/autoencoder/final/state.json").read_text())
    assert st["step"] == steps


def test_train_all_cli_writes_a_loadable_bundle(corpus, tmp_path, capsys):
    cfg_path = write_micro_config(tmp_path / "micro.yaml")
    out = tmp_path / "run"
    args = ["train", "all", "--config", str(cfg_path), "--corpus", str(corpus), "--out", str(out), "--no-progress"]
    assert relic_cli.main(args) == 0
    b = out / "bundle"
    w = _weights(b / "model.safetensors")
    prefixes = {k.split(".")[0] for k in w}
    assert prefixes == {"autoencoder", "dit", "text"}
    prov = json.loads((b / "provenance.json").read_text())
    assert set(prov["stages"]) == {"autoencoder", "teacher", "student_init", "distill"}
    for s in prov["stages"].values():
        assert s["wall_time_s"] > 0 and s["final_losses"]
    assert prov["corpus"]["config_hash"] and prov["corpus"]["config"]["generator"] == "relic_model.data.synthetic"
    assert "dmd" in prov["stages"]["distill"]["final_losses"]
    # the bundle's student is the distilled one and differs from the student-init weights
    si = _weights(out / "student_init/final/model.safetensors")
    assert any(not torch.equal(w["dit." + k[len("student."):]], v) for k, v in si.items())
    # loads with the inference side's loader and streams a few frames
    from relic_model.inference.checkpoint import load_checkpoint
    cfg, dit, ae, text = load_checkpoint(b)
    assert cfg.name == "relic-micro"
    torch.testing.assert_close(dit.state_dict()["head.weight"], w["dit.head.weight"])
    from relic_model.inference.streaming import StreamingGenerator
    import numpy as np
    gen = StreamingGenerator(dit, ae, text, cfg)
    gen.reset(np.zeros((32, 48, 3), np.uint8), "a round room")
    frames = gen.step(np.zeros((4, 13), np.float32), 1.0)
    assert frames.shape == (4, 32, 48, 3)
    assert (out / "distill/samples").is_dir() and any((out / "distill/samples").glob("*.png"))
    # re-running resumes: every stage is skipped, the bundle is rewritten
    assert relic_cli.main(args) == 0
    assert pd.read_csv(out / "teacher/losses.csv")["step"].tolist() == [1, 2, 3, 4]
    # a recipe that grew (a distillation phase appended) continues the finished stage from its newest
    # checkpoint, and the bundle is the longer run's
    longer = write_micro_config(tmp_path / "longer.yaml", distill={
        "curriculum": [{"num_blocks": 2, "steps": 2}, {"num_blocks": 3, "steps": 2}, {"num_blocks": 3, "steps": 2}],
        "batch": 2, "gen_update_every": 2, "log_every": 1, "ckpt_every": 2, "sample_every": 4})
    assert relic_cli.main(["train", "all", "--config", str(longer), *args[4:]]) == 0
    assert pd.read_csv(out / "distill/losses.csv")["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "distill/final/state.json").read_text())["step"] == 6
    w6 = _weights(b / "model.safetensors")
    assert not torch.equal(w6["dit.head.weight"], w["dit.head.weight"])
    assert json.loads((b / "provenance.json").read_text())["stages"]["distill"]["steps"] == 6
    # restored from a final-only snapshot (no checkpoints/), a grown recipe continues from the final
    # weights with fresh optimizer states instead of training the stage from scratch
    shutil.rmtree(out / "distill/checkpoints")
    capsys.readouterr()
    before = pd.read_csv(out / "distill/losses.csv")
    grown = write_micro_config(tmp_path / "grown.yaml", distill={
        "curriculum": [{"num_blocks": 2, "steps": 2}, {"num_blocks": 3, "steps": 2}, {"num_blocks": 3, "steps": 4}],
        "batch": 2, "gen_update_every": 2, "log_every": 1, "ckpt_every": 2, "sample_every": 0})
    assert relic_cli.main(["train", "all", "--config", str(grown), *args[4:]]) == 0
    assert "continuing from" in capsys.readouterr().err
    assert pd.read_csv(out / "distill/losses.csv")["step"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert json.loads((out / "distill/final/state.json").read_text())["step"] == 8
    # steps 1-6 were not trained again (a restart would rewrite their rows, wall times included)
    pd.testing.assert_frame_equal(pd.read_csv(out / "distill/losses.csv").iloc[:6], before)
    assert not torch.equal(_weights(b / "model.safetensors")["dit.head.weight"], w6["dit.head.weight"])
    # the same stage resumed again with nothing left to train keeps its final weights and losses
    shutil.rmtree(out / "distill/checkpoints")
    w8, losses8 = _weights(out / "distill/final/model.safetensors"), pd.read_csv(out / "distill/losses.csv")
    assert relic_cli.main(["train", "distill", "--config", str(grown), *args[4:], "--resume"]) == 0
    for k, v in _weights(out / "distill/final/model.safetensors").items():
        assert torch.equal(v, w8[k]), k
    pd.testing.assert_frame_equal(pd.read_csv(out / "distill/losses.csv"), losses8)
    assert json.loads((out / "distill/final/state.json").read_text())["final_losses"]
    # a grown earlier stage would leave the later finals trained from its shorter run: refused
    teach = write_micro_config(tmp_path / "teach.yaml", teacher={
        "curriculum": [{"latent_frames": 3, "steps": 2}, {"latent_frames": 4, "steps": 4}]})
    assert relic_cli.main(["train", "all", "--config", str(teach), *args[4:]]) != 0
    assert "teacher has to train (further), but student_init, distill" in capsys.readouterr().err
    assert pd.read_csv(out / "teacher/losses.csv")["step"].tolist() == [1, 2, 3, 4]   # nothing trained


def test_student_init_refuses_fsdp_without_checkpointing_on_several_ranks():
    from relic_model.distributed import DistInfo
    from relic_model.train.settings import train_settings
    from relic_model.train.stage_student_init import check_fsdp_checkpointing
    cfg = micro_config()
    cfg.train.update(dist="fsdp")
    st = train_settings(cfg)
    with pytest.raises(ValueError, match="activation_checkpointing: true"):
        check_fsdp_checkpointing(st, DistInfo(rank=0, world_size=2))
    check_fsdp_checkpointing(st, DistInfo())                     # one process: FSDP is not applied
    st.activation_checkpointing = True
    check_fsdp_checkpointing(st, DistInfo(rank=0, world_size=2))
    st.activation_checkpointing, st.dist = False, "ddp"
    check_fsdp_checkpointing(st, DistInfo(rank=0, world_size=2))


def test_pause_augmentation_per_phase_and_in_the_later_stages(corpus, tmp_path):
    from relic_model.train.stage_student_init import StudentInitStage
    from relic_model.train.stage_teacher import TeacherStage
    phases = [{"latent_frames": 3, "steps": 2}, {"latent_frames": 3, "steps": 2, "pause_prob": 1.0}]
    cfg = micro_config(teacher={"curriculum": phases}, student_init={"pause_prob": 1.0})
    ctx = RunContext(cfg, corpus, tmp_path / "run", progress=False)
    run_stage_named(ctx, "autoencoder")
    t = TeacherStage(ctx)
    plain, paused = t._pool(1), t._pool(2)
    static = lambda pool: (pool.actions[:, 1:, :, -1] == 1).all(dim=(1, 2))     # every step after frame 0 static
    # a phase with pause_prob 1: every clip holds a frame from some k on (half from frame 0: all static)
    assert plain is not paused and static(paused).any() and not static(plain).all()
    assert (paused.actions[:, -1, -1, -1] == 1).all()          # the held end of every paused clip is static
    # the pool key without pauses is the key the pools had before the option existed
    assert "pause" not in t.pools.key_parts(0.0) and t.pools.key_parts(1.0)["pause"] == 1.0
    names = sorted(p.name for p in (tmp_path / "run/cache").glob("pool_F3_*"))
    assert len(names) == 2
    # the student-init stage reads its own setting
    run_stage_named(ctx, "teacher")
    si = StudentInitStage(ctx)
    assert si.pools.pause == 1.0 and static(si.pools.get(si.F)).any()


def test_rollout_regression_gradient_and_the_distill_phase_that_turns_it_on(corpus, tmp_path):
    from relic_model.train.stage_distill import rollout_regression_grad
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 3, 2, 2, generator=g), torch.randn(2, 5, 3, 2, 2, generator=g)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, 0] = False
    grad, loss = rollout_regression_grad(x, t, mask)
    xr = x.clone().requires_grad_(True)
    ref = (xr - t[:, :4])[:, 1:].pow(2).mean()
    ref.backward()
    torch.testing.assert_close(grad, xr.grad)
    assert abs(loss - float(ref.detach())) < 1e-6 and bool((grad[:, 0] == 0).all())
    # a phase's rollout_regression turns it on (logged), the other phase stays pure DMD
    phases = [{"num_blocks": 2, "steps": 2}, {"num_blocks": 2, "steps": 2, "rollout_regression": 1.0}]
    cfg_path = write_micro_config(tmp_path / "reg.yaml", distill={"curriculum": phases})
    out = tmp_path / "run"
    assert relic_cli.main(["train", "all", "--config", str(cfg_path), "--corpus", str(corpus), "--out", str(out),
                           "--no-progress"]) == 0
    log = pd.read_csv(out / "distill/losses.csv")
    reg = log.set_index("step")["rollout_reg"]
    assert reg[[1, 2]].isna().all() and reg[4] > 0


def test_a_distill_phase_sets_its_own_learning_rates_and_unknown_phase_keys_are_refused(corpus, tmp_path):
    from relic_model.train.settings import check_distill_phase as check_phase
    with pytest.raises(ValueError, match="unknown key"):
        check_phase({"num_blocks": 2, "steps": 2, "lr": 1e-4})  # the teacher's key, not the distill phase's
    with pytest.raises(ValueError, match="missing 'steps'"):
        check_phase({"num_blocks": 2})
    with pytest.raises(ValueError, match="lr_fake must be > 0"):
        check_phase({"num_blocks": 2, "steps": 2, "lr_fake": 0})
    phases = [{"num_blocks": 2, "steps": 2}, {"num_blocks": 2, "steps": 2, "lr_gen": 1e-3, "lr_fake": 3e-3}]
    cfg_path = write_micro_config(tmp_path / "lr.yaml", distill={"curriculum": phases, "warmup": 1})
    out = tmp_path / "run"
    assert relic_cli.main(["train", "all", "--config", str(cfg_path), "--corpus", str(corpus), "--out", str(out),
                           "--no-progress"]) == 0
    lr = pd.read_csv(out / "distill/losses.csv").set_index("step")["lr"]
    assert lr[2] == pytest.approx(5e-5) and lr[4] == pytest.approx(1e-3)  # generator: default, then the phase's
    ckpts = sorted((out / "distill/checkpoints").glob("step_*"))
    opt = torch.load(ckpts[-1] / "optimizer.pt", weights_only=False)
    lrs = sorted(float(g["lr"]) for o in opt.values() for g in o["param_groups"])
    assert lrs == pytest.approx([1e-3, 3e-3])  # the critic's phase lr too
    # a typo is refused when the config is read, before any stage trains
    bad = write_micro_config(tmp_path / "bad.yaml", distill={"curriculum": [{"num_blocks": 2, "steps": 2, "lr_gne": 1e-3}]})
    assert relic_cli.main(["train", "all", "--config", str(bad), "--corpus", str(corpus), "--out", str(tmp_path / "bad"),
                           "--no-progress"]) != 0
    assert not (tmp_path / "bad" / "autoencoder").exists()
