"""How much detail each pooling method keeps, as SSIM / PSNR after downsampling and restoring.

    vidpool similarity tests/assets/videos --skimage --out results/similarity

Inputs are image/video files or folders; --skimage adds photographs bundled with scikit-image.
Writes similarity.md, similarity.csv and similarity.json to --out and prints the table. The
protocol is documented in vidpool/analysis/similarity.py and the README.
"""
import csv
import json
import logging
import os
import sys
import time

from vidpool.cli._args import parser
from vidpool.analysis import similarity
from vidpool.ops import list_pools


def main(argv=None):
    ap = parser("similarity", __doc__, cfg="none")
    ap.add_argument("inputs", nargs="*", help="image/video files or folders")
    ap.add_argument("--skimage", action="store_true",
                    help=f"add scikit-image's photographs ({', '.join(similarity.SKIMAGE_PHOTOS)})")
    ap.add_argument("--methods", default=",".join(list_pools()),
                    help="comma-separated pooling methods (default: all of the zoo)")
    ap.add_argument("--kernels", default="2,3,5", help="kernel sizes (stride = kernel)")
    ap.add_argument("--frames", type=int, default=16, help="frames read from the start of each video")
    ap.add_argument("--out", default=None, help="folder for similarity.{md,csv,json}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(list_pools()))
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(list_pools())}")
    kernels = [int(k) for k in args.kernels.split(",")]
    samples = similarity.collect(args.inputs, args.frames)
    if args.skimage:
        samples += [similarity.Sample(n, "image", similarity.skimage_photo(n)) for n in similarity.SKIMAGE_PHOTOS]
    if not samples:
        ap.error("no images or videos found in the inputs (and --skimage not given)")
    print(f"{len(samples)} inputs, {len(methods)} methods, kernels {kernels}", file=sys.stderr)

    start, done = time.time(), [0]
    total = sum(2 if s.kind == "video" else 1 for s in samples) * len(methods) * len(kernels)

    def progress(what):
        done[0] += 1
        print(f"\r[{done[0]}/{total}] {time.time() - start:6.1f}s {what[:70]:<70}", end="", file=sys.stderr)

    rows = similarity.evaluate(samples, methods, kernels, progress)
    print(file=sys.stderr)
    table = similarity.markdown_table(rows)
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "similarity.md"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(args.out, "similarity.json"), "w") as f:
            json.dump(rows, f, indent=1)
        with open(os.path.join(args.out, "similarity.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0
