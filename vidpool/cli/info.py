#!/usr/bin/env python
"""Parameters, GFLOPs (fvcore: multiply-adds), activations and a training-step time of a model.

    python tools/model_info.py --model r3d_50 --frames 16 --size 224
    python tools/model_info.py --all --frames 16 --size 224,264 --markdown

GFLOPs and activations come from one forward pass on a 1 x 3 x T x S x S clip; the step time is
one SGD step on a batch of --batch such clips (skip it with --no-time).
"""
import argparse
import sys

import torch

from vidpool.analysis.complexity import count_parameters, flops_and_activations, train_step_seconds
from vidpool.models import create_model, list_models

# GFLOPs the SoftPool paper reports (Table 7), for comparison
PAPER_GFLOPS = {"r3d_50": 53.16, "r3d_101": 78.52, "r2plus1d_50": 50.04, "i3d": 55.27,
                "srtg_r3d_50": 53.22, "srtg_r2plus1d_50": 50.10, "srtg_r3d_101": 78.66}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model name (repeatable); see --list")
    ap.add_argument("--all", action="store_true", help="every registered model")
    ap.add_argument("--list", action="store_true", help="print the registered models and exit")
    ap.add_argument("--pool", default="max", help="pooling method for the non-global pools (default max)")
    ap.add_argument("--classes", type=int, default=400)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="224", help="crop size(s), comma-separated")
    ap.add_argument("--batch", type=int, default=2, help="batch for the step time")
    ap.add_argument("--no-time", action="store_true", help="skip the training-step time")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(list_models()))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list_models() if args.all else (args.model or [])
    if not names:
        ap.error("give --model NAME (or --all); --list shows the names")
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(list_models())}")
    sizes = [int(s) for s in args.size.split(",")]

    header = ["model", "params (M)"] + [f"GFLOPs {args.frames}x{s}²" for s in sizes] + ["paper GFLOPs"]
    header += [f"activations (M) {args.frames}x{sizes[0]}²"]
    if not args.no_time:
        header += [f"train step (s), batch {args.batch}, {args.frames}x{sizes[0]}²"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for name in names:
        model = create_model(name, args.classes, pool=args.pool)
        row = [name, f"{count_parameters(model) / 1e6:.2f}"]
        acts = None
        for s in sizes:
            gflops, a = flops_and_activations(model, torch.zeros(1, 3, args.frames, s, s))
            row.append(f"{gflops:.2f}")
            acts = a if acts is None else acts
        row.append(f"{PAPER_GFLOPS[name]:.2f}" if name in PAPER_GFLOPS else "—")
        row.append(f"{acts:.1f}")
        if not args.no_time:
            clip = torch.randn(args.batch, 3, args.frames, sizes[0], sizes[0])
            row.append(f"{train_step_seconds(model, clip):.2f}")
        print(("| " + " | ".join(row) + " |") if args.markdown else "  ".join(f"{h}: {v}" for h, v in zip(header, row)),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
