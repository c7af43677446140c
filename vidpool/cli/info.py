"""Parameters, GFLOPs (fvcore: multiply-adds), activations and a training-step time of a model.

    vidpool info --cfg configs/demo/r3d10_softpool.yaml          # the model this config builds
    vidpool info --model r3d_50 --frames 16 --size 224
    vidpool info --all --frames 16 --size 224,264 --markdown

With --cfg the model is exactly the one training would build (MODEL.*: width, pooling, classes,
SRTG options) on clips of DATA.NUM_FRAMES x DATA.TRAIN_CROP_SIZE (--frames / --size override the
clip). With --model / --all: registered models at their published width with --pool and --classes.
GFLOPs and activations come from one forward pass on a 1 x 3 x T x S x S clip; the step time is
one SGD step on a batch of --batch such clips (skip it with --no-time).
"""
import torch

from vidpool.cli._args import parse_with_config, parser
from vidpool.config.check import ConfigError, check_cfg, choice_problem

from vidpool.analysis.complexity import count_parameters, flops_and_activations, train_step_seconds
from vidpool.models import create_model, list_models

# GFLOPs the SoftPool paper reports (Table 7), for comparison
PAPER_GFLOPS = {"r3d_50": 53.16, "r3d_101": 78.52, "r2plus1d_50": 50.04, "i3d": 55.27,
                "srtg_r3d_50": 53.22, "srtg_r2plus1d_50": 50.10, "srtg_r3d_101": 78.66}


def main(argv=None):
    ap = parser("info", __doc__)
    ap.add_argument("--model", action="append", help="model name (repeatable); see --list")
    ap.add_argument("--all", action="store_true", help="every registered model")
    ap.add_argument("--list", action="store_true", help="print the registered models and exit")
    ap.add_argument("--pool", default="max", help="pooling method for the non-global pools (default max)")
    ap.add_argument("--classes", type=int, default=400)
    ap.add_argument("--frames", type=int, help="clip length (default: DATA.NUM_FRAMES with --cfg, else 16)")
    ap.add_argument("--size", help="crop size(s), comma-separated (default: DATA.TRAIN_CROP_SIZE with --cfg, else 224)")
    ap.add_argument("--batch", type=int, default=2, help="batch for the step time")
    ap.add_argument("--no-time", action="store_true", help="skip the training-step time")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args, cfg = parse_with_config(ap, argv)
    if args.list:
        print("\n".join(list_models()))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list_models() if args.all else (args.model or [])
    if args.cfg and names:
        ap.error("give --cfg (the configured model) or --model / --all (registered models), not both")
    if not args.cfg and not names:
        ap.error("give --cfg FILE (the model it configures) or --model NAME / --all; --list shows the names")
    problems = [p for n in names for p in choice_problem("--model", n, list_models())]
    if problems:
        raise ConfigError("; ".join(problems))
    if args.cfg:
        check_cfg(cfg)
        names = [cfg.MODEL.ARCH]
    args.frames = args.frames or (cfg.DATA.NUM_FRAMES if args.cfg else 16)
    sizes = [int(s) for s in (args.size or str(cfg.DATA.TRAIN_CROP_SIZE if args.cfg else 224)).split(",")]

    header = ["model", "params (M)"] + [f"GFLOPs {args.frames}x{s}²" for s in sizes] + ["paper GFLOPs"]
    header += [f"activations (M) {args.frames}x{sizes[0]}²"]
    if not args.no_time:
        header += [f"train step (s), batch {args.batch}, {args.frames}x{sizes[0]}²"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for name in names:
        if args.cfg:
            from vidpool.models import build_model

            model = build_model(cfg)
            name = f"{name} ({cfg.MODEL.POOL}, width {cfg.MODEL.BASE_WIDTH}, {cfg.MODEL.NUM_CLASSES} classes)"
        else:
            model = create_model(name, args.classes, pool=args.pool)
        row = [name, f"{count_parameters(model) / 1e6:.2f}"]
        acts = None
        for s in sizes:
            gflops, a = flops_and_activations(model, torch.zeros(1, 3, args.frames, s, s))
            row.append(f"{gflops:.2f}")
            acts = a if acts is None else acts
        row.append(f"{PAPER_GFLOPS[name]:.2f}" if name in PAPER_GFLOPS and not args.cfg else "—")
        row.append(f"{acts:.1f}")
        if not args.no_time:
            clip = torch.randn(args.batch, 3, args.frames, sizes[0], sizes[0])
            row.append(f"{train_step_seconds(model, clip):.2f}")
        print(("| " + " | ".join(row) + " |") if args.markdown else "  ".join(f"{h}: {v}" for h, v in zip(header, row)),
              flush=True)
    return 0
