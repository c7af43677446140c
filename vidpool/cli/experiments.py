"""Run an ablation grid: every combination of config overrides as a training run, then one table.

    vidpool experiments --grid configs/experiments/paper_mini.yaml [--jobs 2] [--dry-run]
    vidpool experiments --grid GRID.yaml --summarise      # tables and plot from what is done

A grid file (YAML):

    base: configs/demo/r3d10_softpool.yaml
    overrides: {SOLVER.MAX_EPOCH: 2}
    axes: {MODEL.ARCH: [r3d_10, r2plus1d_10], MODEL.POOL: [max, softpool], RNG_SEED: [0, 1, 2]}
    baseline: {MODEL.POOL: max}        # every other value of these axes is tested against it
    seed_key: RNG_SEED                 # the axis averaged over
    select_on: val                     # the split the best cell group is chosen on (default val)
    per_value:                         # overrides for the cells with one value of an axis (optional)
      MODEL.ARCH: {i3d: {DATA.NUM_FRAMES: 16, DATA.TRAIN_CROP_SIZE: 80}}
    out: output/experiments/NAME

Each cell trains with vidpool train into OUT/cells/<cell>/ (its log in run.log there). Finished
cells are skipped and interrupted ones resume, so the same command continues or extends a grid.
--jobs N runs N cells at once with this machine's cores split between them (OMP_NUM_THREADS).
The summary goes to OUT/results.{md,csv,json} and OUT/results.png: per cell (over the seed axis)
the mean and sample std of validation top-1 and of test top-1/top-5 side by side, params, GFLOPs,
training time and the training gain (the most any run's training top-1 rose over its last two
epochs, read from a line fitted through its last 6: converged when below 1 point); the best cell group, chosen on select_on (val); and every non-baseline value
against the baseline, runs paired by seed (vidpool compare's interval, permutation p and verdict).
Exit status: 0 when every cell finished, 1 when some failed (their logs are named), 2 on a bad grid.
"""
import os
import sys
import time

from vidpool.cli._args import parser
from vidpool.experiments import Runner, load_grid, summarise, write_results


def main(argv=None):
    ap = parser("experiments", __doc__, cfg="none")
    ap.add_argument("--grid", required=True, help="grid YAML")
    ap.add_argument("--jobs", type=int, default=1, help="cells trained at the same time (default 1)")
    ap.add_argument("--threads", type=int, help="torch threads per cell (default: cores / jobs)")
    ap.add_argument("--dry-run", action="store_true", help="list the cells, their state and commands; run nothing")
    ap.add_argument("--summarise", action="store_true", help="only write the results of the finished cells")
    ap.add_argument("--no-complexity", action="store_true", help="leave params and GFLOPs out of the results")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if not os.path.isfile(args.grid):
        ap.error(f"--grid: no such file: {args.grid}")
    try:
        grid = load_grid(args.grid)
    except (OSError, ValueError) as e:
        print(f"vidpool experiments: error: {e}", file=sys.stderr)
        return 2
    runner = Runner(grid, jobs=args.jobs, threads=args.threads)
    cells = grid.cells()
    if args.dry_run:
        print(f"grid {grid.name}: {len(cells)} cells -> {grid.out} ({args.jobs} at a time, "
              f"{runner.threads_per_job()} threads each)")
        for cell in cells:
            state = "finished" if cell.finished() else "interrupted" if cell.started() else "to run"
            print(f"  [{state}] {cell.name}\n      {' '.join(runner.command(cell))}")
        return 0
    failed = []
    if not args.summarise:
        start = time.time()
        try:
            failed = runner.run()
        except RuntimeError as e:  # a folder of other settings: nothing was started for it
            print(f"vidpool experiments: error: {e}", file=sys.stderr)
            return 2
        print(f"grid {grid.name}: ran for {time.time() - start:.0f} s, {len(failed)} failed", flush=True)
    summary = summarise(grid, with_complexity=not args.no_complexity)
    paths = write_results(summary, grid.out)
    if summary["records"]:
        from vidpool.viz.stats import plot_results

        plot_results(summary, os.path.join(grid.out, "results.png"))
        paths.append(os.path.join(grid.out, "results.png"))
    with open(paths[2]) as f:
        print(f.read())
    print("wrote " + ", ".join(paths))
    if failed:
        print(f"{len(failed)} cells failed: " + ", ".join(os.path.join(c.out, "run.log") for c in failed),
              file=sys.stderr)
        return 1
    return 0
