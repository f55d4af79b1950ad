"""The exposure-bias probe: free and teacher-forced rollouts differ only in what enters the cache."""
import numpy as np
import torch

from benchmark.probes import exposure_bias as eb
from benchmark.probes.still_shot import ae_reference
from relic_model.inference.checkpoint import build_models, save_checkpoint
from relic_model.inference.streaming import StreamingGenerator
from relic_model.train.presets import micro_config


def _model(tmp_path):
    cfg = micro_config()
    torch.manual_seed(3)
    dit, ae, text = (m.eval() for m in build_models(cfg))
    return cfg, dit, ae, text, save_checkpoint(tmp_path / "ck", cfg, dit, ae, text)


def _frame(cfg, seed):
    return (np.random.default_rng(seed).random((cfg.data.height, cfg.data.width, 3)) * 255).astype(np.uint8)


def test_forced_context_changes_later_blocks_only_and_free_ignores_the_true_latents(tmp_path):
    cfg, dit, ae, text, _ = _model(tmp_path)
    gen = StreamingGenerator(dit, ae, text, cfg, memory=True)
    frame = _frame(cfg, 0)
    _, _, z = ae_reference(ae, cfg, frame, 3 * gen.frames_per_block)
    other = z.clone()
    other[:, 1:] += 1.0                                 # a different "true" clip after latent 0
    forced_a = eb.rollout_predictions(gen, frame, "a room", z, 3, forced=True)
    forced_b = eb.rollout_predictions(gen, frame, "a room", other, 3, forced=True)
    free_a = eb.rollout_predictions(gen, frame, "a room", z, 3, forced=False)
    free_b = eb.rollout_predictions(gen, frame, "a room", other, 3, forced=False)
    n = gen.fpb
    assert forced_a.shape == free_a.shape == (1, 3 * n, *z.shape[2:])
    # block 1 sees frame 0 only: the same prediction in every mode (same seed)
    assert torch.equal(forced_a[:, :n], free_a[:, :n]) and torch.equal(forced_a[:, :n], forced_b[:, :n])
    # later blocks follow the forced context, and the free rollout never reads the true latents
    assert not torch.allclose(forced_a[:, n:], forced_b[:, n:])
    assert torch.equal(free_a, free_b)


def test_probe_rows_and_summary(tmp_path):
    cfg, *_, ck = _model(tmp_path)
    rows = eb.probe([("a", _frame(cfg, 1), "a room"), ("b", _frame(cfg, 2), "a street")], ck, frames=8)
    assert [(r["image"], r["mode"]) for r in rows] == [("a", "free"), ("a", "forced"), ("b", "free"), ("b", "forced")]
    for r in rows:
        assert len(r["latent_rmse"]) == len(r["psnr_vs_ae_still"]) == 2
        assert all(np.isfinite(r["latent_rmse"])) and all(v > 0 for v in r["latent_rmse"])
    assert rows[0]["latent_rmse"][0] == rows[1]["latent_rmse"][0]
    md = eb.summary(rows)
    assert md.count("\n") == 4 and "| free |" in md and "| forced |" in md
