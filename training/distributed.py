"""Multi-process training through torchrun: one process per GPU (NCCL) or per CPU worker (gloo).

``torchrun --nproc_per_node N -m epigraf_tools.cli.app train ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; ``setup()`` reads them (``epigraf_tools.distributed.context_from_env``: the context type
is the toolkit base's ``DistContext``, shared with sampling) and joins the process group. Gradients are averaged across
ranks by one all-reduce of the flattened gradients per optimiser step (as the official loop does,
rather than wrapping modules in DistributedDataParallel: G and D alternate as the trained module
and their parameters are toggled trainable per phase, which DDP's hooks do not follow). Only rank 0
writes files.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.distributed as dist

from epigraf_tools.distributed import DistContext, barrier, context_from_env

__all__ = ["DistContext", "all_reduce_sum", "average_gradients", "barrier", "setup", "teardown"]


def setup(device_type: str) -> DistContext:
    """Join the process group described by torchrun's environment (a no-op for one process)."""
    ctx = context_from_env()
    if not ctx.distributed:
        return DistContext()
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
        created = True
    return replace(ctx, rank=dist.get_rank(), world_size=dist.get_world_size(), owns_group=created)


def teardown(info: DistContext) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter], info: DistContext) -> None:
    """Average .grad across ranks and replace NaN/Inf (nan -> 0, +-inf -> +-1e5), in one flat buffer."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if info.distributed:
        dist.all_reduce(flat)
        flat /= info.world_size
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad = g.reshape(p.shape)


def all_reduce_sum(values: torch.Tensor, info: DistContext) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(values)
    return values
