"""Batch sampling with a clip shape per batch.

``ClipBatchSampler`` wraps an index sampler (random, sequential or distributed) and yields batches
of ``(index, ClipShape)`` pairs. ``set_shape`` changes the shape and batch size of the batches it
yields from then on; the shape travels with every index to the worker that decodes it, so workers
need no shared state and batches already queued keep the shape they were drawn with.
"""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Tuple

import torch
from torch.utils.data import DistributedSampler, Sampler

from .sampling import ClipShape


class ClipBatchSampler(Sampler):
    def __init__(self, sampler: Sampler, batch_size: int, shape: ClipShape, drop_last: bool = False,
                 seed: Optional[int] = None):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.sampler, self.batch_size, self.shape, self.drop_last = sampler, int(batch_size), shape, drop_last
        self.seed = seed

    def set_shape(self, shape: ClipShape, batch_size: Optional[int] = None) -> None:
        self.shape = shape
        if batch_size is not None:
            if batch_size < 1:
                raise ValueError(f"batch size must be >= 1, got {batch_size}")
            self.batch_size = int(batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch``: the order depends only on (seed, epoch), so a resumed run sees the
        epochs in the order an uninterrupted one would."""
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        elif self.seed is not None and getattr(self.sampler, "generator", None) is not None:
            self.sampler.generator.manual_seed(self.seed + epoch)

    def __iter__(self) -> Iterator[List[Tuple[int, ClipShape]]]:
        batch = []
        for index in self.sampler:
            batch.append((int(index), self.shape))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class ShardSampler(Sampler):
    """Every ``world``-th index from ``rank``, in order, without the padding DistributedSampler adds:
    for evaluation, where a repeated sample would count twice. Shards differ in length by at most one."""

    def __init__(self, length: int, rank: int, world: int):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside 0..{world - 1}")
        self.length, self.rank, self.world = length, rank, world

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))


def distributed() -> Tuple[int, int]:
    """(rank, world size) of the running process group, or (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
