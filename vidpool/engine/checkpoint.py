"""Checkpoints: ``OUTPUT_DIR/checkpoints/checkpoint_epoch_{epoch:05d}.pyth``, written atomically.

A checkpoint is a plain dict: model, optimizer and grad-scaler states, the number of completed
epochs, the RNG states (python, numpy, torch, CUDA), the resolved config as YAML, and ``engine``
(state that later parts of the engine add, e.g. multigrid). Model keys never carry DDP's
``module.`` prefix, so single-process and distributed runs load each other's files. Everything is
stored as tensors, numbers and strings, so ``torch.load(weights_only=True)`` reads it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import re
from typing import List, Optional

import numpy as np
import torch
from torch import nn

log = logging.getLogger("vidpool.engine")

PATTERN = re.compile(r"checkpoint_epoch_(\d{5})\.pyth$")


def checkpoint_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def checkpoint_path(output_dir: str, epoch: int) -> str:
    return os.path.join(checkpoint_dir(output_dir), f"checkpoint_epoch_{epoch:05d}.pyth")


def list_checkpoints(output_dir: str) -> List[str]:
    """Checkpoint files of a run, oldest first (temporary files of interrupted writes excluded)."""
    folder = checkpoint_dir(output_dir)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if PATTERN.match(f)]


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def strip_prefix(state: dict) -> dict:
    """Model state without DDP's ``module.`` prefix (as written by other tools)."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"python": [version, list(internal), gauss_next], "numpy": [kind, torch.from_numpy(keys.astype(np.int64)),
             pos, has_gauss, gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename: a kill mid-write leaves
    the temporary file (ignored by ``list_checkpoints``), never a truncated checkpoint; a write that
    fails with an exception removes it. An existing ``path`` stays intact until the rename."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # a failed write (full disk, quota, interrupt) leaves neither a partial file nor litter
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        raise RuntimeError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise RuntimeError(f"{path} is not a vidpool checkpoint (no 'model' entry)")
    state["model"] = strip_prefix(state["model"])
    return state


def latest_checkpoint(output_dir: str) -> Optional[dict]:
    """The newest checkpoint of the run that loads, with its path under ``path``; damaged files are
    reported and passed over."""
    for path in reversed(list_checkpoints(output_dir)):
        try:
            state = load_checkpoint(path)
        except RuntimeError as e:
            log.warning("skipping damaged checkpoint: %s", e)
            continue
        state["path"] = path
        return state
    return None
