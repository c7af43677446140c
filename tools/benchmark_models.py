#!/usr/bin/env python
"""Training-step time of a model with SoftPool against the same model with its original pooling.

    python tools/benchmark_models.py --model r3d_50 --frames 16 --size 112 --batch 2

Both variants are built from the same seed and timed alternately (max, softpool, max, ...) so
drift on a shared machine hits both; the median step times and their ratio are printed, with the
target: SoftPool <= 1.03x the max-pool step for r3d_50 (fwd+bwd+update, batch 2, 16x112^2, CPU).
With --channels-last every pool is also timed with weights and clip in channels_last_3d layout
(MODEL.CHANNELS_LAST), and each layout's speed-up over the default one is printed:

    python tools/benchmark_models.py --model r3d_10 --base-width 16 --frames 8 --size 48 --batch 16 \
        --threads 1 --pools max,avg,softpool --channels-last
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
    ap.add_argument("--base-width", type=int, help="stem width of the 3D ResNets / I3D (default: the model's)")
    ap.add_argument("--classes", type=int, default=400)
    ap.add_argument("--channels-last", action="store_true",
                    help="also time every pool in channels_last_3d layout (MODEL.CHANNELS_LAST)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pools = args.pools.split(",")
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    layouts = ["contiguous", "channels_last"] if args.channels_last else ["contiguous"]
    variants = [(pool, layout) for pool in pools for layout in layouts]
    kw = {} if args.base_width is None else {"base_width": args.base_width}
    steps = {}
    for pool, layout in variants:
        torch.manual_seed(0)
        model = create_model(args.model, args.classes, pool=pool, **kw)
        x = clip
        if layout == "channels_last":
            model, x = model.to(memory_format=torch.channels_last_3d), clip.contiguous(memory_format=torch.channels_last_3d)
        steps[pool, layout] = train_step(model, x)
        steps[pool, layout]()  # warm-up
    times = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            start = time.perf_counter()
            steps[v]()
            times[v].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{p} {lay} {times[p, lay][-1]:.3f}s" for p, lay in variants),
              file=sys.stderr)
    base = statistics.median(times[pools[0], "contiguous"])
    print(f"{args.model}, batch {args.batch}, {args.frames}x{args.size}², {torch.get_num_threads()} threads, "
          f"median training step:")
    for pool, layout in variants:
        med = statistics.median(times[pool, layout])
        line = f"  {pool:<10} {layout:<13} {med:.3f} s  ({med / base:.3f}x {pools[0]})"
        if layout == "channels_last":
            line += f"  channels_last speed-up {statistics.median(times[pool, 'contiguous']) / med:.2f}x"
        print(line)
    times = {p: times[p, "contiguous"] for p in pools}
    if args.model == "r3d_50" and "softpool" in pools and pools[0] == "max":
        ratio = statistics.median(times["softpool"]) / base
        print(f"Target softpool <= 1.03x max: {'MET' if ratio <= 1.03 else 'MISS'} ({ratio:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
