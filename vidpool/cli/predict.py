#!/usr/bin/env python
"""Classify video files with a trained model: each video is decoded and viewed as the test split is
(TEST.NUM_ENSEMBLE_VIEWS clips x TEST.NUM_SPATIAL_CROPS crops, softmax averaged) and the top-k class
names are printed with their probabilities.

    python tools/predict.py --cfg configs/ucf101/r3d50_softpool_ft.yaml --weights run/checkpoints/checkpoint_epoch_00030.pyth a.mp4 b.avi
    python tools/predict.py --cfg CFG --weights CKPT --topk 3 --views 5 --json clips/*.mp4 > predictions.json

--weights takes any file load_weights reads (vidpool, PySlowFast, 3D-ResNets-PyTorch, pytorch-i3d,
torchvision). Class names come from DATA.CLASS_NAMES_FILE or the test dataset's class list. A video
that cannot be read gets an error entry (and exit status 1); the others are still classified.
--opts KEY VALUE ... overrides the config (e.g. --opts DEVICE cpu TEST.BATCH_SIZE 4).
"""
import argparse
import json
import logging
import sys

from vidpool.config import load_cfg
from vidpool.deploy.predict import predict
from vidpool.weights import UntrustedCheckpointError


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfg", required=True, help="YAML config of the model")
    ap.add_argument("--weights", required=True, help="checkpoint file")
    ap.add_argument("videos", nargs="+", help="video files")
    ap.add_argument("--topk", type=int, default=5, help="classes to print per video (default 5)")
    ap.add_argument("--views", type=int, help="temporal clips per video (default TEST.NUM_ENSEMBLE_VIEWS)")
    ap.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    ap.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE", help="config overrides")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load_cfg(args.cfg, args.opts)
        results = predict(cfg, args.weights, args.videos, topk=args.topk, views=args.views)
    except (UntrustedCheckpointError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        print(f"predict: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(r["video"])
            if "error" in r:
                print(f"  cannot be read: {r['error']}")
            for t in r.get("top", []):
                print(f"  {t['prob']:7.2%}  {t['label']}  ({t['index']})")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
