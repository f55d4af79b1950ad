"""Run one stage or all four, and assemble the final bundle.

``run_stage_named(ctx, name, steps=None, resume=False)`` trains one stage into ``RUN/<name>/``;
``train_all(ctx, steps=None, resume=True)`` runs the stages in order and writes ``RUN/bundle/``.
When resuming, a stage whose ``final/`` holds at least the recipe's steps is skipped; a stage whose
recipe grew since (e.g. another distillation phase appended) continues from its newest checkpoint
(weights and optimizer state), and the stages after it must then be trained anew (an existing
``final/`` of a later stage is an error: it was trained from the shorter run):

    model.safetensors   autoencoder.* (incl. latent statistics), dit.* (the distilled student),
                        text.* (text encoder)  -- what ``RelicWorldModel(checkpoint=RUN/bundle)`` loads
    config.yaml         the model config (the student's, e.g. its RoPE frame scale)
    provenance.json     corpus path, config and hash; per stage: steps, wall time (s), final losses
                        (mean of the last 20 logged values); versions; the command line
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from datagen import Corpus
from datagen.atomic import atomic_write_text
from relic_model.config import load_config
from relic_model.distributed import barrier
from relic_model.inference.checkpoint import save_checkpoint
from relic_model.train.checkpoint import load_modules
from relic_model.train.common import STAGES, RunContext, build_autoencoder, build_dit, build_text
from relic_model.train.loop import run_stage
from relic_model.train.settings import curriculum_total
from relic_model.train.stage_autoencoder import AutoencoderStage
from relic_model.train.stage_distill import DistillStage
from relic_model.train.stage_student_init import StudentInitStage
from relic_model.train.stage_teacher import TeacherStage


def make_stage(ctx: RunContext, name: str, steps: int | None):
    if name == "autoencoder":
        st = AutoencoderStage(ctx)
        st.total_steps = int(steps if steps is not None else ctx.settings.autoencoder.steps)
        st.cfg = ctx.cfg
        return st
    if name == "teacher":
        return TeacherStage(ctx, steps)
    if name == "student_init":
        return StudentInitStage(ctx, steps)
    if name == "distill":
        return DistillStage(ctx, steps)
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")


def run_stage_named(ctx: RunContext, name: str, steps: int | None = None, resume: bool = False,
                    stop_after: int | None = None) -> dict:
    torch.manual_seed(ctx.seed)  # parameter initialisation is identical on every rank and run
    st = make_stage(ctx, name, steps)
    s = getattr(ctx.settings, name)
    return run_stage(st, ctx.stage_dir(name), st.cfg, st.total_steps, resume=resume, log_every=s.log_every,
                     ckpt_every=s.ckpt_every, sample_every=s.sample_every, info=ctx.info, progress=ctx.progress,
                     stop_after=stop_after)


def stage_summary(ctx: RunContext, name: str) -> dict:
    st = json.loads((ctx.final_dir(name) / "state.json").read_text())
    return {"steps": st.get("step"), "wall_time_s": round(float(st.get("time_s", 0.0)), 2),
            "final_losses": st.get("final_losses", {})}


def write_bundle(ctx: RunContext, out: Path | None = None, command: str | None = None) -> Path:
    """Assemble RUN/bundle from the autoencoder, teacher (text encoder) and distill finals."""
    out = Path(out or ctx.out / "bundle")
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ctx.final_dir("distill") / "config.yaml")
    ae, dit, text = build_autoencoder(cfg), build_dit(cfg), build_text(cfg)
    load_modules(ctx.final_dir("autoencoder") / "model.safetensors", {"autoencoder": ae})
    load_modules(ctx.final_dir("distill") / "model.safetensors", {"student": dit})
    load_modules(ctx.final_dir("teacher") / "model.safetensors", {"text": text})
    save_checkpoint(out, cfg, dit, ae, text)  # the format RelicWorldModel / load_checkpoint read
    corpus = Corpus.open(ctx.corpus) if ctx.corpus else None
    prov = {
        "format": "relic-bundle-v1",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": {"path": str(ctx.corpus), "config": corpus.config if corpus else None,
                   "config_hash": corpus.header.get("config_hash") if corpus else None,
                   "episodes": len(corpus) if corpus else None},
        "stages": {name: stage_summary(ctx, name) for name in STAGES},
        "train_settings": ctx.cfg.train,
        "seed": ctx.seed,
        "parameters": {"dit": sum(p.numel() for p in dit.parameters()),
                       "autoencoder": sum(p.numel() for p in ae.parameters()),
                       "text": sum(p.numel() for p in text.parameters())},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "command": command or " ".join(sys.argv),
    }
    prov["total_wall_time_s"] = round(sum(s["wall_time_s"] for s in prov["stages"].values()), 2)
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=2, default=str))
    return out


def recipe_steps(ctx: RunContext, name: str, steps: int | None = None) -> int:
    """Total steps the recipe (or an explicit ``steps``) asks of stage ``name``, without building it."""
    if steps is not None:
        return int(steps)
    s = getattr(ctx.settings, name)
    return curriculum_total(s.curriculum) if hasattr(s, "curriculum") else int(s.steps)


def final_steps(ctx: RunContext, name: str) -> int | None:
    """Steps the stage's ``final/`` was trained for (None: no final weights)."""
    final = ctx.stage_dir(name) / "final"
    if not (final / "model.safetensors").is_file():
        return None
    return int(json.loads((final / "state.json").read_text()).get("step", 0))


def train_all(ctx: RunContext, steps: int | None = None, resume: bool = True, command: str | None = None) -> Path:
    done = {name: (final_steps(ctx, name) if resume else None) for name in STAGES}
    want = {name: recipe_steps(ctx, name, steps) for name in STAGES}
    todo = [name for name in STAGES if done[name] is None or done[name] < want[name]]
    if todo:
        stale = [n for n in STAGES[STAGES.index(todo[0]) + 1:] if done[n] is not None]
        if stale:
            raise RuntimeError(f"{todo[0]} has to train (further), but {', '.join(stale)} already hold final weights "
                               f"trained from its previous weights; move {', '.join(str(ctx.stage_dir(n)) for n in stale)} "
                               f"aside to train them anew")
    for name in STAGES:
        if name not in todo:
            if ctx.info.is_main:
                print(f"[relic train all] {name}: final weights exist ({done[name]} steps), skipped", file=sys.stderr)
            continue
        if done[name] is not None and ctx.info.is_main:
            print(f"[relic train all] {name}: the recipe asks {want[name]} steps, final/ has "
                  f"{done[name]}: continuing from its newest checkpoint", file=sys.stderr)
        run_stage_named(ctx, name, steps, resume=resume)
        barrier(ctx.info)
    if ctx.info.is_main:
        return write_bundle(ctx, command=command)
    return ctx.out / "bundle"
