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
import time
from typing import List, Optional

import numpy as np
import torch
from torch import nn

from vidpool.weights.formats import read_file, strip_module

log = logging.getLogger("vidpool.engine")

PATTERN = re.compile(r"checkpoint_epoch_(\d{5})(?:_iter_(\d{6}))?\.pyth$")
TEMPORARY = re.compile(r"checkpoint_epoch_\d{5}(?:_iter_\d{6})?\.pyth\.tmp\d+$")


def checkpoint_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def checkpoint_path(output_dir: str, epoch: int, iteration: int = 0) -> str:
    """After ``epoch`` completed epochs; with ``iteration`` > 0, that many iterations into epoch
    ``epoch + 1`` (named after the epoch in progress: ``checkpoint_epoch_00003_iter_000500.pyth``)."""
    name = f"checkpoint_epoch_{epoch + 1:05d}_iter_{iteration:06d}.pyth" if iteration else \
        f"checkpoint_epoch_{epoch:05d}.pyth"
    return os.path.join(checkpoint_dir(output_dir), name)


def progress_of(path: str):
    """(completed epochs, iterations into the next epoch) a checkpoint file name stands for."""
    m = PATTERN.search(os.path.basename(path))
    epoch, iteration = int(m.group(1)), int(m.group(2) or 0)
    return (epoch - 1, iteration) if iteration else (epoch, 0)


def list_checkpoints(output_dir: str) -> List[str]:
    """Checkpoint files of a run, oldest first (temporary files of interrupted writes excluded)."""
    folder = checkpoint_dir(output_dir)
    if not os.path.isdir(folder):
        return []
    return sorted((os.path.join(folder, f) for f in os.listdir(folder) if PATTERN.match(f)), key=progress_of)


def remove_stale_temporaries(output_dir: str) -> int:
    """Delete the temporary files of checkpoint writes that were killed; returns how many."""
    folder, removed = checkpoint_dir(output_dir), 0
    if os.path.isdir(folder):
        for f in os.listdir(folder):
            if TEMPORARY.match(f):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, f))
                    removed += 1
    return removed


def prune_checkpoints(output_dir: str, keep_last: int, keep_period: int, written: Optional[str] = None) -> List[str]:
    """Keep ``written`` (the checkpoint just written: the newest good one, whatever the names of
    others say), the newest checkpoint, the ``keep_last`` newest end-of-epoch ones (0: all) and every
    end-of-epoch one whose epoch is a multiple of ``keep_period`` (0: none); other mid-epoch
    checkpoints go. Returns the removed paths."""
    paths = list_checkpoints(output_dir)
    if not paths:
        return []
    epochs = [p for p in paths if progress_of(p)[1] == 0]
    keep = {paths[-1], written}
    keep |= set(epochs if keep_last <= 0 else epochs[-keep_last:])
    if keep_period > 0:
        keep |= {p for p in epochs if progress_of(p)[0] % keep_period == 0}
    removed = [p for p in paths if p not in keep]
    for p in removed:
        with contextlib.suppress(OSError):
            os.remove(p)
    return removed


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


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


READ_ATTEMPTS, READ_DELAY_S = 5, 1.0  # a read that fails is tried again after 1, 2, 4, 8 s


def load_checkpoint(path: str) -> dict:
    """A checkpoint's state. OSError when the file cannot be read (missing, an I/O error: perhaps
    passing), RuntimeError when its content is damaged or not a vidpool checkpoint."""
    try:
        state = read_file(path)  # says what a file that is no checkpoint is (empty, truncated, a web page)
    except (ValueError, RuntimeError) as e:
        raise RuntimeError(str(e)) from None
    if not isinstance(state, dict) or "model" not in state:
        raise RuntimeError(f"{path} is not a vidpool checkpoint (no 'model' entry)")
    state["model"] = strip_module(state["model"])
    return state


def read_checkpoint(path: str, retry_damaged: bool = False) -> dict:
    """``load_checkpoint`` with READ_ATTEMPTS tries for read errors (and, with ``retry_damaged``,
    for content that looks damaged: another node's view of a file just written may lag behind)."""
    for attempt in range(READ_ATTEMPTS):
        try:
            return load_checkpoint(path)
        except OSError as e:
            failure = e
        except RuntimeError as e:
            if not retry_damaged:
                raise
            failure = e
        if attempt + 1 < READ_ATTEMPTS:
            log.warning("%s; trying again in %.0f s", failure, READ_DELAY_S * 2 ** attempt)
            time.sleep(READ_DELAY_S * 2 ** attempt)
    raise failure


def latest_checkpoint(output_dir: str, set_aside: bool = False) -> Optional[dict]:
    """The newest checkpoint of the run that loads, with its path under ``path``. A damaged file is
    reported and passed over (with ``set_aside``, renamed to ``*.damaged`` so that it is never taken
    for the newest again); a file that cannot be read (I/O error) after READ_ATTEMPTS tries is an
    error, not a reason to take an older one."""
    for path in reversed(list_checkpoints(output_dir)):
        try:
            state = read_checkpoint(path)
        except RuntimeError as e:
            if set_aside:
                with contextlib.suppress(OSError):
                    os.replace(path, path + ".damaged")
                    log.warning("damaged checkpoint set aside as %s.damaged: %s", os.path.basename(path), e)
                    continue
            log.warning("skipping damaged checkpoint: %s", e)
            continue
        state["path"] = path
        return state
    return None


def resolve_weights_path(path: str, key: str) -> str:
    """``path`` itself when it is a file; for a run folder (an OUTPUT_DIR, or its checkpoints/ folder)
    its newest end-of-epoch checkpoint, logged under ``key`` so the user sees which file was taken."""
    if not os.path.isdir(path):
        return path
    run = os.path.dirname(path.rstrip(os.sep)) if os.path.basename(path.rstrip(os.sep)) == "checkpoints" else path
    finished = [p for p in list_checkpoints(run) if progress_of(p)[1] == 0]
    if not finished:
        raise FileNotFoundError(f"{key}: the folder {path} holds no checkpoint "
                                f"({checkpoint_dir(run)}/checkpoint_epoch_*.pyth); train that run first or name a file")
    log.info("%s is a run folder: taking its last checkpoint %s", key, finished[-1])
    return finished[-1]


def check_compatible(state: dict, cfg, path: str, keys=None) -> None:
    """Raise when the config stored in a checkpoint names another model than ``cfg`` does (a SoftPool
    checkpoint tested as a max-pool model would give wrong numbers without any error)."""
    stored = state.get("cfg")
    if not stored:
        return
    from vidpool.config import load_cfg_string
    from vidpool.weights.build import MODEL_KEYS, model_value

    theirs = load_cfg_string(stored)
    keys = [f"MODEL.{k}" for k in MODEL_KEYS] if keys is None else keys
    differ = [f"{key} {theirs.MODEL[key[6:]]!r} in the checkpoint, {cfg.MODEL[key[6:]]!r} in this config"
              for key in keys if model_value(theirs, key[6:]) != model_value(cfg, key[6:])]
    if differ:
        from vidpool.config.check import ConfigError

        raise ConfigError(f"{path} was trained as another model: " + "; ".join(differ) +
                         ". Use the config it was trained with (its copy is in its run's config.yaml)")
