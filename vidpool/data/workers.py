"""Loader workers and the signals a scheduler sends to a whole job.

SLURM's ``scancel`` and time limit (and a kill of the process group) send SIGTERM to every process of
a job: the training process and its DataLoader workers. The training process answers it with a
checkpoint after the current step (``vidpool.engine.resume.StopRequests``), and it still needs its
workers for that: the step in progress may wait on a batch, and a signal during validation or
precise BN leaves the rest of that pass to load. A worker killed by the signal would end the run
with "DataLoader worker ... killed by signal" before the checkpoint.

So a worker keeps loading after the SIGTERM that reaches it together with the training process's
own: it waits (up to ``PATIENCE_S``) until the training process has seen the signal too, and then
goes on until the loader shuts it down as usual. Every other SIGTERM ends the worker:
- at interpreter exit (multiprocessing's exit handler terminates the workers still alive and waits
  for them) and on a second SIGTERM: at once, with exit status 0, as torch's own worker handler does
  for its parent's SIGTERM;
- when its training process has gone (a run without a stop handler dies of the signal): at once;
- when the training process does not take a stop request within ``PATIENCE_S`` (a SIGTERM sent to a
  worker alone; torch terminating a worker that did not stop when asked): the worker dies of the
  signal then, and torch reports it where it still watches the worker.
SIGUSR1 (SLURM's ``--signal`` warning) is ignored by workers: the training process answers it, and
nothing uses it to end a worker.

All of this holds from a worker's first instruction, whatever the start method: ``Loader`` starts
its workers with SIGTERM and SIGUSR1 blocked in the starting thread. A new process inherits the
block through fork and exec (and so does the forkserver process when this starts it, and every
worker it forks), so a signal sent while a spawned worker is still importing waits, pending, until
``worker_init_fn`` has installed the handlers above and lets it through. Without it, a worker
started with spawn or forkserver runs with the default actions until then, and SIGTERM or SIGUSR1
kills it. (A forkserver that something else started earlier, without the block, forks workers
without it; vidpool starts its own when its first loader starts workers.)
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import multiprocessing
import multiprocessing.util  # noqa: F401  (its exit handler must be registered before ours, see below)
import os
import random
import signal
import threading
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

RUNNING, STOPPING, EXITING = 0, 1, 2
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))
PATIENCE_S = 30.0  # how long a signalled worker waits for the training process to take the same signal

# What the training process is doing, in shared memory: its workers read it in their signal handler.
_state = multiprocessing.RawValue(ctypes.c_int, RUNNING)


def set_stopping(stopping: bool) -> None:
    """The training process has taken a stop request (SIGTERM/SIGUSR1) and will checkpoint and end,
    or has finished with it."""
    _state.value = STOPPING if stopping else RUNNING


def _exiting() -> None:
    _state.value = EXITING


# atexit runs its functions last-registered first: this one runs before multiprocessing's exit
# handler, which sends SIGTERM to the workers still alive and then waits for them to end.
atexit.register(_exiting)


class _TermHandler:
    def __init__(self, state):
        self.state, self.count, self.parent = state, 0, os.getppid()

    def __call__(self, signum, frame) -> None:
        self.count += 1
        deadline = time.monotonic() + PATIENCE_S
        while self.count == 1 and time.monotonic() < deadline and os.getppid() == self.parent:
            if self.state.value == STOPPING:
                return  # the training process is stopping on this signal: keep loading for it
            if self.state.value == EXITING:
                break
            time.sleep(0.01)
        if self.count > 1 or self.state.value == EXITING:
            os._exit(0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _init_worker(state, worker_id: int) -> None:
    # torch seeds each worker (base seed + id); python and numpy follow from it
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)
    signal.signal(signal.SIGTERM, _TermHandler(state))  # replaces torch's worker handler (set before this)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # the signals held since the process started come now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def worker_init():
    """The ``worker_init_fn`` of every vidpool loader: seeds, and the signal handling above (the
    shared state travels with it, so this works with any start method)."""
    return functools.partial(_init_worker, _state)


@contextlib.contextmanager
def signals_held(start_method: str = "fork"):
    """SIGTERM and SIGUSR1 wait (blocked, not lost) in this thread while the block runs; processes
    started in it inherit the block (see the module's text). A no-op outside the main thread.

    Before spawn and forkserver start anything, multiprocessing starts its resource tracker (one
    process for the job's shared memory), and that unblocks SIGTERM in the calling thread when done
    (it blocks SIGINT and SIGTERM for the tracker's start and then unblocks them, whatever the mask
    was before). So the tracker starts here, with both signals held: it ignores SIGTERM itself and
    keeps SIGUSR1 blocked for good (a SIGUSR1 to the whole job would otherwise kill it), and the
    block is put back after it."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        if start_method in ("spawn", "forkserver"):
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()  # a no-op when it runs already
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class Loader(DataLoader):
    """A DataLoader whose worker processes start with the stop signals held (``signals_held``);
    give it ``worker_init_fn=worker_init()``, which releases them."""

    def _get_iterator(self):
        if self.num_workers == 0:
            return super()._get_iterator()
        context = self.multiprocessing_context
        with signals_held(context.get_start_method() if context is not None else multiprocessing.get_start_method()):
            return super()._get_iterator()
