"""Share of clips the SRTG temporal gates let through, in both comparison modes (the squeezed frames
against their recalibrated version, vidpool's default, or against the LSTM output h, as published),
with the same weights: a model at initialisation, or trained weights.

    vidpool gate-rates --cfg configs/demo/r3d10_softpool.yaml MODEL.ARCH srtg_r3d_18
    vidpool gate-rates --cfg CFG --weights output/run/checkpoints/checkpoint_epoch_00030.pyth

A vidpool checkpoint brings its config (--cfg, if given, must describe the same model). Clips come
from the config's validation split (--batches batches of TEST.BATCH_SIZE). Prints the pass
rate of every SR block and over all of them, per mode. KEY VALUE pairs override the config.
"""

import torch

from vidpool.cli._args import parse_with_config, parser
from vidpool.data import build_loader
from vidpool.models import build_model, model_input
from vidpool.models.srtg import SqueezeRecursion, gate_pass_rate, set_epoch
from vidpool.weights import load_weights, model_from_checkpoint


def rates(cfg, weights, batches):
    out = {}
    state = None
    for mode in ("recalibrated", "hidden"):
        c = cfg.clone()
        c.defrost()
        c.MODEL.SRTG_GATE, c.MODEL.SRTG_GATE_COMPARE = "cycle", mode
        model = build_model(c).eval()
        if state is None:
            if weights:
                print(load_weights(model, weights, c.TRAIN.CHECKPOINT_TYPE, trusted=c.TRAIN.CHECKPOINT_TRUSTED))
            state = model.state_dict()
        model.load_state_dict(state)
        set_epoch(model, 10 ** 9)
        blocks = {n: m for n, m in model.named_modules() if isinstance(m, SqueezeRecursion)}
        if not blocks:
            raise ValueError(f"{c.MODEL.ARCH} has no SR blocks of vidpool's variant (use an srtg_* model)")
        loader = build_loader(c, "val", batch_size=c.TEST.BATCH_SIZE)
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i == batches:
                    break
                model(model_input(batch["clip"], "cpu", c))
        per_block = {n: float(b.gate_counts[1] / b.gate_counts[0]) for n, b in blocks.items()}
        tested, passed = gate_pass_rate(model)
        out[mode] = {"all": passed / tested, "blocks": per_block}
    return out


def main(argv=None):
    ap = parser("gate-rates", __doc__)
    ap.add_argument("--weights", metavar="FILE",
                    help="checkpoint to load (default: the model at initialisation); a vidpool checkpoint "
                         "brings its config, so --cfg may be left out")
    ap.add_argument("--batches", type=int, default=8, help="validation batches to run (default 8)")
    args, cfg = parse_with_config(ap, argv)
    if args.weights:  # the model the checkpoint was trained as (an error if --cfg describes another)
        _, cfg, _ = model_from_checkpoint(args.weights, cfg if args.cfg else None, args.overrides,
                                          cfg.TRAIN.CHECKPOINT_TYPE, cfg.TRAIN.CHECKPOINT_TRUSTED)
    elif not args.cfg:
        ap.error("give --cfg FILE (a model at initialisation) or --weights CHECKPOINT")
    torch.manual_seed(cfg.RNG_SEED)
    res = rates(cfg, args.weights, args.batches)
    for mode, r in res.items():
        blocks = ", ".join(f"{n.replace('.sr', '')} {v:.0%}" for n, v in r["blocks"].items())
        print(f"{mode:>12}: {r['all']:.1%} of clips pass over all SR blocks ({blocks})")
    return 0
