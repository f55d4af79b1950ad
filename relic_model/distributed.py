"""torch.distributed setup for training under ``torchrun`` (never a home-made launcher).

- ``init_distributed()`` reads the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK,
  MASTER_ADDR/PORT). Without it (plain ``python``/``relic train``) it returns a single-process
  ``DistInfo`` and touches nothing. Backend: ``nccl`` when CUDA is available, else ``gloo``.
- ``wrap_model(module, info, mode, precision)``: ``"ddp"`` -> DistributedDataParallel (CPU/gloo or
  GPU/nccl); ``"fsdp"`` -> FSDP2 ``fully_shard`` on every transformer block then the root (nccl on
  GPUs, gloo on CPU: tested with 2 CPU processes against single-process gradients); with
  ``precision="bf16"`` FSDP2 gathers parameters in bf16 and reduces gradients in fp32
  (``MixedPrecisionPolicy``; sharded master weights and optimizer state stay fp32);
  ``"none"`` or world size 1 -> the module unchanged.
- ``is_sharded(m)`` / ``full_state_dict(m)``: FSDP2 parameters are DTensor shards; checkpoints
  gather the full tensors on every rank (a collective: every rank must call it).
- ``no_sync_ctx(wrapped)``: a context-manager factory that suppresses gradient all-reduce (DDP
  ``no_sync``; FSDP2 ``set_requires_gradient_sync(False)``), used by replayed back-propagation
  so only the last block's backward communicates.
- ``unwrap(m)`` returns the underlying module (for checkpoints and no-grad rollouts).
- Context parallelism (``train.context_parallel: c``, ``context_parallel.py``):
  ``with_context_parallel(info, c)`` creates the CP groups (ranks ``g c .. g c + c - 1``) and
  returns a DistInfo whose ``dp_rank``/``dp_size`` are the data-parallel rank and degree
  (``W / c``); ``rank_slice`` hands every rank of a CP group the same batch rows, and
  ``wrap_model`` (ddp or fsdp over all ``W`` ranks) also shards the DiT's tokens over the group.
- ``clip_grad_norm`` clips a list that mixes FSDP2 (DTensor) and plain parameters.

Per-rank data: each rank takes its slice of every global batch (``rank_slice``); random draws use
generators seeded from (seed, step, global sample index), so a run on W ranks with per-rank batch
b takes the same optimisation steps as one process with batch W*b (up to float reduction order).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from relic_model.context_parallel import context_parallel_groups, enable_context_parallel


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    cp: int = 1                  # context-parallel degree (ranks sharing one sample's tokens)
    cp_group: object = None      # this rank's CP process group (None = the default group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def dp_rank(self) -> int:
        """Data-parallel rank: which batch rows this rank's CP group takes (= rank without CP)."""
        return self.rank // self.cp

    @property
    def dp_size(self) -> int:
        return self.world_size // self.cp


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment (if present)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if world <= 1 and not dist.is_initialized():
        dev = torch.device("cuda", 0) if want_cuda else torch.device("cpu")
        return DistInfo(device=dev)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    be = backend or ("nccl" if want_cuda else "gloo")
    if want_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=be, rank=rank, world_size=world)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev, be)


def current() -> DistInfo:
    """DistInfo of an already initialised group (or single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                        torch.device("cpu"), dist.get_backend())
    return DistInfo()


def with_context_parallel(info: DistInfo, degree: int) -> DistInfo:
    """``info`` with context-parallel degree ``degree`` (creates the CP process groups: a
    collective, every rank calls it once). One process: unchanged (CP is a no-op there)."""
    import dataclasses
    degree = int(degree)
    if degree < 1:
        raise ValueError(f"train.context_parallel must be >= 1, got {degree}")
    if not info.distributed or degree == 1:
        return info
    if info.world_size % degree:
        raise ValueError(f"train.context_parallel {degree} must divide the number of ranks {info.world_size}")
    return dataclasses.replace(info, cp=degree, cp_group=context_parallel_groups(degree))


def wrap_model(module: nn.Module, info: DistInfo, mode: str = "ddp", precision: str = "fp32") -> nn.Module:
    if mode not in ("ddp", "fsdp", "none"):
        raise ValueError(f"distributed mode must be ddp, fsdp or none, got {mode!r}")
    if info.cp > 1:
        # the data-parallel mean over all ranks that ddp/fsdp take is what turns the CP ranks'
        # token shares into the full gradient (context_parallel.py)
        if mode == "none":
            raise ValueError("train.context_parallel > 1 needs train.dist ddp or fsdp")
        enable_context_parallel(module, info.cp_group)
    if not info.distributed or mode == "none":
        return module
    if mode == "ddp":
        ids = [info.local_rank] if info.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # FSDP2
    kw = {}
    if precision == "bf16":
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                               output_dtype=torch.float32)
    if hasattr(module, "text_kv_in_blocks"):
        module.text_kv_in_blocks = True   # block parameters exist only inside the block's forward
    for blk in getattr(module, "blocks", []):
        fully_shard(blk, **kw)
    fully_shard(module, **kw)
    return module


def is_sharded(m: nn.Module) -> bool:
    """True when ``m`` holds FSDP2 (DTensor) parameters."""
    from torch.distributed.tensor import DTensor
    return any(isinstance(p, DTensor) for p in m.parameters())


def full_state_dict(m: nn.Module) -> dict[str, torch.Tensor]:
    """``m.state_dict()`` with FSDP2 shards gathered into full CPU tensors (collective when
    sharded: call it on every rank), plain detached CPU tensors otherwise."""
    from torch.distributed.tensor import DTensor
    out = {}
    for k, v in m.state_dict().items():
        if isinstance(v, DTensor):
            v = v.full_tensor()
        out[k] = v.detach().cpu()
    return out


def load_full_state_dict(m: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Load a full (unsharded) state dict into ``m``, strictly; when ``m`` is FSDP2-sharded each rank
    keeps its own shard of it (every rank passes the full dict)."""
    if is_sharded(m):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        set_model_state_dict(m, sd, options=StateDictOptions(full_state_dict=True, strict=True))
    else:
        m.load_state_dict(sd, strict=True)


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` that also accepts a mix of FSDP2 (DTensor) and plain
    parameters in one list (the teacher stage clips the sharded DiT together with the replicated
    text encoder; torch's version raises "mixed torch.Tensor and DTensor" there). Returns the total
    norm over all parameters (the global norm of the sharded ones)."""
    from torch.distributed.tensor import DTensor
    params = [p for p in params if p.grad is not None]
    sharded = [p.grad for p in params if isinstance(p.grad, DTensor)]
    plain = [p.grad for p in params if not isinstance(p.grad, DTensor)]
    if not sharded or not plain:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    n_sh = torch.nn.utils.get_total_norm(sharded)
    n_sh = n_sh.full_tensor() if isinstance(n_sh, DTensor) else n_sh
    total = torch.sqrt(n_sh.float() ** 2 + torch.nn.utils.get_total_norm(plain).float() ** 2)
    coef = min(1.0, float(max_norm) / (float(total) + 1e-6))
    with torch.no_grad():
        for g in sharded + plain:
            g.mul_(coef)
    return total


def unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def no_sync_ctx(m: nn.Module):
    """Factory of contexts that skip gradient synchronisation for one backward (or None)."""
    if isinstance(m, nn.parallel.DistributedDataParallel):
        return m.no_sync
    if hasattr(m, "set_requires_gradient_sync"):  # FSDP2 module
        @contextlib.contextmanager
        def ctx():
            m.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                m.set_requires_gradient_sync(True)
        return ctx
    return None


def rank_slice(global_batch: int, info: DistInfo) -> slice:
    """This rank's rows of a global batch (``global_batch`` divisible by the data-parallel size:
    the world size, or world / context-parallel degree; CP ranks share their rows)."""
    if global_batch % info.dp_size:
        raise ValueError(f"global batch {global_batch} is not divisible by the data-parallel size {info.dp_size} "
                         f"(world size {info.world_size}, context parallel {info.cp})")
    b = global_batch // info.dp_size
    return slice(info.dp_rank * b, (info.dp_rank + 1) * b)


def all_reduce_mean(x: float, info: DistInfo) -> float:
    """Mean of a python float over ranks (identity in one process)."""
    if not info.distributed:
        return float(x)
    t = torch.tensor([float(x)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_module(m: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (for modules not wrapped in DDP)."""
    if not info.distributed:
        return
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, 0)
