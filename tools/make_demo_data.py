#!/usr/bin/env python
"""Generate the synthetic action dataset (real H.264 MP4 files + HACS, Kinetics and UCF-101 annotations).

    python tools/make_demo_data.py --out data/demo            # 500 videos, 10 classes
    python tools/make_demo_data.py --out /tmp/tiny --videos 60 --classes 4

Then point a config at one of the layouts, e.g. TRAIN.DATASET ucf101 DATA.PATH_TO_DATA_DIR
data/demo/ucf101, or TRAIN.DATASET kinetics DATA.PATH_TO_DATA_DIR data/demo/kinetics
DATA.PATH_PREFIX data/demo/kinetics/videos DATA.CLASS_NAMES_FILE data/demo/classes.txt.
"""
import argparse
import os
import sys

from vidpool.data.datasets.synthetic import make_synthetic_dataset


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--videos", type=int, default=500)
    ap.add_argument("--classes", type=int, default=10, help="2..10")
    ap.add_argument("--frames", type=int, default=48, help="frames per video")
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--size", default="120x160", help="HxW, both even")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clutter", type=float, default=1.0,
                    help="contrast of the background texture, 0 = flat (lower is easier to learn)")
    ap.add_argument("--motion", type=float, default=1.0,
                    help="scale of the motion that tells the classes apart, in (0, 1] (lower is harder to learn)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--val-videos", type=int, help="validation videos on top of --videos (default: a tenth, "
                    "at least one per class), in groups of their own")
    args = ap.parse_args(argv)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size must look like 120x160, got {args.size!r}")
    summary = make_synthetic_dataset(args.out, args.videos, args.classes, args.seed, args.frames, args.fps, (h, w),
                                     args.workers, clutter=args.clutter, val_videos=args.val_videos,
                                     motion=args.motion)
    print(f"wrote {summary['videos']} videos of {len(summary['classes'])} classes to {summary['root']} "
          f"(and {summary['val_videos']} validation videos) in {summary['seconds']} s")
    for layout in ("hacs", "kinetics", "ucf101"):
        print(f"  {os.path.join(args.out, layout)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
