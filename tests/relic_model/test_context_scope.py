"""Context noise on the window only (``sampling.context_scope = "window"``): a memory-only commit
keeps a clean pass's K/V aside and those, not the window's noised K/V, are pooled into the
compressed memory when the frame leaves the window; streaming, self-forcing rollouts (replayed
exactly) and the config follow it."""
import numpy as np
import pytest
import torch
from relic_model.config import config_from_dict
from relic_model.inference.streaming import StreamingGenerator
from relic_model.nn.memory import KVCache
from relic_model.pipelines.dit_generator import DiTBlockGenerator
from relic_model.pipelines.self_forcing import rollout

from tests.relic_model.test_context_noise import _rollout_setup, _stream, _tiny

TPF = 4   # tokens per frame on a (2, 2) grid


def _kv(value: float, frames: int = 1) -> torch.Tensor:
    return torch.full((1, 1, frames * TPF, 2), float(value))


def _commit(cache: KVCache, frame: int, value: float, memory_only: bool = False) -> None:
    plan = cache.plan([frame], memory_only=memory_only)
    cache.commit(0, _kv(value), _kv(-value), plan)
    cache.finish(plan)


@pytest.mark.parametrize("grad", [False, True])
def test_memory_takes_the_kv_kept_aside_and_the_window_keeps_its_own(grad):
    with torch.set_grad_enabled(grad):
        cache = KVCache(1, (2, 2), window=2, schedule=[1, 2])
        _commit(cache, 0, 0.0)
        _commit(cache, 1, 100.0, memory_only=True)     # frame 1's clean pass
        # a memory-only commit changes nothing the next read sees
        assert cache.num_frames == 1 and cache.window_frames == [0] and cache.n_tokens == TPF
        _commit(cache, 1, 1.0)
        _commit(cache, 2, 2.0)
        assert cache.window_frames == [1, 2] and [f for f, _ in cache.memory_frames] == [0]
        # while frame 1 is in the window the window holds the normal commit's K/V
        k, v = cache.k[0][:, :, :cache.n_tokens], cache.v[0][:, :, :cache.n_tokens]
        assert torch.equal(k[:, :, TPF:2 * TPF], _kv(1.0)) and torch.equal(v[:, :, TPF:2 * TPF], _kv(-1.0))
        _commit(cache, 3, 3.0)
        # frame 1 left the window: pooled (s = 2 -> one token) from the aside K/V, not from 1.0
        assert [f for f, _ in cache.memory_frames] == [0, 1] and cache.n_comp == TPF + 1
        k, v = cache.k[0][:, :, :cache.n_tokens], cache.v[0][:, :, :cache.n_tokens]
        assert torch.equal(k[:, :, :TPF], _kv(0.0)) and torch.equal(v[:, :, :TPF], _kv(0.0))   # frame 0: no aside
        torch.testing.assert_close(k[:, :, TPF], torch.full((1, 1, 2), 100.0))
        torch.testing.assert_close(v[:, :, TPF], torch.full((1, 1, 2), -100.0))
        assert 1 not in cache.aside and cache.aside == {}


def test_aside_kv_are_dropped_when_memory_is_off_and_cloned_with_the_cache():
    off = KVCache(1, (2, 2), window=1, enabled=False)
    _commit(off, 0, 0.0)
    _commit(off, 1, 5.0, memory_only=True)
    _commit(off, 1, 1.0)
    assert 1 in off.aside
    c = off.clone()
    assert set(c.aside) == {1} and c.aside[1] is not off.aside[1]
    _commit(off, 2, 2.0)
    assert off.aside == {} and off.n_tokens == TPF and set(c.aside) == {1}


def test_memory_only_commit_must_continue_the_cache_and_be_a_commit():
    cache = KVCache(1, (2, 2), window=2)
    with pytest.raises(ValueError, match="frames 0"):
        cache.plan([1], memory_only=True)
    cfg, dit, ae, text = _tiny()
    x = torch.zeros(1, 1, 4, 4, 6)
    with pytest.raises(ValueError, match="memory_only"):
        dit(x, torch.zeros(1, 1), torch.zeros(1, 6, 16), torch.zeros(1, 1, 4, 13), torch.zeros(1, 1, 4, 12),
            "block_causal", dit.new_cache(), 0, False, memory_only=True)


def test_config_refuses_an_unknown_scope():
    assert config_from_dict({"sampling": {"context_scope": "window"}}).sampling.context_scope == "window"
    with pytest.raises(ValueError, match="context_scope"):
        config_from_dict({"sampling": {"context_scope": "memory"}})
    with pytest.raises(ValueError, match="context_scope"):
        DiTBlockGenerator(None, context_scope="recent")


def _stream_scope(scope, c, blocks, memory=True):
    cfg, dit, ae, text = _tiny()           # window 2, schedule [1, 2, 4]
    cfg.sampling.context_scope = scope
    if memory:
        return _stream(cfg, dit, ae, text, c, blocks=blocks)
    cfg.sampling.context_sigma = c         # the no-memory ablation: the window alone
    rng = np.random.default_rng(0)
    actions = (rng.random((4 * blocks, 13)) < 0.2).astype(np.float32)
    sg = StreamingGenerator(dit, ae, text, cfg, memory=False)
    sg.reset(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), "a red room", seed=5)
    for b in range(blocks):
        sg.generate_block(actions[4 * b: 4 * b + 4])
    return torch.cat(sg.latents, 1), sg


def test_streaming_window_scope_pools_memory_from_the_clean_pass():
    clean, sg_clean = _stream_scope("all", 0.0, blocks=3)
    noised, sg_all = _stream_scope("all", 0.2, blocks=3)
    win, sg_win = _stream_scope("window", 0.2, blocks=3)
    # blocks 1-3 read nothing the two scopes hold differently (frame 1 enters memory at block 3's commit)
    torch.testing.assert_close(win, noised, rtol=0, atol=0)
    for sg in (sg_clean, sg_all, sg_win):
        assert [f for f, _ in sg.cache.memory_frames] == [0, 1] and sg.cache.window_frames == [2, 3]
    tpf = sg_win.cache.tokens_per_frame
    m1 = slice(tpf, sg_win.cache.n_comp)        # frame 1's pooled tokens (frame 0 is stored with s = 1)
    w = slice(sg_win.cache.n_comp, sg_win.cache.n_tokens)
    for layer in range(len(sg_win.model.blocks)):
        k_c, k_a, k_w = (sg.cache.k[layer] for sg in (sg_clean, sg_all, sg_win))
        # frame 1 was generated from frame 0 alone: its clean pass is what a clean stream committed
        torch.testing.assert_close(k_w[:, :, m1], k_c[:, :, m1], rtol=1e-5, atol=1e-5)
        assert float((k_a[:, :, m1] - k_c[:, :, m1]).abs().max()) > 1e-4    # "all" pooled the noised pass
        # the window is the noised commit either way
        torch.testing.assert_close(k_w[:, :, w], k_a[:, :, w], rtol=0, atol=0)
    assert sg_win.cache.aside.keys() == {2, 3}
    # later blocks read that memory: the scopes now differ; reproducible from the seed
    a, _ = _stream_scope("window", 0.2, blocks=5)
    b, _ = _stream_scope("window", 0.2, blocks=5)
    n, _ = _stream_scope("all", 0.2, blocks=5)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a[:, 4:] - n[:, 4:]).abs().max()) > 1e-5


def test_window_scope_without_noise_or_memory_is_the_plain_commit():
    a, _ = _stream_scope("all", 0.0, blocks=4)
    b, sg = _stream_scope("window", 0.0, blocks=4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sg.cache.aside == {}
    a, _ = _stream_scope("all", 0.2, blocks=4, memory=False)
    b, sg = _stream_scope("window", 0.2, blocks=4, memory=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sg.cache.aside == {} and sg.cache.memory_frames == []


def test_rollout_with_window_scope_is_replayed_exactly():
    from relic_model.pipelines.replay_backprop import replay_backward
    nb = 5
    dit, cond, first = _rollout_setup(nb)
    for p in dit.parameters():
        p.requires_grad_(True)
    levels = [1.0, 0.75, 0.5, 0.25]
    all_ = rollout(DiTBlockGenerator(dit, context_sigma=0.2, context_seed=11), first, cond, nb, 1, levels,
                   torch.Generator().manual_seed(3))
    ro = rollout(DiTBlockGenerator(dit, context_sigma=0.2, context_seed=11, context_scope="window"), first, cond, nb,
                 1, levels, torch.Generator().manual_seed(3))
    torch.testing.assert_close(ro.video[:, :4], all_.video[:, :4], rtol=0, atol=0)
    assert float((ro.video[:, 4:] - all_.video[:, 4:]).abs().max()) > 1e-5
    outs = []

    class Recording(DiTBlockGenerator):
        def denoise(self, x_t, sigma, c, cache, frame_offset):
            y = super().denoise(x_t, sigma, c, cache, frame_offset)
            outs.append((frame_offset, y.detach()))
            return y
    dit.zero_grad()
    replay_backward(Recording(dit, context_sigma=0.2, context_seed=11, context_scope="window"), ro, cond,
                    torch.randn_like(ro.video))
    for (fo, y), r in zip(outs, ro.records):
        assert fo == r.frame_offset
        torch.testing.assert_close(y, r.x0, rtol=1e-5, atol=1e-6)
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in dit.parameters())
    # replayed with the other scope, the memory it rebuilds is not the rollout's
    outs.clear()
    replay_backward(Recording(dit, context_sigma=0.2, context_seed=11), ro, cond, torch.randn_like(ro.video))
    assert max(float((y - r.x0).abs().max()) for (_, y), r in zip(outs, ro.records)) > 1e-5
