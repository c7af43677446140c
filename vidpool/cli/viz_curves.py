"""Training curves of one or more runs, from their stats.jsonl, in one PNG.

    vidpool visualize curves output/demo_r3d10_max output/demo_r3d10_softpool --out curves.png

Each argument is a run's OUTPUT_DIR (or its stats.jsonl). Panels: training loss (and validation
loss when recorded), top-1 (training, and validation when recorded), learning rate, and the input
shape (frames x crop, with the batch size) per epoch, so multigrid runs show their cycles. Runs are
labelled with their folder names unless --labels is given. A run's final test top-1 (its last
test record) is a star at its end. --x time puts training time (minutes, the sum of the epochs'
times) on the x axis: the plot to decide whether a cheaper schedule, e.g. multigrid, pays off.
"""
import os
import sys

from vidpool.cli._args import parser
from vidpool.viz.stats import load, plot


def final_top1(path: str):
    """The video top-1 of a run's last test record, if it has one."""
    from vidpool.experiments import final_test_record

    rec = final_test_record(path if os.path.isdir(path) else os.path.dirname(path))
    return rec.get("test_video_top1") if rec else None


def main(argv=None):
    ap = parser("visualize curves", __doc__, cfg="none")
    ap.add_argument("runs", nargs="+", help="OUTPUT_DIR of a run, or its stats.jsonl")
    ap.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")
    ap.add_argument("--out", default="training_curves.png", help="PNG to write")
    ap.add_argument("--x", choices=("epoch", "time"), default="epoch",
                    help="x axis: epochs, or training time in minutes (to compare what runs cost)")
    args = ap.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        ap.error(f"{len(args.runs)} runs but {len(args.labels)} labels")
    try:
        runs = [load(p) for p in args.runs]
    except (OSError, ValueError) as e:
        print(f"vidpool visualize curves: error: {e}", file=sys.stderr)
        return 2
    labels = args.labels or [os.path.basename(os.path.normpath(p if os.path.isdir(p) else os.path.dirname(p)))
                             for p in args.runs]
    finals = [final_top1(p) for p in args.runs]
    try:
        plot(runs, labels, args.out, x=args.x, finals=finals)
    except ValueError as e:
        print(f"vidpool visualize curves: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(runs)} runs, {sum(len(r) for r in runs)} epochs)")
    return 0
