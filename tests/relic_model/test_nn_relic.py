"""Networks: config, autoencoder, DiT (causality, pose -> Q/K only, actions after self-attention),
RoPE, offline text encoder."""
from __future__ import annotations

import dataclasses
import socket

import pytest
import torch

from relic_model.config import RelicConfig, config_from_dict, load_config, save_config
from relic_model.nn.attention import SelfAttention
from relic_model.nn.autoencoder import VideoAutoencoder
from relic_model.nn.dit import RelicDiT, block_ids
from relic_model.nn.rope import Rope3D, apply_rope, grid_positions
from relic_model.nn.text import TextEncoder, tokenize


def tiny(**over) -> RelicConfig:
    """The tiny config (112x64) made lighter for test speed: 2 blocks of width 64."""
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads = 64, 2, 2
    cfg.autoencoder.channels = [16, 24, 32]
    for sec, vals in over.items():
        for k, v in vals.items():
            setattr(getattr(cfg, sec), k, v)
    return cfg.validate()


def inputs(B=1, F=5, seed=0, cfg=None):
    cfg = cfg or tiny()
    g = torch.Generator().manual_seed(seed)
    C, h, w = cfg.autoencoder.latent_channels, cfg.data.height // 8, cfg.data.width // 8
    return dict(x=torch.randn(B, F, C, h, w, generator=g), sigma=torch.rand(B, F, generator=g),
                text=torch.randn(B, 6, cfg.text.dim, generator=g), actions=torch.rand(B, F, 4, 13, generator=g),
                poses=torch.randn(B, F, 4, 12, generator=g))


# ---------------------------------------------------------------------------------- config
def test_config_roundtrip_and_errors(tmp_path):
    for name in ("tiny", "small", "gpu"):
        cfg = load_config(name)
        save_config(cfg, tmp_path / f"{name}.yaml")
        assert load_config(tmp_path / f"{name}.yaml") == cfg
    with pytest.raises(ValueError, match="unknown field"):
        config_from_dict({"dit": {"dimm": 3}})
    with pytest.raises(ValueError, match="unknown config section"):
        config_from_dict({"ditt": {}})
    with pytest.raises(ValueError, match="text_dim"):
        config_from_dict({"dit": {"text_dim": 32}})
    with pytest.raises(ValueError, match="divisible"):
        config_from_dict({"data": {"height": 60}})
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")
    assert load_config("tiny").memory.schedule == [1, 4, 2, 4, 4, 4, 2, 4, 4, 2, 4, 4, 4, 2, 4, 4, 2, 4]


# ---------------------------------------------------------------------------------- autoencoder
def test_autoencoder_shapes_streaming_and_causality():
    cfg = tiny()
    torch.manual_seed(0)
    ae = VideoAutoencoder(cfg).eval()
    g = torch.Generator().manual_seed(1)
    video = torch.rand(1, 13, 3, 64, 112, generator=g) * 2 - 1
    with torch.no_grad():
        z = ae.encode(video)
        assert z.shape == (1, 1 + 12 // 4, cfg.autoencoder.latent_channels, 8, 14)
        rec = ae.decode(z)
        assert rec.shape == (1, 13, 3, 64, 112)
        parts, cache = [], None
        for j in range(z.shape[1]):
            f, cache = ae.decode_chunk(z[:, j:j + 1], cache, fast=False)
            parts.append(f)
            assert f.shape[1] == (1 if j == 0 else 4)
        assert torch.allclose(torch.cat(parts, 1), rec, atol=1e-5)
        # causal encoder: changing frames of the last group leaves earlier latents unchanged
        v2 = video.clone()
        v2[:, 9:] = 0.3
        z2 = ae.encode(v2)
        assert torch.equal(z2[:, :3], z[:, :3]) and not torch.allclose(z2[:, 3], z[:, 3])
        fast = ae.decode_chunk(z, None, fast=True)[0]
        assert fast.shape == rec.shape
        # trailing frames that do not fill a group are ignored
        assert ae.encode(video[:, :12]).shape[1] == 3


def test_latent_stats_normalisation():
    cfg = tiny()
    ae = VideoAutoencoder(cfg).eval()
    video = torch.rand(1, 5, 3, 64, 112) * 2 - 1
    with torch.no_grad():
        raw = ae.encode_raw(video)
        ae.set_latent_stats(raw.mean((0, 1, 3, 4)), raw.std((0, 1, 3, 4)))
        z = ae.encode(video)
        assert torch.allclose(z.mean((0, 1, 3, 4)), torch.zeros(8), atol=1e-4)
        assert torch.allclose(ae.decode(z), ae.decoder(raw, None, 0), atol=1e-5)


# ---------------------------------------------------------------------------------- DiT
def test_dit_shapes_and_grads():
    cfg = tiny()
    torch.manual_seed(0)
    m = RelicDiT(cfg)
    inp = inputs(B=2, F=3, cfg=cfg)
    v = m(**inp, attn_mode="bidirectional")
    assert v.shape == inp["x"].shape
    v.pow(2).mean().backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, no_grad
    with pytest.raises(ValueError, match="attn_mode"):
        m(**inp, attn_mode="causal")


@pytest.mark.parametrize("fpb", [1, 2])
def test_block_causal_future_does_not_change_past(fpb):
    cfg = tiny(dit={"frames_per_block": fpb})
    torch.manual_seed(0)
    m = RelicDiT(cfg).eval()
    inp = inputs(F=6, cfg=cfg)
    with torch.no_grad():
        v = m(**inp, attn_mode="block_causal")
        for key in ("x", "actions", "poses", "sigma"):
            other = {k: t.clone() for k, t in inp.items()}
            other[key][:, -1] = other[key][:, -1] + 0.7
            v2 = m(**other, attn_mode="block_causal")
            last_block = block_ids(torch.arange(6), fpb)[-1]
            past = int((block_ids(torch.arange(6), fpb) < last_block).sum())
            assert torch.equal(v2[:, :past], v[:, :past]), key
            assert not torch.allclose(v2[:, -1], v[:, -1]), key
        # bidirectional attention does see the future (the causal check above can fail)
        other = {k: t.clone() for k, t in inp.items()}
        other["x"][:, -1] += 0.7
        assert not torch.allclose(m(**other)[:, 0], m(**inp)[:, 0])


def test_pose_enters_q_and_k_only():
    torch.manual_seed(0)
    attn = SelfAttention(64, 4)
    x = torch.randn(2, 3, 10, 64)
    p1, p2 = torch.randn(2, 3, 64), torch.randn(2, 3, 64)
    q1, k1, v1 = attn.qkv(x, p1)
    q2, k2, v2 = attn.qkv(x, p2)
    assert torch.equal(v1, v2)
    assert not torch.allclose(q1, q2) and not torch.allclose(k1, k2)
    # in the full model: changing poses leaves every layer's V projection of identical inputs
    # unchanged (layer 0) while its Q and K change
    cfg = tiny()
    m = RelicDiT(cfg).eval()
    inp = inputs(F=2, cfg=cfg)
    seen = {}
    blk = m.blocks[0].attn
    hooks = [getattr(blk, n).register_forward_hook(lambda mod, a, out, n=n: seen.setdefault(n, []).append(out))
             for n in ("to_v", "pose_q", "pose_k")]
    with torch.no_grad():
        m(**inp)
        inp2 = dict(inp, poses=inp["poses"] + 1.0)
        m(**inp2)
    for h in hooks:
        h.remove()
    assert torch.equal(seen["to_v"][0], seen["to_v"][1])
    assert not torch.allclose(seen["pose_q"][0], seen["pose_q"][1])


def test_actions_added_after_self_attention():
    cfg = tiny()
    torch.manual_seed(0)
    m = RelicDiT(cfg).eval()
    inp = inputs(F=2, cfg=cfg)
    outs = {}
    h1 = m.blocks[0].attn.register_forward_hook(lambda mod, a, out: outs.setdefault("attn", []).append(out))
    h2 = m.blocks[0].register_forward_hook(lambda mod, a, out: outs.setdefault("block", []).append(out))
    with torch.no_grad():
        m(**inp)
        m(**dict(inp, actions=inp["actions"] + 1.0))
    h1.remove(), h2.remove()
    assert torch.equal(outs["attn"][0], outs["attn"][1])        # self-attention of block 0 ignores actions
    assert not torch.allclose(outs["block"][0], outs["block"][1])  # the block output does not


# ---------------------------------------------------------------------------------- RoPE
def test_rope_inverse_and_relative():
    rope = Rope3D(32)
    pos = grid_positions(torch.tensor([3, 7]), 4, 5)
    cos, sin = rope.cos_sin(pos)
    x = torch.randn(2, 4, 40, 32)
    assert torch.allclose(apply_rope(apply_rope(x, cos, sin), cos, sin, inverse=True), x, atol=1e-5)
    # attention logits depend on position differences only
    q, k = torch.randn(32), torch.randn(32)
    def logit(pq, pk):
        cq, sq = rope.cos_sin(torch.tensor([pq], dtype=torch.float32))
        ck, sk = rope.cos_sin(torch.tensor([pk], dtype=torch.float32))
        return (apply_rope(q[None], cq, sq) * apply_rope(k[None], ck, sk)).sum()
    a = logit([5.0, 1.0, 2.0], [2.0, 3.0, 0.5])
    b = logit([15.0, 4.0, 7.0], [12.0, 6.0, 5.5])
    assert torch.allclose(a, b, atol=1e-4)
    # frame scale interpolates frame positions
    r2 = Rope3D(32, frame_scale=0.5)
    assert torch.allclose(r2.angles(torch.tensor([[4.0, 1.0, 1.0]])), rope.angles(torch.tensor([[2.0, 1.0, 1.0]])))


# ---------------------------------------------------------------------------------- text
def test_text_encoder_offline_and_deterministic(monkeypatch):
    def no_net(*a, **k):
        raise AssertionError("text encoder tried to use the network")
    monkeypatch.setattr(socket, "create_connection", no_net)
    monkeypatch.setattr(socket.socket, "connect", no_net)
    cfg = tiny().text
    torch.manual_seed(0)
    e1 = TextEncoder(cfg).eval()
    e2 = TextEncoder(cfg).eval()
    e2.load_state_dict(e1.state_dict())
    with torch.no_grad():
        a = e1.encode_text(["a red brick house", "forest path"])
        b = e2.encode_text(["a red brick house", "forest path"])
    assert a.shape == (2, cfg.max_tokens, cfg.dim)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])
    n_tok = len(tokenize("a red brick house", cfg.buckets, cfg.max_tokens))
    assert n_tok == 5
    assert torch.count_nonzero(a[0, n_tok:]) == 0 and torch.count_nonzero(a[0, :n_tok]) > 0
    # the hashed table is a function of the seed only
    assert torch.equal(TextEncoder(cfg).table, e1.table)
    assert not torch.equal(TextEncoder(dataclasses.replace(cfg, seed=1)).table, e1.table)
    assert tokenize("Red,  red!", 100, 8) == [0] + [tokenize("red", 100, 8)[1]] * 2


def test_bundled_gpu_configs_build_and_run():
    cfg = load_config("small")
    torch.manual_seed(0)
    m = RelicDiT(cfg).eval()
    ae = VideoAutoencoder(cfg).eval()
    with torch.no_grad():
        z = ae.encode(torch.zeros(1, 5, 3, cfg.data.height, cfg.data.width))
        assert z.shape == (1, 2, 16, 16, 28)
        F = z.shape[1]
        v = m(z, torch.zeros(1, F), torch.zeros(1, 4, cfg.text.dim), torch.zeros(1, F, 4, 13),
              torch.zeros(1, F, 4, 12), attn_mode="block_causal")
        assert v.shape == z.shape
    gpu = load_config("gpu")
    assert gpu.data.height % (gpu.autoencoder.spatial_factor * gpu.dit.patch_size) == 0
