"""Pre-flight check of a dataset split (``vidpool check-data``): open every video once, in worker
processes that a crashing or hanging decoder cannot take the scan down with, and report what training
would meet.

Each distinct video file is probed (container header: frame rate, frame count, size) and its first
frame is decoded: reading headers and one frame, not whole videos. A record is then ``ok``, or
``missing``, ``unreadable`` (the reason), ``crashed`` (its decoder killed the worker: the signal),
``timeout`` (no answer within the per-file limit) or ``too_short`` (shorter than the record's
segment end or than one clip). Too-short videos are usable (DATA.SHORT_CLIPS pads them) and are
only reported; the cleaned annotation files leave out the other problems.
"""
from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from .datasets.base import unreadable_reason
from .decoding import decode_frames, probe

log = logging.getLogger("vidpool.data")

PROBLEMS = ("missing", "unreadable", "crashed", "timeout")  # left out of the cleaned annotations


def check_video(path: str, backend: str = "pyav") -> dict:
    """Header and first frame of one video: {"status": "ok" | "missing" | "unreadable", ...}."""
    if not os.path.isfile(path):
        return {"status": "missing", "reason": "no such file"}
    try:
        info = probe(path, backend)
        if info.num_frames <= 0 or info.fps <= 0 or info.width <= 0 or info.height <= 0:
            raise ValueError(f"stream reports {info.num_frames} frames at {info.fps} fps, {info.width}x{info.height}")
        frame = decode_frames(path, [0], backend)
        if frame.shape[0] != 1 or min(frame.shape[1:3]) <= 0:
            raise ValueError(f"first frame decoded as {tuple(frame.shape)}")
    except Exception as e:  # noqa: BLE001 - any failure is this video's
        return {"status": "unreadable", "reason": unreadable_reason(path, e)}
    return {"status": "ok", "fps": info.fps, "frames": info.num_frames, "width": info.width, "height": info.height}


def _worker(conn, backend: str, check) -> None:
    """Check the videos the parent sends, one at a time, until it sends None."""
    import av  # noqa: F401 - imported before the first file, so the per-file time limit measures decoding
    if backend == "decord":
        import decord  # noqa: F401
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            return
        index, path = task
        conn.send((index, check(path, backend)))


def scan_videos(paths: Sequence[str], workers: int = 4, backend: str = "pyav", timeout: float = 120.0,
                on_result: Optional[Callable[[int, dict], None]] = None, check: Callable = check_video) -> List[dict]:
    """``check(path, backend)`` (default ``check_video``; a module-level function) of every path, in
    ``workers`` sandboxed processes (spawned, each with its own pipe, one file in hand at a time). A
    worker that dies marks its file ``crashed`` and is replaced; one that spends more than ``timeout``
    seconds on a file is killed and the file marked ``timeout``."""
    from multiprocessing.connection import wait

    if not paths:
        return []
    ctx = multiprocessing.get_context("spawn")
    out: List[Optional[dict]] = [None] * len(paths)
    pending = collections.deque(enumerate(paths))
    live: Dict[int, tuple] = {}  # slot -> (process, parent end of its pipe)
    busy: Dict[int, tuple] = {}  # slot -> (task index, start time)

    def record(index, result):
        if out[index] is None:
            out[index] = result
            if on_result:
                on_result(index, result)

    def give(slot):
        if not pending:
            busy.pop(slot, None)
            return
        index, path = pending.popleft()
        try:
            live[slot][1].send((index, path))
        except OSError:  # the worker died after its last answer: not this file's doing
            pending.appendleft((index, path))
            busy.pop(slot, None)
            p, conn = live.pop(slot)
            p.join()
            conn.close()
            start(slot)
            return
        busy[slot] = (index, time.time())

    def start(slot):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, backend, check), daemon=True)
        p.start()
        child.close()
        # a worker that cannot even start is this machine's problem, not a video's
        try:
            started = parent.poll(120) and parent.recv() == "ready"
        except (EOFError, OSError):
            started = False
        if not started:
            p.join(timeout=5)
            raise RuntimeError(f"a video-checking worker process did not start ({_exit_reason(p.exitcode)})")
        live[slot] = (p, parent)
        give(slot)

    def replace(slot, verdict):
        p, conn = live.pop(slot)
        if p.is_alive():
            p.kill()
        p.join()
        conn.close()
        index, _ = busy.pop(slot)
        record(index, dict(verdict, reason=verdict["reason"] or _exit_reason(p.exitcode)))
        if pending:
            start(slot)

    for slot in range(max(1, min(int(workers), len(paths)))):
        start(slot)
    try:
        while busy:
            conns = {live[s][1]: s for s in busy}
            sentinels = {live[s][0].sentinel: s for s in busy}
            for ready in wait(list(conns) + list(sentinels), timeout=0.5):
                slot = conns.get(ready, sentinels.get(ready))
                if slot not in busy:
                    continue
                try:
                    index, result = live[slot][1].recv()
                except (EOFError, OSError):  # the process died with the file in hand
                    replace(slot, {"status": "crashed", "reason": None})
                    continue
                record(index, result)
                give(slot)
            now = time.time()
            for slot, (index, since) in list(busy.items()):
                if now - since > timeout:
                    replace(slot, {"status": "timeout", "reason": f"no answer within {timeout:g} s"})
    finally:
        for p, conn in live.values():
            if p.is_alive():
                try:
                    conn.send(None)
                except OSError:
                    pass
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    return out


def _exit_reason(code: int) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return f"the decoder killed its process ({signal.Signals(-code).name})"
        except ValueError:
            return f"the decoder killed its process (signal {-code})"
    return f"the worker exited with status {code}"


def records_report(records, results_by_path: Dict[str, dict], clip_seconds: float) -> List[dict]:
    """One row per record: its file's check, ``too_short`` when the video ends before the record's
    segment end or is shorter than one clip."""
    rows = []
    for rec in records:
        res = dict(results_by_path[rec.path])
        if res["status"] == "ok":
            duration = res["frames"] / res["fps"]
            need = max(clip_seconds, rec.end or 0.0)
            if duration + 1e-6 < need:
                res = dict(res, status="too_short", reason=f"{duration:.2f} s, needs {need:.2f} s")
        rows.append(dict(res, path=rec.path, line=rec.line, label=rec.label))
    return rows


def histograms(results: Sequence[dict], paths: Sequence[str] = ()) -> dict:
    """Frame rates (rounded) and resolutions (width x height) of the readable videos, and the file
    extensions (containers) of ``paths`` (the files found on disk)."""
    ok = [r for r in results if r.get("fps")]
    return {"fps": dict(sorted(collections.Counter(round(r["fps"]) for r in ok).items())),
            "resolution": dict(collections.Counter(f"{r['width']}x{r['height']}" for r in ok).most_common()),
            "extension": dict(collections.Counter(os.path.splitext(p)[1].lower() or "(none)" for p, r in
                                                  zip(paths, results) if r.get("status") != "missing").most_common())}


def write_cleaned(files: Sequence[str], out_dir: str, bad_lines: Sequence[int]) -> List[str]:
    """Copy the dataset's annotation files into ``out_dir`` (keeping a ``ucfTrainTestlist`` folder),
    leaving the lines ``bad_lines`` out of the first one (the checked split's). Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    drop, written = set(bad_lines), []
    for k, src in enumerate(files):
        parent = os.path.basename(os.path.dirname(src))
        dst_dir = os.path.join(out_dir, parent) if parent == "ucfTrainTestlist" else out_dir
        os.makedirs(dst_dir, exist_ok=True)
        dst = os.path.join(dst_dir, os.path.basename(src))
        if k == 0:
            with open(src, encoding="utf-8", newline="") as f, open(dst, "w", encoding="utf-8", newline="") as g:
                g.writelines(line for n, line in enumerate(f, start=1) if n not in drop)
        elif not os.path.exists(dst) or not os.path.samefile(src, dst):
            shutil.copyfile(src, dst)
        written.append(dst)
    return written


def progress_printer(total: int, every: float = 10.0, desc: str = "checking videos", done: str = "checked"):
    """A progress callback: a tqdm bar (``desc``) on a terminal, else a line every ``every`` seconds
    ("``done`` n/total videos")."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, dynamic_ncols=True)
        return lambda i, r: bar.update(1), bar.close
    state = {"n": 0, "last": time.time(), "start": time.time()}

    def step(i, r):
        state["n"] += 1
        now = time.time()
        if now - state["last"] >= every or state["n"] == total:
            rate = state["n"] / max(now - state["start"], 1e-9)
            log.info("%s %d/%d videos (%.0f/s, ETA %.0f s)", done, state["n"], total, rate,
                     (total - state["n"]) / max(rate, 1e-9))
            state["last"] = now
    return step, lambda: None
