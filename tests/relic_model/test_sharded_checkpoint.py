"""Sharded (torch.distributed.checkpoint) save/resume of an FSDP2 run through ``run_stage`` on 2 CPU
processes (gloo, spawned): a run stopped after 2 of 4 steps and resumed into freshly built (and
differently initialised) modules takes the same steps as an uninterrupted run -- losses of steps 3
and 4 and the final parameters equal -- and its checkpoint holds shards, not gathered weights."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _stage(info, init_seed: int):
    from relic_model.config import load_config
    from relic_model.nn.dit import RelicDiT
    from relic_model.distributed import all_reduce_mean, clip_grad_norm, rank_slice, wrap_model
    from relic_model.train.loop import Stage

    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads = 32, 2, 2
    cfg.data.height, cfg.data.width = 32, 48
    cfg.validate()

    class ToyTeacher(Stage):
        """A teacher-like stage: an FSDP2-wrapped DiT and a replicated text projection (gradients
        all-reduced by hand, as stage_teacher does for the text encoder), one AdamW over both."""
        name = "teacher"

        def __init__(self):
            torch.manual_seed(init_seed)
            self.dit = RelicDiT(cfg)
            for p in self.dit.parameters():
                if p.dim() == 2 and p.shape[0] == 6:
                    torch.nn.init.normal_(p, std=0.05)
            self.text = torch.nn.Linear(8, cfg.text.dim)
            wrap_model(self.dit, info, "fsdp")
            self.params = list(self.dit.parameters()) + list(self.text.parameters())
            self.opt = torch.optim.AdamW(self.params, lr=3e-3)
            self.losses = {}

        def modules(self):
            return {"teacher": self.dit, "text": self.text}

        def optimizers(self):
            return {"teacher": self.opt}

        def train_step(self, step):
            g = torch.Generator().manual_seed(1000 + step)
            B, F, C = 4, 3, cfg.autoencoder.latent_channels
            x = torch.randn(B, F, C, 4, 6, generator=g)
            sig = torch.rand(B, F, generator=g)
            words = torch.randn(B, 5, 8, generator=g)
            a, p = torch.rand(B, F, 4, 13, generator=g), torch.randn(B, F, 4, 12, generator=g) * 0.1
            r = rank_slice(B, info)
            v = self.dit(x[r], sig[r], self.text(words[r]), a[r], p[r], "bidirectional")
            loss = (v - x[r]).square().mean()
            loss.backward()
            for q in self.text.parameters():
                dist.all_reduce(q.grad)
                q.grad /= info.world_size
            clip_grad_norm(self.params, 0.05)          # mixed DTensor + plain parameters
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            out = all_reduce_mean(loss.item(), info)
            self.losses[step + 1] = out
            return {"loss": out}

    return ToyTeacher(), cfg


def _worker(rank, store, tmp, res_path):
    from relic_model.distributed import DistInfo, full_state_dict
    from relic_model.train.loop import run_stage
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    info = DistInfo(rank, 2, 0, torch.device("cpu"), "gloo")
    kw = dict(info=info, progress=False, log_every=1, ckpt_every=2)
    full, cfg = _stage(info, 0)
    run_stage(full, f"{tmp}/full", cfg, 4, **kw)
    ref = full_state_dict(full.dit)
    first, _ = _stage(info, 0)
    run_stage(first, f"{tmp}/cut", cfg, 4, stop_after=2, **kw)
    ck = sorted(os.listdir(f"{tmp}/cut/checkpoints"))
    resumed, _ = _stage(info, 123)                 # different init: everything must come from the checkpoint
    run_stage(resumed, f"{tmp}/cut", cfg, 4, resume=True, **kw)
    got = full_state_dict(resumed.dit)
    # the mixed DTensor + plain clip: global norm of every gradient, every gradient scaled by it
    resumed.dit.zero_grad(set_to_none=True)
    x = torch.randn(2, 3, cfg.autoencoder.latent_channels, 4, 6, generator=torch.Generator().manual_seed(5))
    v = resumed.dit(x, torch.rand(2, 3), resumed.text(torch.randn(2, 5, 8)), torch.rand(2, 3, 4, 13),
                    torch.zeros(2, 3, 4, 12), "bidirectional")
    v.square().mean().backward()
    before = [q.grad.full_tensor() if hasattr(q.grad, "full_tensor") else q.grad.clone() for q in resumed.params]
    want = torch.sqrt(sum(b.double().square().sum() for b in before))
    from relic_model.distributed import clip_grad_norm
    total = clip_grad_norm(resumed.params, float(want) / 4)
    after = [q.grad.full_tensor() if hasattr(q.grad, "full_tensor") else q.grad for q in resumed.params]
    clip = {"total": float(total), "want": float(want),
            "ratio": max(float((a - b / 4).abs().max()) for a, b in zip(after, before)),
            "mixed": (sum(hasattr(q.grad, "full_tensor") for q in resumed.params), len(resumed.params))}
    if rank == 0:
        files = sorted(os.listdir(f"{tmp}/cut/checkpoints/step_00000002")) if "step_00000002" in ck else []
        dcp_files = sorted(os.listdir(f"{tmp}/cut/checkpoints/step_00000002/dcp")) if files else []
        torch.save({"full_losses": full.losses, "resumed_losses": resumed.losses, "first_losses": first.losses,
                    "ref": ref, "got": got, "text": (full.text.state_dict(), resumed.text.state_dict()),
                    "ckpts": ck, "clip": clip, "files": files, "dcp_files": dcp_files,
                    "final": sorted(os.listdir(f"{tmp}/cut/final"))}, res_path)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_fsdp2_sharded_checkpoint_resume_equals_uninterrupted(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "res.pt"
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path), str(out)), nprocs=2, join=True)
    r = torch.load(out, weights_only=True)
    assert r["ckpts"] == ["step_00000002"]
    assert "model.safetensors" not in r["files"] and {"dcp", "state.json", "config.yaml"} <= set(r["files"])
    assert ".metadata" in r["dcp_files"] and sum(f.endswith(".distcp") for f in r["dcp_files"]) == 2
    assert "model.safetensors" in r["final"]
    assert sorted(r["first_losses"]) == [1, 2] and sorted(r["resumed_losses"]) == [3, 4]
    for s in (1, 2):
        assert r["first_losses"][s] == r["full_losses"][s]
    for s in (3, 4):   # same float ops in the same order: equal, not just close
        assert r["resumed_losses"][s] == r["full_losses"][s], (s, r["resumed_losses"][s], r["full_losses"][s])
    assert r["full_losses"][4] != r["full_losses"][2]
    for n, t in r["ref"].items():
        torch.testing.assert_close(r["got"][n], t, atol=0, rtol=0, msg=n)
    c = r["clip"]
    assert 0 < c["mixed"][0] < c["mixed"][1]                # both kinds of parameters present
    assert abs(c["total"] - c["want"]) <= 1e-5 * c["want"] and c["ratio"] < 1e-6
    for n, t in r["text"][0].items():
        torch.testing.assert_close(r["text"][1][n], t, atol=0, rtol=0, msg=n)
