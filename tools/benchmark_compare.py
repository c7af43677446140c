#!/usr/bin/env python
"""How trustworthy is `vidpool compare`'s verdict? False-positive rate and power of the comparison
rule (and of two alternatives) on runs simulated from a model fitted to real runs.

    python tools/benchmark_compare.py                          # fitted to the demo runs in tests/assets
    python tools/benchmark_compare.py --runs run_s0/predictions.csv run_s1/predictions.csv ...
    python tools/benchmark_compare.py --seed-sd 17             # as spread over seeds as that (points)
    python tools/benchmark_compare.py --runs ... --save-runs tests/assets/demo_runs/outcomes.csv

The model (vidpool/analysis/calibration.py): each video's chance of being right from a beta
distribution fitted to how many real runs got it right, each seed a shift of every logit with the
spread of the real runs' top-1. Per number of seed pairs (--pairs), 400 experiments (--experiments)
with no difference give each rule's false-positive rate (target <= 5 %), and experiments with B
better by a logit shift (--effects) give the rule's power with the top-1 difference it meant.
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_RUNS = os.path.join(ROOT, "tests", "assets", "demo_runs", "outcomes.csv")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", help="predictions.csv of several seeds of one config (default: the demo's)")
    ap.add_argument("--pairs", type=int, nargs="+", default=[3, 5, 8], help="seed pairs per experiment")
    ap.add_argument("--experiments", type=int, default=400)
    ap.add_argument("--effects", type=float, nargs="+", default=[0.1, 0.2, 0.4], help="logit shifts of B")
    ap.add_argument("--seed-sd", type=float, help="refit the seed spread to this top-1 standard deviation (points)")
    ap.add_argument("--save-runs", metavar="CSV", help="write the --runs outcomes as a table (video_id, run0, ...)")
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from vidpool.analysis import calibration

    outcomes = calibration.outcomes_of(args.runs) if args.runs else calibration.load_outcomes(DEMO_RUNS)
    if args.save_runs:
        if not args.runs:
            ap.error("--save-runs needs --runs")
        calibration.save_outcomes(args.save_runs, args.runs)
        print(f"wrote {args.save_runs}")
    model = calibration.fit_model(outcomes, seed_sd=args.seed_sd)
    print(f"model: {model.runs} runs x {model.videos} videos, top-1 {model.top1_mean:.2f} +- {model.top1_sd:.2f} %; "
          f"video chance Beta({model.a:.3f}, {model.b:.3f}), seed logit shift sd {model.sigma:.3f}")
    print(f"\nfalse-positive rate under no difference ({args.experiments} experiments each; target <= 5 %)\n")
    print("| rule | " + " | ".join(f"{k} pairs" for k in args.pairs) + " |\n|---|" + "---|" * len(args.pairs))
    for rule in calibration.RULES:
        rates = [calibration.rate(model, k, args.experiments, rule)[0] for k in args.pairs]
        print(f"| {rule} | " + " | ".join(f"{100 * r:.1f} %" for r in rates) + " |")
    rule = next(iter(calibration.RULES))
    print(f"\npower of the rule ({rule}): share of experiments that find B better\n")
    print("| B's logit shift | mean top-1 difference | " + " | ".join(f"{k} pairs" for k in args.pairs) + " |\n"
          "|---|---|" + "---|" * len(args.pairs))
    for effect in args.effects:
        results = [calibration.rate(model, k, args.experiments, rule, effect=effect) for k in args.pairs]
        shift = np.mean([d for _, d in results])
        print(f"| {effect:g} | {shift:+.2f} points | " + " | ".join(f"{100 * r:.0f} %" for r, _ in results) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
