"""Fill a decoded-frame cache (DATA.FRAME_CACHE) ahead of training: every video of the given splits
decoded once, in parallel, and written where training and testing will read it
(vidpool/data/frame_cache.py). Videos already cached are left alone; videos that cannot be decoded
are counted and listed (training skips them as it always does).

    vidpool cache-frames --cfg configs/demo/r3d10_softpool.yaml DATA.FRAME_CACHE data/demo/frame_cache
    vidpool cache-frames --cfg my_ucf101.yaml --splits train test --workers 8

KEY VALUE pairs override the config (as in train_net.py); DATA.FRAME_CACHE must be set, and the
frames are stored at the short side the config's clips are cut from (the largest training scale or
crop, or the test crop), so fill it with the config you train with.
"""
import logging
import multiprocessing
import os
import sys
from collections import Counter

from vidpool.cli._args import parse_with_config, parser
from vidpool.data.build import SPLITS, read_annotations
from vidpool.data.check import progress_printer
from vidpool.data.datasets.base import unreadable_reason
from vidpool.data.frame_cache import frame_cache


def parse(argv):
    ap = parser("cache-frames", __doc__)
    ap.add_argument("--splits", nargs="+", choices=SPLITS,
                    help="splits whose videos to cache (test: the TEST.SPLIT annotations of TEST.DATASET; "
                    "default: the splits a training run of the config reads: train, val when "
                    "TRAIN.EVAL_PERIOD > 0, and test)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes")
    return parse_with_config(ap, argv)


_cache = None


def _init(cache):
    global _cache
    _cache = cache


def _one(path):
    """(path, "cached" | "added" | "failed", reason)."""
    try:
        return path, "cached" if _cache.frames(path)[2] else "added", ""
    except Exception as e:  # noqa: BLE001 - one video's failure is that video's, counted and listed
        return path, "failed", unreadable_reason(path, e)


def entries_size(root: str) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files if f.endswith(".npy"))
    return total


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    args, cfg = parse(argv)
    cache = frame_cache(cfg)
    if cache is None:
        print("DATA.FRAME_CACHE is not set: give the folder to fill, e.g. DATA.FRAME_CACHE data/frame_cache",
              file=sys.stderr)
        return 2
    paths = []
    splits = args.splits or ["train"] + (["val"] if cfg.TRAIN.EVAL_PERIOD > 0 else []) + ["test"]
    for split in splits:
        ann = read_annotations(cfg, split, keep_missing=False)
        print(ann.report)
        paths += [r.path for r in ann.records]
    paths = list(dict.fromkeys(paths))
    print(f"caching the frames of {len(paths)} videos in {cache.root} (short side {cache.short_side}) "
          f"with {args.workers} workers")
    step, close = progress_printer(len(paths), desc="caching frames", done="cached")
    results = []
    try:
        if args.workers > 1:
            with multiprocessing.Pool(args.workers, _init, (cache,)) as pool:
                for r in pool.imap_unordered(_one, paths, chunksize=4):
                    results.append(r)
                    step(len(results), r)
        else:
            _init(cache)
            for p in paths:
                results.append(_one(p))
                step(len(results), results[-1])
    finally:
        close()
    counts = Counter(status for _, status, _ in results)
    failed = [(p, why) for p, status, why in results if status == "failed"]
    print(f"{counts['added']} videos added, {counts['cached']} already cached, {len(failed)} unreadable; "
          f"the cache holds {entries_size(cache.root) / 2 ** 30:.2f} GiB of frames")
    for p, why in failed[:10]:
        print(f"  unreadable: {p} ({why})")
    if len(failed) > 10:
        print(f"  ... {len(failed) - 10} more")
    return 1 if paths and len(failed) == len(paths) else 0
