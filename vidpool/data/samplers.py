"""Batch sampling with a clip shape per batch.

``ClipBatchSampler`` wraps an index sampler (random, sequential or distributed) and yields batches
of ``(index, ClipShape, seed)`` triples. ``set_shape`` changes the shape and batch size of the batches it
yields from then on; ``set_cycle`` makes consecutive batches cycle through several (shape, batch
size) pairs (multigrid's short cycle). The shape travels with every index to the worker that decodes
it, so workers need no shared state and batches already queued keep the shape they were drawn with.
Every process cycles in the same order, so under DDP all processes train the same shape at the same
iteration.

The seed is the sample's own augmentation seed (clip position, scale, crop, flip), a function of
(sampler seed, epoch, position in the epoch) only: a run resumed at epoch e sees exactly the clips an
uninterrupted run sees, whatever the number of loader workers. Samplers without a seed (evaluation)
give None.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import torch
from torch.utils.data import DistributedSampler, Sampler

from .sampling import ClipShape


class ClipBatchSampler(Sampler):
    def __init__(self, sampler: Sampler, batch_size: int, shape: ClipShape, drop_last: bool = False,
                 seed: Optional[int] = None):
        self.sampler, self.drop_last, self.seed = sampler, drop_last, seed
        self.epoch, self._skip = 0, 0
        self.set_cycle([(shape, batch_size)])

    @property
    def shape(self) -> ClipShape:
        return self.cycle[-1][0]

    @property
    def batch_size(self) -> int:
        return self.cycle[-1][1]

    def set_shape(self, shape: ClipShape, batch_size: Optional[int] = None) -> None:
        self.set_cycle([(shape, self.batch_size if batch_size is None else batch_size)])

    def set_cycle(self, cycle: List[Tuple[ClipShape, int]]) -> None:
        """Batches from now on take these (shape, batch size) pairs in turn, starting with the first."""
        if not cycle:
            raise ValueError("set_cycle: no (shape, batch size) pairs")
        for _, size in cycle:
            if size < 1:
                raise ValueError(f"batch size must be >= 1, got {size}")
        self.cycle = [(shape, int(size)) for shape, size in cycle]

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch``: the order depends only on (seed, epoch), so a resumed run sees the
        epochs in the order an uninterrupted one would. The epoch also enters every sample's augmentation
        seed, so a sample gets a new crop, scale, flip and start each epoch."""
        self.epoch = int(epoch)
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        elif self.seed is not None and getattr(self.sampler, "generator", None) is not None:
            self.sampler.generator.manual_seed(self.seed + epoch)

    def sample_seed(self, position: int) -> Optional[int]:
        """The augmentation seed of the ``position``-th sample of the current epoch (None without a
        sampler seed). Unique for positions below 10**7 and epochs below 100003."""
        if self.seed is None:
            return None
        return (self.seed * 100_003 + self.epoch) * 10_000_019 + position

    def skip(self, batches: int) -> None:
        """The next pass over this sampler leaves out its first ``batches`` batches (a run resumed in
        the middle of an epoch); their indices are drawn but never decoded."""
        self._skip = int(batches)

    def __iter__(self) -> Iterator[List[Tuple[int, ClipShape, Optional[int]]]]:
        turn, batch, skip = 0, [], self._skip
        self._skip = 0
        for position, index in enumerate(self.sampler):
            # read every time: set_shape / set_cycle during an epoch apply to the batches drawn after it
            shape, size = self.cycle[turn % len(self.cycle)]
            batch.append((int(index), shape, self.sample_seed(position)))
            if len(batch) >= size:
                if turn >= skip:
                    yield batch
                turn, batch = turn + 1, []
        if batch and not self.drop_last and turn >= skip:
            yield batch

    def __len__(self) -> int:
        n, turn = len(self.sampler), 0
        sizes = [size for _, size in self.cycle]
        whole = sum(sizes)
        count, n = len(sizes) * (n // whole), n % whole  # whole cycles, then the partial one
        while n >= sizes[turn]:
            n -= sizes[turn]
            count, turn = count + 1, turn + 1
        return count + (1 if n and not self.drop_last else 0)


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
