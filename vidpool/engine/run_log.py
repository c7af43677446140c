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
from typing import Iterable, List, Optional

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


def read_stats(path: str, kind: Optional[str] = None, strict: bool = False) -> List[dict]:
    """The records of a run's ``stats.jsonl`` (``path``: the run's OUTPUT_DIR or the file itself; no
    file: ``[]``), in file order. ``kind``: only records of that kind ("epoch" records carry no kind
    or ``"kind": "epoch"``; others: "iteration", "test"). A line that is not JSON (a write cut by a
    kill or a full disk) is skipped with a warning naming it, or with ``strict`` is a ValueError."""
    file = os.path.join(path, "stats.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        return []
    rows = []
    with open(file) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if strict:
                    raise ValueError(f"{file}:{line_no}: not JSON ({e.msg})") from None
                log.warning("%s:%d: not JSON (%s; a write cut short?): line skipped", file, line_no, e.msg)
    if kind is not None:
        rows = [r for r in rows if r.get("kind", "epoch") == kind]
    return rows


class StatsWriter:
    """``stats.jsonl`` lines and TensorBoard scalars (rank 0 only; a no-op elsewhere)."""

    def __init__(self, output_dir: str, main: bool, tensorboard: bool, purge_step: Optional[int] = None):
        """``purge_step``: a resumed run's first epoch; TensorBoard drops the events a killed run wrote
        from there on, so no epoch shows twice."""
        self.path = os.path.join(output_dir, "stats.jsonl") if main else None
        self.tb = self.tb_iterations = None
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

    def write_iteration(self, record: dict, purge_step: Optional[int] = None) -> None:
        """An iteration record (``"kind": "iteration"``, ``step``: iterations since the run began):
        stats.jsonl, and TensorBoard scalars in ``runs/iterations`` (its own run, stepped by iteration)."""
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(dict(record, kind="iteration")) + "\n")
        if self.tb is not None:
            if self.tb_iterations is None:
                from torch.utils.tensorboard import SummaryWriter

                self.tb_iterations = SummaryWriter(os.path.join(self.tb.log_dir, "iterations"), purge_step=purge_step)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "iteration", "step"):
                    self.tb_iterations.add_scalar(key, value, record["step"])

    def close(self) -> None:
        for tb in (self.tb, self.tb_iterations):
            if tb is not None:
                tb.close()


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


class IterationLog:
    """Progress of a training epoch: loss, LR, data and step time, clips/s and ETA, as a tqdm bar on
    an interactive terminal (else a log line) and a ``stats.jsonl``/TensorBoard record, every
    ``period`` iterations (0: none). Values are means over the iterations since the last record."""

    def __init__(self, desc: str, total: int, period: int, main: bool, writer: Optional[StatsWriter] = None,
                 first_step: int = 0, purge_step: Optional[int] = None, window=None):
        """``window``: the steps since the last record when a run resumes in the middle of an epoch."""
        self.desc, self.total, self.period, self.main, self.writer = desc, total, period, main, writer
        self.step, self.purge_step, self.window = first_step, purge_step, [tuple(w) for w in window or []]
        self.bar = None
        if main and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)

    def update(self, done: int, epoch: int, loss: float, lr: float, clips: int, data_time: float,
               step_time: float) -> None:
        """After the step that completed ``done`` of ``total`` iterations."""
        self.step += 1
        self.window.append((loss, clips, data_time, step_time))
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", refresh=False)
            self.bar.refresh()
        if not (self.main and self.period > 0 and (done % self.period == 0 or done == self.total)):
            return
        n = len(self.window)
        seconds = sum(d + s for _, _, d, s in self.window)
        record = {"epoch": epoch + 1, "iteration": done, "step": self.step, "loss": sum(w[0] for w in self.window) / n,
                  "lr": lr, "data_time_s": sum(w[2] for w in self.window) / n,
                  "step_time_s": sum(w[3] for w in self.window) / n,
                  "clips_per_s": sum(w[1] for w in self.window) / max(seconds, 1e-9),
                  "eta_s": (self.total - done) * seconds / n}
        self.window = []
        if self.bar is None:
            log.info("%s [%d/%d] loss %.4f, lr %.4g, data %.3f s, step %.3f s, %.1f clips/s, ETA %.0f s", self.desc,
                     done, self.total, record["loss"], lr, record["data_time_s"], record["step_time_s"],
                     record["clips_per_s"], record["eta_s"])
        if self.writer is not None:
            self.writer.write_iteration(record, self.purge_step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
