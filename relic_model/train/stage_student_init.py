"""Stage 3: student initialisation by ODE regression with hybrid forcing.

1. The student is a copy of the teacher's weights (block-causal attention from now on).
2. Teacher ODE trajectories are precomputed once (cached under RUN/cache): for ``trajectories``
   clips of ``F = 1 + num_blocks * frames_per_block`` latent frames, noise -> clean video with
   ``ode_steps`` Euler steps of the teacher (bidirectional, conditioned on the clip's first-image
   latent, caption, actions and poses; CFG ``guidance``), recording the states at the student's
   timesteps ``cfg.sampling.sigmas`` and the end point ``x0_ode``.
3. Per step, hybrid forcing (paper): of the B blocks, the first B-K (plus frame 0) are given clean
   (``x0_ode``) and committed to the student's KV cache WITH autograd, so older frames are spatially
   compressed by the memory schedule exactly as at inference (teacher forcing); the last K blocks
   are uncompressed and each noised at its own student timestep ``t_k`` (the trajectory state
   ``x_{t_k}``: diffusion forcing), processed in one block-causal call on top of the cache.
   Loss: ``mean (x0_hat - x0_ode)^2`` over the K noisy blocks, ``x0_hat = x_t - t v``.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from relic_model.data.latent_cache import file_sha256, pool_key
from relic_model.objectives.flow_matching import x0_from_velocity
from relic_model.objectives.ode_regression import hybrid_forcing_levels, ode_regression_loss
from relic_model.pipelines.conditioning import Cond
from relic_model.pipelines.dit_generator import DiTBlockGenerator
from relic_model.pipelines.self_forcing import rollout
from relic_model.pipelines.teacher_sampling import sample_ode
from relic_model.train.common import (RunContext, build_dit, build_text, clip_and_step, configure_dit, frozen, load_stage_module,
                                      stage_config, torch_gen, warmup_lr)
from relic_model.train.distributed import barrier, rank_slice, unwrap, wrap_model
from relic_model.train.loop import Stage
from relic_model.train.stage_teacher import PoolSource, load_autoencoder, pool_batch


def load_teacher_and_text(ctx: RunContext):
    """(teacher, text encoder, teacher's config) from the teacher stage's final weights, frozen."""
    tcfg = stage_config(ctx, "teacher")
    teacher = load_stage_module(ctx, "teacher", "teacher", build_dit(tcfg))
    text = load_stage_module(ctx, "teacher", "text", build_text(tcfg))
    return frozen(teacher), frozen(text), tcfg


def ode_trajectories(ctx, teacher, text, pool, levels, n, steps, guidance, progress) -> dict:
    """{"x0": (n, F, C, h, w), "xt": (n, K, F, C, h, w)} teacher ODE data for pool clips 0..n-1."""
    dev = ctx.info.device
    x0s, xts = [], []
    rng = range(0, n, 8)
    if progress:
        from tqdm import tqdm
        rng = tqdm(rng, desc=f"teacher ODE x{n}", leave=False)
    null = text.encode_text([""])
    for s in rng:
        js = list(range(s, min(n, s + 8)))
        lat, cond, texts = pool_batch(pool, js, dev)
        temb = text.encode_text(texts)
        a, p = cond.per_frame["actions"], cond.per_frame["poses"]

        def fn(x, sig):
            v = teacher(x, sig, temb, a, p, "bidirectional")
            if guidance != 1.0:
                vu = teacher(x, sig, null.expand(len(js), -1, -1), a, p, "bidirectional")
                v = vu + guidance * (v - vu)
            return v
        noise = torch.stack([torch.randn(lat.shape[1:], generator=torch.Generator().manual_seed(ctx.seed * 7919 + j))
                             for j in js])[:, 1:].to(dev)
        x0, states = sample_ode(fn, noise, lat[:, :1], num_steps=steps, record=levels)
        x0s.append(x0.cpu())
        xts.append(torch.stack([states[l] for l in levels], 1).cpu())
    return {"x0": torch.cat(x0s), "xt": torch.cat(xts)}


class StudentInitStage(Stage):
    name = "student_init"

    def __init__(self, ctx: RunContext, total_steps: int | None = None):
        self.ctx = ctx
        self.s = ctx.settings.student_init
        self.total_steps = int(total_steps if total_steps is not None else self.s.steps)
        dev = ctx.info.device
        self.ae = load_autoencoder(ctx).to(dev)
        self.teacher, self.text, self.cfg = load_teacher_and_text(ctx)
        self.teacher.to(dev), self.text.to(dev)
        configure_dit(self.teacher, ctx.settings)
        self.student = copy.deepcopy(self.teacher)
        self.student.train()
        for p in self.student.parameters():
            p.requires_grad_(True)
        self.model = wrap_model(self.student, ctx.info, ctx.settings.dist, ctx.settings.precision)
        self.opt = torch.optim.AdamW(self.student.parameters(), lr=self.s.lr, weight_decay=0.0)
        self.fpb = self.cfg.dit.frames_per_block
        self.F = 1 + self.s.num_blocks * self.fpb
        self.levels = [float(x) for x in self.cfg.sampling.sigmas]
        tr = ctx.settings.teacher
        self.pools = PoolSource(ctx, self.ae, tr.time_reverse_prob, max(tr.pool_clips, self.s.trajectories))
        self._traj = None

    def modules(self):
        return {"student": self.student}

    def optimizers(self):
        return {"student": self.opt}

    def trajectories(self) -> dict:
        if self._traj is None:
            ctx = self.ctx
            key = pool_key(teacher=file_sha256(ctx.final_dir("teacher") / "model.safetensors"),
                           pool=self.pools.ae_hash, corpus=ctx.corpus_hash(), F=self.F, n=self.s.trajectories,
                           steps=self.s.ode_steps, g=self.s.guidance, levels=self.levels, seed=ctx.seed)
            path = Path(ctx.cache_dir) / f"ode_F{self.F}_N{self.s.trajectories}_{key}.safetensors"
            pool = self.pools.get(self.F)  # collective (all ranks) before the rank-0-only work
            if ctx.info.is_main and not path.is_file():
                d = ode_trajectories(ctx, self.teacher, self.text, pool, self.levels, self.s.trajectories,
                                     self.s.ode_steps, self.s.guidance, ctx.progress)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                save_file({k: v.contiguous() for k, v in d.items()}, str(tmp))
                tmp.replace(path)
            barrier(ctx.info)
            self._traj = load_file(str(path))
        return self._traj

    def batch(self, step: int, indices):
        tr = self.trajectories()
        pool = self.pools.get(self.F)
        n, K = tr["x0"].shape[0], len(self.levels)
        js, lv = [], []
        for i in indices:
            g = torch_gen(self.ctx.seed, self.name, step, i)
            js.append(int(torch.randint(0, n, (1,), generator=g)))
            idx, _, _ = hybrid_forcing_levels(1, self.s.num_blocks, self.fpb, self.s.num_noisy_blocks, K, g)
            lv.append(idx[0])
        dev = self.ctx.info.device
        _, cond, texts = pool_batch(pool, js, dev)
        x0 = tr["x0"][js].to(dev)
        step_idx = torch.stack(lv)                                     # (B, F), -1 = clean
        xt_all = tr["xt"][js].to(dev)                                  # (B, K, F, ...)
        gather = step_idx.clamp_min(0).to(dev)[:, None, :, None, None, None].expand(-1, 1, -1, *x0.shape[2:])
        x_in = torch.gather(xt_all, 1, gather)[:, 0]
        clean = step_idx < 0
        x_in = torch.where(clean.to(dev)[..., None, None, None], x0, x_in)
        sig = torch.tensor(self.levels, dtype=x0.dtype)[step_idx.clamp_min(0)]
        sig[clean] = 0.0
        return x0, x_in, sig.to(dev), cond, texts

    def loss(self, x0, x_in, sig, cond: Cond, texts):
        P = 1 + (self.s.num_blocks - self.s.num_noisy_blocks) * self.fpb   # clean prefix frames
        text = self.text.encode_text(texts)
        a, p = cond.per_frame["actions"], cond.per_frame["poses"]
        cache = self.student.new_cache()
        # clean prefix -> KV cache with autograd (compressed by the memory schedule when old enough)
        self.student(x0[:, :P], sig[:, :P], text, a[:, :P], p[:, :P], "block_causal", cache, 0, True)
        v = self.model(x_in[:, P:], sig[:, P:], text, a[:, P:], p[:, P:], "block_causal", cache, P, False)
        x0_hat = x0_from_velocity(x_in[:, P:], sig[:, P:], v)
        return ode_regression_loss(x0_hat, x0[:, P:])

    def train_step(self, step: int) -> dict:
        idx = list(range(self.s.batch))[rank_slice(self.s.batch, self.ctx.info)]
        x0, x_in, sig, cond, texts = self.batch(step, idx)
        warmup_lr(self.opt, self.s.lr, step, self.s.warmup)
        loss = self.loss(x0, x_in, sig, cond, texts)
        loss.backward()
        gn = clip_and_step(self.opt, self.student.parameters(), self.s.grad_clip)
        return {"loss": loss.item(), "grad_norm": gn}

    @torch.no_grad()
    def sample_video(self, step: int):
        return student_sample(self.ctx, self.student, self.text, self.ae, self.pools.get(self.F), self.s.num_blocks,
                              self.fpb, self.levels)


@torch.no_grad()
def student_sample(ctx, student, text, ae, pool, num_blocks, fpb, levels):
    """Ground truth (top) and a full 4-step student rollout from the same first frame (bottom)."""
    x0, cond, texts = pool_batch(pool, [0], ctx.info.device)
    cond = cond.with_global(text=text.encode_text(texts))
    was = student.training
    student.eval()
    ro = rollout(DiTBlockGenerator(student), x0[:, :1], cond, num_blocks, fpb, levels, torch.Generator().manual_seed(0))
    student.train(was)
    return torch.cat([ae.decode(x0), ae.decode(ro.video)], 0)
