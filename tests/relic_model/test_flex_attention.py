"""Block-causal attention without dense masks: "chunked" (per-block SDPA) and "flex"
(flex_attention with a BlockMask built from block bounds) against the dense-mask reference, on
random tensors, on the bundled checkpoint, and in memory (peak torch CPU allocations grow linearly
in tokens for chunked, quadratically for the dense mask)."""
from __future__ import annotations

import pytest
import torch

from relic_model.nn.attention import attend, block_causal_block_mask, dense_block_causal_mask
from relic_model.nn.dit import block_ids
from relic_model.pipelines.memory_probe import torch_cpu_peak_bytes


def _qkv(B, H, nq, nc, hd, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, nq, hd, generator=g)
    k = torch.randn(B, H, nc + nq, hd, generator=g)
    v = torch.randn(B, H, nc + nq, hd, generator=g)
    return [t.requires_grad_(grad) for t in (q, k, v)]


@pytest.mark.parametrize("nc,ends,masked", [
    (0, [1, 41, 81, 121], False),                 # frame 0 alone then 40-token blocks (< one flex tile)
    (0, [112, 448, 784, 1120], False),            # tiles of 128 cut through blocks
    (200, [300, 600, 650], True),                 # cached prefix with a 1-D read mask
    (37, [5, 260], False),
])
def test_flex_and_chunked_equal_dense_mask(nc, ends, masked):
    q, k, v = _qkv(2, 3, ends[-1], nc, 8, grad=True)
    key_mask = None
    if masked:
        key_mask = torch.rand(nc, generator=torch.Generator().manual_seed(1)) > 0.4
    ref = attend(q, k, v, nc, ends, key_mask, "dense")
    g_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    # the reference really is block-causal: a future block's keys do not change earlier outputs
    k2 = k.detach().clone()
    k2[:, :, nc + ends[0]:] += 5.0
    torch.testing.assert_close(attend(q, k2, v, nc, ends, key_mask, "dense")[:, :, :ends[0]], ref[:, :, :ends[0]])
    out = attend(q, k, v, nc, ends, key_mask, "chunked")
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(out.square().sum(), (q, k, v)), g_ref):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)
    # flex: forward only here (torch has no flex_attention backward on CPU; its gradients are GPU-only)
    out = attend(q.detach(), k.detach(), v.detach(), nc, ends, key_mask, "flex")
    torch.testing.assert_close(out, ref.detach(), atol=2e-5, rtol=1e-5)
    with pytest.raises(NotImplementedError, match="CUDA"):
        attend(q, k, v, nc, ends, key_mask, "flex")


def test_flex_block_mask_matches_dense_mask():
    nc, ends = 70, [1, 57, 113, 400]
    km = torch.arange(nc) % 3 != 0
    bm = block_causal_block_mask(nc, ends, key_mask=km)
    dense = dense_block_causal_mask(nc, ends, key_mask=km)
    from torch.nn.attention.flex_attention import create_mask
    got = create_mask(bm.mask_mod, 1, 1, ends[-1], nc + ends[-1], device="cpu")[0, 0]
    # inside the tiles the BlockMask lists, mask_mod must reproduce the reference mask exactly
    assert torch.equal(got, dense)
    # and no visible key may lie in a tile the BlockMask skips
    tiles = bm.to_dense()[0, 0]                              # (q tiles, kv tiles) visited
    qt = torch.arange(ends[-1]) // 128
    for i in range(tiles.shape[0]):
        rows = dense[qt == i]
        need = rows.any(0).nonzero().flatten() // 128
        assert bool(tiles[i, need.unique()].all())


def test_flex_bundled_checkpoint_block_causal_outputs_unchanged():
    """The bundled checkpoint gives the same block-causal outputs with every implementation (no
    cache: the teacher-forced pass; with a cache: hybrid forcing's noisy suffix), and its config
    defaults to the chunked path."""
    from relic_model.inference.checkpoint import BUNDLED, load_checkpoint
    cfg, dit, _, _ = load_checkpoint(BUNDLED, "cpu")
    assert cfg.dit.attention == "chunked" and dit.attn_impl == "chunked"
    g = torch.Generator().manual_seed(0)
    sf = cfg.autoencoder.spatial_factor
    C, h, w = cfg.autoencoder.latent_channels, cfg.data.height // sf, cfg.data.width // sf
    F = 7
    x = torch.randn(1, F, C, h, w, generator=g)
    sig = torch.rand(1, F, generator=g)
    sig[:, 0] = 0
    text = torch.randn(1, cfg.text.max_tokens, cfg.text.dim, generator=g)
    a, p = torch.rand(1, F, 4, 13, generator=g), torch.randn(1, F, 4, 12, generator=g) * 0.1
    assert len(set(block_ids(torch.arange(F), cfg.dit.frames_per_block).tolist())) == F
    outs = {}
    with torch.no_grad():
        for impl in ("dense", "chunked", "flex"):
            dit.attn_impl = impl
            full = dit(x, sig, text, a, p, "block_causal")
            cache = dit.new_cache()
            dit(x[:, :3], sig[:, :3] * 0, text, a[:, :3], p[:, :3], "block_causal", cache, 0, True)
            suffix = dit(x[:, 3:], sig[:, 3:], text, a[:, 3:], p[:, 3:], "block_causal", cache, 3, False)
            outs[impl] = (full, suffix)
    for impl in ("chunked", "flex"):
        for o, r in zip(outs[impl], outs["dense"]):
            torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5, msg=impl)
    # block-causality of the chunked model path: changing the last frame leaves earlier frames alone
    x2 = x.clone()
    x2[:, -1] += 1.0
    dit.attn_impl = "chunked"
    with torch.no_grad():
        o2 = dit(x2, sig, text, a, p, "block_causal")
    torch.testing.assert_close(o2[:, :-1], outs["chunked"][0][:, :-1], atol=0, rtol=0)
    assert (o2[:, -1] - outs["chunked"][0][:, -1]).abs().max() > 1e-3


def test_flex_chunked_attention_peak_memory_linear_in_tokens():
    """Peak torch CPU allocations (profiler) of block-causal attention, forward + backward, with
    64-token blocks: chunked doubles when tokens double (no N x N tensor anywhere, peak below the
    size of the boolean mask it avoids at 4096 tokens), the dense-mask reference ~quadruples."""
    peaks = {"chunked": [], "dense": []}
    Ns = (1024, 2048, 4096)
    for N in Ns:
        ends = list(range(64, N + 1, 64))
        for impl in peaks:
            q, k, v = _qkv(1, 2, N, 0, 16, grad=True)

            def step():
                attend(q, k, v, 0, ends, None, impl).sum().backward()
            peaks[impl].append(torch_cpu_peak_bytes(step)[0])
    c, d = peaks["chunked"], peaks["dense"]
    for i in range(1, len(Ns)):
        assert 1.6 < c[i] / c[i - 1] < 2.5, c
        assert d[i] / d[i - 1] > 3.2, d
    assert c[-1] < Ns[-1] ** 2, c           # below one byte per (query, key) pair
    assert d[-1] > 10 * c[-1]
