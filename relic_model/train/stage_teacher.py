"""Stage 2: the bidirectional teacher (flow matching), with the horizon curriculum and the
time-reverse augmentation.

Per step, for each clip of the (global) batch: latents ``x0`` (B, F, C, h, w) from the encoded
clip pool of the current curriculum phase (F latent frames, short -> long), noise level
``sigma ~ shift(logit-normal)`` shared by the clip's frames except frame 0 (clean first-image
latent, sigma 0), ``x_t = (1 - sigma) x0 + sigma eps``; the teacher sees every frame
(``attn_mode="bidirectional"``), the text (prompt replaced by "" with probability
``text_dropout`` for classifier-free guidance), actions and poses; loss = flow matching
``mean (v - (eps - x0))^2`` over frames 1..F-1.

Horizon curriculum: phases ``{latent_frames, steps[, rope_frame_scale]}``; RoPE frame positions
simply extend with the longer clips (``rope_frame_scale`` < 1 optionally interpolates them).
Time-reverse augmentation: clips in the pools are palindromes with probability
``time_reverse_prob`` (``datagen.augment.time_reverse``, labels recomputed). Pause augmentation:
with probability ``pause_prob`` (a phase may set its own) a clip's camera stops at a frame and holds
it to the end (``datagen.augment.pause``; half of them from frame 0, a still shot).
The text encoder's trainable layers are trained jointly here and frozen afterwards.
"""
from __future__ import annotations

import copy

import torch

from datagen.filebytes import sha256_file
from relic_model.data.latent_cache import build_or_load_pool, pool_key
from relic_model.distributed import rank_slice, wrap_model
from relic_model.objectives.flow_matching import add_noise, first_frame_clean_sigma, flow_matching_loss, sample_sigma
from relic_model.pipelines.conditioning import Cond
from relic_model.pipelines.teacher_sampling import sample_ode
from relic_model.train.common import (RunContext, build_autoencoder, build_dit, build_text, clip_and_step, configure_dit, frozen,
                                      load_stage_module, np_rng, per_sample_randn, torch_gen, warmup_lr)
from relic_model.train.loop import Stage
from relic_model.train.settings import curriculum_total, phase_at, phase_lr, rescale_curriculum


def all_reduce_grads(params, info) -> None:
    if not info.distributed:
        return
    import torch.distributed as dist
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


class PoolSource:
    """Encoded clip pools keyed by latent length (and pause probability), built on first use
    (shared by stages 2-4). ``pause_prob`` is the default of :meth:`get`; a pool with pauses has its
    own cache key (pools without pauses keep the keys they had before the augmentation existed)."""

    def __init__(self, ctx: RunContext, autoencoder, time_reverse_prob: float, num_clips: int,
                 pause_prob: float = 0.0):
        self.ctx, self.ae, self.trp, self.n, self.pause = ctx, autoencoder, time_reverse_prob, num_clips, pause_prob
        self.pools = {}
        self._clips = {}
        self.ae_hash = sha256_file(ctx.final_dir("autoencoder") / "model.safetensors")

    def key_parts(self, pause_prob: float | None = None) -> dict:
        """What a pool's content depends on besides its length (also keys caches derived from it)."""
        p = self.pause if pause_prob is None else float(pause_prob)
        cfg = self.ctx.cfg
        parts = dict(corpus=self.ctx.corpus_hash(), corpus_dir=str(self.ctx.corpus), ae=self.ae_hash,
                     hw=(cfg.data.height, cfg.data.width, cfg.data.fps), seed=self.ctx.seed, trp=self.trp)
        if p > 0:
            parts["pause"] = p
        return parts

    def get(self, latent_frames: int, pause_prob: float | None = None):
        p = self.pause if pause_prob is None else float(pause_prob)
        if (latent_frames, p) not in self.pools:
            if p not in self._clips:
                self._clips[p] = self.ctx.clips(self.trp, p)
            key = pool_key(**self.key_parts(p))
            self.pools[latent_frames, p] = build_or_load_pool(self.ctx.cache_dir, key, self._clips[p], self.ae,
                                                              self.n, latent_frames, self.ctx.seed, self.ctx.info,
                                                              self.ctx.progress)
        return self.pools[latent_frames, p]


def load_autoencoder(ctx: RunContext):
    return frozen(load_stage_module(ctx, "autoencoder", "autoencoder", build_autoencoder(ctx.cfg)))


def pool_batch(pool, js, device, texts_override=None) -> tuple[torch.Tensor, Cond, list[str]]:
    x0 = pool.latents[js].to(device)
    texts = [pool.texts[j] for j in js] if texts_override is None else texts_override
    cond = Cond({"actions": pool.actions[js].to(device), "poses": pool.poses[js].to(device)})
    return x0, cond, texts


class TeacherStage(Stage):
    name = "teacher"

    def __init__(self, ctx: RunContext, total_steps: int | None = None):
        self.ctx = ctx
        self.s = ctx.settings.teacher
        phases = self.s.curriculum
        if total_steps is not None:
            phases = rescale_curriculum(phases, total_steps)
        self.phases = phases
        self.total_steps = curriculum_total(phases)
        self.cfg = copy.deepcopy(ctx.cfg)
        dev = ctx.info.device
        self.ae = load_autoencoder(ctx).to(dev)
        self.teacher = configure_dit(build_dit(self.cfg).to(dev), ctx.settings)
        self.text = build_text(self.cfg).to(dev)
        self.model = wrap_model(self.teacher, ctx.info, ctx.settings.dist, ctx.settings.precision)
        self.params = list(self.teacher.parameters()) + list(self.text.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=self.s.lr, weight_decay=self.s.weight_decay)
        self.pools = PoolSource(ctx, self.ae, self.s.time_reverse_prob, self.s.pool_clips)

    def modules(self):
        return {"teacher": self.teacher, "text": self.text}

    def optimizers(self):
        return {"teacher": self.opt}

    def extra_state(self):
        return {"rope_frame_scale": self.teacher.rope.frame_scale}

    def _phase(self, step):
        i, ph = phase_at(self.phases, step)
        scale = float(ph.get("rope_frame_scale", self.ctx.cfg.dit.rope_frame_scale))
        if scale != self.teacher.rope.frame_scale:
            self.teacher.set_frame_scale(scale)
        return i, int(ph["latent_frames"])

    def _pool(self, step):
        i, F = self._phase(step)
        return self.pools.get(F, float(self.phases[i].get("pause_prob", self.s.pause_prob)))

    def batch(self, step: int, indices):
        _, F = self._phase(step)
        pool = self._pool(step)
        seed = self.ctx.seed
        js, texts, sig = [], [], []
        for i in indices:
            rng = np_rng(seed, self.name, step, i)
            j = int(rng.integers(len(pool)))
            js.append(j)
            texts.append("" if rng.random() < self.s.text_dropout else pool.texts[j])
            sig.append(sample_sigma((1,), torch_gen(seed, self.name, step, i), self.s.sigma_shift))
        x0, cond, texts = pool_batch(pool, js, self.ctx.info.device, texts)
        eps = per_sample_randn(tuple(x0.shape[1:]), seed, self.name, step, indices).to(x0.device)
        sigma = first_frame_clean_sigma(torch.cat(sig), F).to(x0.device)
        return x0, eps, sigma, cond, texts

    def loss(self, x0, eps, sigma, cond, texts):
        x_t = add_noise(x0, eps, sigma)
        text = self.text.encode_text(texts)
        v = self.model(x_t, sigma, text, cond.per_frame["actions"], cond.per_frame["poses"], "bidirectional")
        mask = torch.ones(sigma.shape, dtype=torch.bool, device=sigma.device)
        mask[:, 0] = False
        return flow_matching_loss(v, x0, eps, mask)

    def train_step(self, step: int) -> dict:
        idx = list(range(self.s.batch))[rank_slice(self.s.batch, self.ctx.info)]
        x0, eps, sigma, cond, texts = self.batch(step, idx)
        warmup_lr(self.opt, phase_lr(self.phases, step, self.s.lr), step, self.s.warmup)
        loss = self.loss(x0, eps, sigma, cond, texts)
        loss.backward()
        all_reduce_grads(self.text.parameters(), self.ctx.info)
        gn = clip_and_step(self.opt, self.params, self.s.grad_clip)
        return {"loss": loss.item(), "grad_norm": gn, "latent_frames": float(x0.shape[1])}

    @torch.no_grad()
    def sample_video(self, step: int):
        pool = self._pool(max(0, step - 1))
        x0, cond, texts = pool_batch(pool, [0], self.ctx.info.device)
        text = self.text.encode_text(texts)
        self.teacher.eval()
        fn = lambda x, s: self.teacher(x, s, text, cond.per_frame["actions"], cond.per_frame["poses"], "bidirectional")
        noise = torch.randn(x0[:, 1:].shape, generator=torch.Generator().manual_seed(0)).to(x0)
        gen, _ = sample_ode(fn, noise, x0[:, :1], num_steps=8)
        self.teacher.train()
        return torch.cat([self.ae.decode(x0), self.ae.decode(gen)], 0)
