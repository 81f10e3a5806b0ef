"""This process's place in a training job: one process, or DistributedDataParallel under torchrun (NCCL on
GPUs, gloo on CPU)."""
from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the job (world 1 without torchrun)."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun job if there is one: NCCL with one GPU per process, else gloo on CPU."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(hours=2))
    return Dist(dist.get_rank(), world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def gather(place: Dist, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Concatenate each tensor over all ranks (unchanged in a single process)."""
    if place.world == 1:
        return list(tensors)
    out = []
    for t in tensors:
        parts = [torch.empty_like(t) for _ in range(place.world)]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.cat(parts))
    return out
