"""GPU configs: explicit schedules required (no silent tiny defaults), the training plan, and the
plan's activation formula against saved-for-backward bytes measured on CPU."""
from __future__ import annotations

import copy

import pytest
import torch

from relic_model.config import config_from_dict, load_config
from relic_model.train.plan import dit_activation_bytes, dit_parameters, plan_stages, tokens_per_latent_frame
from relic_model.train.settings import REQUIRED_EXPLICIT, train_settings


def test_gpu_config_explicit_schedule_and_paper_curricula():
    cfg = load_config("gpu")
    st = train_settings(cfg)
    assert 1.2e9 < dit_parameters(cfg) < 1.5e9
    assert [(p["latent_frames"], p["steps"]) for p in st.teacher.curriculum] == [(21, 5000), (41, 1000), (80, 4000)]
    assert [p["steps"] for p in st.distill.curriculum] == [250, 150, 150]
    assert (st.precision, st.activation_checkpointing, st.dist) == ("bf16", True, "fsdp")
    # 20 s at 16 fps = 317 frames = 80 latent frames; the last rollout covers it
    assert 1 + st.distill.curriculum[-1]["num_blocks"] * cfg.dit.frames_per_block >= 80


@pytest.mark.parametrize("drop", ["all", "teacher.curriculum", "distill.lr_fake", "precision", "student_init"])
def test_gpu_config_partial_train_section_fails_loudly(drop):
    d = load_config("gpu").to_dict()
    if drop == "all":
        d["train"] = {}
    elif "." in drop:
        st, k = drop.split(".")
        del d["train"][st][k]
    else:
        del d["train"][drop]
    cfg = config_from_dict(d)
    with pytest.raises(ValueError, match="must set every schedule key explicitly") as e:
        train_settings(cfg)
    if drop != "all":
        assert drop.split(".")[0] in str(e.value)
    else:
        assert all(k in str(e.value) for k in REQUIRED_EXPLICIT["teacher"])


def test_small_configs_keep_defaults_and_require_explicit_opt_in():
    for name in ("tiny", "small", "bundled"):
        train_settings(load_config(name))            # no error: defaults (or the bundled schedule) apply
    d = load_config("tiny").to_dict()
    d["train"] = {"require_explicit": True}
    with pytest.raises(ValueError, match="require_explicit"):
        train_settings(config_from_dict(d))
    d["train"] = {"precision": "fp16"}
    with pytest.raises(ValueError, match="precision"):
        train_settings(config_from_dict(d))


def test_train_plan_gpu_every_stage_in_gib():
    cfg = load_config("gpu")
    plans = plan_stages(cfg, 8, 80.0)
    assert [p.stage for p in plans] == ["teacher"] * 3 + ["student_init"] + ["distill"] * 3
    assert plans[2].tokens_per_sample == 80 * tokens_per_latent_frame(cfg) == 124800
    for p in plans:
        assert 0 < p.total_gib < 80 and p.fits and p.step_tflops > 0
    # without checkpointing / bf16 / FSDP the 20-s teacher phase does not fit, and the plan says why
    d = cfg.to_dict()
    d["train"].update(precision="fp32", activation_checkpointing=False, dist="ddp")
    worse = plan_stages(config_from_dict(d), 8, 80.0)
    assert not worse[2].fits and "activation_checkpointing" in worse[2].advice
    assert worse[2].total_gib > 5 * plans[2].total_gib


def test_train_plan_activation_formula_matches_saved_bytes():
    from relic_model.nn.dit import RelicDiT
    from relic_model.pipelines.memory_probe import SavedTensorMeter
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth = 128, 3
    torch.manual_seed(0)
    m = RelicDiT(cfg)
    F = 5
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, F, 8, 8, 14, generator=g)
    with SavedTensorMeter() as meter:
        m(x, torch.rand(1, F, generator=g), torch.randn(1, 32, 64, generator=g), torch.rand(1, F, 4, 13, generator=g),
          torch.rand(1, F, 4, 12, generator=g), "bidirectional")
    pred = dit_activation_bytes(cfg, F * tokens_per_latent_frame(cfg), "fp32", False)
    assert 0.8 < pred / meter.peak_bytes < 1.1, (pred, meter.peak_bytes)


def test_train_plan_14b_context_parallel_fits_the_20s_teacher_phase():
    from relic_model.cli.train_plan import main
    cfg = load_config("gpu14b")
    st = train_settings(cfg)
    assert st.context_parallel == 2 and st.teacher.batch == 16
    with_cp = plan_stages(cfg, 32, 80.0)
    without = plan_stages(cfg, 32, 80.0, context_parallel=1)
    t20, t20_no = with_cp[2], without[2]
    assert t20.tokens_per_sample == 124800 and t20.tokens_per_gpu == 62400 and t20.context_parallel == 2
    assert t20.fits and not t20_no.fits and "train.context_parallel: 2" in t20_no.advice
    act = "activations (+ KV cache)"
    # half the tokens per GPU; the gathered K/V of one recomputed block are extra
    assert 0.5 < t20.gib[act] / t20_no.gib[act] < 0.53
    assert all(p.fits for p in with_cp[:3]) and t20.cp_traffic_gib > 0 and t20_no.cp_traffic_gib == 0
    # the same global batch on 32 GPUs would put 2 samples on every CP pair: no gain, and the plan says so
    worse = plan_stages(cfg, 32, 80.0, settings=_with_batch(st, 32))[2]
    assert worse.batch_per_gpu == 2 and not worse.fits and "global batch of at most 16" in worse.advice
    with pytest.raises(ValueError, match="divide"):
        plan_stages(cfg, 31, 80.0)
    assert main(["--config", "gpu14b", "--gpus", "32"]) == 0


def _with_batch(st, batch):
    st = copy.deepcopy(st)
    st.teacher.batch = batch
    return st


def test_train_plan_context_parallel_activations_without_checkpointing():
    """Per rank: its tokens' activations plus, per block, the gathered K/V of the rest."""
    cfg = load_config("tiny")
    n = tokens_per_latent_frame(cfg)
    full = dit_activation_bytes(cfg, 8 * n, "fp32", False)
    half = dit_activation_bytes(cfg, 4 * n, "fp32", False, kv_tokens=8 * n)
    assert half == dit_activation_bytes(cfg, 4 * n, "fp32", False) + cfg.dit.depth * 2 * cfg.dit.dim * 4 * 4 * n
    assert 0.5 * full < half < full


def test_train_plan_14b_frozen_teacher_bf16_sharded_fits_every_phase(capsys):
    """gpu14b holds the frozen teacher in bf16, FSDP2-sharded over the 32 GPUs: every phase fits;
    fp32 replicated (the old way) leaves student init and distillation over 80 GiB."""
    from relic_model.cli.train_plan import main
    from relic_model.train.plan import GIB, model_parameters
    cfg = load_config("gpu14b")
    st = train_settings(cfg)
    assert (st.teacher_dtype, st.teacher_shard) == ("bf16", True)
    P = model_parameters(cfg)
    root = P["dit"] - cfg.dit.depth * P["dit_block"]
    assert 0 < root < P["dit_block"]
    cheap = plan_stages(cfg, 32, 80.0)
    old = plan_stages(cfg, 32, 80.0, teacher_dtype="fp32", teacher_shard=False)
    half = plan_stages(cfg, 32, 80.0, teacher_shard=False)                       # bf16, replicated
    col = "frozen teacher (+ gathered)"
    assert all(p.fits for p in cheap) and max(p.total_gib for p in cheap) < 70
    for c, o, h in zip(cheap, old, half):
        if c.stage == "teacher":                     # trained there: no frozen teacher
            assert c.gib[col] == o.gib[col] == 0 and c.total_gib == o.total_gib and o.fits
            continue
        assert c.gib[col] * GIB == pytest.approx(P["dit"] * 2 / 32 + (2 * P["dit_block"] + root) * 2)
        assert o.gib[col] * GIB == pytest.approx(4 * P["dit"]) and h.gib[col] == pytest.approx(o.gib[col] / 2)
        assert o.total_gib - c.total_gib == pytest.approx(o.gib[col] - c.gib[col])   # nothing else changes
        assert not o.fits and "train.teacher_dtype: bf16" in o.advice and "train.teacher_shard: true" in o.advice
        assert o.teacher_dtype == "fp32" and o.teacher_shard == 1 and c.teacher_shard == 32
    # bf16 alone: all but the 20-s distillation phase
    assert [p.fits for p in half[3:]] == [True, True, True, False]
    # one GPU: nothing to shard over
    one = plan_stages(cfg, 1, 80.0, context_parallel=1)[3]
    assert one.teacher_shard == 1 and one.gib[col] * GIB == pytest.approx(2 * P["dit"])
    assert main(["--config", "gpu14b", "--gpus", "32", "--teacher-dtype", "fp32", "--no-teacher-shard"]) == 0
    out = capsys.readouterr().out
    assert "3 of 7 phases fit" in out and "fp32, replicated on every GPU" in out
    assert main(["--config", "gpu14b", "--gpus", "32"]) == 0
    out = capsys.readouterr().out
    assert "7 of 7 phases fit" in out and "bf16, sharded over 32 GPUs" in out
    with pytest.raises(ValueError, match="teacher dtype"):
        plan_stages(cfg, 32, 80.0, teacher_dtype="fp16")


def test_perf_memory_plan_rewrites_only_the_gpu_plan_section(tmp_path):
    from perf.perf_memory_plan import GPU_SECTION, main
    out = tmp_path / "plan.md"
    out.write_text(f"# measured part\n\n| kept | row |\n\n{GPU_SECTION}\n\nstale text\n")
    assert main(["--out", str(out), "--gpu-plans-only"]) == 0
    text = out.read_text()
    assert text.startswith("# measured part\n\n| kept | row |\n\n" + GPU_SECTION) and "stale text" not in text
    assert "### Training plan: relic-gpu-14b on 32 x 80 GiB" in text and "| fp32 replicated | bf16 replicated |" in text
    assert "Phases that fit (of 7): fp32 replicated 3, bf16 replicated 6, fp32 sharded 7, bf16 sharded 7." in text
