"""Streaming inference: equality with a non-streaming block-causal pass, determinism, no-memory
switch, frame shapes, checkpoints, the WorldModel adapter and `relic play`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from relic_model.config import load_config
from relic_model.inference.checkpoint import build_models, load_checkpoint, save_checkpoint
from relic_model.inference.sampler import denoise_block
from relic_model.inference.streaming import StreamingGenerator, to_model_image
from relic_model.nn.control import integrate_actions, latent_controls, pose12_from_c2w


def light_cfg():
    """The tiny config made lighter for tests (same resolution, fewer/narrower layers)."""
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads = 64, 2, 2
    cfg.autoencoder.channels, cfg.autoencoder.fast_channels = [16, 16, 16], [8, 8, 8]
    cfg.text.layers = 1
    return cfg.validate()


def make(cfg=None, seed=0):
    cfg = cfg or light_cfg()
    torch.manual_seed(seed)
    dit, ae, text = (m.eval() for m in build_models(cfg))
    return cfg, dit, ae, text


def first_frame(h=64, w=112, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def action_script(n, seed=0):
    rng = np.random.default_rng(seed)
    a = np.zeros((n, 13), np.float32)
    a[:, 0] = rng.random(n)
    a[:, 8] = rng.random(n) * 3.75
    return a


def test_control_layout():
    acts = action_script(8)
    c2w = np.concatenate([np.eye(4)[None], integrate_actions(acts, 0.5)])
    p12 = pose12_from_c2w(c2w, 0.5)
    a_lat, p_lat = latent_controls(acts, p12)
    assert a_lat.shape == (3, 4, 13) and p_lat.shape == (3, 4, 12)
    assert not a_lat[0].any() and np.array_equal(a_lat[2], acts[4:8])
    assert np.allclose(p_lat[0], p12[0]) and np.allclose(p_lat[1], p12[1:5]) and np.allclose(p_lat[2], p12[5:9])
    # translation in units of gamma: integrating with gamma 1 gives the same pose features
    c2w1 = np.concatenate([np.eye(4)[None], integrate_actions(acts, 1.0)])
    assert np.allclose(pose12_from_c2w(c2w1, 1.0), p12, atol=1e-5)
    assert np.allclose(p12[0], np.eye(4)[:3, :4].reshape(12))


def test_streaming_equals_non_streaming_block_causal_pass():
    cfg = light_cfg()
    cfg.memory.schedule = [1]          # uncompressed memory: streaming must equal full attention
    cfg, dit, ae, text = make(cfg)
    img, prompt = first_frame(), "a stone bridge over a river"
    actions = action_script(12)
    gen = StreamingGenerator(dit, ae, text, cfg)
    gen.reset(img, prompt, None, seed=7)
    frames = gen.step(actions, 0.1)
    lat_stream = torch.cat(gen.latents, 1)                    # (1, 4, C, h, w)

    # reference: no cache; each block denoised by a full-sequence block-causal forward over
    # [clean latents so far, noisy block], same noise order from the same seed
    with torch.no_grad():
        g = torch.Generator().manual_seed(7)
        t = text.encode_text([prompt])
        z = ae.encode(to_model_image(img, 64, 112)[None, None])
        c2w = np.concatenate([np.eye(4)[None], integrate_actions(actions, 1.0)])
        a_lat, p_lat = latent_controls(actions, pose12_from_c2w(c2w, 1.0))
        a_lat, p_lat = torch.from_numpy(a_lat)[None], torch.from_numpy(p_lat)[None]
        for j in range(1, 4):
            noise = torch.randn((1, 1, *z.shape[2:]), generator=g)

            def full_model(x, sigma, **kw):
                xs = torch.cat([z, x], 1)
                ss = torch.cat([torch.zeros(1, j), sigma], 1)
                return dit(xs, ss, t, a_lat[:, :j + 1], p_lat[:, :j + 1], attn_mode="block_causal")[:, j:]
            x0 = denoise_block(full_model, noise, cfg.sampling.sigmas, g)
            z = torch.cat([z, x0], 1)
        ref_frames = ae.decode(z)[0, 1:]
    assert torch.allclose(lat_stream, z, atol=2e-4), (lat_stream - z).abs().max()
    ref_u8 = ((ref_frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert frames.shape == (12, 64, 112, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - ref_u8.astype(int)).max() <= 1


def test_determinism_partial_chunks_and_resolution():
    cfg, dit, ae, text = make()
    gen = StreamingGenerator(dit, ae, text, cfg)
    img = first_frame(96, 160)
    acts = action_script(10, 1)
    outs = []
    for seed in (3, 3, 4):
        gen.reset(img, "an office", None, seed=seed)
        outs.append(np.concatenate([gen.step(acts[:4], 0.1), gen.step(acts[4:10], 0.1)]))
    assert outs[0].shape == (10, 96, 160, 3) and outs[0].dtype == np.uint8
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    # blocks are yielded as they finish
    gen.reset(img, "an office", None)
    sizes = [len(b) for b in gen.step_iter(acts, 0.1)]
    assert sizes == [4, 4, 2]
    with pytest.raises(ValueError):
        gen.step(np.zeros((4, 12)), 0.1)


def test_no_memory_switch_keeps_only_the_window():
    cfg = light_cfg()
    cfg.memory.window = 2
    cfg, dit, ae, text = make(cfg)
    acts = action_script(4 * 6, 2)
    held = {}
    for memory in (True, False):
        gen = StreamingGenerator(dit, ae, text, cfg, memory=memory)
        gen.reset(first_frame(), "a forest", None)
        for i in range(6):
            gen.step(acts[4 * i:4 * i + 4], 0.1)
            if not memory:
                assert gen.cache.n_tokens <= cfg.memory.window * 112
        held[memory] = gen.cache.token_counts()
    assert held[False]["held"] == cfg.memory.window * 112 and held[False]["memory_tokens"] == 0
    assert held[True]["memory_tokens"] > 0 and held[True]["frames"] == 7


def test_checkpoint_roundtrip_and_adapter(tmp_path):
    cfg, dit, ae, text = make(seed=5)
    save_checkpoint(tmp_path / "ck", cfg, dit, ae, text)
    cfg2, dit2, ae2, text2 = load_checkpoint(tmp_path / "ck")
    for a, b in ((dit, dit2), (ae, ae2), (text, text2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert cfg2 == cfg
    from benchmark.world_model import WorldModel
    from benchmark.adapters.relic import RelicWorldModel
    wm = RelicWorldModel(tmp_path / "ck", memory=False)
    assert isinstance(wm, WorldModel) and wm.name == "relic-nomem" and wm.chunk_size == 4
    wm.reset(first_frame(), "a street", np.eye(3))
    out = wm.step(action_script(4), 0.2)
    assert out.shape == (4, 64, 112, 3) and out.dtype == np.uint8
    assert RelicWorldModel(tmp_path / "ck").name == "relic"
    with pytest.raises(FileNotFoundError, match="relic train"):
        RelicWorldModel(tmp_path / "missing")


def test_play_cli(tmp_path):
    import cv2

    import relic_cli
    from relic_model.cli.play import parse_action_script
    a = parse_action_script("W*3, A+LookLeft*2,static")
    assert a.shape == (6, 13) and a[0, 0] == 1 and a[3, 2] == 1 and a[3, 8] > 0 and a[5, 12] == 1
    with pytest.raises(ValueError, match="unknown key"):
        parse_action_script("Jump*2")
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), first_frame())
    out = tmp_path / "frames"
    rc = relic_cli.main(["play", "--random-init", "tiny", "--image", str(img), "--prompt", "a hall",
                         "--actions", "W*5,LookRight*2", "--out", str(out)])
    assert rc == 0 and len(list(out.glob("*.png"))) == 8
    rc = relic_cli.main(["play", "--random-init", "tiny", "--image", str(img), "--actions", "W*4",
                         "--out", str(tmp_path / "v.mp4")])
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert rc == 0 and n == 5


def test_adapter_serves_other_resolutions_by_resizing(tmp_path):
    import cv2

    from benchmark.adapters.relic import RelicWorldModel

    cfg, dit, ae, text = make(seed=6)
    save_checkpoint(tmp_path / "ck", cfg, dit, ae, text)
    native, big = RelicWorldModel(tmp_path / "ck", seed=0), RelicWorldModel(tmp_path / "ck", seed=0)
    f0 = first_frame()
    native.reset(f0, "a street", np.eye(3))
    big.reset(cv2.resize(f0, (224, 128), interpolation=cv2.INTER_LINEAR), "a street", np.eye(3))
    a = native.step(action_script(4), 0.2)
    b = big.step(action_script(4), 0.2)
    assert b.shape == (4, 128, 224, 3) and b.dtype == np.uint8
    # the model runs at its own size: downsizing the big output gives back (nearly) the native one
    small = np.stack([cv2.resize(x, (112, 64), interpolation=cv2.INTER_AREA) for x in b]).astype(float)
    assert np.abs(small - a.astype(float)).mean() < 6.0
