"""The frozen teacher of student initialisation and distillation, held cheaply.

Stages 3 and 4 keep the teacher (teacher ODE trajectories; DMD's real score) next to the networks
they train. It gets no gradients and no optimizer state, so it needs neither fp32 master weights
nor a replica on every GPU. Two switches (top level of ``train:``, ``settings.py``):

- ``teacher_dtype: bf16`` (default ``fp32``): the teacher's parameters are stored in bfloat16 (half
  the bytes) and its forward runs under bf16 autocast (``RelicDiT.set_precision("bf16")``: matmuls
  and attention in bf16; RoPE angles, the timestep embedding and the returned velocity stay fp32).
  Buffers (e.g. the control encoders' input scales) stay fp32. Outputs differ from the fp32
  teacher by bf16 rounding: relative L2 error of the velocity 0.75 % on a small DiT on CPU (test
  bound 3 %, tests/relic_model/test_frozen_teacher.py), 1.7 % for the 1.38B gpu.yaml DiT with random
  weights on an H100 (fp32 weights under bf16 autocast, the GPU configs' precision: 0.47 %;
  ``python -m perf.check_frozen_teacher``).
- ``teacher_shard: true`` (default ``false``; only under torchrun with several ranks): FSDP2
  ``fully_shard`` on every DiT block and the root, ``reshard_after_forward=True`` for all of them
  (the root too: no backward follows), no mixed-precision policy (the shards are gathered in the
  stored dtype). Each rank holds ``1 / W`` of the parameters plus, during a forward, the gathered
  block(s) and the root's non-block parameters. The shards span every rank of the job (the same
  mesh as the trained networks under ``dist: fsdp``), so every teacher forward is a collective:
  all ranks make the same number of teacher calls (the stages do: trajectories are generated in
  lock-step batches on all ranks, the DMD step runs on all ranks).

The student and the critic are copied from the teacher BEFORE this is applied (they train in fp32
from the full weights).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from relic_model.distributed import DistInfo

TEACHER_DTYPES = ("fp32", "bf16")


def cast_parameters(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Parameters (not buffers) converted to ``dtype`` in place."""
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
    return module


def shard_frozen(module: nn.Module) -> nn.Module:
    """FSDP2 ``fully_shard`` of a frozen RelicDiT over all ranks: every block, then the root, all
    resharded after each forward (``module`` is returned, now an FSDPModule)."""
    from torch.distributed.fsdp import fully_shard
    if hasattr(module, "text_kv_in_blocks"):
        module.text_kv_in_blocks = True   # block parameters exist only inside the block's forward
    for blk in getattr(module, "blocks", []):
        fully_shard(blk, reshard_after_forward=True)
    fully_shard(module, reshard_after_forward=True)
    return module


def prepare_frozen_teacher(teacher: nn.Module, info: DistInfo, dtype: str = "fp32", shard: bool = False) -> nn.Module:
    """``teacher`` in eval mode without gradients, cast to ``dtype`` ("fp32" | "bf16") and, when
    ``shard`` and ``info`` has several ranks, FSDP2-sharded (collective: every rank calls it)."""
    if dtype not in TEACHER_DTYPES:
        raise ValueError(f"train.teacher_dtype must be one of {TEACHER_DTYPES}, got {dtype!r}")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if dtype == "bf16":
        cast_parameters(teacher, torch.bfloat16)
        teacher.set_precision("bf16")   # bf16 weights need autocast (fp32 inputs)
    if shard and info.distributed:
        shard_frozen(teacher)
    return teacher


def teacher_bytes(module: nn.Module) -> int:
    """Bytes of the parameters this rank holds (local shards under FSDP2)."""
    from torch.distributed.tensor import DTensor
    n = 0
    for p in module.parameters():
        t = p.to_local() if isinstance(p, DTensor) else p
        n += t.numel() * t.element_size()
    return n


__all__ = ["prepare_frozen_teacher", "cast_parameters", "shard_frozen", "teacher_bytes", "TEACHER_DTYPES"]
