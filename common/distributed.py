"""Many processes under ``torchrun``: process-group setup, a sampler that shards each epoch's
permutation between training ranks, and :class:`Shard`, which splits a run's image ids between
processes (on one machine or many). A single process (no ``WORLD_SIZE``) needs nothing of this."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (``local_*``: among those of its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_environment(cls) -> "Shard":
        """Read torchrun's variables; with more than one process, join a gloo process group (used
        for barriers only, so it serves CPU and GPU runs alike)."""
        env = os.environ
        shard = cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)),
                    int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))))
        if shard.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        return shard

    def take(self, ids: list[str]) -> list[str]:
        """This process's share of ``ids``: every ``world``-th one from position ``rank``."""
        return list(ids[self.rank :: self.world])

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def device(self, name: str) -> str:
        """A GPU device of this machine for this process (processes share GPUs round robin)."""
        if name.startswith("cuda") and self.world > 1 and torch.cuda.device_count() > 1:
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return name

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class ShardedShuffle(Sampler[int]):
    """A seeded permutation per epoch, split between ranks without padding: every sample is seen
    exactly once per epoch across all ranks (DistributedSampler repeats samples to pad)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1, seed: int = 0) -> None:
        self.n, self.rank, self.world, self.seed, self.epoch = n, rank, world, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.n, generator=generator)[self.rank :: self.world].tolist()

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def setup_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu" if device_name == "auto" else device_name)
