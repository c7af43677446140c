"""Run logging: console + ``OUTPUT_DIR/log.txt``, ``stats.jsonl`` (one JSON object per epoch),
TensorBoard scalars under ``OUTPUT_DIR/runs``, ``bad_videos.txt`` (every unreadable video with the
reason), and progress (a tqdm bar with ETA on an interactive terminal, plain lines every LOG_PERIOD
iterations otherwise). Only rank 0 writes."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Iterable, Optional

log = logging.getLogger("vidpool")


def setup_logging(output_dir: Optional[str], main: bool) -> None:
    """Console and log file handlers on the ``vidpool`` logger (non-main ranks: warnings only)."""
    for h in list(log.handlers):
        if getattr(h, "_vidpool", False):
            log.removeHandler(h)
            h.close()
    log.setLevel(logging.INFO if main else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if main and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_dir, "log.txt")))
    for h in handlers:
        h.setFormatter(fmt)
        h._vidpool = True
        log.addHandler(h)


class StatsWriter:
    """``stats.jsonl`` lines and TensorBoard scalars (rank 0 only; a no-op elsewhere)."""

    def __init__(self, output_dir: str, main: bool, tensorboard: bool, purge_step: Optional[int] = None):
        """``purge_step``: a resumed run's first epoch; TensorBoard drops the events a killed run wrote
        from there on, so no epoch shows twice."""
        self.path = os.path.join(output_dir, "stats.jsonl") if main else None
        self.tb = None
        if main and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(output_dir, "runs"), purge_step=purge_step)

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            step = record.get("epoch", 0)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tb.add_scalar(key, value, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def progress(iterable: Iterable, total: int, desc: str, period: int, main: bool):
    """Yield from ``iterable`` with a progress bar (interactive terminal) or periodic log lines."""
    if main and sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False)
        return
    start = time.time()
    for i, item in enumerate(iterable, start=1):
        yield item
        if main and period > 0 and (i % period == 0 or i == total):
            elapsed = time.time() - start
            eta = elapsed / i * (total - i)
            log.info("%s: %d/%d iterations, %.1f s, ETA %.0f s", desc, i, total, elapsed, eta)


class BadVideoLog:
    """``OUTPUT_DIR/bad_videos.txt``: one ``path<TAB>reason`` line per video that could not be used,
    the first reason seen, over the whole run (a resumed run adds to it). ``add`` collects entries
    from batches; ``flush`` (every process calls it) gathers them on rank 0, which appends the new ones."""

    def __init__(self, output_dir: str, main: bool, gather):
        self.path = os.path.join(output_dir, "bad_videos.txt") if main else None
        self.gather, self.pending, self.known = gather, {}, set()
        if self.path and os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.known = {line.split("\t", 1)[0] for line in f if line.strip()}

    def add(self, entries) -> None:
        for path, reason in entries:
            self.pending.setdefault(path, reason)

    def flush(self) -> int:
        """Write what every process found since the last flush; returns how many files were new."""
        parts, self.pending = self.gather(self.pending), {}
        if self.path is None:
            return 0
        new = {}
        for part in parts:
            for path, reason in part.items():
                if path not in self.known and path not in new:
                    new[path] = " ".join(reason.split())
        if new:
            with open(self.path, "a", encoding="utf-8") as f:
                f.writelines(f"{path}\t{reason}\n" for path, reason in sorted(new.items()))
            self.known.update(new)
            log.warning("%d more unreadable video(s) listed in %s", len(new), self.path)
        return len(new)
