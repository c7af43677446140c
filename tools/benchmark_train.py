#!/usr/bin/env python
"""Training throughput of vidpool's engine against a plain PyTorch loop, max pooling against SoftPool.

    python tools/benchmark_train.py                          # r3d-50 16x224^2 and I3D 32x224^2 (configs/hacs)
    python tools/benchmark_train.py --cfg configs/hacs/r3d50_softpool.yaml --amp bf16 --channels-last
    python tools/benchmark_train.py --cfg configs/demo/r3d10_softpool.yaml --input loader --workers 2 \
        DATA.PATH_TO_DATA_DIR data/demo/ucf101

For every pooling of --pools (MODEL.POOL; the first is the baseline) it trains the config's model
twice from the same initial weights on the same batches: once through the engine's training step
(vidpool.engine.trainer.train_epoch, as `vidpool train` runs it) and once through a plain loop of
PyTorch calls (autocast, cross-entropy, zero_grad, backward, optimizer step; the same model,
optimizer, LR per step, AMP and gradient scaler). Hooks on the model and the optimizer time each
step's phases, synchronising the device at each boundary:

    data     from the end of one optimizer step to the next forward: waiting for the batch, copying
             it to the device and the loop's own bookkeeping (with --input synthetic, only the last)
    forward  the model's forward
    backward from the end of the forward to the optimizer step: loss, zero_grad, backward
    optim    the optimizer step

--input synthetic feeds random uint8 clips already on the device (what the device can compute; both
loops normalise them there, as they do the loader's clips);
--input loader feeds the config's training split through vidpool's loader with --workers processes.
Multigrid is turned off (the benchmark times one clip shape). Prints a table of medians over the
--steps timed steps (after --warmup untimed ones), the targets on a GPU, and the ratios as its last
lines: each pooling's engine step against the baseline's, and the engine's step against the plain
loop's for each pooling. Trailing KEY VALUE pairs override the config.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CASES = [("configs/hacs/r3d50_softpool.yaml", []),
                 ("configs/hacs/i3d_softpool.yaml", ["DATA.NUM_FRAMES", "32"])]
AMP = {"none": None, "fp16": "float16", "bf16": "bfloat16"}
PHASES = ("data", "forward", "backward", "optim")


class PhaseTimer:
    """Per-step phase boundaries observed through hooks on ``model`` and ``optimizer``."""

    def __init__(self, model, optimizer, device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.steps, self.current, self.last_end = [], None, None
        self.handles = [model.register_forward_pre_hook(lambda *a: self._mark("forward_start")),
                        model.register_forward_hook(lambda *a: self._mark("forward_end")),
                        optimizer.register_step_pre_hook(lambda *a: self._mark("optim_start")),
                        optimizer.register_step_post_hook(lambda *a: self._mark("optim_end"))]

    def _mark(self, name):
        self.sync()
        now = time.perf_counter()
        if name == "forward_start":
            self.current = {"forward_start": now, "previous_end": self.last_end}
            return
        self.current[name] = now
        if name == "optim_end":
            self.last_end = now
            if self.current["previous_end"] is not None:  # the first step has no "data" phase to measure
                c = self.current
                self.steps.append({"data": c["forward_start"] - c["previous_end"],
                                   "forward": c["forward_end"] - c["forward_start"],
                                   "backward": c["optim_start"] - c["forward_end"],
                                   "optim": c["optim_end"] - c["optim_start"],
                                   "step": c["optim_end"] - c["previous_end"]})

    def close(self):
        for h in self.handles:
            h.remove()


class Take:
    """The first ``n`` batches of ``batches`` (a loader, or a list that is cycled), with a length as
    the engine expects; every iteration starts again from the first batch."""

    def __init__(self, batches, n: int):
        self.batches, self.n = batches, n

    def __len__(self):
        return self.n

    def __iter__(self):
        source = itertools.cycle(self.batches) if isinstance(self.batches, list) else iter(self.batches)
        return itertools.islice(source, self.n)


def synthetic_batches(cfg, batch: int, device, distinct: int = 4) -> list:
    """``distinct`` batches of random uint8 clips (as the loader hands them over; both loops normalise
    them on the device) and labels on ``device``."""
    g = torch.Generator().manual_seed(0)
    shape = (batch, 3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    return [{"clip": torch.randint(0, 256, shape, generator=g, dtype=torch.uint8).to(device),
             "label": torch.randint(0, cfg.MODEL.NUM_CLASSES, (batch,), generator=g).to(device),
             "skipped": [], "bad": []} for _ in range(distinct)]


def plain_loop(model, batches, optimizer, scaler, lrs, device, dtype, memory_format, mean_std):
    """The training step written out with PyTorch calls only."""
    mean, std = mean_std  # (x / 255 - mean) / std, as x / (255 std) - mean / std
    scale = torch.tensor([1 / (255 * s) for s in std], device=device).view(3, 1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=device).view(3, 1, 1, 1)
    model.train()
    for batch, lr in zip(batches, lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = batch["clip"].to(device, non_blocking=True)
        if x.dtype == torch.uint8:  # the loader's clips: normalised on the device
            x = x.float().mul_(scale).sub_(shift)
        x = x.to(memory_format=memory_format)
        y = batch["label"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def build(cfg, device, compile_model: bool):
    """Model (seeded: every variant of one pooling starts from the same weights), optimizer, scaler."""
    from vidpool.engine.optim import build_optimizer
    from vidpool.engine.trainer import build_training_model, grad_scaler

    torch.manual_seed(cfg.RNG_SEED)
    model = build_training_model(cfg, device, initialise=False)
    optimizer = build_optimizer(model, cfg.SOLVER)
    if compile_model:
        model = torch.compile(model)
    return model, optimizer, grad_scaler(cfg, device)


def run_variant(cfg, loop: str, batches, n: int, device, compile_model: bool) -> dict:
    """Train ``n`` steps with the engine or the plain loop; the per-step phase times, the peak device
    memory and the final weights."""
    from vidpool.engine.optim import lr_at
    from vidpool.engine.trainer import amp_dtype, train_epoch

    model, optimizer, scaler = build(cfg, device, compile_model)
    timer = PhaseTimer(model, optimizer, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    taken = Take(batches, n)
    if loop == "engine":
        train_epoch(model, taken, optimizer, scaler, cfg, 0, device)
    else:
        layout = torch.channels_last_3d if cfg.MODEL.CHANNELS_LAST else torch.preserve_format
        plain_loop(model, taken, optimizer, scaler, [lr_at(cfg.SOLVER, i / n) for i in range(n)], device,
                   amp_dtype(cfg, device), layout, (cfg.DATA.MEAN, cfg.DATA.STD))
    timer.close()
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    weights = {k: v.detach().to("cpu", copy=True) for k, v in getattr(model, "_orig_mod", model).state_dict().items()}
    return {"steps": timer.steps, "peak_mib": peak, "weights": weights}


def summarise(result: dict, warmup: int, batch: int) -> dict:
    timed = result["steps"][max(0, warmup - 1):]  # steps[0] is the second step (the first has no data phase)
    if not timed:
        raise SystemExit("no timed steps: raise --steps")
    med = {k: statistics.median(s[k] for s in timed) for k in PHASES + ("step",)}
    med["clips_per_s"] = batch / med["step"]
    med["peak_mib"] = result["peak_mib"]
    med["n"] = len(timed)
    return med


def benchmark(config: str, overrides, args, device) -> list:
    from vidpool.config import load_cfg
    from vidpool.config.check import check_cfg
    from vidpool.data import build_loader

    base = list(overrides) + ["MULTIGRID.LONG_CYCLE", "False", "MULTIGRID.SHORT_CYCLE", "False",
                              "TRAIN.MIXED_PRECISION", str(args.amp != "none"),
                              "TRAIN.MIXED_PRECISION_DTYPE", AMP[args.amp] or "auto",
                              "MODEL.CHANNELS_LAST", str(args.channels_last), "DEVICE", device.type]
    if args.batch:
        base += ["TRAIN.BATCH_SIZE", str(args.batch)]
    if args.input == "loader":
        base += ["DATA_LOADER.NUM_WORKERS", str(args.workers)]
    n = args.warmup + args.steps + 1
    path = os.path.join(ROOT, config) if not os.path.isabs(config) else config
    cfgs = [load_cfg(path, base + ["MODEL.POOL", pool]) for pool in args.pools]
    for cfg in cfgs:  # every variant checked before any is built (a misspelt pool is one message)
        check_cfg(cfg, train=args.input == "loader")
    rows = []
    for pool, cfg in zip(args.pools, cfgs):
        batch = cfg.TRAIN.BATCH_SIZE
        if args.input == "synthetic":
            batches = synthetic_batches(cfg, batch, device)
        else:
            batches = build_loader(cfg, "train")
        for loop in ("engine", "plain"):
            print(f"[{cfg.MODEL.ARCH} {pool} {loop}] {n} steps, batch {batch}, {cfg.DATA.NUM_FRAMES}x"
                  f"{cfg.DATA.TRAIN_CROP_SIZE}^2", file=sys.stderr, flush=True)
            result = run_variant(cfg, loop, batches, n, device, args.compile)
            rows.append({"arch": cfg.MODEL.ARCH, "pool": pool, "loop": loop, "batch": batch,
                         "shape": f"{cfg.DATA.NUM_FRAMES}x{cfg.DATA.TRAIN_CROP_SIZE}^2",
                         **summarise(result, args.warmup, batch)})
            del result
    return rows


def print_report(rows, args, device) -> list:
    """The table, the GPU targets, then the ratio lines (returned too)."""
    print(f"\ndevice {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads, AMP {args.amp}, channels_last_3d {args.channels_last}, "
          f"torch.compile {args.compile}, input {args.input}" + (f" ({args.workers} workers)" if args.input == "loader" else ""))
    print("| model | clip | pool | loop | clips/s | step ms | data ms | forward ms | backward ms | optim ms | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        print(f"| {r['arch']} | {r['batch']}x{r['shape']} | {r['pool']} | {r['loop']} | {r['clips_per_s']:.1f} | "
              + " | ".join(f"{1000 * r[k]:.1f}" for k in ("step",) + PHASES) + f" | {peak} |")
    by = {(r["arch"], r["pool"], r["loop"]): r for r in rows}
    archs, baseline = list(dict.fromkeys(r["arch"] for r in rows)), args.pools[0]
    # per model and pooling: its engine step over the baseline's, and over the plain loop's
    pairs = [(a, p) for a in archs for p in args.pools]
    vs_baseline = {(a, p): by[a, p, "engine"]["step"] / by[a, baseline, "engine"]["step"] for a, p in pairs}
    vs_plain = {(a, p): by[a, p, "engine"]["step"] / by[a, p, "plain"]["step"] for a, p in pairs}
    lines = []
    for arch in archs:
        lines += [f"{arch}: {pool} step / {baseline} step (engine) {vs_baseline[arch, pool]:.3f}"
                  for pool in args.pools[1:]]
        lines.append(f"{arch}: engine step / plain loop step " + ", ".join(
            f"{pool} {vs_plain[arch, pool]:.3f}" for pool in args.pools))
    if device.type == "cuda":
        print("\nTargets (GPU):")
        for arch in archs:
            if "softpool" in args.pools and baseline == "max":
                ratio = vs_baseline[arch, "softpool"]
                print(f"  {'MET ' if ratio <= 1.03 else 'MISS'} {arch}: softpool step <= 1.03x max step: {ratio:.3f}")
            worst = max(vs_plain[arch, p] for p in args.pools)
            print(f"  {'MET ' if worst <= 1.05 else 'MISS'} {arch}: engine step <= 1.05x plain loop: {worst:.3f}")
            if args.input == "loader":
                share = max(by[arch, p, "engine"]["data"] / by[arch, p, "engine"]["step"] for p in args.pools)
                print(f"  {'MET ' if share < 0.05 else 'MISS'} {arch}: data wait < 5 % of the step: {100 * share:.1f} %")
    print()
    for line in lines:
        print(line)
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfg", action="append", help="config to benchmark (repeatable; default r3d-50 16x224^2 and "
                    "I3D 32x224^2 from configs/hacs)")
    ap.add_argument("--pools", default="max,softpool", help="MODEL.POOL values, baseline first (default max,softpool)")
    ap.add_argument("--amp", choices=sorted(AMP), default="none", help="autocast dtype (default none: fp32)")
    ap.add_argument("--channels-last", action="store_true", help="weights and clips in channels_last_3d")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (both loops)")
    ap.add_argument("--input", choices=("synthetic", "loader"), default="synthetic")
    ap.add_argument("--workers", type=int, default=8, help="loader processes with --input loader (default 8)")
    ap.add_argument("--batch", type=int, default=8, help="clips per step (TRAIN.BATCH_SIZE; default 8; 0: the config's)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per variant (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    args, overrides = ap.parse_known_args(argv)
    if len(overrides) % 2 or any(not k[:1].isupper() for k in overrides[0::2]):
        ap.error(f"unrecognised arguments: {' '.join(overrides)} (config overrides are KEY VALUE pairs)")
    if "MODEL.POOL" in overrides[0::2]:
        ap.error("set the poolings with --pools, not MODEL.POOL")
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    args.pools = args.pools.split(",")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = [(c, []) for c in args.cfg] if args.cfg else DEFAULT_CASES
    for config, _ in cases:
        if not os.path.isfile(os.path.join(ROOT, config)) and not os.path.isfile(config):
            ap.error(f"no such config: {config}")
    from vidpool.config.check import ConfigError

    rows = []
    try:
        for config, extra in cases:
            rows += benchmark(config, extra + list(overrides), args, device)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"error: {e} (the benchmark trains on random clips with the config's LR; a lower SOLVER.BASE_LR "
              "keeps them finite)", file=sys.stderr)
        return 1
    print_report(rows, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
