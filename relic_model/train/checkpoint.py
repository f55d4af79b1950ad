"""Resumable training checkpoints.

Layout of one checkpoint directory (written to ``NAME.tmp`` then renamed, so a checkpoint either
exists completely or not at all)::

    model.safetensors   every trained/frozen module's state_dict, keys prefixed "<module>." (float tensors as saved)
    optimizer.pt        {name: optimizer.state_dict()} (torch.save; tensors only, weights_only-loadable)
    config.yaml         the RelicConfig of the run
    state.json          {"stage", "step" (number of completed steps), "time_s" (training wall time so far),
                         "losses" (last logged values), ...extra}

``CheckpointManager(stage_dir)`` keeps ``checkpoints/step_XXXXXXXX`` (the ``keep`` newest) and a
``final`` directory; ``latest()`` is the newest complete checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from datagen.atomic import atomic_write
from relic_model.config import save_config
from relic_model.distributed import is_sharded, load_full_state_dict


def state_dicts_to_flat(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    flat = {}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            flat[f"{name}.{k}"] = v.detach().cpu().contiguous()
    return flat


def save_modules(path: Path, modules: dict[str, nn.Module], metadata: dict[str, str] | None = None) -> None:
    """Save modules into one safetensors file, atomically. Shared storages are cloned."""
    flat = {k: v.clone() for k, v in state_dicts_to_flat(modules).items()}
    atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata or {}))


def load_modules(path: Path, modules: dict[str, nn.Module], strict: bool = True) -> None:
    """Load ``modules`` (by prefix) from a safetensors file written by ``save_modules``; an
    FSDP2-sharded module keeps its own shard of the full weights (strictly)."""
    flat = load_file(str(path))
    for name, m in modules.items():
        pre = name + "."
        sd = {k[len(pre):]: v for k, v in flat.items() if k.startswith(pre)}
        if not sd:
            raise RuntimeError(f"{path} has no weights for module '{name}' (keys start with "
                               f"{sorted({k.split('.')[0] for k in flat})})")
        if is_sharded(m):
            load_full_state_dict(m, sd)
        else:
            m.load_state_dict(sd, strict=strict)


def checkpoint_step(path: Path) -> int:
    """The number of completed steps a checkpoint (or ``final``) directory holds (its state.json)."""
    return int(json.loads((Path(path) / "state.json").read_text())["step"])


def replace_dir(tmp: Path, target: Path) -> None:
    """Put the finished directory ``tmp`` at ``target``: the old one is moved aside first and removed
    last, so an interruption leaves either the old or the new checkpoint, never half of one."""
    old = target.with_name(target.name + ".old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def prune_steps(ckpt_dir: Path, keep: int) -> None:
    """Keep the ``keep`` newest finished ``step_*`` directories (not .tmp / .old ones)."""
    done = sorted(q for q in Path(ckpt_dir).glob("step_*") if q.is_dir() and "." not in q.name)
    for q in done[:-keep]:
        shutil.rmtree(q, ignore_errors=True)


class CheckpointManager:
    def __init__(self, stage_dir: str | os.PathLike, keep: int = 2):
        self.dir = Path(stage_dir)
        self.ckpt_dir = self.dir / "checkpoints"
        self.keep = keep

    def _write(self, target: Path, modules, optimizers, config, state: dict) -> Path:
        tmp = target.with_name(target.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_modules(tmp / "model.safetensors", modules, {"stage": str(state.get("stage", ""))})
        if optimizers:
            torch.save({k: o.state_dict() for k, o in optimizers.items()}, tmp / "optimizer.pt")
        if config is not None:
            save_config(config, tmp / "config.yaml")
        (tmp / "state.json").write_text(json.dumps(state, indent=2, default=float))
        replace_dir(tmp, target)
        return target

    def save(self, step: int, modules, optimizers, config, state: dict) -> Path:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        p = self._write(self.ckpt_dir / f"step_{step:08d}", modules, optimizers, config, dict(state, step=step))
        prune_steps(self.ckpt_dir, self.keep)
        return p

    def save_final(self, modules, config, state: dict) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self._write(self.dir / "final", modules, None, config, state)

    def latest(self) -> Path | None:
        if not self.ckpt_dir.is_dir():
            return None
        done = sorted(q for q in self.ckpt_dir.glob("step_*")
                      if q.is_dir() and "." not in q.name and (q / "state.json").is_file())
        return done[-1] if done else None

    @staticmethod
    def load(path: Path, modules, optimizers=None) -> dict:
        """Load weights (and optimizer states) from a checkpoint dir; returns its state.json."""
        path = Path(path)
        load_modules(path / "model.safetensors", modules)
        if optimizers and (path / "optimizer.pt").is_file():
            states = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
            for k, o in optimizers.items():
                if k in states:
                    o.load_state_dict(states[k])
        return json.loads((path / "state.json").read_text())

    def final_path(self) -> Path | None:
        p = self.dir / "final"
        return p if (p / "state.json").is_file() else None
