"""A committed snapshot of an unfinished stage resumes into a fresh run folder and reaches the
uninterrupted run's weights (micro config, replicate-padded autoencoder)."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from relic_model.data.synthetic import write_synthetic_corpus
from relic_model.train.common import RunContext
from relic_model.train.presets import micro_config
from relic_model.train.run import run_stage_named
from relic_model.train.snapshot import restore_snapshot, save_snapshot


def test_snapshot_restore_resume_equals_uninterrupted(tmp_path):
    corpus = write_synthetic_corpus(tmp_path / "corpus", episodes=2, frames=30, height=32, width=48)

    def ctx(name):
        cfg = micro_config(autoencoder={"steps": 4, "ckpt_every": 2, "fast_weight": 0.0})
        cfg.autoencoder.first_frame = "replicate"
        return RunContext(cfg, corpus, tmp_path / name, progress=False)

    run_stage_named(ctx("full"), "autoencoder")
    run_stage_named(ctx("part"), "autoencoder", stop_after=3)
    snap = save_snapshot(tmp_path / "part", "autoencoder", tmp_path / "snap")
    assert json.loads((snap / "snapshot.json").read_text())["step"] == 3
    assert {p.name for p in snap.iterdir()} >= {"model.safetensors", "optimizer.pt", "state.json", "losses.csv"}
    save_snapshot(tmp_path / "part", "autoencoder", tmp_path / "snap")      # replaced, not added
    assert not (tmp_path / "snap.old").exists() and not (tmp_path / "snap.tmp").exists()
    shutil.rmtree(tmp_path / "part")                                          # a fresh work tree

    assert restore_snapshot(snap, tmp_path / "part", "autoencoder") is not None
    assert restore_snapshot(snap, tmp_path / "part", "autoencoder") is None   # never overwrites
    run_stage_named(ctx("part"), "autoencoder", resume=True)
    a = load_file(str(tmp_path / "full/autoencoder/final/model.safetensors"))
    b = load_file(str(tmp_path / "part/autoencoder/final/model.safetensors"))
    assert a.keys() == b.keys() and not any(k.startswith("autoencoder.first_head") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_finished_stage_snapshot_restores_final_weights_only(tmp_path):
    corpus = write_synthetic_corpus(tmp_path / "corpus", episodes=2, frames=30, height=32, width=48)
    cfg = micro_config(autoencoder={"steps": 2, "ckpt_every": 1, "fast_weight": 0.0})
    run_stage_named(RunContext(cfg, corpus, tmp_path / "done", progress=False), "autoencoder")
    snap = save_snapshot(tmp_path / "done", "autoencoder", tmp_path / "snap")
    meta = json.loads((snap / "snapshot.json").read_text())
    assert meta["final"] is True and meta["step"] == 2
    assert not (snap / "optimizer.pt").exists() and (snap / "model.safetensors").is_file()

    fresh = RunContext(cfg, corpus, tmp_path / "fresh", progress=False)
    with pytest.raises(FileNotFoundError):
        fresh.final_dir("autoencoder")
    assert restore_snapshot(snap, tmp_path / "fresh", "autoencoder") == tmp_path / "fresh/autoencoder/final"
    assert restore_snapshot(snap, tmp_path / "fresh", "autoencoder") is None   # final weights are kept
    got = fresh.final_dir("autoencoder") / "model.safetensors"
    assert got.read_bytes() == (tmp_path / "done/autoencoder/final/model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="not 'teacher'"):
        restore_snapshot(snap, tmp_path / "fresh", "teacher")
