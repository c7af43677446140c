"""Write a vidpool checkpoint from a checkpoint file of any supported source: vidpool, PySlowFast,
3D-ResNets-PyTorch (resnet / resnet2p1d), pytorch-i3d, torchvision, the official SRTG code. The
output loads with TRAIN.CHECKPOINT_FILE_PATH / TEST.CHECKPOINT_FILE_PATH and every tool, read with
weights_only=True.

    vidpool convert --weights r3d50_K_200ep.pth --out weights/r3d50_k700.pyth --arch r3d_50
    vidpool convert --weights rgb_imagenet.pt --out weights/i3d_imagenet.pyth --arch i3d
    vidpool convert --weights r3d50_K_200ep.pth --out weights/r3d50_k700_softpool.pyth --arch r3d_50 --pool softpool

--num-classes defaults to the file's classifier; another count keeps the backbone and writes a freshly
initialised classifier. --pool / --head-pool name the pooling of the written model (the file's
pooling layers have no weights to convert). Prints what was loaded, renamed and kept.
"""
import sys

from vidpool.cli._args import parser
from vidpool.config.check import ConfigError, choice_problem
from vidpool.weights import SOURCES, UntrustedCheckpointError, save_converted


def main(argv=None):
    ap = parser("convert", __doc__, cfg="none")
    ap.add_argument("--weights", required=True, metavar="FILE", help="checkpoint file to convert")
    ap.add_argument("--out", required=True, metavar="FILE", help="vidpool checkpoint to write")
    ap.add_argument("--arch", required=True, help="registered vidpool model (vidpool.models.list_models())")
    ap.add_argument("--num-classes", type=int, help="classifier outputs (default: the file's)")
    ap.add_argument("--pool", default="max", help="pooling method of the model (default max)")
    ap.add_argument("--head-pool", default="avg", help="global pool before the classifier (default avg)")
    ap.add_argument("--base-width", type=int, default=64,
                    help="3D ResNets: stem channels (64; 3D-ResNets-PyTorch's widen_factor x 64)")
    ap.add_argument("--source", default="auto", choices=("auto",) + SOURCES, help="file format (default: detected)")
    ap.add_argument("--trusted", action="store_true",
                    help="allow files that need full unpickling (runs code from the file: only for files you trust)")
    args = ap.parse_args(argv)
    from vidpool.models import list_models
    from vidpool.ops import list_pools

    problems = (choice_problem("--arch", args.arch, list_models()) + choice_problem("--pool", args.pool, list_pools())
                + choice_problem("--head-pool", args.head_pool, ("avg", "max", "softpool")))
    if problems:
        raise ConfigError("; ".join(problems))
    try:
        report = save_converted(args.weights, args.out, args.arch, num_classes=args.num_classes, pool=args.pool,
                                head_pool=args.head_pool, base_width=args.base_width, source=args.source, trusted=args.trusted)
    except (UntrustedCheckpointError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"vidpool convert: error: {e}", file=sys.stderr)
        return 2
    print(report)
    print(f"wrote {args.out}")
    return 0
