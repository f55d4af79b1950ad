"""Activation checkpointing per DiT block (gradients equal to the plain path, lower peak memory,
also through a KV cache committed with autograd) and bf16 autocast with fp32 master weights."""
from __future__ import annotations

import torch

from relic_model.config import load_config
from relic_model.nn.dit import RelicDiT
from relic_model.pipelines.memory_probe import torch_cpu_peak_bytes


def _cfg(depth=4, dim=64, heads=2, fpb=1):
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads, cfg.dit.frames_per_block = dim, depth, heads, fpb
    return cfg.validate()


def _inputs(cfg, F, seed=0):
    g = torch.Generator().manual_seed(seed)
    C, h, w = cfg.autoencoder.latent_channels, cfg.data.height // 8, cfg.data.width // 8
    sig = torch.rand(1, F, generator=g)
    sig[:, 0] = 0
    return (torch.randn(1, F, C, h, w, generator=g), sig, torch.randn(1, 5, cfg.text.dim, generator=g),
            torch.rand(1, F, 4, 13, generator=g), torch.randn(1, F, 4, 12, generator=g) * 0.1)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointing_gradients_equal_and_peak_lower():
    cfg = _cfg()
    torch.manual_seed(0)
    model = RelicDiT(cfg)
    for p in model.parameters():      # adaLN gates start at 0: give every path a gradient
        torch.nn.init.normal_(p, std=0.05) if p.dim() == 2 and p.shape[0] == 6 else None
    x, sig, text, a, p = _inputs(cfg, 6)
    out, grads, peaks = {}, {}, {}
    for ck in (False, True):
        model.set_activation_checkpointing(ck)
        model.zero_grad(set_to_none=True)

        def step():
            v = model(x, sig, text, a, p, "block_causal")
            v.square().mean().backward()
            return v.detach()
        peaks[ck], out[ck] = torch_cpu_peak_bytes(step)
        grads[ck] = _grads(model)
    torch.testing.assert_close(out[True], out[False], atol=0, rtol=0)
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) > 50
    for n in grads[False]:
        torch.testing.assert_close(grads[True][n], grads[False][n], atol=1e-7, rtol=1e-5, msg=n)
    assert peaks[True] < 0.6 * peaks[False], peaks


def test_checkpointing_through_kv_cache_commit_equals_plain():
    """Hybrid forcing: a clean prefix committed to the cache WITH autograd (older frames pooled by
    the memory schedule), then a noisy suffix on top: same loss and gradients with checkpointing
    (the cache is read before each block and committed after it, outside the recomputation)."""
    cfg = _cfg(depth=3)
    cfg.memory.window = 2
    torch.manual_seed(1)
    model = RelicDiT(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.dim() == 2 and p.shape[0] == 6 else None
    x, sig, text, a, p = _inputs(cfg, 8, seed=3)
    res = {}
    for ck in (False, True):
        model.set_activation_checkpointing(ck)
        model.zero_grad(set_to_none=True)
        cache = model.new_cache()
        model(x[:, :5], sig[:, :5] * 0, text, a[:, :5], p[:, :5], "block_causal", cache, 0, True)
        assert cache.n_comp > 0 and cache.k[0].requires_grad   # frames were compressed, with a graph
        v = model(x[:, 5:], sig[:, 5:], text, a[:, 5:], p[:, 5:], "block_causal", cache, 5, False)
        loss = v.square().mean()
        loss.backward()
        res[ck] = (loss.detach(), _grads(model))
    torch.testing.assert_close(res[True][0], res[False][0], atol=0, rtol=0)
    for n, g in res[False][1].items():
        torch.testing.assert_close(res[True][1][n], g, atol=1e-7, rtol=1e-5, msg=n)


def test_checkpointing_bf16_autocast_fp32_master_weights():
    cfg = _cfg()
    torch.manual_seed(0)
    model = RelicDiT(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.dim() == 2 and p.shape[0] == 6 else None
    x, sig, text, a, p = _inputs(cfg, 5)
    v32 = model(x, sig, text, a, p, "block_causal")
    v32.square().mean().backward()
    g32 = _grads(model)
    model.zero_grad(set_to_none=True)
    model.set_precision("bf16")
    model.set_activation_checkpointing(True)
    v16 = model(x, sig, text, a, p, "block_causal")
    assert v16.dtype == torch.float32                                  # output back in the input dtype
    rel = float((v16 - v32).detach().norm() / v32.detach().norm())
    assert 1e-4 < rel < 3e-2, rel                                     # bf16 compute really happened, and is close
    v16.square().mean().backward()
    g16 = _grads(model)
    assert all(q.dtype == torch.float32 for q in model.parameters())  # master weights stay fp32
    assert all(g.dtype == torch.float32 for g in g16.values())
    num = sum(float((g16[n] - g32[n]).norm() ** 2) for n in g32) ** 0.5
    den = sum(float(g32[n].norm() ** 2) for n in g32) ** 0.5
    assert num / den < 5e-2, num / den
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt.step()
    assert all(q.dtype == torch.float32 for q in model.parameters())
