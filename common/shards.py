"""How a dataset run's image ids are split between processes: :class:`Shard`, this process's place
among those of ``torchrun`` (on one machine or many) or of a run's local workers. torch loads only
when there is more than one process to synchronise."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (``local_*``: among those of its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_environment(cls) -> Shard:
        """Read torchrun's variables; with more than one process, join a gloo process group (used
        for barriers only, so it serves CPU and GPU runs alike)."""
        env = os.environ
        shard = cls(
            int(env.get("RANK", 0)),
            int(env.get("WORLD_SIZE", 1)),
            int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))),
        )
        if shard.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group(backend="gloo")
        return shard

    def take(self, ids: list[str]) -> list[str]:
        """This process's share of ``ids``: every ``world``-th one from position ``rank``."""
        return list(ids[self.rank :: self.world])

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def device(self, name: str) -> str:
        """A GPU device of this machine for this process (processes share GPUs round robin)."""
        if name.startswith("cuda") and self.world > 1:
            import torch

            if torch.cuda.device_count() > 1:
                return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return name

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
