"""Show what pooling methods keep: a clip (or image) downsampled by each method, side by side.

    vidpool visualize pooling tests/assets/videos/arm_wrestling.mp4
    vidpool visualize pooling clip.avi photo.jpg --methods avg,max,softpool,lip --kernel 2,4,4 \\
        --zoom 40,60,48,48 --out viz/

For each input, in --out (default viz/):
  NAME_pooling.mp4 (or .gif with --gif): the original and each method's output, brought back to the
                   original size, labelled, side by side (videos only);
  NAME_pooling.png: a few frames x (original + methods), then for each zoom box its region of the
                   middle frame enlarged (--zoom x,y,w,h in original pixels, repeatable; default: the
                   box where the methods differ most, drawn in red on the original).
Videos are pooled in 3D over --kernel t,h,w (stride --stride, default = kernel); images in 2D over
the kernel's last two values. Any method of the pooling zoo works (python -c "import vidpool.ops as o;
print(o.list_pools())").
"""
import argparse
import os
import sys

from vidpool.cli._args import parser
from vidpool.ops import list_pools
from vidpool.viz.pooling import visualize


def _ints(text: str, n: int, what: str):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated integers, got {text!r}") from None
    if len(values) == 1 and n == 3:
        values = values * 3
    if len(values) != n or min(values) < (0 if what == "zoom" else 1):
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated positive integers, got {text!r}")
    return values


def main(argv=None):
    ap = parser("visualize pooling", __doc__, cfg="none")
    ap.add_argument("inputs", nargs="+", help="videos (anything PyAV reads) or images")
    ap.add_argument("--methods", default="avg,max,softpool", help="comma-separated zoo methods")
    ap.add_argument("--kernel", default="2,3,3", type=lambda t: _ints(t, 3, "kernel"), help="t,h,w")
    ap.add_argument("--stride", type=lambda t: _ints(t, 3, "stride"), help="t,h,w (default: the kernel)")
    ap.add_argument("--frames", type=int, default=64, help="frames to use from each video")
    ap.add_argument("--start", type=int, default=0, help="first frame")
    ap.add_argument("--short-side", type=int, help="resize the input's short side first")
    ap.add_argument("--zoom", action="append", default=[], type=lambda t: tuple(_ints(t, 4, "zoom")),
                    help="x,y,w,h region to enlarge (repeatable)")
    ap.add_argument("--gif", action="store_true", help="write a GIF instead of an MP4")
    ap.add_argument("--out", default="viz", help="output folder")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in list_pools()]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; the zoo has {list_pools()}")
    status = 0
    for path in args.inputs:
        print(f"{path}:", flush=True)
        try:
            files = visualize(path, args.out, methods, args.kernel, args.stride, args.frames, args.start,
                              args.short_side, args.zoom, args.gif, progress=lambda m: print(f"  {m}", flush=True))
        except (OSError, ValueError) as e:
            print(f"  error: {e}", file=sys.stderr)
            status = 2
            continue
        for f in files:
            print(f"  wrote {os.path.relpath(f)}")
    return status
