#!/usr/bin/env python
"""Training-step time of a model with SoftPool against the same model with its original pooling.

    python tools/benchmark_models.py --model r3d_50 --frames 16 --size 112 --batch 2

Both variants are built from the same seed and timed alternately (max, softpool, max, ...) so
drift on a shared machine hits both; the median step times and their ratio are printed, with the
target: SoftPool <= 1.03x the max-pool step for r3d_50 (fwd+bwd+update, batch 2, 16x112^2, CPU).
"""
import argparse
import statistics
import sys
import time

import torch

from vidpool.analysis.complexity import train_step
from vidpool.models import create_model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="r3d_50")
    ap.add_argument("--pools", default="max,softpool", help="baseline first (default max,softpool)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="timed steps per variant")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pools = args.pools.split(",")
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    steps = {}
    for pool in pools:
        torch.manual_seed(0)
        steps[pool] = train_step(create_model(args.model, 400, pool=pool), clip)
        steps[pool]()  # warm-up
    times = {p: [] for p in pools}
    for r in range(args.rounds):
        for pool in pools:
            start = time.perf_counter()
            steps[pool]()
            times[pool].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{p} {times[p][-1]:.3f}s" for p in pools), file=sys.stderr)
    base = statistics.median(times[pools[0]])
    print(f"{args.model}, batch {args.batch}, {args.frames}x{args.size}², {torch.get_num_threads()} threads, "
          f"median training step:")
    for pool in pools:
        med = statistics.median(times[pool])
        print(f"  {pool:<10} {med:.3f} s  ({med / base:.3f}x {pools[0]})")
    if args.model == "r3d_50" and "softpool" in pools and pools[0] == "max":
        ratio = statistics.median(times["softpool"]) / base
        print(f"Target softpool <= 1.03x max: {'MET' if ratio <= 1.03 else 'MISS'} ({ratio:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
