#!/usr/bin/env python
"""Multigrid experiment: train the demo model with and without multigrid under the same base
schedule and report the wall time and the final video top-1 of both (one run each, in sequence).

    make bench-multigrid                    # generates data/demo first if needed
    python tools/benchmark_multigrid.py [--out output/bench_multigrid] [KEY VALUE ...]

The two configs are configs/demo/r3d10_softpool_steps.yaml (plain) and
configs/demo/r3d10_softpool_multigrid.yaml (the same plus long and short cycle). KEY VALUE pairs
override both. Each run trains from scratch into OUTPUT_DIR (--out)/<plain|multigrid>.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = (("plain", "configs/demo/r3d10_softpool_steps.yaml"),
        ("multigrid", "configs/demo/r3d10_softpool_multigrid.yaml"))


def run(name: str, config: str, out: str, overrides) -> dict:
    if os.path.isdir(out):
        shutil.rmtree(out)  # from scratch: auto-resume would otherwise skip the training
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--cfg", os.path.join(ROOT, config),
           "OUTPUT_DIR", out] + list(overrides)
    print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
    start = time.time()
    done = subprocess.run(cmd, cwd=ROOT)
    seconds = time.time() - start
    if done.returncode:
        raise SystemExit(f"[{name}] training failed (exit {done.returncode}); see {out}/log.txt")
    with open(os.path.join(out, "stats.jsonl")) as f:
        stats = [json.loads(line) for line in f]
    with open(os.path.join(out, "predictions.csv")) as f:
        correct = [row["correct"] == "1" for row in csv.DictReader(f)]
    return {"name": name, "seconds": seconds, "epochs": len(stats), "top1": 100.0 * sum(correct) / len(correct),
            "train_s": sum(s["epoch_time_s"] for s in stats)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "bench_multigrid"))
    args, overrides = ap.parse_known_args(argv)
    data = os.path.join(ROOT, "data", "demo", ".complete")
    if not any(o == "DATA.PATH_TO_DATA_DIR" for o in overrides) and not os.path.exists(data):
        raise SystemExit("no demo data in data/demo: run `make bench-multigrid` (or `make demo`) once first")
    results = [run(name, config, os.path.join(args.out, name), overrides) for name, config in RUNS]
    plain = results[0]
    print("\n| run | epochs | training s | wall s (train + test) | video top-1 % | wall time vs plain |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['epochs']} | {r['train_s']:.0f} | {r['seconds']:.0f} | {r['top1']:.2f} | "
              f"{r['seconds'] / plain['seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
