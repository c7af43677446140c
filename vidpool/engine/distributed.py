"""Process groups for torchrun: gloo on CPU, nccl on CUDA; the same code runs single-process.

``torchrun --nproc_per_node N -m vidpool train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address; without them there is one process and no process group.
"""
from __future__ import annotations

import logging
import os
from typing import List

import torch
import torch.distributed as dist


def choose_device(preference: str = "auto") -> torch.device:
    """CUDA (this process's local GPU) when available and not refused, else CPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"DEVICE must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("DEVICE is cuda but no CUDA device is available (use DEVICE auto or cpu)")
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def check_softpool_backend(cfg, device: torch.device) -> None:
    """A SoftPool model on a GPU needs the extension's CUDA kernels: with ``DEVICE cuda`` their absence
    is an error, with ``DEVICE auto`` a loud warning (the pure-PyTorch fallback is several times
    slower and uses more memory); both say what to rebuild."""
    if device.type != "cuda" or "softpool" not in (cfg.MODEL.POOL, cfg.MODEL.HEAD_POOL):
        return
    from vidpool import ops

    if ops.backend(device) == "cuda":
        return
    message = ("this SoftPool model runs on CUDA but vidpool._C has no CUDA kernels (built without nvcc, with "
               "VIDPOOL_CUDA=0, or for a torch without CUDA); rebuild on a machine with the CUDA toolkit that matches "
               "torch.version.cuda: `pip install --no-build-isolation -e .` (README: Install)")
    if cfg.DEVICE == "cuda":
        raise RuntimeError(message)
    logging.getLogger("vidpool.engine").warning("%s. Training goes on with the slow pure-PyTorch SoftPool "
                                                "(DEVICE cuda makes this an error).", message)


def init(device: torch.device) -> None:
    """Join the process group torchrun describes (no-op for a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(values: List[float], device: torch.device) -> List[float]:
    """Element-wise sums over processes (float64)."""
    if world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_max(values: List[float], device: torch.device) -> List[float]:
    """Element-wise maxima over processes (float64)."""
    if world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def gather_to_main(obj) -> list:
    """Every process's ``obj`` (picklable) in rank order on rank 0; None on the other ranks."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj):
    """Rank 0's ``obj`` (picklable) on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
