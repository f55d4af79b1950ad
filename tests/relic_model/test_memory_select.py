"""Camera-aware memory read budget (beyond the paper): frame selection on hand-built poses, the key
mask over the cached tokens, exactness (budget None / large = unmasked bit-for-bit, budget 0 = the
window-only ablation), window always visible, determinism, config and spec parsing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.adapters.relic import parse_memory_options
from relic_model.config import config_from_dict, load_config
from relic_model.inference.checkpoint import build_models
from relic_model.inference.streaming import StreamingGenerator
from relic_model.nn.memory import KVCache, frame_tokens, pose_scores, select_memory_frames


def yaw_c2w(yaw_deg: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    """c2w rotated by ``yaw_deg`` about the camera-y (down) axis, at position ``t``."""
    a = np.radians(yaw_deg)
    c = np.eye(4)
    c[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    c[:3, 3] = t
    return c


# ----------------------------------------------------------------------------- selection
def test_pose_scores_definition():
    mem = np.stack([yaw_c2w(0), yaw_c2w(90), yaw_c2w(0, (8, 0, 0)), yaw_c2w(180, (0, 0, 16))])
    s = pose_scores(mem, yaw_c2w(0)[None], angle_unit_deg=30.0, distance_unit=16.0)
    assert np.allclose(s, [0.0, 3.0, 0.5, 6.0 + 1.0])
    # min over the query frames
    s2 = pose_scores(mem, np.stack([yaw_c2w(0), yaw_c2w(90)]), 30.0, 16.0)
    assert np.allclose(s2, [0.0, 0.0, 0.5, 3.0 + 1.0])


def test_pose_selection_picks_the_expected_frames():
    # a 360 degree pan in 12 memory frames (30 degrees apart), frames 1..12
    frames = list(range(1, 13))
    mem = np.stack([yaw_c2w(30 * i) for i in range(12)])
    q = yaw_c2w(95)[None]            # closest: 90 (5 deg), 120 (25), 60 (35), 150 (55)
    assert select_memory_frames(frames, 3, "pose", mem, q) == [3, 4, 5]
    assert select_memory_frames(frames, 4, "pose", mem, q) == [3, 4, 5, 6]
    # distance matters: the same view direction far away loses to a near, slightly turned one
    mem2 = np.stack([yaw_c2w(0, (100, 0, 0)), yaw_c2w(20), yaw_c2w(90)])
    assert select_memory_frames([1, 2, 3], 1, "pose", mem2, yaw_c2w(0)[None]) == [2]


def test_ties_break_to_the_more_recent_frame_and_keep_first():
    frames = [0, 1, 2, 3, 4]
    mem = np.stack([yaw_c2w(0)] * 5)                     # all tied
    assert select_memory_frames(frames, 2, "pose", mem, yaw_c2w(0)[None]) == [3, 4]
    assert select_memory_frames(frames, 2, "pose", mem, yaw_c2w(0)[None], keep_first=True) == [0, 4]
    # order of the input does not matter
    perm = [4, 0, 3, 1, 2]
    assert select_memory_frames(perm, 2, "pose", mem, yaw_c2w(0)[None]) == [3, 4]


def test_recent_and_unbounded():
    frames = [0, 1, 2, 3, 4, 5]
    assert select_memory_frames(frames, 3, "recent") == [3, 4, 5]
    assert select_memory_frames(frames, 3, "recent", keep_first=True) == [0, 4, 5]
    assert select_memory_frames(frames, None, "pose") is None
    assert select_memory_frames(frames, 6, "pose") is None
    assert select_memory_frames(frames, 0, "recent") == []
    with pytest.raises(ValueError):
        select_memory_frames(frames, 2, "pose")            # poses missing
    with pytest.raises(ValueError):
        select_memory_frames(frames, 2, "nearest")


# ----------------------------------------------------------------------------- cache mask
def filled_cache(num_frames=9, window=2, grid=(4, 6), depth=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    sched = [1, 4, 2, 4, 4, 4, 2, 4, 4, 2]
    cache = KVCache(depth, grid, window, sched, True, None)
    n = grid[0] * grid[1]
    with torch.no_grad():
        for f in range(num_frames):
            plan = cache.plan([f])
            for layer in range(depth):
                cache.commit(layer, torch.randn(1, 2, n, 8, generator=g), torch.randn(1, 2, n, 8, generator=g), plan)
            cache.finish(plan)
    return cache


def test_mask_covers_exactly_the_selected_frames_and_the_window():
    cache = filled_cache()
    assert [f for f, _ in cache.memory_frames] == list(range(7)) and cache.window_frames == [7, 8]
    assert cache.read_mask() is None
    cache.set_read_frames([1, 4, 6])
    m = cache.read_mask()
    assert m.shape == (cache.n_tokens,) and m.dtype == torch.bool
    expect, pos = [], 0
    for f, s in cache.memory_frames:
        expect += [f in (1, 4, 6)] * frame_tokens(*cache.grid, s)
    expect += [True] * (2 * cache.tokens_per_frame)           # window always visible
    assert m.tolist() == expect
    # a commit clears the selection (it is per block)
    plan = cache.plan([9])
    with torch.no_grad():
        cache.commit(0, torch.zeros(1, 2, 24, 8), torch.zeros(1, 2, 24, 8), plan)
    cache.finish(plan)
    assert cache.read_mask() is None and cache.read_frames is None
    with pytest.raises(ValueError):
        cache.set_read_frames([8])                             # in the window, not in memory
    cache.set_read_frames([])                                  # budget 0: window only
    m0 = cache.read_mask()
    assert int(m0.sum()) == len(cache.window_frames) * cache.tokens_per_frame and bool(m0[-48:].all())


def test_masked_attention_equals_attention_over_the_selected_tokens_only():
    from relic_model.nn.attention import SelfAttention
    torch.manual_seed(0)
    cache = filled_cache(depth=1, seed=1)
    att = SelfAttention(16, 2, True).eval()
    x = torch.randn(1, 1, 24, 16)
    cos, sin = torch.ones(24, 4), torch.zeros(24, 4)   # identity rotation (hd = 8)
    sel = [0, 2, 5]
    cache.set_read_frames(sel)
    keep = cache.read_mask().clone()
    with torch.no_grad():
        out = att(x, None, cos, sin, None, cache, 0)
        # reference: gather the visible cached tokens and attend without any mask
        q, k, v = att.qkv(x, None)
        from relic_model.nn.attention import _heads, _merge
        q, k, v = (_heads(t.reshape(1, 24, 16), 2) for t in (q, k, v))
        n = cache.n_tokens
        kk = torch.cat([cache.k[0][:, :, :n][:, :, keep], k], 2)
        vv = torch.cat([cache.v[0][:, :, :n][:, :, keep], v], 2)
        ref = att.to_out(_merge(F.scaled_dot_product_attention(q, kk, vv))).view(1, 1, 24, 16)
    assert torch.allclose(out, ref, atol=1e-6)
    assert [f for f, _ in cache.memory_frames] == list(range(7))      # cache contents untouched


# ----------------------------------------------------------------------------- streaming
def light_cfg(**memory):
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads = 32, 2, 2
    cfg.autoencoder.channels, cfg.autoencoder.fast_channels = [8, 8, 8], [8, 8, 8]
    cfg.memory.window = 2
    for k, v in memory.items():
        setattr(cfg.memory, k, v)
    return cfg.validate()


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return tuple(m.eval() for m in build_models(light_cfg()))


def stream(nets, memory=True, **mem):
    cfg = light_cfg(**mem)
    dit, ae, text = nets
    dit.cfg = cfg
    g = StreamingGenerator(dit, ae, text, cfg, memory=memory)
    img = (np.random.default_rng(0).random((64, 112, 3)) * 255).astype(np.uint8)
    g.reset(img, "a quiet street", seed=3)
    acts = np.zeros((40, 13), np.float32)
    acts[:20, 9] = 9.0           # pan right 180 deg, then back left: revisits
    acts[20:, 8] = 9.0
    latents, reads = [], []
    for i in range(0, 40, 4):
        latents.append(g.generate_block(acts[i:i + 4]).clone())
        reads.append(g.last_read_frames)
    return torch.cat(latents, 1), reads, g


def test_budget_none_and_large_budget_are_bit_identical_to_the_paper(nets):
    ref, reads, g = stream(nets)
    assert all(r is None for r in reads) and len(g.cache.memory_frames) == 9
    for kw in ({"read_budget": None, "select": "pose"}, {"read_budget": 100, "select": "pose"},
               {"read_budget": 8, "select": "recent"}):
        out, _, _ = stream(nets, **kw)
        assert torch.equal(out, ref), kw


def test_budget_masks_and_is_deterministic(nets):
    ref, _, _ = stream(nets)
    a, reads, g = stream(nets, read_budget=2, select="pose")
    b, reads_b, _ = stream(nets, read_budget=2, select="pose")
    assert torch.equal(a, b) and reads == reads_b
    assert not torch.equal(a, ref)
    assert all(r is None or len(r) == 2 for r in reads) and any(r is not None for r in reads)
    # the last block pans back to the start: its closest memory frames are the earliest ones
    assert reads[-1] == [0, 1]
    _, reads_r, _ = stream(nets, read_budget=2, select="recent")
    assert reads_r[-1] == [6, 7]


def test_budget_zero_is_the_window_only_ablation(nets):
    nomem, _, _ = stream(nets, memory=False)
    zero, _, g = stream(nets, read_budget=0)
    assert len(g.cache.memory_frames) == 9                    # memory kept, just not read
    assert torch.allclose(zero, nomem, atol=1e-4)


# ----------------------------------------------------------------------------- config / spec
def test_config_defaults_and_validation():
    m = load_config("tiny").memory
    assert m.read_budget is None and m.select == "recent"
    with pytest.raises(ValueError, match="read_budget"):
        config_from_dict({"memory": {"read_budget": -1}})
    with pytest.raises(ValueError, match="select"):
        config_from_dict({"memory": {"select": "nearest"}})


def test_spec_options():
    assert parse_memory_options("budget=12+select=pose") == {"read_budget": 12, "select": "pose"}
    assert parse_memory_options("budget=none+keep_first=1+angle=45") == {
        "read_budget": None, "select_keep_first": True, "select_angle_deg": 45.0}
    with pytest.raises(ValueError):
        parse_memory_options("size=3")
