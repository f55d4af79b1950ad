"""Decoder-only fine-tune: latents (encoder) untouched, decoders trained, a loadable checkpoint with
provenance, and clear errors for settings that cannot fix the group-context gap."""
import json

import pytest
import torch
from safetensors.torch import load_file

import relic_cli
from relic_model.data.synthetic import write_synthetic_corpus
from relic_model.inference.checkpoint import build_models, load_checkpoint, save_checkpoint
from relic_model.train.finetune_decoder import DecoderFinetuneSettings, finetune_decoder, temporal_l1
from relic_model.train.presets import micro_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ftd")
    corpus = write_synthetic_corpus(root / "corpus", episodes=2, frames=30, height=32, width=48)
    cfg = micro_config()
    torch.manual_seed(0)
    dit, ae, text = build_models(cfg)
    src = save_checkpoint(root / "src", cfg, dit, ae, text)
    (src / "provenance.json").write_text(json.dumps({"stages": {"autoencoder": {"steps": 1}}}))
    return corpus, src, root


def test_only_the_decoders_change_and_provenance_records_it(setup):
    corpus, src, root = setup
    out = root / "dst"
    assert relic_cli.main(["train", "finetune-decoder", "--checkpoint", str(src), "--corpus", str(corpus),
                           "--out", str(out), "--steps", "3", "--clip-latents", "3", "--no-progress"]) == 0
    a, b = load_file(str(src / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    dec = [k for k in a if k.startswith(("autoencoder.decoder.", "autoencoder.fast_decoder."))]
    rest = [k for k in a if k not in dec]
    assert dec and all(torch.equal(a[k], b[k]) for k in rest)          # encoder, stats, DiT, text
    assert any(not torch.equal(a[k], b[k]) for k in dec if k.startswith("autoencoder.decoder."))
    assert any(not torch.equal(a[k], b[k]) for k in dec if k.startswith("autoencoder.fast_decoder."))
    prov = json.loads((out / "provenance.json").read_text())
    assert set(prov["stages"]) == {"autoencoder", "decoder_finetune"}
    e = prov["stages"]["decoder_finetune"]
    assert e["steps"] == 3 and e["settings"]["clip_latents"] == 3 and e["wall_time_s"] > 0
    assert {"l1", "mse", "temporal_l1", "loss"} <= set(e["final_losses"])
    load_checkpoint(out)


def test_deterministic_from_the_seed(setup):
    corpus, src, root = setup
    s = DecoderFinetuneSettings(steps=2, clip_latents=3)
    finetune_decoder(src, corpus, root / "r1", s, progress=False)
    finetune_decoder(src, corpus, root / "r2", s, progress=False)
    a, b = load_file(str(root / "r1/model.safetensors")), load_file(str(root / "r2/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_settings_are_refused(setup):
    corpus, src, root = setup
    with pytest.raises(ValueError, match="clip_latents must be >= 3"):
        finetune_decoder(src, corpus, root / "x", DecoderFinetuneSettings(steps=1, clip_latents=2), progress=False)
    with pytest.raises(ValueError, match="must differ"):
        finetune_decoder(src, corpus, src, DecoderFinetuneSettings(steps=1), progress=False)
    with pytest.raises(ValueError, match="no train episode has"):
        finetune_decoder(src, corpus, root / "y", DecoderFinetuneSettings(steps=1, clip_latents=40), progress=False)


def test_temporal_l1_sees_flicker_that_per_frame_losses_miss():
    v = torch.zeros(1, 8, 3, 4, 4)
    flicker = v.clone()
    flicker[:, 0::2] += 0.1            # every other frame brighter
    steady = v + 0.1                   # larger per-frame L1 than flicker, but no flicker
    assert temporal_l1(v, v) == 0 and temporal_l1(steady, v) == 0
    assert temporal_l1(flicker, v) > 0.09


def test_grown_decoder_starts_identical_and_keeps_the_latents(setup):
    from relic_model.nn.autoencoder import grow_decoder
    _, src, _ = setup
    cfg, _, ae, _ = load_checkpoint(src)
    g = torch.Generator().manual_seed(3)
    video = torch.rand(1, 9, 3, cfg.data.height, cfg.data.width, generator=g) * 2 - 1
    grown, gcfg = grow_decoder(ae, 3)
    assert gcfg.autoencoder.decoder_res_blocks == 3 and cfg.autoencoder.decoder_res_blocks == 1
    assert len(grown.decoder.up.extra) == len(cfg.autoencoder.channels)
    assert all(len(b) == 2 for b in grown.decoder.up.extra)
    with torch.no_grad():
        z, zg = ae.encode(video), grown.encode(video)
        assert torch.equal(z, zg)
        assert torch.allclose(ae.decode(z), grown.decode(z), atol=1e-6)
        # a non-zero added block changes the output: the blocks are on the decoding path
        torch.nn.init.normal_(grown.decoder.up.extra[-1][0].c2.weight, std=0.1)
        assert not torch.allclose(ae.decode(z), grown.decode(z), atol=1e-3)
    with pytest.raises(ValueError, match="drop trained weights"):
        grow_decoder(grown, 2)
    regrown, _ = grow_decoder(grown, 4)          # a grown decoder grows again, its trained blocks kept
    assert torch.equal(regrown.decoder.up.extra[-1][0].c2.weight, grown.decoder.up.extra[-1][0].c2.weight)


def test_finetune_grows_the_decoder_and_the_checkpoint_records_it(setup):
    corpus, src, root = setup
    out = root / "grown"
    assert relic_cli.main(["train", "finetune-decoder", "--checkpoint", str(src), "--corpus", str(corpus),
                           "--out", str(out), "--steps", "3", "--clip-latents", "3", "--no-progress",
                           "--decoder-res-blocks", "2", "--fast-weight", "0", "--lr-min", "1e-5"]) == 0
    cfg, _, ae, _ = load_checkpoint(out)
    assert cfg.autoencoder.decoder_res_blocks == 2 and len(ae.decoder.up.extra) > 0
    a, b = load_file(str(src / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(b) - set(a) and all(k.startswith("autoencoder.decoder.up.extra.") for k in set(b) - set(a))
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("autoencoder.decoder."))  # fast one too
    e = json.loads((out / "provenance.json").read_text())["stages"]["decoder_finetune"]
    assert e["settings"]["decoder_res_blocks"] == 2 and e["settings"]["fast_weight"] == 0
    assert not (root / "grown.state").exists()


def test_interrupted_finetune_resumes_to_the_same_weights(setup, monkeypatch):
    import relic_model.train.finetune_decoder as ftd
    corpus, src, root = setup
    s = DecoderFinetuneSettings(steps=4, clip_latents=3, state_every=2, lr_min=1e-5, decoder_res_blocks=2)
    finetune_decoder(src, corpus, root / "whole", s, progress=False)
    calls = {"n": 0}
    real = ftd._save_state

    def save_then_stop(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(ftd, "_save_state", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        finetune_decoder(src, corpus, root / "cut", s, progress=False)
    monkeypatch.setattr(ftd, "_save_state", real)
    assert calls["n"] == 1 and (root / "cut.state" / "state.pt").is_file()
    with pytest.raises(ValueError, match="other settings"):
        finetune_decoder(src, corpus, root / "cut", DecoderFinetuneSettings(steps=5, clip_latents=3, state_every=2,
                                                                            lr_min=1e-5, decoder_res_blocks=2),
                         progress=False, resume=True)
    loaded = []
    real_load = ftd._load_state
    monkeypatch.setattr(ftd, "_load_state", lambda *a: loaded.append(real_load(*a)) or loaded[-1])
    finetune_decoder(src, corpus, root / "cut", s, progress=False, resume=True)
    assert loaded[0]["step"] == 2 and len(loaded[0]["hist"]) == 2     # it continued, not restarted
    a, b = load_file(str(root / "whole/model.safetensors")), load_file(str(root / "cut/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (root / "cut.state").exists()
