#!/usr/bin/env python
"""Export a trained model for deployment as ONNX, TorchScript or a torch.export program (.pt2), then
run the written file on fresh inputs and print its largest logit difference from PyTorch.

    python tools/export_model.py --cfg configs/ucf101/r3d50_softpool_ft.yaml --weights run/checkpoints/checkpoint_epoch_00030.pyth --format onnx --out r3d50_softpool.onnx
    python tools/export_model.py --cfg CFG --weights CKPT --format exported --dynamic all --out model.pt2
    python tools/export_model.py --cfg CFG --weights CKPT --format torchscript --dynamic none --batch 1 --out model.ts

The input is (batch, 3, frames, size, size) clips normalised as the config's DATA.MEAN / DATA.STD;
the output is logits (batch, MODEL.NUM_CLASSES). --dynamic: which axes the file accepts other sizes
of: none, batch (default), all (batch, frames, height, width; onnx and exported only). SoftPool is
written as standard operations, so the files run without vidpool (onnxruntime, torch.jit.load,
torch.export.load). --weights takes any file load_weights reads. --opts KEY VALUE ... overrides the config.
"""
import argparse
import sys
import time

import torch

from vidpool.config import load_cfg
from vidpool.deploy.export import DYNAMIC, FORMATS, check_export, export_model
from vidpool.models import build_model
from vidpool.weights import UntrustedCheckpointError, load_weights


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfg", required=True, help="YAML config of the model")
    ap.add_argument("--weights", required=True, help="checkpoint file")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--out", required=True, help="file to write")
    ap.add_argument("--dynamic", default="batch", choices=DYNAMIC, help="input axes that may vary (default batch)")
    ap.add_argument("--batch", type=int, default=2, help="batch of the traced example (>= 2 for a dynamic batch)")
    ap.add_argument("--frames", type=int, help="clip length (default DATA.NUM_FRAMES)")
    ap.add_argument("--size", type=int, help="clip height and width (default DATA.TEST_CROP_SIZE)")
    ap.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    ap.add_argument("--no-check", action="store_true", help="do not run the written file")
    ap.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE", help="config overrides")
    args = ap.parse_args(argv)
    try:
        cfg = load_cfg(args.cfg, args.opts)
        model = build_model(cfg)
        print(load_weights(model, args.weights, cfg.TRAIN.CHECKPOINT_TYPE, trusted=cfg.TRAIN.CHECKPOINT_TRUSTED))
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
        print(f"export_model: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
