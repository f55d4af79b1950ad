"""Replayed back-propagation == naive full-graph back-propagation, at about one block of memory.

Uses a small but real block-causal attention generator with a per-layer KV cache (defined here,
since the pipeline only relies on the ``BlockGenerator`` interface); the same checks run on the
RelicDiT in test_replay_dit.py.
"""
import pytest
import torch
import torch.nn as nn

from relic_model.objectives.dmd import dmd_loss
from relic_model.pipelines.conditioning import Cond
from relic_model.pipelines.memory_probe import SavedTensorMeter
from relic_model.pipelines.replay_backprop import dmd_targets, naive_full_graph_backward, replay_backward
from relic_model.pipelines.self_forcing import rollout




class ToyCausalNet(nn.Module):
    """Tokens = latent pixels; L layers of attention over [KV cache, current block]; velocity out."""

    def __init__(self, C=3, D=16, layers=2, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.inp = nn.Linear(C, D)
        self.cond = nn.Linear(13 + 1, D)
        self.qkv = nn.ModuleList(nn.Linear(D, 3 * D) for _ in range(layers))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D)) for _ in range(layers))
        self.out = nn.Linear(D, C)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x, sigma, actions, cache, update):
        B, f, C, h, w = x.shape
        tok = x.permute(0, 1, 3, 4, 2).reshape(B, f, h * w, C)
        c = torch.cat([actions, sigma[..., None]], -1)  # (B, f, 14)
        z = (self.inp(tok) + self.cond(c)[:, :, None]).reshape(B, f * h * w, -1)
        for i, (qkv, mlp) in enumerate(zip(self.qkv, self.mlp)):
            q, k, v = qkv(z).chunk(3, -1)
            if cache is not None and cache[i]:
                K = torch.cat([cache[i][0], k], 1)
                V = torch.cat([cache[i][1], v], 1)
            else:
                K, V = k, v
            if update:
                cache[i] = (K.detach(), V.detach())
            a = torch.softmax(q @ K.transpose(1, 2) / K.shape[-1] ** 0.5, -1) @ V
            z = z + a
            z = z + mlp(z)
        return self.out(z).reshape(B, f, h, w, C).permute(0, 1, 4, 2, 3)


class ToyGen:
    def __init__(self, net):
        self.net = net

    def new_cache(self, batch, device=None, dtype=None):
        return [None] * len(self.net.qkv)

    def denoise(self, x_t, sigma, cond, cache, frame_offset):
        v = self.net(x_t, sigma, cond.per_frame["actions"], [c for c in cache], update=False)
        return x_t - sigma[..., None, None, None] * v

    def commit(self, x0, cond, cache, frame_offset):
        self.net(x0, torch.zeros(x0.shape[:2], dtype=x0.dtype), cond.per_frame["actions"], cache, update=True)


def _score_fn(seed):
    net = ToyCausalNet(seed=seed).double()

    def fn(x_t, sigma):
        acts = torch.zeros(*x_t.shape[:2], 13, dtype=x_t.dtype)
        v = net(x_t, sigma, acts, None, update=False)  # bidirectional over the whole video
        return x_t - sigma[..., None, None, None] * v
    return fn


def _setup(num_blocks=4, bf=2, B=2, hw=(3, 4)):
    torch.manual_seed(0)
    net = ToyCausalNet(seed=1).double()
    gen = ToyGen(net)
    F = 1 + num_blocks * bf
    cond = Cond({"actions": torch.randn(B, F, 13, generator=torch.Generator().manual_seed(5)).double()})
    first = torch.randn(B, 1, 3, *hw, generator=torch.Generator().manual_seed(6)).double()
    return net, gen, cond, first


TS = [1.0, 0.75, 0.5, 0.25]


def test_replay_gradients_equal_naive_full_graph():
    net, gen, cond, first = _setup()
    exits = [3, 0, 2, 1]
    real, fake = _score_fn(11), _score_fn(12)

    # naive: every block's exit step keeps its graph; one backward over the whole video
    net.zero_grad()
    ro_n = rollout(gen, first, cond, 4, 2, TS, torch.Generator().manual_seed(3), exit_steps=exits, grad_exit=True)
    tg = dmd_targets(ro_n.video, real, fake, True, torch.Generator().manual_seed(4))
    naive_full_graph_backward(ro_n.video, tg)
    g_naive = {n: p.grad.clone() for n, p in net.named_parameters()}

    # replay: no-grad rollout, cached score differences, per-block backward
    net.zero_grad()
    ro = rollout(gen, first, cond, 4, 2, TS, torch.Generator().manual_seed(3), exit_steps=exits)
    assert not ro.video.requires_grad
    torch.testing.assert_close(ro.video, ro_n.video.detach(), rtol=0, atol=0)
    tg_r = dmd_targets(ro.video, real, fake, True, torch.Generator().manual_seed(4))
    replay_backward(gen, ro, cond, tg_r.out_grad)
    total = 0.0
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, g_naive[n], rtol=1e-10, atol=1e-12)
        total += float(p.grad.abs().sum())
    assert total > 1e-6  # gradients are non-trivial
    assert abs(tg_r.loss - tg.loss) < 1e-12


def test_replay_matches_naive_with_ddp_style_no_sync_and_is_one_update():
    """Gradients accumulate across blocks (no zeroing in between) and the no_sync hook is used
    for all but the last block."""
    net, gen, cond, first = _setup(num_blocks=3)
    real, fake = _score_fn(21), _score_fn(22)
    ro = rollout(gen, first, cond, 3, 2, TS, torch.Generator().manual_seed(7), exit_steps=[1, 1, 1])
    tg = dmd_targets(ro.video, real, fake, True, torch.Generator().manual_seed(8))
    calls = []
    import contextlib

    @contextlib.contextmanager
    def no_sync():
        calls.append(1)
        yield
    net.zero_grad()
    replay_backward(gen, ro, cond, tg.out_grad, no_sync=no_sync)
    assert len(calls) == 2
    g_replay = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    ro_n = rollout(gen, first, cond, 3, 2, TS, torch.Generator().manual_seed(7), exit_steps=[1, 1, 1], grad_exit=True)
    dmd_loss(ro_n.video, tg.grad, tg.loss_mask).backward()
    for a, p in zip(g_replay, net.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-12)


def test_replay_peak_memory_is_about_one_block():
    nb = 6
    net, gen, cond, first = _setup(num_blocks=nb, hw=(4, 6))
    real, fake = _score_fn(31), _score_fn(32)
    exits = [3] * nb
    # naive full graph
    with SavedTensorMeter() as m_naive:
        ro_n = rollout(gen, first, cond, nb, 2, TS, torch.Generator().manual_seed(3), exit_steps=exits, grad_exit=True)
        tg = dmd_targets(ro_n.video, real, fake, True, torch.Generator().manual_seed(4))
        naive_full_graph_backward(ro_n.video, tg)
    del ro_n
    # replay
    ro = rollout(gen, first, cond, nb, 2, TS, torch.Generator().manual_seed(3), exit_steps=exits)
    per_block = []
    with SavedTensorMeter() as m_replay:
        replay_backward(gen, ro, cond, tg.out_grad, on_block=lambda b: per_block.append(m_replay.live_bytes))
    assert all(v == 0 for v in per_block)  # each block's graph is freed before the next
    # one block = the largest single exit-step graph (the last block, longest context)
    cache = gen.new_cache(2)
    gen.commit(first, cond.frames(0, 1), cache, 0)
    for rec in ro.records[:-1]:
        gen.commit(rec.x0, cond.frames(rec.frame_offset, rec.frame_offset + 2), cache, rec.frame_offset)
    last = ro.records[-1]
    with SavedTensorMeter() as m_one:
        out = gen.denoise(last.x_exit, last.sigma_exit, cond.frames(last.frame_offset, last.frame_offset + 2), cache,
                          last.frame_offset)
    del out
    assert m_one.peak_bytes > 0
    assert m_replay.peak_bytes <= 1.05 * m_one.peak_bytes
    assert m_naive.peak_bytes >= 0.5 * nb * m_replay.peak_bytes  # naive grows with the number of blocks
