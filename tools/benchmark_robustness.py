#!/usr/bin/env python
"""Chaos benchmark (not part of `make test`): real-world breakage against the whole pipeline.

For each official layout (HACS, Kinetics-700, UCF-101) it builds a small synthetic dataset, breaks
about 5 % of its video files (missing, empty, text, truncated, audio only), then trains a tiny model
with 2 torchrun processes (gloo, loader workers on) twice: once straight through, once with SIGTERM
sent to one rank in the middle of epoch 2 and the same command started again. Both runs are tested.
It prints, per layout and in total: videos seen, broken files caught (in bad_videos.txt), runs crashed
(target 0), resume exactness (target: identical weights) and the overhead of the per-sample guard
(try/except, the worker's shared-memory "reading now" slot) on loader throughput (target <= 2 %).

Then preemption on the demo (`make demo`'s model and data, one epoch with validation): SIGUSR1 to the
whole process group (training process and loader workers, as SLURM's --signal sends it) in the
middle of validation, and again in the middle of `vidpool test`; it prints the seconds from the
signal to the exit (target <= 30 s), the exit status (75), the checkpoint written, and how much of
the pass was left (what a stop at the end of the pass would have waited).

    python tools/benchmark_robustness.py [--videos 80] [--out output/bench_robustness] [--demo data/demo]
"""
import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "8", "MODEL.NUM_CLASSES", "5", "MODEL.POOL", "softpool",
        "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "8", "DATA.TRAIN_JITTER_SCALES", "[32, 36]",
        "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "8",
        "TEST.NUM_ENSEMBLE_VIEWS", "2", "TEST.NUM_SPATIAL_CROPS", "1", "DATA_LOADER.NUM_WORKERS", "1",
        "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_EPOCH", "3", "SOLVER.STEPS", "[0, 2]", "SOLVER.LRS", "[1, 0.1]",
        "TRAIN.CHECKPOINT_ITERS", "2", "LOG_PERIOD", "0", "TENSORBOARD.ENABLE", "False", "MODEL.DROPOUT_RATE", "0.5"]
LAYOUTS = {  # dataset: (annotation folder, extra config, classes file needed)
    "hacs": ["TRAIN.DATASET", "hacs", "TEST.DATASET", "hacs", "TEST.SPLIT", "val"],
    "kinetics": ["TRAIN.DATASET", "kinetics", "TEST.DATASET", "kinetics", "TEST.SPLIT", "val"],
    "ucf101": ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101", "TEST.SPLIT", "test"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def layout_cfg(root: str, name: str, out: str) -> list:
    data = os.path.join(root, name)
    extra = ["DATA.PATH_TO_DATA_DIR", data, "OUTPUT_DIR", out]
    if name == "hacs":
        extra += ["DATA.PATH_PREFIX", os.path.join(data, "videos"), "DATA.CLASS_NAMES_FILE",
                  os.path.join(root, "classes.txt")]
    elif name == "kinetics":
        extra += ["DATA.PATH_PREFIX", os.path.join(data, "videos"), "DATA.CLASS_NAMES_FILE",
                  os.path.join(root, "classes.txt")]
    return TINY + LAYOUTS[name] + extra


def break_files(root: str, name: str, share: float, rng: random.Random) -> set:
    """Break ``share`` of the layout's video files (each kind in turn); returns their paths."""
    from vidpool.data.datasets.synthetic import BROKEN_KINDS, break_video

    videos = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, name)) for f in fs
                    if f.endswith((".mp4", ".avi")))
    good = os.path.join(root, "good.mp4")
    if not os.path.exists(good):
        shutil.copyfile(os.path.realpath(videos[0]), good)
    chosen = rng.sample(videos, max(1, round(share * len(videos))))
    for i, path in enumerate(chosen):
        break_video(path, BROKEN_KINDS[i % len(BROKEN_KINDS)], good)
    return set(chosen)


def torchrun(cfg: list, stop_mid_epoch: bool = False):
    """Train and test with 2 processes; with ``stop_mid_epoch``, SIGTERM to rank 1 once a checkpoint
    inside epoch 2 exists, then the same command again. Returns (exit codes, seconds)."""
    from vidpool.engine import checkpoint as ckpt

    out = cfg[cfg.index("OUTPUT_DIR") + 1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           os.path.join(ROOT, "tools", "train_net.py")] + cfg
    start, codes = time.time(), []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if stop_mid_epoch:
        target = ckpt.checkpoint_path(out, 1, 2)
        while not os.path.exists(target) and proc.poll() is None:
            time.sleep(0.01)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if b"RANK=1\0" in f.read():
                    os.kill(int(pid), signal.SIGTERM)
        codes.append(proc.wait())
        cmd[cmd.index("--master_port") + 1] = str(free_port())
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    codes.append(proc.wait())
    return codes, time.time() - start


def same_weights(a: str, b: str) -> bool:
    from vidpool.engine import checkpoint as ckpt

    x, y = (ckpt.load_checkpoint(ckpt.checkpoint_path(o, 3))["model"] for o in (a, b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def guard_overhead(root: str, rounds: int = 7, items: int = 40) -> float:
    """Loader-side cost of the per-sample guard: the dataset's guarded item against the same read
    without it, on readable videos, alternating the two (medians of ``rounds``)."""
    from vidpool.config import load_cfg
    from vidpool.data import build_dataset

    ds = build_dataset(load_cfg(None, layout_cfg(root, "ucf101", "/tmp/unused")), "train")
    readable = [i for i, r in enumerate(ds.records) if os.path.getsize(r.path) > 1000][:items]
    shape = ds.shape

    def guarded():
        for seed, i in enumerate(readable):
            ds[(i, shape, seed)]

    def bare():
        for seed, i in enumerate(readable):
            ds._read(ds.records[i], shape, 0, 0, random.Random(seed))

    times = {guarded: [], bare: []}
    for _ in range(rounds):
        for fn in (guarded, bare):
            t = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - t)
    return statistics.median(times[guarded]) / statistics.median(times[bare]) - 1


def stop_during(cmd: list, phase: str, out: str) -> dict:
    """Run ``cmd`` (a vidpool command logging every 10 batches), send SIGUSR1 to its process group
    at the second progress line of ``phase`` ("validation" or "test"); returns the seconds to the
    exit, the exit status, the ETA the log gave for the rest of the pass, and the newest checkpoint."""
    import re

    from vidpool.engine import checkpoint as ckpt

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, eta, sent = 0, None, None
    for line in proc.stdout:
        m = re.search(rf"\b{phase}: (\d+)/(\d+) iterations, [\d.]+ s, ETA (\d+) s", line)
        if m and sent is None:
            lines += 1
            if lines == 2:
                eta, sent = float(m.group(3)), time.perf_counter()
                os.killpg(proc.pid, signal.SIGUSR1)
    code = proc.wait()
    seconds = time.perf_counter() - sent if sent is not None else float("nan")
    newest = ckpt.list_checkpoints(out)
    return {"seconds": seconds, "exit": code, "eta": eta, "checkpoint": os.path.basename(newest[-1]) if newest else None}


def preemption(demo: str, out: str) -> list:
    """Seconds from SIGUSR1 to exit in the middle of validation and of testing, on the demo."""
    base = [sys.executable, "-m", "vidpool"]
    common = ["--cfg", os.path.join(ROOT, "configs", "demo", "r3d10_softpool.yaml"), "DATA.PATH_TO_DATA_DIR",
              os.path.join(demo, "ucf101"), "LOG_PERIOD", "10", "TENSORBOARD.ENABLE", "False"]
    run = os.path.join(out, "demo_preempted")
    train_cmd = base + ["train"] + common + ["OUTPUT_DIR", run, "SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "1",
                                             "TEST.ENABLE", "False"]
    rows = [("validation", stop_during(train_cmd, "validation", run))]
    test_cmd = base + ["test"] + common + ["OUTPUT_DIR", run]  # the run's newest checkpoint (the one just written)
    rows.append(("test", stop_during(test_cmd, "test", run)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=80, help="synthetic videos per layout")
    ap.add_argument("--share", type=float, default=0.05, help="share of video files to break")
    ap.add_argument("--out", default=os.path.join("output", "bench_robustness"))
    ap.add_argument("--demo", default=os.path.join("data", "demo"), help="the demo data (make demo makes it)")
    ap.add_argument("--only-preemption", action="store_true", help="skip the chaos runs")
    args = ap.parse_args(argv)
    if args.only_preemption:
        return report_preemption(preemption(args.demo, args.out))
    from vidpool.data.datasets.synthetic import make_synthetic_dataset

    shutil.rmtree(args.out, ignore_errors=True)
    data = os.path.join(args.out, "data")
    make_synthetic_dataset(data, num_videos=args.videos, num_classes=5, seed=3, frames=24, fps=8, size=(48, 64),
                           workers=2, progress=False)
    rng = random.Random(0)
    rows, totals = [], {"seen": 0, "broken": 0, "caught": 0, "crashed": 0, "exact": 0}
    for name in LAYOUTS:
        broken = break_files(data, name, args.share, rng)
        runs = {kind: os.path.join(args.out, f"{name}_{kind}") for kind in ("straight", "interrupted")}
        codes_a, secs_a = torchrun(layout_cfg(data, name, runs["straight"]))
        codes_b, secs_b = torchrun(layout_cfg(data, name, runs["interrupted"]), stop_mid_epoch=True)
        # the stopped run ends non-zero by design (its processes exit 75); the resumed one must succeed
        crashed = sum(c != 0 for c in codes_a) + (codes_b[-1] != 0)
        caught = set()
        for run in runs.values():
            path = os.path.join(run, "bad_videos.txt")
            if os.path.exists(path):
                caught |= {line.split("\t")[0] for line in open(path) if line.strip()}
        from vidpool.config import load_cfg
        from vidpool.data.build import read_annotations

        cfg = load_cfg(None, layout_cfg(data, name, runs["straight"]))
        seen = {r.path for split in ("train", "val", "test") for r in read_annotations(cfg, split, True).records}
        used_broken = broken & seen
        # missing training videos are left out when the dataset is built (counted in the log), not read
        kept = {r.path for r in read_annotations(cfg, "train", False).records}
        evaluated = {r.path for split in ("val", "test") for r in read_annotations(cfg, split, True).records}
        caught |= {p for p in used_broken if not os.path.exists(p) and p not in kept and p not in evaluated}
        exact = not crashed and same_weights(runs["straight"], runs["interrupted"])
        rows.append((name, len(seen), len(used_broken), len(caught & used_broken), crashed, exact,
                     f"{secs_a:.0f} / {secs_b:.0f}", codes_b))
        for key, value in zip(("seen", "broken", "caught", "crashed", "exact"), rows[-1][1:6]):
            totals[key] += int(value)
        print(f"{name}: {rows[-1]}", flush=True)
    overhead = guard_overhead(data)
    print("\n| layout | videos seen | broken files | caught | runs crashed | resume exact | seconds (straight / "
          "interrupted) |\n|---|---|---|---|---|---|---|")
    for name, seen, broken, caught, crashed, exact, secs, _ in rows:
        print(f"| {name} | {seen} | {broken} | {caught} | {crashed} | {'identical weights' if exact else 'DIFFER'} | "
              f"{secs} |")
    print(f"| total | {totals['seen']} | {totals['broken']} | {totals['caught']} | {totals['crashed']} | "
          f"{totals['exact']}/{len(rows)} identical | |")
    print(f"\nper-sample guard overhead on loader throughput: {100 * overhead:+.2f} % (target <= 2 %)")
    stopped = report_preemption(preemption(args.demo, args.out))
    return 0 if totals["crashed"] == 0 and totals["exact"] == len(rows) and totals["caught"] == totals["broken"] \
        and stopped == 0 else 1


def report_preemption(rows: list) -> int:
    print("\n| SIGUSR1 during | seconds to exit | exit status | pass left (log's ETA) | newest checkpoint |\n"
          "|---|---|---|---|---|")
    for phase, r in rows:
        print(f"| {phase} | {r['seconds']:.1f} | {r['exit']} | {r['eta']} s | {r['checkpoint']} |")
    worst = max(r["seconds"] for _, r in rows)
    print(f"\npreemption: SIGUSR1 to exit at most {worst:.1f} s (target <= 30 s)")
    return 0 if worst <= 30 and all(r["exit"] == 75 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
