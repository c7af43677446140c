"""Interruptions that lose at most minutes: checkpoints inside an epoch, a checkpoint on SIGTERM /
SIGUSR1 (what SLURM sends before a time limit or preemption), per-process RNG states, and run
outputs (stats.jsonl, TensorBoard) without duplicated epochs after a resume.

A checkpoint records how far training got: ``epoch`` completed epochs plus ``iteration`` steps of
the next one, the epoch's running sums (loss, correct, clips, skipped) and every process's RNG
states. The batch order and each sample's augmentation are functions of (seed, epoch, position), so
a run resumed at step k of an epoch trains on exactly the batches an uninterrupted run trains on
from step k, and ends with the same weights.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Optional

import torch

from ..data import workers
from . import checkpoint as ckpt
from . import distributed as dist
from .run_log import read_stats

log = logging.getLogger("vidpool.engine")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request after writing a checkpoint; start again to resume
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


class Preempted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 (``signum``) after writing ``path``; testing stopped
    (``path`` None: nothing to resume, a new start tests from the beginning)."""

    def __init__(self, path: Optional[str], signum: int):
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after writing {path}; start the same command again to resume from it"
                         if path else f"testing stopped by {name} before it finished; nothing was written, start "
                         "the same command again to test")
        self.path, self.signum = path, signum


class StopNow(Exception):
    """A stop was requested in the middle of a pass that is not worth finishing first (validation,
    precise BN, testing); raised on every process after the same batch."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequests:
    """While active, SIGTERM and SIGUSR1 only set a flag; ``requested`` tells every process whether
    any of them got one (so all stop after the same step). A no-op outside the main thread."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if not self.signum:
            log.warning("%s received: stopping after this step or batch (a checkpoint first when training)",
                        signal.Signals(signum).name)
        self.signum = signum
        workers.set_stopping(True)  # the loader workers took the same signal if it went to the whole job

    def __exit__(self, *exc):
        if self.signum:
            workers.set_stopping(False)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def requested(self, device: torch.device) -> int:
        """The signal number any process received (0: none); a collective call under DDP."""
        if dist.world_size() == 1:
            return self.signum
        flag = torch.tensor([self.signum], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())


def stoppable(batches, count: int, stop: Optional["StopRequests"], device: torch.device):
    """Yield from ``batches`` (``count`` of them on this process) and raise ``StopNow`` before the
    next one once any process got a stop request. Under DDP the processes may hold different numbers
    of batches (evaluation is sharded without padding); every process asks as often as the one with
    the most, so the collective calls match."""
    if stop is None:
        yield from batches
        return
    total = count if dist.world_size() == 1 else int(max(dist.all_reduce_max([count], device)))
    asked = 0
    for batch in batches:
        asked += 1
        signum = stop.requested(device)
        if signum:
            raise StopNow(signum)
        yield batch
    for _ in range(total - asked):
        signum = stop.requested(device)
        if signum:
            raise StopNow(signum)


def agreed_checkpoint(output_dir: str, set_aside: bool = False) -> Optional[dict]:
    """The run's newest good checkpoint, the same on every process (a collective call): rank 0 picks
    it (with ``set_aside``, renaming damaged files, see ``latest_checkpoint``) and names it to the others, which read that file, trying again
    when it fails (a file system whose view lags on another node), and never fall back to an older
    file on their own."""
    state = ckpt.latest_checkpoint(output_dir, set_aside) if dist.is_main() else None
    path = dist.broadcast_from_main(state["path"] if state else None)
    if path is None or dist.is_main():
        return state
    try:
        state = ckpt.read_checkpoint(path, retry_damaged=True)
    except (OSError, RuntimeError) as e:
        raise RuntimeError(f"rank {dist.rank()} cannot read {path}, which rank 0 read and resumes from ({e}); "
                           "every process must see the same OUTPUT_DIR (a file system shared by all nodes)") from None
    state["path"] = path
    return state


def rng_states(own: Optional[dict] = None) -> Optional[list]:
    """Every process's RNG states (now, or ``own``: taken earlier) on rank 0 (None elsewhere); a
    collective call."""
    return dist.gather_to_main(ckpt.rng_state() if own is None else own)


def own_entry(state: dict, key: str):
    """This process's entry of a per-process list in a checkpoint (None when the checkpoint was
    written by another number of processes)."""
    entries = state.get(key) or []
    if len(entries) != dist.world_size():
        if entries:
            log.warning("%s: %s written by %d process(es), this run has %d", state.get("path"), key, len(entries),
                        dist.world_size())
        return None
    return entries[dist.rank()]


def restore_rng(state: dict) -> None:
    """This process's RNG states from a checkpoint: its own entry when the checkpoint has one per
    process for the same number of processes, else rank 0's (with a warning)."""
    own = own_entry(state, "rng_per_rank")
    ckpt.set_rng_state(own if own is not None else state["rng"])


def repair_outputs(output_dir: str, done_epochs: int, last_record: Optional[dict], done_steps: int = 0) -> None:
    """Before a resumed run writes anything: stats.jsonl keeps the epoch records up to ``done_epochs``
    and the iteration records up to step ``done_steps`` (those of steps trained again go; the
    checkpoint's own epoch record is put back if the kill came before it was written) and every
    other record."""
    path = os.path.join(output_dir, "stats.jsonl")
    rows = read_stats(path)  # a line cut by the kill is skipped (and, below, dropped from the file)
    cut = False
    if os.path.isfile(path):
        with open(path) as f:
            cut = sum(1 for line in f if line.strip()) != len(rows)

    def keep(r):
        kind = r.get("kind", "epoch")
        if kind == "epoch":
            return r.get("epoch", 0) <= done_epochs
        return kind != "iteration" or r.get("step", 0) <= done_steps

    kept = [r for r in rows if keep(r)]
    if last_record and not any(r.get("kind", "epoch") == "epoch" and r.get("epoch") == last_record["epoch"]
                               for r in kept):
        kept.append(last_record)
    if kept != rows or cut:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, path)
