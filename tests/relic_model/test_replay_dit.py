"""Replayed back-propagation on the real RelicDiT (block-causal, two-branch KV cache with
compression): gradients equal naive full-graph back-propagation (float32: the DiT's timestep
embedding runs in float32; the toy-net test covers float64 to 1e-10), and the autograd
memory held at once is about one block's."""
import pytest
import torch

from relic_model.config import config_from_dict
from relic_model.nn.dit import RelicDiT
from relic_model.pipelines.conditioning import Cond
from relic_model.pipelines.dit_generator import DiTBlockGenerator, score_fn
from relic_model.pipelines.memory_probe import SavedTensorMeter
from relic_model.pipelines.replay_backprop import dmd_targets, naive_full_graph_backward, replay_backward
from relic_model.pipelines.self_forcing import rollout



TS = [1.0, 0.75, 0.5, 0.25]


def tiny_cfg():
    return config_from_dict({
        "data": {"height": 32, "width": 48},
        "autoencoder": {"latent_channels": 4, "spatial_factor": 8, "channels": [8, 8, 8], "fast_channels": [8, 8, 8]},
        "dit": {"dim": 24, "depth": 2, "heads": 2, "frames_per_block": 1, "text_dim": 16},
        "memory": {"window": 2, "schedule": [1, 2, 4]},
        "text": {"dim": 16, "max_tokens": 6, "buckets": 64, "layers": 0, "heads": 2},
    })


def setup(nb, seed=0):
    cfg = tiny_cfg()
    torch.manual_seed(seed)
    student = RelicDiT(cfg)
    real, fake = RelicDiT(cfg), RelicDiT(cfg)
    for p in list(real.parameters()) + list(fake.parameters()):
        p.requires_grad_(False)
    # make the head non-trivial (zero-init heads would give zero gradients to everything else)
    with torch.no_grad():
        for m in (student, real, fake):
            m.head.weight.normal_(0, 0.2)
            for blk in m.blocks:
                blk.modulation.normal_(0, 0.1)
    g = torch.Generator().manual_seed(seed + 1)
    B, F = 2, 1 + nb
    cond = Cond({"actions": torch.rand(B, F, 4, 13, generator=g, dtype=torch.float32),
                 "poses": torch.randn(B, F, 4, 12, generator=g, dtype=torch.float32)},
                {"text": torch.randn(B, 6, 16, generator=g, dtype=torch.float32)})
    first = torch.randn(B, 1, 4, 4, 6, generator=g, dtype=torch.float32)
    return student, real, fake, cond, first


def test_replay_equals_naive_on_relic_dit():
    nb = 5  # more blocks than the window (2) so compressed memory is exercised
    student, real, fake, cond, first = setup(nb)
    gen = DiTBlockGenerator(student)
    exits = [0, 3, 1, 2, 3]
    student.zero_grad()
    ro_n = rollout(gen, first, cond, nb, 1, TS, torch.Generator().manual_seed(3), exit_steps=exits, grad_exit=True)
    tg = dmd_targets(ro_n.video, score_fn(real, cond), score_fn(fake, cond), True, torch.Generator().manual_seed(4))
    naive_full_graph_backward(ro_n.video, tg)
    g_naive = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    del ro_n

    student.zero_grad()
    ro = rollout(gen, first, cond, nb, 1, TS, torch.Generator().manual_seed(3), exit_steps=exits)
    tg2 = dmd_targets(ro.video, score_fn(real, cond), score_fn(fake, cond), True, torch.Generator().manual_seed(4))
    torch.testing.assert_close(tg2.grad, tg.grad, rtol=0, atol=0)
    replay_backward(gen, ro, cond, tg2.out_grad)
    g_replay = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    assert set(g_replay) == set(g_naive)
    assert "text_proj.0.weight" in g_replay  # text projections are trained too
    for n in g_naive:
        torch.testing.assert_close(g_replay[n], g_naive[n], rtol=2e-4, atol=1e-6, msg=n)
    assert sum(float(g.abs().sum()) for g in g_replay.values()) > 1e-6


def test_replay_memory_is_about_one_block_on_relic_dit():
    nb = 6
    student, real, fake, cond, first = setup(nb, seed=5)
    gen = DiTBlockGenerator(student)
    exits = [3] * nb
    with SavedTensorMeter() as m_naive:
        ro_n = rollout(gen, first, cond, nb, 1, TS, torch.Generator().manual_seed(3), exit_steps=exits, grad_exit=True)
        tg = dmd_targets(ro_n.video, score_fn(real, cond), score_fn(fake, cond), True, torch.Generator().manual_seed(4))
        peak_before_backward = m_naive.live_bytes
        naive_full_graph_backward(ro_n.video, tg)
    del ro_n
    ro = rollout(gen, first, cond, nb, 1, TS, torch.Generator().manual_seed(3), exit_steps=exits)
    per_block, peaks = [], []
    with SavedTensorMeter() as m_replay:
        replay_backward(gen, ro, cond, tg.out_grad, on_block=lambda b: per_block.append(m_replay.live_bytes))
    assert per_block == [0] * nb
    # one block: a single grad-enabled exit step at the last position (largest KV context)
    cache = gen.new_cache(2)
    gen.commit(first, cond.frames(0, 1), cache, 0)
    for rec in ro.records[:-1]:
        gen.commit(rec.x0, cond.frames(rec.frame_offset, rec.frame_offset + 1), cache, rec.frame_offset)
    last = ro.records[-1]
    with SavedTensorMeter() as m_one:
        out = gen.denoise(last.x_exit, last.sigma_exit, cond.frames(last.frame_offset, last.frame_offset + 1),
                          cache, last.frame_offset)
    del out
    assert m_replay.peak_bytes <= 1.1 * m_one.peak_bytes
    assert peak_before_backward >= 0.6 * nb * m_replay.peak_bytes


def test_self_forcing_rollout_is_exactly_streaming_inference():
    """With every block run to its last step, the training rollout produces the same latents as
    the inference StreamingGenerator (same noise order, controls layout, cache updates)."""
    import numpy as np
    from relic_model.inference.streaming import StreamingGenerator
    from relic_model.nn.autoencoder import VideoAutoencoder
    from relic_model.nn.control import integrate_actions, latent_controls, pose12_from_c2w
    from relic_model.nn.text import TextEncoder

    cfg = tiny_cfg()
    torch.manual_seed(0)
    dit, ae, text = RelicDiT(cfg).eval(), VideoAutoencoder(cfg).eval(), TextEncoder(cfg.text).eval()
    with torch.no_grad():
        dit.head.weight.normal_(0, 0.2)
    rng = np.random.default_rng(0)
    actions = (rng.random((12, 13)) < 0.2).astype(np.float32)
    sg = StreamingGenerator(dit, ae, text, cfg)
    sg.reset(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), "a red room", seed=5)
    for b in range(3):
        sg.generate_block(actions[4 * b: 4 * b + 4])
    ref = torch.cat(sg.latents, 1)
    c2w = np.concatenate([np.eye(4)[None], integrate_actions(actions, 1.0, np.eye(4))])
    la, lp = latent_controls(actions, pose12_from_c2w(c2w, 1.0), 4)
    with torch.no_grad():
        cond = Cond({"actions": torch.from_numpy(la)[None], "poses": torch.from_numpy(lp)[None]},
                    {"text": text.encode_text(["a red room"])})
        ro = rollout(DiTBlockGenerator(dit), ref[:, :1], cond, 3, 1, cfg.sampling.sigmas,
                     torch.Generator().manual_seed(5))
    torch.testing.assert_close(ro.video, ref, rtol=1e-5, atol=1e-5)
