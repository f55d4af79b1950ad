"""Memory read horizon (beyond the paper): compressed-memory keys are read at linearly interpolated
frame distances bounded by the horizon; exact against keys re-rotated at the remapped positions,
no-op when the memory is younger than the horizon, bit-identical to the paper when unset."""
from __future__ import annotations

import pytest
import torch

from benchmark.adapters.relic import parse_memory_options
from relic_model.config import load_config
from relic_model.nn.memory import KVCache, frame_tokens
from relic_model.nn.rope import Rope3D, apply_rope

from tests.relic_model.test_memory_select import nets, stream  # noqa: F401  (shared fixture)

GRID, WINDOW, HD = (4, 6), 2, 12
SCHED = [1, 4, 2, 4, 4, 4, 2, 4, 4, 2]


def raw_cache(num_frames: int, seed: int = 0):
    """A cache filled through the real commit path with keys rotated at their true positions; also
    returns the per-frame raw (unrotated) keys so a reference can be rebuilt at any position."""
    rope = Rope3D(HD)
    cache = KVCache(1, GRID, WINDOW, SCHED, True, rope)
    g = torch.Generator().manual_seed(seed)
    n = GRID[0] * GRID[1]
    raw = []
    with torch.no_grad():
        for f in range(num_frames):
            k = torch.randn(1, 2, n, HD, generator=g)
            raw.append(k)
            pos = torch.stack(torch.meshgrid(torch.tensor([float(f)]), torch.arange(GRID[0]).float(),
                                             torch.arange(GRID[1]).float(), indexing="ij"), -1).reshape(-1, 3)
            cos, sin = rope.cos_sin(pos)
            plan = cache.plan([f])
            cache.commit(0, apply_rope(k, cos, sin), torch.randn(1, 2, n, HD, generator=g), plan)
            cache.finish(plan)
    return cache, rope, raw


def test_read_distances_interpolate_only_beyond_the_horizon():
    cache, _, _ = raw_cache(30)                              # memory frames 0..27, window 28, 29
    true = cache.memory_read_distances(None)
    assert true == {f: float(30 - f) for f in range(28)}
    d = cache.memory_read_distances(10)
    assert d[0] == pytest.approx(10.0)                        # oldest lands exactly on the horizon
    assert d[27] == pytest.approx(2 + 1 * (10 - 2) / (30 - 2))  # newest stays just past the window
    vals = [d[f] for f in range(28)]
    assert all(a > b for a, b in zip(vals, vals[1:]))         # order preserved
    assert all(WINDOW < v <= 10 + 1e-9 for v in vals)
    assert cache.memory_read_distances(40) == true            # memory younger than the horizon
    with pytest.raises(ValueError):
        cache.memory_read_distances(WINDOW)


def test_keys_equal_keys_rotated_at_the_remapped_positions():
    cache, rope, raw = raw_cache(30)
    n_cur = GRID[0] * GRID[1]
    k_cur, v_cur = torch.randn(1, 2, n_cur, HD), torch.randn(1, 2, n_cur, HD)
    with torch.no_grad():
        plain, _ = cache.keys_values(0, k_cur, v_cur)
        plain = plain.clone()
        cache.set_read_horizon(10)
        k, v = cache.keys_values(0, k_cur, v_cur)
    c = cache.n_comp
    assert torch.equal(k[:, :, c:], plain[:, :, c:])          # window and current block untouched
    assert torch.equal(cache.k[0][:, :, :c], plain[:, :, :c])  # stored buffer untouched
    dist = cache.memory_read_distances(10)
    start = 0
    for f, s in cache.memory_frames:
        m = frame_tokens(*GRID, s)
        # reference: pool the raw keys, rotate at (30 - d', mean row, mean col)
        pos = cache.pooled_positions(f, s)
        pos[:, 0] = 30 - dist[f]
        cos, sin = rope.cos_sin(pos)
        ref = apply_rope(cache._pool(raw[f], s), cos, sin)
        assert torch.allclose(k[:, :, start:start + m], ref, atol=1e-5), f
        start += m
    assert start == c
    # cleared by the next commit
    plan = cache.plan([30])
    with torch.no_grad():
        cache.commit(0, k_cur, v_cur, plan)
    cache.finish(plan)
    assert cache._mem_rot is None


def test_unset_or_long_horizon_is_bit_identical_to_the_paper(nets):  # noqa: F811
    ref, _, _ = stream(nets)
    far, _, _ = stream(nets, read_horizon=1000)
    assert torch.equal(far, ref)
    near, _, _ = stream(nets, read_horizon=4)
    assert not torch.equal(near, ref)
    again, _, _ = stream(nets, read_horizon=4)
    assert torch.equal(near, again)


def test_config_and_spec():
    cfg = load_config("tiny")
    assert cfg.memory.read_horizon is None
    cfg.memory.read_horizon = cfg.memory.window
    with pytest.raises(ValueError, match="read_horizon"):
        cfg.validate()
    assert parse_memory_options("horizon=15+budget=8") == {"read_horizon": 15, "read_budget": 8}
    assert parse_memory_options("horizon=none") == {"read_horizon": None}


def test_cap_mode_reads_older_memory_at_the_horizon():
    cache, rope, raw = raw_cache(30)
    true = cache.memory_read_distances(None)
    d = cache.memory_read_distances(10, "cap")
    assert all(d[f] == (min(true[f], 10.0)) for f in true)   # capped relative time
    assert d[25] == true[25] == 5.0 and d[0] == 10.0
    assert cache.memory_read_distances(40, "cap") == true
    with pytest.raises(ValueError, match="mode"):
        cache.memory_read_distances(10, "yarn")
    n_cur = GRID[0] * GRID[1]
    with torch.no_grad():
        cache.set_read_horizon(10, "cap")
        k, _ = cache.keys_values(0, torch.randn(1, 2, n_cur, HD), torch.randn(1, 2, n_cur, HD))
    f, s = cache.memory_frames[0]                              # frame 0: read at distance 10
    pos = cache.pooled_positions(f, s)
    pos[:, 0] = 30 - 10
    cos, sin = rope.cos_sin(pos)
    m = frame_tokens(*GRID, s)
    assert torch.allclose(k[:, :, :m], apply_rope(cache._pool(raw[f], s), cos, sin), atol=1e-5)
