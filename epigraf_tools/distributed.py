"""This process's place in a ``torchrun`` job, and sharding seeds across such processes (one GPU each).

``DistContext`` and ``context_from_env`` are the one definition of the distributed context, shared
by the toolkit and training (``training/distributed.py`` adds the NCCL/gloo process group of a
training run and gradient averaging on top). Like errors/atomic/devices/seeds this is a base
module: it imports nothing from the toolkit but ``errors``, so training may use it.

Rank r of W renders ``seeds[r::W]``. Because every seed's noise comes from its own generator
(see rendering.py), each output file is identical to what a single process writes. Rank 0 writes
what needs every seed (grids) after a barrier.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from .errors import EpigrafError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # True when this code joined the process group and so must leave it (training's setup/teardown).
    owns_group: bool = field(default=False, compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1


def context_from_env(env: dict[str, str] | None = None) -> DistContext:
    """Read RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them."""
    env = dict(os.environ) if env is None else env
    try:
        rank = int(env.get("RANK", "0"))
        world = int(env.get("WORLD_SIZE", "1"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise EpigrafError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise EpigrafError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistContext(rank, world, local)


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items rank ``rank`` of ``world_size`` handles: items[rank::world_size]."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise EpigrafError(f"rank must lie in [0, world_size), got rank {rank} of {world_size}")
    return list(items[rank::world_size])


def device_for_rank(device: torch.device, ctx: DistContext) -> torch.device:
    """One GPU per process: cuda -> cuda:LOCAL_RANK under torchrun."""
    if device.type == "cuda" and ctx.distributed and device.index is None:
        return torch.device("cuda", ctx.local_rank % max(1, torch.cuda.device_count()))
    return device


@contextlib.contextmanager
def process_group(ctx: DistContext) -> Iterator[None]:
    """Join the torchrun process group (gloo: it only carries barriers) for the duration of a command."""
    import torch.distributed as dist

    owned = False
    if ctx.distributed and dist.is_available() and not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise EpigrafError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are unset: launch with torchrun")
        dist.init_process_group("gloo", rank=ctx.rank, world_size=ctx.world_size)
        owned = True
    try:
        yield
    finally:
        if owned:
            dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op when running alone)."""
    import torch.distributed as dist

    if ctx.distributed and dist.is_available() and dist.is_initialized():
        dist.barrier()
