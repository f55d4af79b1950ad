"""Sharded training checkpoints for FSDP2 runs (``torch.distributed.checkpoint``, DCP).

A sharded run's checkpoint ``checkpoints/step_XXXXXXXX`` holds::

    dcp/            every rank's shards of the stage's modules and optimizer states (DCP format:
                    ``__*.distcp`` files + ``.metadata``); replicated (non-FSDP) tensors are
                    written once
    config.yaml     the RelicConfig of the run
    state.json      {"stage", "step", "time_s", "losses", ..., "format": "dcp"}

No rank gathers full weights or optimizer state (a 14B run would need ~210 GB of host memory per
rank for that); each rank writes and reads its own shards. It is written like every checkpoint
here: into ``NAME.tmp`` (all ranks write their shards there, DCP finishes with rank 0's metadata),
then rank 0 adds config/state and renames it, so a checkpoint exists completely or not at all; the
``keep`` newest are kept. ``final/`` (what later stages and bundles load) stays a gathered
``model.safetensors`` (``loop.run_stage``).

Resume (:func:`load_sharded`) builds the same state-dict structure from the freshly wrapped
modules and optimizers (``torch.distributed.checkpoint.state_dict``: parameters keyed by name,
optimizer state keyed by parameter name, shards as DTensors), loads it in place with ``dcp.load``
and sets it back, so a resumed run continues bit-for-bit like an uninterrupted one on the same
world size (tested with 2 gloo processes on CPU: ``tests/relic_model/test_sharded_checkpoint.py``).
DCP can also reshard on load (a different world size), which is not tested here.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch.nn as nn

from relic_model.config import save_config
from relic_model.distributed import DistInfo, barrier
from relic_model.train.checkpoint import prune_steps, replace_dir

DCP_DIR = "dcp"


def is_sharded_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / DCP_DIR).is_dir()


def _state(modules: dict[str, nn.Module], optimizers: dict):
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict
    root = nn.ModuleDict(modules)
    return root, {"model": get_model_state_dict(root),
                  "optim": {k: get_optimizer_state_dict(root, o) for k, o in optimizers.items()}}


def save_sharded(ckpt_dir: str | os.PathLike, step: int, modules: dict[str, nn.Module], optimizers: dict, config,
                 state: dict, info: DistInfo, keep: int = 2) -> Path:
    """Write ``ckpt_dir/step_XXXXXXXX`` (collective: every rank calls it). Returns its path."""
    import torch.distributed.checkpoint as dcp
    ckpt_dir = Path(ckpt_dir)
    target = ckpt_dir / f"step_{step:08d}"
    tmp = target.with_name(target.name + ".tmp")
    if info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier(info)
    _, sd = _state(modules, optimizers)
    dcp.save(sd, checkpoint_id=str(tmp / DCP_DIR))
    if info.is_main:
        if config is not None:
            save_config(config, tmp / "config.yaml")
        (tmp / "state.json").write_text(json.dumps(dict(state, step=step, format="dcp"), indent=2, default=float))
        replace_dir(tmp, target)
        prune_steps(ckpt_dir, keep)
    barrier(info)
    return target


def load_sharded(path: str | os.PathLike, modules: dict[str, nn.Module], optimizers: dict) -> dict:
    """Load a checkpoint written by :func:`save_sharded` into the (already wrapped) ``modules``
    and ``optimizers`` (collective). Returns its state.json."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict
    path = Path(path)
    if not is_sharded_checkpoint(path):
        raise RuntimeError(f"{path} is not a sharded (DCP) checkpoint: it was written by a run without FSDP or by an "
                           "older version that gathered full weights; resume it without dist: fsdp")
    root, sd = _state(modules, optimizers)
    dcp.load(sd, checkpoint_id=str(path / DCP_DIR))
    set_model_state_dict(root, sd["model"])
    for k, o in optimizers.items():
        set_optimizer_state_dict(root, o, sd["optim"][k])
    return json.loads((path / "state.json").read_text())


__all__ = ["save_sharded", "load_sharded", "is_sharded_checkpoint", "DCP_DIR"]
