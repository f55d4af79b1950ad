"""The training loop shared by every stage: resume, step, log, sample, checkpoint, finish.

A stage implements ``Stage`` (what one optimisation step is, which modules/optimizers it owns);
``run_stage`` does the rest identically for all stages:

- resume from the newest complete checkpoint in ``<stage_dir>/checkpoints`` when ``resume`` is
  set (weights, optimizer states, step counter, wall time; every random draw of a step is seeded
  from (seed, step), so a resumed run reproduces an uninterrupted one exactly on CPU);
- ``losses.csv`` every ``log_every`` steps (+ TensorBoard if installed), a tqdm bar;
- sample videos every ``sample_every`` steps, checkpoints every ``ckpt_every`` steps;
- ``final/`` (weights + config + state.json with wall time and final losses) at the end.

Only rank 0 writes files; every rank runs the steps. Under FSDP2 (sharded parameters) every rank
also runs the sample forward passes (as under context parallelism), checkpoints are sharded
(``sharded_checkpoint.py``: every rank writes its shards with torch.distributed.checkpoint, and
resumes from them), and ``final/`` gathers the full weights (collective) for rank 0 to write.
"""
from __future__ import annotations

import json
import math
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn as nn

from relic_model.distributed import DistInfo, barrier, full_state_dict, is_sharded
from relic_model.train.checkpoint import CheckpointManager, checkpoint_step, load_modules
from relic_model.train.loss_log import LossLog
from relic_model.train.samples import write_samples
from relic_model.train.sharded_checkpoint import load_sharded, save_sharded


class Stage(ABC):
    name: str = "stage"

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Modules whose weights change in this stage (saved in checkpoints, restored on resume)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    @abstractmethod
    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step (``step`` = number of steps completed before it). Returns losses."""

    def lr(self) -> float:
        opt = next(iter(self.optimizers().values()), None)
        return float(opt.param_groups[0]["lr"]) if opt is not None else 0.0

    def sample_video(self, step: int) -> torch.Tensor | None:
        """(B, T, 3, H, W) in [-1, 1] to write as a sample, or None."""
        return None

    def final_modules(self) -> dict[str, nn.Module]:
        return self.modules()

    def extra_state(self) -> dict:
        return {}


class _Snapshot:
    """A gathered state dict that checkpoint code can treat like a module / optimizer."""

    def __init__(self, sd):
        self._sd = sd

    def state_dict(self):
        return self._sd


def _full_optimizer_state(opt: torch.optim.Optimizer) -> dict:
    from torch.distributed.tensor import DTensor
    sd = opt.state_dict()
    state = {k: {n: (t.full_tensor() if isinstance(t, DTensor) else t) for n, t in v.items()}
             for k, v in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def _gathered(stage: "Stage", sharded: bool, final: bool = False):
    mods = stage.final_modules() if final else stage.modules()
    if not sharded:
        return mods, stage.optimizers()
    return ({k: _Snapshot(full_state_dict(m)) for k, m in mods.items()},
            {k: _Snapshot(_full_optimizer_state(o)) for k, o in stage.optimizers().items()})


def run_stage(stage: Stage, stage_dir: str | Path, config, total_steps: int, *, resume: bool = False,
              log_every: int = 10, ckpt_every: int = 100, sample_every: int = 0, info: DistInfo | None = None,
              progress: bool = True, stop_after: int | None = None) -> dict:
    """Train ``stage`` up to ``total_steps`` completed steps. ``stop_after`` (tests) stops early
    after that many steps of this call, checkpointing like an interrupted run would have.

    Returns {"stage", "steps", "time_s", "final_losses", "final_dir"}.
    """
    info = info or DistInfo()
    stage_dir = Path(stage_dir)
    mgr = CheckpointManager(stage_dir)
    start, t_prev = 0, 0.0
    latest = mgr.latest()
    sharded = any(is_sharded(m) for m in stage.modules().values())
    if latest is not None and not resume:
        raise RuntimeError(f"{stage_dir} already holds checkpoints (newest {latest.name}); pass --resume to "
                           "continue that run or choose a fresh --out")
    if resume and latest is not None and sharded:
        st = load_sharded(latest, stage.modules(), stage.optimizers())
        start, t_prev = int(st["step"]), float(st.get("time_s", 0.0))
    elif resume and latest is not None:
        st = CheckpointManager.load(latest, stage.modules(), stage.optimizers())
        start, t_prev = int(st["step"]), float(st.get("time_s", 0.0))
    final = mgr.final_path()
    final_losses_before: dict = {}
    if resume and final is not None:
        f_state = json.loads((final / "state.json").read_text())
        f_step = int(f_state.get("step", 0))
        if start < f_step:
            # final weights newer than any checkpoint (e.g. restored from a final-only snapshot): continue
            # from them when the recipe grew, keep them when it did not; optimizer states are not kept
            # with final weights, so they start afresh
            load_modules(final / "model.safetensors", stage.final_modules())
            start, t_prev = f_step, float(f_state.get("time_s", 0.0))
            final_losses_before = dict(f_state.get("final_losses", {}))
            if info.is_main:
                what = (f"continuing to {total_steps}: no optimizer state is kept with final weights, so the "
                        "optimizers start afresh") if f_step < total_steps else "nothing left to train"
                print(f"[{stage.name}] {final} holds step {f_step}; {what}", file=sys.stderr)
    log = LossLog(stage_dir / "losses.csv", resume_step=start if resume else None) if info.is_main else None
    recent: dict[str, list[float]] = {}
    bar = None
    if progress and info.is_main:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=start, desc=stage.name, unit="it", dynamic_ncols=True)
    t0 = time.perf_counter()
    step = start
    end = total_steps if stop_after is None else min(total_steps, start + stop_after)

    def state(losses=None):
        return {"stage": stage.name, "time_s": t_prev + time.perf_counter() - t0,
                "losses": losses or {}, **stage.extra_state()}

    losses: dict[str, float] = {}
    while step < end:
        losses = stage.train_step(step)
        step += 1
        for k, v in losses.items():
            if math.isfinite(v):
                recent.setdefault(k, []).append(float(v))
                recent[k] = recent[k][-20:]
            else:
                raise RuntimeError(f"{stage.name}: loss {k} became {v} at step {step}; lower the learning rate "
                                   "in the config's train section or resume from an earlier checkpoint")
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in list(losses.items())[:3]})
        want_sample = bool(sample_every) and (step % sample_every == 0 or step == total_steps)
        want_ckpt = step % ckpt_every == 0 or step == end
        vid = None
        if want_sample and (info.is_main or sharded or getattr(info, "cp", 1) > 1):   # every rank joins
            with torch.no_grad():
                vid = stage.sample_video(step)
        mods, opts = _gathered(stage, sharded) if want_ckpt and info.is_main and not sharded else (None, None)
        if info.is_main:
            if step % log_every == 0 or step == end:
                log.log(step, t_prev + time.perf_counter() - t0, stage.lr(), losses)
            if vid is not None:
                write_samples(vid, stage_dir / "samples", step)
            if want_ckpt and not sharded:
                mgr.save(step, mods, opts, config, state(losses))
        if want_ckpt and sharded:   # every rank writes its shards (torch.distributed.checkpoint)
            save_sharded(mgr.ckpt_dir, step, stage.modules(), stage.optimizers(), config, state(losses), info,
                         mgr.keep)
        barrier(info)
    if bar is not None:
        bar.close()
    final_losses = {k: sum(v) / len(v) for k, v in recent.items()}
    total_time = t_prev + time.perf_counter() - t0
    final_dir = None
    final_mods = _gathered(stage, sharded, final=True)[0] if step >= total_steps and (info.is_main or sharded) else None
    if step >= total_steps and info.is_main:
        if not final_losses:  # resumed a finished run
            final_losses = (json.loads((latest / "state.json").read_text()).get("losses", {})
                            if latest is not None and start == checkpoint_step(latest) else final_losses_before)
        final_dir = mgr.save_final(final_mods, config,
                                   {"stage": stage.name, "step": step, "time_s": total_time,
                                    "final_losses": final_losses, **stage.extra_state()})
    if log is not None:
        log.close()
    barrier(info)
    return {"stage": stage.name, "steps": step, "time_s": total_time, "final_losses": final_losses,
            "final_dir": str(final_dir) if final_dir else None}
