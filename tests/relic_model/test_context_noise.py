"""Context noise (``sampling.context_sigma``): the student's context enters its KV cache noised to
sigma c (frame 0, the given first image, stays clean) in streaming inference, self-forcing rollouts
(replayed exactly) and student init's clean prefix; a distillation phase can set it and the saved
config carries the value the weights were trained with."""
import numpy as np
import pytest
import torch
from relic_model.config import config_from_dict, load_config
from relic_model.inference.streaming import StreamingGenerator
from relic_model.nn.autoencoder import VideoAutoencoder
from relic_model.nn.dit import RelicDiT
from relic_model.nn.text import TextEncoder
from relic_model.objectives.flow_matching import noised_context
from relic_model.pipelines.conditioning import Cond
from relic_model.pipelines.dit_generator import DiTBlockGenerator
from relic_model.pipelines.self_forcing import rollout
from relic_model.data.synthetic import write_synthetic_corpus
from relic_model.train.common import RunContext
from relic_model.train.presets import micro_config, micro_dict
from relic_model.train.run import run_stage_named
from relic_model.train.stage_student_init import StudentInitStage


def test_noised_context_keeps_the_first_image_and_noises_the_rest():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 3, 2, 2, generator=g)
    # c = 0: the clean context itself, sigma 0, and no noise drawn
    g1 = torch.Generator().manual_seed(7)
    state = g1.get_state()
    x, sig = noised_context(x0, 0.0, g1)
    assert x is x0 and bool((sig == 0).all()) and torch.equal(g1.get_state(), state)
    # c > 0 from frame 0: frame 0 untouched, frames >= 1 = (1 - c) x0 + c eps at sigma c
    x, sig = noised_context(x0, 0.2, torch.Generator().manual_seed(7))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(x[:, 0], x0[:, 0]) and bool((sig[:, 0] == 0).all())
    torch.testing.assert_close(x[:, 1:], 0.8 * x0[:, 1:] + 0.2 * eps[:, 1:])
    assert torch.allclose(sig[:, 1:], torch.full_like(sig[:, 1:], 0.2))
    # a later block (absolute index >= 1): every frame noised
    x, sig = noised_context(x0, 0.1, torch.Generator().manual_seed(7), first_index=5)
    assert torch.allclose(sig, torch.full_like(sig, 0.1)) and not torch.equal(x[:, 0], x0[:, 0])


def test_config_rejects_context_noise_at_or_above_the_last_sampler_level():
    config_from_dict({"sampling": {"sigmas": [1.0, 0.5, 0.25], "context_sigma": 0.2}})
    for bad in (0.25, 0.3, -0.1):
        with pytest.raises(ValueError, match="context_sigma"):
            config_from_dict({"sampling": {"sigmas": [1.0, 0.5, 0.25], "context_sigma": bad}})


def _tiny():
    cfg = config_from_dict({
        "data": {"height": 32, "width": 48},
        "autoencoder": {"latent_channels": 4, "spatial_factor": 8, "channels": [8, 8, 8], "fast_channels": [8, 8, 8]},
        "dit": {"dim": 24, "depth": 2, "heads": 2, "frames_per_block": 1, "text_dim": 16},
        "memory": {"window": 2, "schedule": [1, 2, 4]},
        "text": {"dim": 16, "max_tokens": 6, "buckets": 64, "layers": 0, "heads": 2},
    })
    torch.manual_seed(0)
    dit, ae, text = RelicDiT(cfg).eval(), VideoAutoencoder(cfg).eval(), TextEncoder(cfg.text).eval()
    with torch.no_grad():
        dit.head.weight.normal_(0, 0.2)
        for blk in dit.blocks:
            blk.modulation.normal_(0, 0.1)
    return cfg, dit, ae, text


def _stream(cfg, dit, ae, text, c, seed=5, blocks=4):
    cfg.sampling.context_sigma = c
    rng = np.random.default_rng(0)
    actions = (rng.random((4 * blocks, 13)) < 0.2).astype(np.float32)
    sg = StreamingGenerator(dit, ae, text, cfg)
    sg.reset(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), "a red room", seed=seed)
    for b in range(blocks):
        sg.generate_block(actions[4 * b: 4 * b + 4])
    return torch.cat(sg.latents, 1), sg


def test_streaming_commits_noised_context_but_keeps_frame_0_clean():
    cfg, dit, ae, text = _tiny()
    clean, sg0 = _stream(cfg, dit, ae, text, 0.0, blocks=1)
    noisy, sg = _stream(cfg, dit, ae, text, 0.2, blocks=1)
    # block 1 is generated from the clean first image alone: the same latents either way
    torch.testing.assert_close(noisy, clean, rtol=0, atol=0)
    # the cache: frame 0's keys identical (committed clean), block 1's keys noised
    tpf = sg.cache.tokens_per_frame
    assert sg.cache.window_frames == [0, 1] and sg.cache.n_tokens == 2 * tpf
    k0, k1 = sg0.cache.k[0][:, :, :2 * tpf], sg.cache.k[0][:, :, :2 * tpf]     # (B, heads, tokens, d)
    torch.testing.assert_close(k1[:, :, :tpf], k0[:, :, :tpf], rtol=0, atol=0)
    assert float((k1[:, :, tpf:] - k0[:, :, tpf:]).abs().max()) > 1e-4
    # later blocks read that context; reproducible from the seed
    a, _ = _stream(cfg, dit, ae, text, 0.2, blocks=4)
    b, _ = _stream(cfg, dit, ae, text, 0.2, blocks=4)
    c, _ = _stream(cfg, dit, ae, text, 0.0, blocks=4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a[:, 2:] - c[:, 2:]).abs().max()) > 1e-4


def _rollout_setup(nb):
    cfg, dit, ae, text = _tiny()
    g = torch.Generator().manual_seed(1)
    B, F = 2, 1 + nb
    cond = Cond({"actions": torch.rand(B, F, 4, 13, generator=g), "poses": torch.randn(B, F, 4, 12, generator=g)},
                {"text": torch.randn(B, 6, 16, generator=g)})
    first = torch.randn(B, 1, 4, 4, 6, generator=g)
    return dit, cond, first


def test_rollout_with_context_noise_is_replayed_exactly():
    """A replay rebuilds the cache from the records: the commit noise is a function of
    (context_seed, frame_offset), so the replayed exit steps see exactly the rollout's cache."""
    from relic_model.pipelines.replay_backprop import replay_backward
    nb = 4
    dit, cond, first = _rollout_setup(nb)
    for p in dit.parameters():
        p.requires_grad_(True)
    clean = rollout(DiTBlockGenerator(dit), first, cond, nb, 1, [1.0, 0.75, 0.5, 0.25],
                    torch.Generator().manual_seed(3))
    gen = DiTBlockGenerator(dit, context_sigma=0.2, context_seed=11)
    ro = rollout(gen, first, cond, nb, 1, [1.0, 0.75, 0.5, 0.25], torch.Generator().manual_seed(3))
    assert float((ro.video[:, 2:] - clean.video[:, 2:]).abs().max()) > 1e-4
    torch.testing.assert_close(ro.video[:, :2], clean.video[:, :2], rtol=0, atol=0)
    # replay's re-run exit steps reproduce each block's output exactly (checked inside via on_block)
    outs = []
    dit.zero_grad()

    class Recording(DiTBlockGenerator):
        def denoise(self, x_t, sigma, c, cache, frame_offset):
            y = super().denoise(x_t, sigma, c, cache, frame_offset)
            outs.append((frame_offset, y.detach()))
            return y
    rec_gen = Recording(dit, context_sigma=0.2, context_seed=11)
    replay_backward(rec_gen, ro, cond, torch.randn_like(ro.video))
    for (fo, y), r in zip(outs, ro.records):
        assert fo == r.frame_offset
        torch.testing.assert_close(y, r.x0, rtol=1e-5, atol=1e-6)
    # a different context seed is a different cache: the replay would not match
    outs.clear()
    replay_backward(Recording(dit, context_sigma=0.2, context_seed=12), ro, cond, torch.randn_like(ro.video))
    assert max(float((y - r.x0).abs().max()) for (_, y), r in zip(outs, ro.records)) > 1e-4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("corpus"), episodes=2, frames=30, height=32, width=48)


def test_student_init_noises_its_clean_prefix_and_distill_phases_set_the_saved_config(corpus, tmp_path):
    d = micro_dict(student_init={"random_prefix": False},
                   distill={"curriculum": [{"num_blocks": 2, "steps": 2},
                                           {"num_blocks": 2, "steps": 2, "context_sigma": 0.1,
                                            "context_scope": "window"}]})
    d["sampling"] = {"context_sigma": 0.15}
    cfg = config_from_dict(d)
    ctx = RunContext(cfg, corpus, tmp_path / "run", progress=False)
    for name in ("autoencoder", "teacher"):
        run_stage_named(ctx, name)
    si = StudentInitStage(ctx)
    assert si.context_sigma == 0.15 and si.cfg.sampling.context_sigma == 0.15
    x0, x_in, sig, cond, texts = si.batch(0, [0, 1])
    P = int((sig[0] > 0.15).nonzero()[0])                  # the fixed split: frame 0 + 2 clean blocks
    assert P == 3
    assert torch.equal(x_in[:, 0], x0[:, 0]) and bool((sig[:, 0] == 0).all())
    assert torch.allclose(sig[:, 1:P], torch.full_like(sig[:, 1:P], 0.15))
    assert float((x_in[:, 1:P] - x0[:, 1:P]).abs().max()) > 1e-3
    assert bool((sig[:, P:] >= 0.25).all())
    # without context noise the prefix is the clean latents at sigma 0 (the paper's student init)
    ctx0 = RunContext(micro_config(student_init={"random_prefix": False}), corpus, tmp_path / "run", progress=False)
    si0 = StudentInitStage(ctx0)
    a0, a_in, a_sig, _, _ = si0.batch(0, [0, 1])
    assert torch.equal(a_in[:, :P], a0[:, :P]) and bool((a_sig[:, :P] == 0).all())
    torch.testing.assert_close(a_in[:, P:], x_in[:, P:], rtol=0, atol=0)   # the noisy blocks are the same draw
    assert torch.isfinite(si.loss(x0, x_in, sig, cond, texts))
    # context_scope "window": frame 1 leaves a 1-frame window inside the prefix and enters memory
    # from the clean pass, not the noised one, which changes the loss
    mcfg = si.student.cfg.memory
    win, mcfg.window = mcfg.window, 1
    with torch.no_grad():
        l_all = float(si.loss(x0, x_in, sig, cond, texts))
        si.context_scope = "window"
        l_win = float(si.loss(x0, x_in, sig, cond, texts))
    si.context_scope, mcfg.window = "all", win
    assert l_all > 0 and abs(l_all - l_win) > 1e-3 * l_all
    # distillation: the phase's value reaches the config saved with the final weights (-> the bundle)
    for name in ("student_init", "distill"):
        run_stage_named(ctx, name)
    saved = load_config(tmp_path / "run/distill/final/config.yaml")
    assert saved.sampling.context_sigma == pytest.approx(0.1) and saved.sampling.context_scope == "window"
    si_saved = load_config(tmp_path / "run/student_init/final/config.yaml")
    assert si_saved.sampling.context_sigma == pytest.approx(0.15) and si_saved.sampling.context_scope == "all"


def test_distill_phase_context_noise_out_of_range_is_refused(corpus, tmp_path):
    from relic_model.train.stage_distill import DistillStage
    d = micro_dict(distill={"curriculum": [{"num_blocks": 2, "steps": 2, "context_sigma": 0.3}]})
    ctx = RunContext(config_from_dict(d), corpus, tmp_path / "run", progress=False)
    for name in ("autoencoder", "teacher", "student_init"):
        run_stage_named(ctx, name)
    with pytest.raises(ValueError, match="context_sigma"):
        DistillStage(ctx)
    ctx.settings.distill.curriculum = [{"num_blocks": 2, "steps": 2, "context_scope": "memory"}]
    with pytest.raises(ValueError, match="context_scope"):
        DistillStage(ctx)
