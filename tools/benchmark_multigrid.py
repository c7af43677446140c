#!/usr/bin/env python
"""Multigrid experiment: train a model with and without multigrid under the same base schedule,
for several seeds, and report wall time and video top-1 of both.

    make bench-multigrid                    # generates data/bench_mg first if needed
    python tools/benchmark_multigrid.py [--seeds 10 11 12 13 14] [--out output/bench_multigrid]
        [--plain CFG --multigrid CFG] [KEY VALUE ...]

The two configs are, by default, configs/bench/r3d10_softpool_plain.yaml (r3d-10 at eighth width, 16
frames, 96 px, batch 16, LR 0.02 x0.1 after epoch 8 of 12, on data/bench_mg: the demo's synthetic
recipe at 96 x 128) and configs/bench/r3d10_softpool_multigrid.yaml (the same plus long and short cycle: a long
cycle over crops 68 / 96 px at 16 frames, short-cycle crops 48 / 68 px). The demo's own pair,
configs/demo/r3d10_softpool_steps.yaml and r3d10_softpool_multigrid.yaml (48 px), runs with
--plain/--multigrid and DATA.PATH_TO_DATA_DIR data/demo/ucf101. KEY VALUE pairs override all runs.
Every run reads its frames from a decoded-frame cache (--frame-cache, default: frame_cache beside
the data's layouts, filled first), so the wall times compare training, not the video decoder,
which multigrid cannot make cheaper (a 48-px demo epoch took 17.7 s decoding every clip and 14.0 s
from the cache on the 2-core development machine). About 11 minutes per seed on 2 CPU cores
(three runs). Each run trains from scratch into
(--out)/<plain|multigrid|plain_matched>_seed<S>, in sequence
(one at a time, so their wall times compare). Prints a table per run and the means, writes
(--out)/curves_seed<S>.png (the three runs against training time, vidpool visualize curves --x time) and
ends with the line

    multigrid wall-time ratio R, top-1 difference D points (95 % CI L to H, N held-out seeds);
    vs plain at the same wall time E points (95 % CI L2 to H2)

R: mean over seeds of multigrid's wall time (training and testing, the whole command) over the plain
run's; D: mean of multigrid's video top-1 minus the plain run's, with its interval over seeds and
test videos (vidpool compare, printed above it); E: the same against a third run per seed, the
plain schedule shortened to that seed's multigrid wall time (epochs, LR steps and warm-up scaled
by the ratio): what multigrid gains over simply training less. The default seeds, 10-14, were never
used to choose any setting. Targets: R <= 0.6, D >= -1 with L >= -2.5, and L2 > 0.
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from vidpool.engine.run_log import read_stats  # noqa: E402
PLAIN, MULTIGRID = "configs/bench/r3d10_softpool_plain.yaml", "configs/bench/r3d10_softpool_multigrid.yaml"
HELD_OUT = (10, 11, 12, 13, 14)  # seeds no setting of the benchmark's configs was ever chosen on


def seeds_word(seeds) -> str:
    """How the last line names the seeds: held-out only when every one is (other seeds, e.g. the
    validation seeds 0-2 that settings are tried on, are not)."""
    return "held-out seeds" if set(seeds) <= set(HELD_OUT) else "seeds, not all held out"


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
    stats = read_stats(out, "epoch")
    with open(os.path.join(out, "predictions.csv")) as f:
        correct = [row["correct"] == "1" for row in csv.DictReader(f)]
    return {"name": name, "out": out, "seconds": seconds, "epochs": len(stats),
            "top1": 100.0 * sum(correct) / len(correct), "train_s": sum(s["epoch_time_s"] for s in stats)}


def matched_schedule(config: str, overrides, fraction: float) -> list:
    """Overrides that shorten the plain run's schedule to ``fraction`` of its epochs (at least one),
    its LR steps and warm-up scaled alike: the plain control given multigrid's wall time."""
    from vidpool.config import load_cfg

    solver = load_cfg(os.path.join(ROOT, config), list(overrides)).SOLVER
    epochs = max(1, round(solver.MAX_EPOCH * fraction))
    scale = epochs / solver.MAX_EPOCH
    steps = [0]
    for step in solver.STEPS[1:]:
        steps.append(min(max(round(step * scale), steps[-1] + 1), epochs - 1) if epochs > 1 else 0)
    steps = sorted(set(steps))
    lrs = list(solver.LRS[:len(steps)])
    return ["SOLVER.MAX_EPOCH", str(epochs), "SOLVER.STEPS", str(steps), "SOLVER.LRS", str(lrs),
            "SOLVER.WARMUP_EPOCHS", str(round(solver.WARMUP_EPOCHS * scale, 3))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "bench_multigrid"))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT),
                    help="RNG_SEED values (default 10-14: seeds no setting was ever chosen on)")
    ap.add_argument("--plain", default=PLAIN, help=f"config of the plain run (default {PLAIN})")
    ap.add_argument("--multigrid", default=MULTIGRID, help=f"config of the multigrid run (default {MULTIGRID})")
    ap.add_argument("--frame-cache", help="DATA.FRAME_CACHE for every run, filled before the first (default: "
                    "frame_cache beside the data's layouts, e.g. data/bench_mg/frame_cache; '' decodes every clip, "
                    "which makes the runs measure the decoder more than training)")
    args, overrides = ap.parse_known_args(argv)
    if "RNG_SEED" in overrides[0::2]:
        ap.error("set the seeds with --seeds, not RNG_SEED")
    runs = (("plain", args.plain), ("multigrid", args.multigrid))
    for _, config in runs:
        if not os.path.isfile(os.path.join(ROOT, config)):
            ap.error(f"no such config: {config}")
    from vidpool.config import load_cfg

    data = load_cfg(os.path.join(ROOT, args.plain), list(overrides)).DATA.PATH_TO_DATA_DIR
    data = data if os.path.isabs(data) else os.path.join(ROOT, data)
    if not os.path.isdir(data):
        raise SystemExit(f"no data in {data}: run `make bench-multigrid` once first (it generates data/bench_mg)")
    if args.frame_cache is None:
        args.frame_cache = os.path.join(os.path.dirname(os.path.normpath(data)), "frame_cache")
    if args.frame_cache and "DATA.FRAME_CACHE" not in overrides[0::2]:
        overrides += ["DATA.FRAME_CACHE", args.frame_cache]
    if dict(zip(overrides[0::2], overrides[1::2])).get("DATA.FRAME_CACHE"):
        # filled before the first run, so that no run's wall time includes decoding for the others
        cmd = [sys.executable, "-m", "vidpool", "cache-frames", "--cfg", os.path.join(ROOT, args.plain)] + overrides
        print(f"[cache] {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode:
            raise SystemExit("[cache] filling the frame cache failed; see the messages above")
    from vidpool.viz.stats import load, plot

    rows = []
    for seed in args.seeds:
        pair = [run(name, config, os.path.join(args.out, f"{name}_seed{seed}"), overrides + ["RNG_SEED", str(seed)])
                for name, config in runs]
        # the plain schedule shortened to the multigrid run's wall time
        shorter = matched_schedule(args.plain, overrides, pair[1]["seconds"] / pair[0]["seconds"])
        pair.append(run("plain_matched", args.plain, os.path.join(args.out, f"plain_matched_seed{seed}"),
                        overrides + ["RNG_SEED", str(seed)] + shorter))
        for r in pair:
            r["seed"] = seed
        rows += pair
        curves = os.path.join(args.out, f"curves_seed{seed}.png")
        plot([load(r["out"]) for r in pair], [r["name"] for r in pair], curves, x="time",
             finals=[r["top1"] for r in pair])
        print(f"wrote {curves}", flush=True)
    print("\n| seed | run | epochs | training s | wall s (train + test) | video top-1 % | wall time vs plain |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for seed in args.seeds:
        plain, mg, matched = [r for r in rows if r["seed"] == seed]
        ratios.append(mg["seconds"] / plain["seconds"])
        for r in (plain, mg, matched):
            print(f"| {seed} | {r['name']} | {r['epochs']} | {r['train_s']:.0f} | {r['seconds']:.0f} | {r['top1']:.2f} | "
                  f"{r['seconds'] / plain['seconds']:.2f} |")
    for name in ("plain", "multigrid", "plain_matched"):
        top1 = [r["top1"] for r in rows if r["name"] == name]
        spread = f" ± {statistics.stdev(top1):.2f}" if len(top1) > 1 else ""
        print(f"{name}: video top-1 {statistics.fmean(top1):.2f}{spread} %, wall "
              f"{statistics.fmean(r['seconds'] for r in rows if r['name'] == name):.0f} s (mean of {len(top1)})")
    from vidpool.analysis.compare import compare_predictions, format_comparison

    def predictions(name):
        return [os.path.join(r["out"], "predictions.csv") for seed in args.seeds for r in rows
                if r["seed"] == seed and r["name"] == name]

    def interval(result):
        return (f"95 % CI {result.ci[0]:+.2f} to {result.ci[1]:+.2f}" if result.ci[0] is not None
                else "no interval from one seed")

    full = compare_predictions(predictions("multigrid"), predictions("plain"))
    print("\n" + format_comparison(full, "multigrid", "plain"))
    same_time = compare_predictions(predictions("multigrid"), predictions("plain_matched"))
    print("\n" + format_comparison(same_time, "multigrid", "plain at the same wall time"))
    print(f"\nmultigrid wall-time ratio {statistics.fmean(ratios):.2f}, top-1 difference {full.delta_mean:+.2f} points "
          f"({interval(full)}, {len(args.seeds)} {seeds_word(args.seeds)}); vs plain at the same wall time "
          f"{same_time.delta_mean:+.2f} points ({interval(same_time)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
