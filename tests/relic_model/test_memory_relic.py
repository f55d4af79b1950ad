"""Two-branch KV cache: schedule, token counts, pooling, no-memory switch, grad/no-grad paths,
and cached == uncached block-causal attention."""
from __future__ import annotations

import math

import pytest
import torch

from relic_model.config import PAPER_SCHEDULE, load_config
from relic_model.nn.dit import RelicDiT
from relic_model.nn.memory import KVCache, history_token_counts, kv_token_counts, latent_frames_for_seconds
from relic_model.nn.rope import Rope3D, apply_rope, grid_positions

GRID = (8, 14)
N = GRID[0] * GRID[1]


def fill(cache: KVCache, frames: int, per_call: int = 1, seed: int = 0, heads=2, hd=12):
    g = torch.Generator().manual_seed(seed)
    out = []
    f = 0
    while f < frames:
        n = min(per_call, frames - f)
        plan = cache.plan(list(range(f, f + n)))
        k = torch.randn(1, heads, n * N, hd, generator=g)
        v = torch.randn(1, heads, n * N, hd, generator=g)
        for layer in range(cache.depth):
            cache.commit(layer, k, v, plan)
        cache.finish(plan)
        out.append((k, v))
        f += n
    return out


def manual_tokens(frames, window, schedule, enabled=True):
    """Independent count: pooled frame = ceil(8/s) * ceil(14/s) tokens."""
    old = max(0, frames - window)
    mem = sum(math.ceil(8 / schedule[i % len(schedule)]) * math.ceil(14 / schedule[i % len(schedule)])
              for i in range(old)) if enabled else 0
    return mem + min(frames, window) * N


@pytest.mark.parametrize("per_call", [1, 3])
def test_token_counts_follow_schedule(per_call):
    sched = list(PAPER_SCHEDULE)
    c = KVCache(2, GRID, window=4, schedule=sched, enabled=True)
    with torch.no_grad():
        fill(c, 41, per_call)
    tc = c.token_counts()
    assert tc["held"] == manual_tokens(41, 4, sched) == kv_token_counts(41, GRID, 4, sched)["held"]
    assert tc["uncompressed"] == 41 * N
    assert [s for _, s in c.memory_frames] == [sched[i % 18] for i in range(37)]
    assert [f for f, _ in c.memory_frames] == list(range(37))
    assert c.window_frames == [37, 38, 39, 40]
    assert c.k[0][:, :, :c.n_tokens].shape[2] == tc["held"]
    # s = 1, 2, 4 on an 8 x 14 grid: 112, 28, 8 tokens
    assert kv_token_counts(2, GRID, 1, [1, 2])["memory_tokens"] == 112
    assert kv_token_counts(2, GRID, 1, [2])["memory_tokens"] == 28
    assert kv_token_counts(2, GRID, 1, [4])["memory_tokens"] == 8


def test_no_memory_limits_cache_to_window():
    c = KVCache(2, GRID, window=3, schedule=PAPER_SCHEDULE, enabled=False)
    with torch.no_grad():
        for f in range(12):
            fill_one = c.plan([f])
            k = torch.randn(1, 2, N, 12)
            for layer in range(2):
                c.commit(layer, k, k, fill_one)
            c.finish(fill_one)
            assert c.n_tokens == min(f + 1, 3) * N
    assert c.n_comp == 0 and c.memory_frames == [] and c.window_frames == [9, 10, 11]
    assert kv_token_counts(12, GRID, 3, PAPER_SCHEDULE, enabled=False)["held"] == 3 * N


def test_pooling_values_and_positions():
    rope = Rope3D(12)
    c = KVCache(1, GRID, window=1, schedule=[4], enabled=True, rope=rope)
    g = torch.Generator().manual_seed(0)
    raw_k = torch.randn(1, 2, N, 12, generator=g)
    v = torch.randn(1, 2, N, 12, generator=g)
    pos0 = grid_positions(torch.tensor([0]), *GRID)
    cos, sin = rope.cos_sin(pos0)
    k = apply_rope(raw_k, cos, sin)
    with torch.no_grad():
        for f, (kk, vv) in enumerate([(k, v), (torch.zeros_like(k), torch.zeros_like(v))]):
            p = c.plan([f])
            c.commit(0, kk, vv, p)
            c.finish(p)
    assert c.n_comp == 2 * 4
    vg = v.reshape(2, 8, 14, 12)
    kg = raw_k.reshape(2, 8, 14, 12)
    pg = pos0.reshape(8, 14, 3)
    pooled_v = c.v[0][0, :, :8]
    pooled_k = c.k[0][0, :, :8]
    ppos = c.pooled_positions(0, 4)
    assert ppos.shape == (8, 3)
    for i in range(2):
        for j in range(4):
            rows, cols = slice(4 * i, 4 * i + 4), slice(4 * j, min(4 * j + 4, 14))   # last column block: 2 wide
            t = i * 4 + j
            assert torch.allclose(pooled_v[:, t], vg[:, rows, cols].mean((1, 2)), atol=1e-6)
            assert torch.allclose(ppos[t], pg[rows, cols].reshape(-1, 3).mean(0), atol=1e-6)
            # compressed keys = mean of un-rotated keys, re-rotated at the pooled position
            pc, ps = rope.cos_sin(ppos[t:t + 1])
            expect = apply_rope(kg[:, rows, cols].mean((1, 2))[:, None], pc, ps)[:, 0]
            assert torch.allclose(pooled_k[:, t], expect, atol=1e-5)


def test_grad_and_inplace_paths_agree_and_backprop():
    sched = list(PAPER_SCHEDULE)
    a = KVCache(2, GRID, window=2, schedule=sched, rope=Rope3D(12))
    b = KVCache(2, GRID, window=2, schedule=sched, rope=Rope3D(12))
    with torch.no_grad():
        fill(a, 9, 2, seed=3)
    src = fill(b, 9, 2, seed=3)   # grad enabled: out-of-place path
    n = a.n_tokens
    assert n == b.n_tokens
    assert torch.allclose(a.k[1][:, :, :n], b.k[1][:, :, :n], atol=1e-6)
    assert torch.allclose(a.v[0][:, :, :n], b.v[0][:, :, :n], atol=1e-6)
    # gradients reach committed values through the cache
    k0 = torch.randn(1, 2, N, 12, requires_grad=True)
    c = KVCache(1, GRID, window=1, schedule=[2])
    for f in range(3):
        p = c.plan([f])
        c.commit(0, k0 * (f + 1), k0, p)
        c.finish(p)
    q = torch.randn(1, 2, 5, 12)
    kk, vv = c.keys_values(0, torch.zeros(1, 2, 5, 12), torch.zeros(1, 2, 5, 12))
    torch.nn.functional.scaled_dot_product_attention(q, kk, vv).sum().backward()
    assert k0.grad is not None and k0.grad.abs().sum() > 0
    del src


def test_history_token_counts_meet_bar_for_tiny():
    cfg = load_config("tiny")
    assert latent_frames_for_seconds(20, 16, 4) == 80
    for sec in (20, 60, 120):
        tc = history_token_counts(sec, cfg)
        assert tc["ratio"] >= 3.5, tc
    cfg.memory.enabled = False
    assert history_token_counts(60, cfg)["held"] == cfg.memory.window * 112


def test_cached_forward_matches_full_block_causal():
    cfg = load_config("tiny")
    torch.manual_seed(0)
    m = RelicDiT(cfg).eval()
    g = torch.Generator().manual_seed(0)
    F = 7
    x = torch.randn(1, F, 8, 8, 14, generator=g)
    sig = torch.rand(1, F, generator=g)
    text = torch.randn(1, 5, 64, generator=g)
    act, pose = torch.rand(1, F, 4, 13, generator=g), torch.randn(1, F, 4, 12, generator=g)
    with torch.no_grad():
        full = m(x, sig, text, act, pose, attn_mode="block_causal")
        # an uncompressed cache (schedule [1]) with a small window reproduces full attention exactly
        cache = m.new_cache(window=2, schedule=[1])
        for f in range(F):
            out = m(x[:, f:f + 1], sig[:, f:f + 1], text, act[:, f:f + 1], pose[:, f:f + 1], "block_causal",
                    cache, f, True)
            assert torch.allclose(out, full[:, f:f + 1], atol=1e-4)
        # the compressed cache differs once frames leave the window with s > 1 (it does compress)
        cache = m.new_cache(window=2)
        outs = [m(x[:, f:f + 1], sig[:, f:f + 1], text, act[:, f:f + 1], pose[:, f:f + 1], "block_causal",
                  cache, f, True) for f in range(F)]
        assert torch.allclose(outs[3], full[:, 3:4], atol=1e-4)   # frame 0 (s=1) left the window: exact
        assert not torch.allclose(outs[-1], full[:, -1:], atol=1e-4)
        with pytest.raises(ValueError, match="frame_offset"):
            m(x[:, :1], sig[:, :1], text, act[:, :1], pose[:, :1], "block_causal", cache, 3, True)
