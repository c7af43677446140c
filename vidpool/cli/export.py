"""Export a trained model for deployment as ONNX, TorchScript or a torch.export program (.pt2), then
run the written file on fresh inputs and print its largest logit difference from PyTorch.

    vidpool export --cfg configs/ucf101/r3d50_softpool_ft.yaml --weights run/checkpoints/checkpoint_epoch_00030.pyth --format onnx --out r3d50_softpool.onnx
    vidpool export --cfg CFG --weights CKPT --format exported --dynamic all --out model.pt2
    vidpool export --cfg CFG --weights CKPT --format torchscript --dynamic none --batch 1 --out model.ts

The input is (batch, 3, frames, size, size) clips normalised as the config's DATA.MEAN / DATA.STD;
the output is logits (batch, MODEL.NUM_CLASSES). --dynamic: which axes the file accepts other sizes
of: none, batch (default), all (batch, frames, height, width; onnx and exported only). SoftPool is
written as standard operations, so the files run without vidpool (onnxruntime, torch.jit.load,
torch.export.load). --cfg is optional for a vidpool checkpoint: the model (architecture, pooling, head, width, classes,
I3D padding, SRTG options) and the clip settings come from the config it carries; a --cfg that
describes another model is an error naming both values. A checkpoint of another code base carries
no config: give --cfg. SRTG gates are set from the checkpoint's epoch, as testing sets them.
--weights takes any file load_weights reads. KEY VALUE pairs at the end override the config.
"""
import sys
import time

import torch

from vidpool.cli._args import parse_with_config, parser
from vidpool.deploy.export import DYNAMIC, FORMATS, check_export, export_model
from vidpool.weights import UntrustedCheckpointError, model_from_checkpoint


def main(argv=None):
    ap = parser("export", __doc__)
    ap.add_argument("--weights", required=True, metavar="FILE", help="checkpoint file")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--out", required=True, help="file to write")
    ap.add_argument("--dynamic", default="batch", choices=DYNAMIC, help="input axes that may vary (default batch)")
    ap.add_argument("--batch", type=int, default=2, help="batch of the traced example (>= 2 for a dynamic batch)")
    ap.add_argument("--frames", type=int, help="clip length (default DATA.NUM_FRAMES)")
    ap.add_argument("--size", type=int, help="clip height and width (default DATA.TEST_CROP_SIZE)")
    ap.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    ap.add_argument("--no-check", action="store_true", help="do not run the written file")
    args, cfg = parse_with_config(ap, argv)
    try:
        model, cfg, report = model_from_checkpoint(args.weights, cfg if args.cfg else None, args.overrides,
                                                   cfg.TRAIN.CHECKPOINT_TYPE, cfg.TRAIN.CHECKPOINT_TRUSTED)
        print(report)
        frames, size = args.frames or cfg.DATA.NUM_FRAMES, args.size or cfg.DATA.TEST_CROP_SIZE
        shape = (args.batch, 3, frames, size, size)
        start = time.time()
        export_model(model, torch.randn(shape), args.format, args.out, args.dynamic, args.opset)
        print(f"wrote {args.out} ({args.format}, input {shape}, dynamic: {args.dynamic}) in {time.time() - start:.0f} s")
        if not args.no_check:
            shapes = [shape]
            if args.dynamic != "none":
                shapes.append((args.batch + 1,) + shape[1:])
            if args.dynamic == "all":
                shapes.append((1, 3, frames + frames // 2, size + size // 4, size))
            diff = check_export(model, args.out, args.format, shapes)
            print(f"checked on inputs {shapes}: max |logit difference| {diff['max_abs_diff']:.3g} "
                  f"({diff['max_rel_diff']:.3g} of the largest logit)")
    except (UntrustedCheckpointError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        print(f"vidpool export: error: {e}", file=sys.stderr)
        return 2
    return 0
