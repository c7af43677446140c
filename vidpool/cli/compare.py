"""McNemar's test: is model B's accuracy significantly different from model A's on the same videos?

    vidpool compare output/run_max/predictions.csv output/run_softpool/predictions.csv
    vidpool compare --table N00 N01 N10 N11

From two predictions.csv files of vidpool test (matched by video id; ids in one file only, or
with different true labels, are reported and left out), or from a 2x2 table: N00 both wrong, N01 A
wrong and B right, N10 A right and B wrong, N11 both right. Prints the table, the continuity-
corrected chi^2 with its p-value, the exact binomial p-value, and the significance level reached
(95 / 97.5 / 99 %: chi^2 >= 3.84 / 5.02 / 6.63).
"""
import os
import sys

from vidpool.cli._args import parser
from vidpool.analysis.mcnemar import Table, format_result, mcnemar, table_from_predictions


def main(argv=None):
    ap = parser("compare", __doc__, cfg="none")
    ap.add_argument("predictions", nargs="*", help="predictions.csv of model A, then of model B")
    ap.add_argument("--table", nargs=4, type=int, metavar=("N00", "N01", "N10", "N11"))
    ap.add_argument("--names", nargs=2, metavar=("A", "B"), help="names for the two models in the output")
    args = ap.parse_args(argv)
    if bool(args.table) == bool(args.predictions) or (args.predictions and len(args.predictions) != 2):
        ap.error("give two predictions.csv files or --table N00 N01 N10 N11")
    try:
        if args.table:
            table, names = Table(*args.table), args.names or ["A", "B"]
        else:
            for path in args.predictions:
                if not os.path.isfile(path):
                    ap.error(f"no such file: {path}")
            matched = table_from_predictions(*args.predictions)
            table = matched.table
            names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(p))) or p
                                   for p in args.predictions]
            for label, ids in ((f"only in {args.predictions[0]}", matched.only_a),
                               (f"only in {args.predictions[1]}", matched.only_b),
                               ("with different true labels (left out)", matched.label_mismatch)):
                if ids:
                    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
                    print(f"warning: {len(ids)} videos {label}: {shown}", file=sys.stderr)
            if not any(vars(table).values()):
                ap.error("the two files have no video in common")
        print(format_result(mcnemar(table), *names))
    except ValueError as e:
        print(f"vidpool compare: error: {e}", file=sys.stderr)
        return 2
    return 0
