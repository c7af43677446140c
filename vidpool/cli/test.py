"""Multi-view testing of a trained model: video top-1/top-5, OUTPUT_DIR/predictions.csv (one row per
video) and OUTPUT_DIR/confusion_matrix.csv.

    vidpool test --cfg configs/ucf101/r3d50_softpool_ft.yaml --weights run/checkpoints/checkpoint_epoch_00030.pyth
    vidpool test --cfg configs/ucf101/r3d50_softpool_ft.yaml --weights output/ucf101_r3d50_softpool_ft  # its last epoch
    vidpool test --cfg configs/demo/r3d10_softpool.yaml          # the run's (OUTPUT_DIR's) newest checkpoint

--weights sets TEST.CHECKPOINT_FILE_PATH: a checkpoint file or a run folder. KEY VALUE pairs after
the options override the config. SIGTERM or SIGUSR1 ends testing after the current batch with
status 75, nothing written.
"""
from vidpool.cli._args import parse_with_config, parser


def main(argv=None):
    ap = parser("test", __doc__)
    ap.add_argument("--weights", metavar="FILE", help="checkpoint file or run folder (TEST.CHECKPOINT_FILE_PATH)")
    args, cfg = parse_with_config(ap, argv)
    from vidpool.engine import distributed, test
    from vidpool.engine.tester import format_summary

    if args.weights:
        cfg.defrost()
        cfg.TEST.CHECKPOINT_FILE_PATH = args.weights
        cfg.freeze()
    from vidpool.engine.resume import PREEMPTED_EXIT_CODE, Preempted

    try:  # test() checks the whole config (and the checkpoint it names) before reading any data
        summary = test(cfg)
    except Preempted as e:  # SIGTERM / SIGUSR1: ended after the current batch
        print(f"preempted: {e}", flush=True)
        return PREEMPTED_EXIT_CODE
    finally:
        distributed.shutdown()
    if distributed.is_main():
        print(format_summary(summary))
    return 0
