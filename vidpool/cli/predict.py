"""Classify video files with a trained model: each video is decoded and viewed as the test split is
(TEST.NUM_ENSEMBLE_VIEWS clips x TEST.NUM_SPATIAL_CROPS crops, softmax averaged) and the top-k class
names are printed with their probabilities.

    vidpool predict --cfg configs/ucf101/r3d50_softpool_ft.yaml --weights run/checkpoints/checkpoint_epoch_00030.pyth a.mp4 b.avi
    vidpool predict --cfg CFG --weights CKPT --topk 3 --views 5 --json clips/*.mp4 > predictions.json
    vidpool predict --cfg CFG --weights CKPT a.mp4 DEVICE cpu TEST.BATCH_SIZE 4

--cfg is optional for a vidpool checkpoint: the model (architecture, pooling, head, width, classes,
I3D padding, SRTG options) and the clip settings come from the config it carries; a --cfg that
describes another model is an error naming both values. A checkpoint of another code base carries
no config: give --cfg. SRTG gates are set from the checkpoint's epoch, as testing sets them.
--weights takes any file load_weights reads (vidpool, PySlowFast, 3D-ResNets-PyTorch, pytorch-i3d,
torchvision). Class names come from DATA.CLASS_NAMES_FILE or the test dataset's class list. A video
that cannot be read gets an error entry (and exit status 1); the others are still classified.
KEY VALUE pairs after the videos override the config (the first upper-case config key starts them).
"""
import json
import logging
import sys

from vidpool.cli._args import parse_with_config, parser
from vidpool.deploy.predict import predict
from vidpool.weights import UntrustedCheckpointError, model_from_checkpoint


def main(argv=None):
    ap = parser("predict", __doc__)
    ap.add_argument("--weights", required=True, metavar="FILE", help="checkpoint file")
    ap.add_argument("videos", nargs="+", help="video files")
    ap.add_argument("--topk", type=int, default=5, help="classes to print per video (default 5)")
    ap.add_argument("--views", type=int, help="temporal clips per video (default TEST.NUM_ENSEMBLE_VIEWS)")
    ap.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    args, cfg = parse_with_config(ap, argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    try:
        model, cfg, report = model_from_checkpoint(args.weights, cfg if args.cfg else None, args.overrides,
                                                   cfg.TRAIN.CHECKPOINT_TYPE, cfg.TRAIN.CHECKPOINT_TRUSTED)
        logging.getLogger("vidpool.deploy").info("%s", report)
        results = predict(cfg, None, args.videos, topk=args.topk, views=args.views, model=model)
    except (UntrustedCheckpointError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        print(f"vidpool predict: error: {e}", file=sys.stderr)
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
