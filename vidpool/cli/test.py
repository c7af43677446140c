#!/usr/bin/env python
"""Multi-view testing of a trained model: video top-1/top-5, OUTPUT_DIR/predictions.csv (one row per
video) and OUTPUT_DIR/confusion_matrix.csv.

    python tools/test_net.py --cfg configs/ucf101/r3d50_softpool_ft.yaml TEST.CHECKPOINT_FILE_PATH run/ckpt.pyth
    python tools/test_net.py --cfg configs/demo/r3d10_softpool.yaml          # the run's newest checkpoint

KEY VALUE pairs after the config (or after --opts) override it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_net import parse  # noqa: E402

from vidpool.engine import distributed, test  # noqa: E402
from vidpool.engine.tester import format_summary  # noqa: E402


def main(argv=None):
    cfg = parse(argv, __doc__)
    try:
        summary = test(cfg)
    finally:
        distributed.shutdown()
    if distributed.is_main():
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
