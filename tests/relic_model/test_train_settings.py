"""Training settings: defaults, overrides, unknown keys, curriculum rescaling."""
import pytest

from relic_model.train.presets import micro_config
from relic_model.train.settings import phase_at, phase_lr, rescale_curriculum, train_settings


def test_overrides_and_unknown_keys():
    s = train_settings(micro_config(teacher={"lr": 0.123}))
    assert s.teacher.lr == 0.123 and s.teacher.batch == 2 and s.distill.gen_update_every == 2
    with pytest.raises(ValueError, match="lrr"):
        train_settings(micro_config(teacher={"lrr": 1}))
    cfg = micro_config()
    cfg.train["typo_stage"] = {}
    with pytest.raises(ValueError, match="typo_stage"):
        train_settings(cfg)


def test_curriculum_rescale_and_phase_lookup():
    ph = [{"latent_frames": 4, "steps": 400}, {"latent_frames": 7, "steps": 150}, {"latent_frames": 10, "steps": 150}]
    r = rescale_curriculum(ph, 70)
    assert [p["steps"] for p in r] == [40, 15, 15] and [p["latent_frames"] for p in r] == [4, 7, 10]
    r = rescale_curriculum(ph, 2)
    assert sum(p["steps"] for p in r) >= 2 and all(p["steps"] >= 1 for p in r)
    assert phase_at(ph, 0)[0] == 0 and phase_at(ph, 399)[0] == 0 and phase_at(ph, 400)[0] == 1
    assert phase_at(ph, 699)[0] == 2 and phase_at(ph, 10 ** 6)[0] == 2


def test_phase_lr_overrides_the_stage_lr_per_phase_and_survives_rescaling():
    ph = [{"latent_frames": 4, "steps": 10}, {"latent_frames": 16, "steps": 10, "lr": 1e-4}]
    assert phase_lr(ph, 0, 5e-4) == 5e-4 and phase_lr(ph, 9, 5e-4) == 5e-4
    assert phase_lr(ph, 10, 5e-4) == 1e-4 and phase_lr(ph, 99, 5e-4) == 1e-4
    r = rescale_curriculum(ph, 40)
    assert phase_lr(r, 25, 5e-4) == 1e-4 and phase_lr(r, 5, 5e-4) == 5e-4


def test_frozen_teacher_switches_default_off_and_are_validated():
    s = train_settings(micro_config())
    assert (s.teacher_dtype, s.teacher_shard) == ("fp32", False)
    cfg = micro_config()
    cfg.train.update(teacher_dtype="bf16", teacher_shard=True)
    s = train_settings(cfg)
    assert (s.teacher_dtype, s.teacher_shard) == ("bf16", True)
    for key, bad in (("teacher_dtype", "fp16"), ("teacher_shard", "yes")):
        cfg = micro_config()
        cfg.train[key] = bad
        with pytest.raises(ValueError, match=key):
            train_settings(cfg)
