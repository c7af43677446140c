"""Is method A better than method B? Seed-level statistics over runs tested on the same videos.

    vidpool compare --a max_s0/predictions.csv max_s1/predictions.csv max_s2/predictions.csv \\
                    --b soft_s0/predictions.csv soft_s1/predictions.csv soft_s2/predictions.csv
    vidpool compare --a A.csv --b B.csv --json
    vidpool compare A.csv B.csv                        # one seed pair: the per-video table only
    python tools/compare_runs.py --a ... --b ...       # the same tool

Runs are paired by position (the i-th file of --a with the i-th of --b: the same seed), every file a
predictions.csv of `vidpool test` over the same test videos. Prints, per pair, both top-1s, the
discordant counts and McNemar's exact p; across pairs, the mean top-1 difference A - B with its 95 %
interval (paired two-level bootstrap: seeds, then videos), the sign-flip permutation p, P(A > B)
with its interval, and one verdict: "A better", "B better" or "no difference shown" (the rule is
printed with it; docs/experiments.md explains it). --json prints one JSON object instead (keys
delta_mean, ci, p_permutation, p_a_better, p_a_better_ci, verdict, seeds, videos, rule, notes).
"""
import os
import sys

from vidpool.cli._args import parser


def main(argv=None):
    ap = parser("compare", __doc__, cfg="none")
    ap.add_argument("pair", nargs="*", metavar="CSV", help="two predictions.csv (A, B): one seed pair, --a X --b Y")
    ap.add_argument("--a", nargs="+", default=[], metavar="CSV", help="method A's predictions.csv, one per seed")
    ap.add_argument("--b", nargs="+", default=[], metavar="CSV", help="method B's, in the same seed order")
    ap.add_argument("--names", nargs=2, metavar=("A", "B"), help="names for the two methods in the output")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--replicates", type=int, default=10000, help="bootstrap replicates (default 10000)")
    args = ap.parse_args(argv)
    if args.pair and (args.a or args.b or len(args.pair) != 2):
        ap.error("give --a and --b, or two files (A B) without them")
    if args.pair:
        args.a, args.b = [args.pair[0]], [args.pair[1]]
    if not args.a or not args.b:
        ap.error("give --a A.csv ... and --b B.csv ... (one predictions.csv per seed each)")
    from vidpool.analysis.compare import compare_predictions, format_comparison

    for path in args.a + args.b:
        if not os.path.isfile(path):
            ap.error(f"no such file: {path}")
    try:
        result = compare_predictions(args.a, args.b, replicates=args.replicates)
    except ValueError as e:
        print(f"vidpool compare: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(result.to_json())
    else:
        names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(paths[0]))) or "A"
                               for paths in (args.a, args.b)]
        print(format_comparison(result, *names))
    return 0
