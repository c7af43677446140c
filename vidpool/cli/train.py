#!/usr/bin/env python
"""Train a model as a config describes, then (TEST.ENABLE) test it with multiple views.

    python tools/train_net.py --cfg configs/hacs/r3d50_softpool.yaml
    python tools/train_net.py --cfg configs/demo/r3d10_softpool.yaml OUTPUT_DIR /tmp/run SOLVER.MAX_EPOCH 5
    torchrun --nproc_per_node 4 tools/train_net.py --cfg configs/hacs/r3d50_softpool.yaml

KEY VALUE pairs after the config (or after --opts) override it; an unknown key is an error that
names the closest valid one. The resolved config is saved as OUTPUT_DIR/config.yaml. On SIGTERM or
SIGUSR1 (SLURM's warning before a time limit or preemption) every process finishes its step, a
checkpoint is written and the command exits with status 75; the same command resumes from it.
"""
import argparse
import sys

from vidpool.config import parse_config_args
from vidpool.engine import distributed, test, train
from vidpool.engine.resume import PREEMPTED_EXIT_CODE, Preempted
from vidpool.engine.tester import format_summary


def parse(argv, description):
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfg", help="YAML config (defaults: vidpool/config/defaults.py)")
    ap.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")
    args, _ = ap.parse_known_args(argv)
    return parse_config_args(ap, argv, args.opts)[1]


def main(argv=None):
    cfg = parse(argv, __doc__)
    try:
        if cfg.TRAIN.ENABLE:
            try:
                stats = train(cfg)
            except Preempted as e:
                print(f"preempted: {e}", flush=True)
                return PREEMPTED_EXIT_CODE
            if stats:
                val = f": val top-1 {stats['val_top1']:.2f}%" if "val_top1" in stats else ""
                print(f"trained {stats['epoch']} epochs{val}")
        if cfg.TEST.ENABLE:
            summary = test(cfg)
            if distributed.is_main():
                print(format_summary(summary))
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
