"""Train a model as a config describes, then (TEST.ENABLE) test it with multiple views.

    vidpool train --cfg configs/hacs/r3d50_softpool.yaml
    vidpool train --cfg configs/demo/r3d10_softpool.yaml OUTPUT_DIR /tmp/run SOLVER.MAX_EPOCH 5
    torchrun --nproc_per_node 4 -m vidpool train --cfg configs/hacs/r3d50_softpool.yaml

KEY VALUE pairs after the options override the config; an unknown key is an error that names the
closest valid one. The whole config (values, names, the files it points to) is checked before any
data is read. The resolved config is saved as OUTPUT_DIR/config.yaml. On SIGTERM or SIGUSR1 (SLURM's
warning before a time limit or preemption) every process finishes its step, a checkpoint is written
and the command exits with status 75; the same command resumes from it. A signal during validation,
precise BN or testing ends that pass after the current batch (training: with a checkpoint of the
epoch's finished steps; testing writes nothing and starts again).
"""
from vidpool.cli._args import parse_with_config, parser


def main(argv=None):
    args, cfg = parse_with_config(parser("train", __doc__), argv)
    from vidpool.config.check import check_cfg
    from vidpool.engine import distributed, test, train
    from vidpool.engine.resume import PREEMPTED_EXIT_CODE, Preempted
    from vidpool.engine.tester import format_summary

    check_cfg(cfg, train=cfg.TRAIN.ENABLE, test=cfg.TEST.ENABLE)
    try:
        if cfg.TRAIN.ENABLE:
            stats = train(cfg)
            if stats:
                val = f": val top-1 {stats['val_top1']:.2f}%" if "val_top1" in stats else ""
                print(f"trained {stats['epoch']} epochs{val}")
        if cfg.TEST.ENABLE:  # a trained run started again goes straight to testing
            summary = test(cfg)
            if distributed.is_main():
                print(format_summary(summary))
    except Preempted as e:
        print(f"preempted: {e}", flush=True)
        return PREEMPTED_EXIT_CODE
    finally:
        distributed.shutdown()
    return 0
