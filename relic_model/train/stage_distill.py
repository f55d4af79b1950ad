"""Stage 4: Self-Forcing distillation with the DMD loss and replayed back-propagation.

Networks: the student (generator, from stage 3), the frozen teacher (real score, with
classifier-free guidance ``guidance``), and the critic (fake score, initialised from the teacher,
trained). Per step (``step`` counts critic updates; every ``gen_update_every``-th step is also a
generator update):

1. roll out the student block by block without autograd (``pipelines.self_forcing.rollout``) from
   a clip's first-image latent, caption and controls, with a random exit step (shared by the
   ranks and, by default, by the blocks);
2. generator update: DMD targets on the detached video (``dmd_targets``: one sigma per clip,
   ``g = (x0_fake - x0_real) / mean|x - x0_real|``), then ``replay_backward`` re-runs each block
   with autograd and back-propagates its slice of ``dL/dx`` (only the last block all-reduces under
   DDP); ONE optimizer step per replay;
3. critic update: flow matching of the critic on the detached rollout (frame 0 clean).

Rollout curriculum: phases ``{num_blocks, steps[, rollout_regression]}`` (paper: 5 s x 250, 10 s x 150,
20 s x 150). ``rollout_regression`` (default 0, the paper's pure DMD) adds ``w * mean((x - x_true)^2)``
over the rollout's latent frames >= 1, ``x_true`` the clip's own latents (its actions are the
rollout's), to the generator's loss: a supervised signal on the student's own context, measured as
the cause of the still-shot drift (benchmark/probes/exposure_bias.py). ``context_sigma`` (per phase;
default ``sampling.context_sigma``) is the noise level at which the rollout's blocks enter the KV
cache (``pipelines.dit_generator``); the config saved with each checkpoint carries the value of the
phase it was trained in, so the bundle streams with the noise its last phase was trained on.
``context_scope`` (per phase; default ``sampling.context_scope``) likewise: ``"window"`` pools the
compressed memory from a clean pass of each block and noises only the window's copy.
``lr_gen`` / ``lr_fake`` (per phase; default the stage's) set the generator's / critic's learning
rate while the phase runs (e.g. a lower-lr continuation). Any other phase key is refused.

The frozen teacher is held as ``train.teacher_dtype`` / ``train.teacher_shard`` say
(``frozen_teacher.py``); the critic is copied from the fp32 weights first. Sharded, its forward is
a collective: the DMD step runs on every rank at the same steps.
"""
from __future__ import annotations

import copy

import torch

from relic_model.config import check_context_scope, check_context_sigma
from relic_model.distributed import no_sync_ctx, rank_slice, wrap_model
from relic_model.objectives.flow_matching import add_noise, first_frame_clean_sigma, flow_matching_loss, sample_sigma
from relic_model.pipelines.dit_generator import DiTBlockGenerator, score_fn
from relic_model.pipelines.replay_backprop import dmd_targets, replay_backward
from relic_model.pipelines.self_forcing import rollout, sample_exit_steps
from relic_model.train.common import RunContext, build_dit, clip_and_step, configure_dit, load_stage_module, torch_gen, warmup_lr
from relic_model.train.frozen_teacher import prepare_frozen_teacher
from relic_model.train.loop import Stage
from relic_model.train.settings import check_distill_phase, curriculum_total, phase_at, rescale_curriculum
from relic_model.train.stage_student_init import load_teacher_and_text, student_sample
from relic_model.train.stage_teacher import PoolSource, load_autoencoder, pool_batch


def rollout_regression_grad(video: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(dL/dx, L) of ``L = mean((x - target)^2)`` over the loss frames of ``mask`` (B, F): a regression
    of the detached rollout to the clip's true latents, fed to the replay beside the DMD gradient."""
    x = video.detach()
    t = target[:, :x.shape[1]].to(x)
    m = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - 2)))
    n = (m.sum() * x[0, 0].numel()).clamp_min(1)
    diff = (x - t) * m
    return 2 * diff / n, float(diff.pow(2).sum() / n)


class DistillStage(Stage):
    name = "distill"

    def __init__(self, ctx: RunContext, total_steps: int | None = None):
        self.ctx = ctx
        self.s = ctx.settings.distill
        phases = self.s.curriculum
        if total_steps is not None:
            phases = rescale_curriculum(phases, total_steps)
        self.phases = phases
        self.total_steps = curriculum_total(phases)
        dev = ctx.info.device
        self.ae = load_autoencoder(ctx).to(dev)
        self.teacher, self.text, self.cfg = load_teacher_and_text(ctx)
        self.teacher.to(dev), self.text.to(dev)
        self.student = load_stage_module(ctx, "student_init", "student", build_dit(self.cfg)).to(dev)
        for m in (self.teacher, self.student):
            configure_dit(m, ctx.settings)
        self.fake = copy.deepcopy(self.teacher)
        prepare_frozen_teacher(self.teacher, ctx.info, ctx.settings.teacher_dtype, ctx.settings.teacher_shard)
        for m in (self.student, self.fake):
            m.train()
            for p in m.parameters():
                p.requires_grad_(True)
        self.student_w = wrap_model(self.student, ctx.info, ctx.settings.dist, ctx.settings.precision)
        self.fake_w = wrap_model(self.fake, ctx.info, ctx.settings.dist, ctx.settings.precision)
        self.opt_gen = torch.optim.AdamW(self.student.parameters(), lr=self.s.lr_gen, weight_decay=0.0,
                                         betas=(0.0, 0.999))
        self.opt_fake = torch.optim.AdamW(self.fake.parameters(), lr=self.s.lr_fake, weight_decay=0.0,
                                          betas=(0.0, 0.999))
        self.fpb = self.cfg.dit.frames_per_block
        self.levels = [float(x) for x in self.cfg.sampling.sigmas]
        self.base_context_sigma = float(self.cfg.sampling.context_sigma)
        self.base_context_scope = str(self.cfg.sampling.context_scope)
        for ph in self.phases:
            check_distill_phase(ph)
            check_context_sigma(ph.get("context_sigma", self.base_context_sigma), self.levels,
                                f"distill phase {ph}: context_sigma")
            check_context_scope(ph.get("context_scope", self.base_context_scope), f"distill phase {ph}: context_scope")
        tr = ctx.settings.teacher
        self.pools = PoolSource(ctx, self.ae, tr.time_reverse_prob, tr.pool_clips, self.s.pause_prob)
        with torch.no_grad():
            self.null_text = self.text.encode_text([""])
        self.last_gen = {}

    def modules(self):
        return {"student": self.student, "fake": self.fake}

    def optimizers(self):
        return {"generator": self.opt_gen, "fake": self.opt_fake}

    def lr(self) -> float:
        return float(self.opt_gen.param_groups[0]["lr"])

    def _batch(self, step, nb):
        pool = self.pools.get(1 + nb * self.fpb)
        idx = list(range(self.s.batch))[rank_slice(self.s.batch, self.ctx.info)]
        js = [int(torch.randint(0, len(pool), (1,), generator=torch_gen(self.ctx.seed, self.name, step, i)))
              for i in idx]
        x0, cond, texts = pool_batch(pool, js, self.ctx.info.device)
        with torch.no_grad():
            cond = cond.with_global(text=self.text.encode_text(texts))
        return x0, cond, idx

    def train_step(self, step: int) -> dict:
        s, info = self.s, self.ctx.info
        _, ph = phase_at(self.phases, step)
        nb = int(ph["num_blocks"])
        x0, cond, idx = self._batch(step, nb)
        K = len(self.levels)
        # the phase's context noise; the saved config (self.cfg) follows the phase being trained
        self.cfg.sampling.context_sigma = float(ph.get("context_sigma", self.base_context_sigma))
        self.cfg.sampling.context_scope = str(ph.get("context_scope", self.base_context_scope))
        context_seed = int(torch.randint(0, 2 ** 31 - 1, (1,),
                                         generator=torch_gen(self.ctx.seed, self.name, step, 10 ** 6 + 300 + info.dp_rank)))
        gen = DiTBlockGenerator(self.student_w, context_sigma=self.cfg.sampling.context_sigma, context_seed=context_seed,
                                context_scope=self.cfg.sampling.context_scope)
        exits = sample_exit_steps(nb, K, torch_gen(self.ctx.seed, self.name, step, 10 ** 6), s.same_exit_step)
        ro = rollout(gen, x0[:, :1], cond, nb, self.fpb, self.levels,
                     torch_gen(self.ctx.seed, self.name, step, 10 ** 6 + 1 + info.dp_rank), exit_steps=exits)
        out = {}
        if step % s.gen_update_every == s.gen_update_every - 1:
            warmup_lr(self.opt_gen, float(ph.get("lr_gen", s.lr_gen)), step // s.gen_update_every, s.warmup)
            B = x0.shape[0]
            null = self.null_text.expand(B, -1, -1)
            self.fake.eval()
            tg = dmd_targets(ro.video, score_fn(self.teacher, cond, s.guidance, null), score_fn(self.fake, cond),
                             True, torch_gen(self.ctx.seed, self.name, step, 10 ** 6 + 100 + info.dp_rank),
                             (s.sigma_min, s.sigma_max))
            self.fake.train()
            w_reg = float(ph.get("rollout_regression", s.rollout_regression))
            out_grad = tg.out_grad
            if w_reg > 0:
                reg_grad, out["rollout_reg"] = rollout_regression_grad(ro.video, x0, tg.loss_mask)
                out_grad = out_grad + w_reg * reg_grad
            replay_backward(gen, ro, cond, out_grad, no_sync=no_sync_ctx(self.student_w))
            out["grad_norm_gen"] = clip_and_step(self.opt_gen, self.student.parameters(), s.grad_clip)
            self.last_gen = {"dmd": tg.loss}
        out.update(self.last_gen)
        # critic: flow matching on the detached student video
        warmup_lr(self.opt_fake, float(ph.get("lr_fake", s.lr_fake)), step, s.warmup)
        video = ro.video.detach()
        B, F = video.shape[:2]
        g = torch_gen(self.ctx.seed, self.name, step, 10 ** 6 + 200 + info.dp_rank)
        sig = first_frame_clean_sigma(sample_sigma((B,), g, self.ctx.settings.teacher.sigma_shift), F).to(video)
        eps = torch.randn(video.shape, generator=g).to(video)
        v = self.fake_w(add_noise(video, eps, sig), sig, cond.global_["text"], cond.per_frame["actions"],
                        cond.per_frame["poses"], "bidirectional")
        mask = torch.ones((B, F), dtype=torch.bool, device=video.device)
        mask[:, 0] = False
        lf = flow_matching_loss(v, video, eps, mask)
        lf.backward()
        out["grad_norm_fake"] = clip_and_step(self.opt_fake, self.fake.parameters(), s.grad_clip)
        out["fake_fm"] = lf.item()
        out["num_blocks"] = float(nb)
        return out

    @torch.no_grad()
    def sample_video(self, step: int):
        _, ph = phase_at(self.phases, max(0, step - 1))
        nb = int(ph["num_blocks"])
        return student_sample(self.ctx, self.student, self.text, self.ae, self.pools.get(1 + nb * self.fpb), nb,
                              self.fpb, self.levels, self.cfg.sampling.context_sigma, self.cfg.sampling.context_scope)
