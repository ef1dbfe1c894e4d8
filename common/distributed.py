"""Many processes under ``torchrun`` in training: process-group setup and a sampler that shards
each epoch's permutation between training ranks (:class:`common.shards.Shard` splits a dataset
run's image ids). A single process (no ``WORLD_SIZE``) needs nothing of this."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


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
