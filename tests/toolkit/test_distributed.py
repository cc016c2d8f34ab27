"""epigraf_tools/distributed.py: the torchrun environment, sharding seeds, devices per rank, single-process no-ops."""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.distributed import DistContext, barrier, context_from_env, device_for_rank, process_group, shard
from epigraf_tools.errors import EpigrafError


def test_shard_and_context():
    assert shard([0, 1, 2, 3, 4], 1, 2) == [1, 3]
    assert context_from_env({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}) == DistContext(2, 4, 0)
    with pytest.raises(EpigrafError, match="RANK"):
        context_from_env({"RANK": "4", "WORLD_SIZE": "4"})


def test_alone_is_rank_0_of_1():
    ctx = context_from_env({})
    assert ctx == DistContext() and ctx.is_main and not ctx.distributed
    assert context_from_env({"RANK": "3", "WORLD_SIZE": "4"}).local_rank == 3  # LOCAL_RANK defaults to RANK


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RANK": "x"}, "must be integers"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1"),
    ],
)
def test_bad_environments_are_named(env, message):
    with pytest.raises(EpigrafError, match=message):
        context_from_env(env)


def test_shards_cover_every_item_once():
    items = list(range(11))
    shards = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == items and shards[2] == [2, 5, 8]
    with pytest.raises(EpigrafError, match="rank 3 of 3"):
        shard(items, 3, 3)


def test_device_for_rank():
    assert device_for_rank(torch.device("cpu"), DistContext(1, 2, 1)) == torch.device("cpu")
    assert device_for_rank(torch.device("cuda", 0), DistContext(1, 2, 1)) == torch.device("cuda", 0)  # explicit index
    if torch.cuda.device_count() >= 2:
        assert device_for_rank(torch.device("cuda"), DistContext(1, 2, 1)) == torch.device("cuda", 1)


def test_single_process_group_and_barrier_are_no_ops():
    import torch.distributed as dist

    with process_group(DistContext()):
        barrier(DistContext())
    assert not dist.is_initialized()


def test_several_processes_without_a_rendezvous_address_are_refused(monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(EpigrafError, match="MASTER_ADDR/MASTER_PORT"):
        with process_group(DistContext(0, 2, 0)):
            pass
