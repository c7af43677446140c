#!/usr/bin/env python
"""Time SoftPool3d against avg/max pooling and the composite formula, in one run.

Prints, per input shape and pooling geometry, the median forward and forward+backward times,
the bytes autograd saves for backward, and ratios; then checks the SoftPool targets on the r3d
stem shape (4x64x16x56x56, k=2 s=2). Example:

    python tools/benchmark_pooling.py --threads 2
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from vidpool import ops
from vidpool.analysis.complexity import median_seconds
from vidpool.ops import _reference, build_pool, list_pools

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CASES = [  # (label, shape, kernel, stride, padding)
    ("r3d stem", (4, 64, 16, 56, 56), 2, 2, 0),
    ("r3d stem", (4, 64, 16, 56, 56), 3, 2, 1),
    ("late stage", (8, 512, 4, 14, 14), 2, 2, 0),
    ("late stage", (8, 512, 4, 14, 14), 3, 2, 1),
]


def composite(x, k, s, p):
    """SoftPool as two average pools: avg(x * e^x) / avg(e^x) (overflows for large x)."""
    e = torch.exp(x)
    return F.avg_pool3d(x * e, k, s, p) / F.avg_pool3d(e, k, s, p)


def methods():
    return {
        "softpool3d (compiled)": lambda x, k, s, p: ops.soft_pool3d(x, k, s, p),
        "softpool3d (reference)": lambda x, k, s, p: _reference.soft_pool(x, (k,) * 3, (s,) * 3, (p,) * 3),
        "avg_pool3d": lambda x, k, s, p: F.avg_pool3d(x, k, s, p),
        "max_pool3d": lambda x, k, s, p: F.max_pool3d(x, k, s, p),
        "composite avg(x*e^x)/avg(e^x)": composite,
    }


def median_time(fn, repeats, warmup):
    """Median milliseconds of fn()."""
    return median_seconds(fn, repeats, warmup) * 1e3


def saved_bytes(f, x, k, s, p):
    """Bytes autograd keeps for backward, each storage counted once (the input included)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        f(x, k, s, p)
    return sum(storages.values())


def _sync(x):
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def kernel_ms(fn, repeats, breakdown=False):
    """Milliseconds the GPU spends in kernels (and memsets/copies) per fn() call, from torch.profiler:
    what the device does, without the host-side dispatch and Python overhead a wall clock includes.
    With breakdown, also the profiler's per-kernel table."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
    events = prof.key_averages()
    total = sum(e.self_device_time_total for e in events) / repeats / 1e3
    table = events.table(sort_by="self_device_time_total", row_limit=6) if breakdown else None
    return total, table


def measure(name, f, x, k, s, p, repeats, warmup, kernel_time=False):
    xg = x.detach().requires_grad_()
    grad = torch.randn_like(f(x, k, s, p))

    def fwd():
        with torch.no_grad():
            f(x, k, s, p)
        _sync(x)

    def fwd_bwd():
        xg.grad = None
        f(xg, k, s, p).backward(grad)
        _sync(x)

    row = {"fwd": median_time(fwd, repeats, warmup), "fwd_bwd": median_time(fwd_bwd, repeats, warmup),
           "saved": saved_bytes(f, xg, k, s, p)}
    if kernel_time:
        row["gpu_fwd"], _ = kernel_ms(fwd, repeats)
        row["gpu_fwd_bwd"], row["gpu_table"] = kernel_ms(fwd_bwd, repeats, breakdown="compiled" in name)
    return row


def dispatch_overhead(device, repeats: int, calls: int = 200) -> dict:
    """Host time of one forward+backward on a 1x1x2x2x2 tensor (k=2): what calling the op and its
    autograd costs when the kernel itself does almost nothing, SoftPool3d (the module networks use,
    and the functional form) against max_pool3d. Microseconds per call, median of ``repeats`` batches
    of ``calls`` calls, the four forms taking turns batch by batch (so the machine's drift, which on
    a shared host can halve or double host times for seconds, hits all of them alike)."""
    x = torch.randn(1, 1, 2, 2, 2, device=device).requires_grad_()
    pool, max_pool = ops.SoftPool3d(2), torch.nn.MaxPool3d(2)
    forms = {"SoftPool3d module": pool, "MaxPool3d module": max_pool,
             "soft_pool3d function": lambda t: ops.soft_pool3d(t, 2),
             "max_pool3d function": lambda t: F.max_pool3d(t, 2)}

    def batch(f):
        start = time.perf_counter()
        for _ in range(calls):
            f(x).sum().backward()
        _sync(x)
        return time.perf_counter() - start

    times = {name: [] for name in forms}
    for r in range(repeats + 2):  # two warm-up rounds
        for name, f in forms.items():
            t = batch(f)
            if r >= 2:
                times[name].append(t)
    return {name: statistics.median(v) / calls * 1e6 for name, v in times.items()}


def report_dispatch(device, repeats):
    """Prints each form against max pooling's same form (module against nn.MaxPool3d, function
    against F.max_pool3d); returns the larger of the two ratios."""
    us = dispatch_overhead(device, repeats)
    print("\nHost time of a fwd+bwd on a 1x1x2x2x2 tensor (dispatch and autograd, the kernel negligible)")
    ratios = {"module": us["SoftPool3d module"] / us["MaxPool3d module"],
              "function": us["soft_pool3d function"] / us["max_pool3d function"]}
    for name, t in us.items():
        form = "module" if "module" in name else "function"
        base = us["MaxPool3d module"] if form == "module" else us["max_pool3d function"]
        print(f"  {name:<21} {t:7.1f} us  ({t / base:.2f}x max pooling's {form})")
    return max(ratios.values())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per measurement (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reference-repeats", type=int, default=3, help="timed runs for the slow reference")
    ap.add_argument("--quick", action="store_true", help="small shapes only (a smoke run)")
    ap.add_argument("--zoo", action="store_true",
                    help="instead, time every pooling method of the zoo (3D, r3d stem shape, train mode)")
    ap.add_argument("--zoo-kernel", default="2,2,0", help="kernel,stride,padding for --zoo (default 2,2,0)")
    ap.add_argument("--zoo-eval", action="store_true", help="time the zoo in eval mode (default: train mode)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--kernel-time", action="store_true",
                    help="on CUDA, also the GPU's kernel time per call (torch.profiler) and its ratios")
    ap.add_argument("--dispatch", action="store_true",
                    help="only the host time of a tiny fwd+bwd (dispatch and autograd) against max_pool3d")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                    help="input dtype (default float32; half types are what mixed-precision training pools)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if device.type == "cpu" and args.dtype != "float32":
        ap.error(f"--dtype {args.dtype} needs --device cuda: torch's CPU avg_pool3d has no half-precision kernel")
    if args.kernel_time and device.type != "cuda":
        ap.error("--kernel-time needs --device cuda")
    if args.zoo:
        return zoo_latency(args)
    if args.dispatch:
        torch.set_num_threads(args.threads)
        ratio = report_dispatch(device, args.repeats)
        report("tiny fwd+bwd host time <= 1.5x max pooling's (module and function)", ratio, 1.5, "<=")
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    dtype = DTYPES[args.dtype]
    print(f"torch {torch.__version__}, {where}, softpool backend: {ops.backend(device)}, {args.dtype}")
    cases = [(lbl, (1, 8) + shp[2:3] + tuple(v // 4 for v in shp[3:]), k, s, p) for lbl, shp, k, s, p in CASES] \
        if args.quick else CASES
    results = {}
    for label, shape, k, s, p in cases:
        x = torch.randn(shape, device=device, dtype=dtype)
        in_bytes = x.numel() * x.element_size()
        print(f"\n{label} {'x'.join(map(str, shape))}, kernel {k} stride {s} padding {p}")
        print(f"| {'method':<31} | {'fwd ms':>8} | {'fwd+bwd ms':>10} | {'saved MB':>8} | {'fwd / avg':>9} | "
              f"{'f+b / max':>9} |")
        print(f"|{'-' * 33}|{'-' * 10}|{'-' * 12}|{'-' * 10}|{'-' * 11}|{'-' * 11}|")
        rows = {}
        for name, f in methods().items():
            reps = args.reference_repeats if "reference" in name else args.repeats
            rows[name] = measure(name, f, x, k, s, p, reps, 1 if "reference" in name else args.warmup,
                                 args.kernel_time)
        for name, r in rows.items():
            print(f"| {name:<31} | {r['fwd']:8.2f} | {r['fwd_bwd']:10.2f} | {r['saved'] / 2**20:8.1f} | "
                  f"{r['fwd'] / rows['avg_pool3d']['fwd']:9.2f} | "
                  f"{r['fwd_bwd'] / rows['max_pool3d']['fwd_bwd']:9.2f} |")
        if args.kernel_time:
            print(f"\nGPU kernel time (torch.profiler, per call)\n| {'method':<31} | {'fwd ms':>8} | "
                  f"{'fwd+bwd ms':>10} | {'fwd / avg':>9} | {'f+b / max':>9} |")
            print(f"|{'-' * 33}|{'-' * 10}|{'-' * 12}|{'-' * 11}|{'-' * 11}|")
            for name, r in rows.items():
                print(f"| {name:<31} | {r['gpu_fwd']:8.3f} | {r['gpu_fwd_bwd']:10.3f} | "
                      f"{r['gpu_fwd'] / rows['avg_pool3d']['gpu_fwd']:9.2f} | "
                      f"{r['gpu_fwd_bwd'] / rows['max_pool3d']['gpu_fwd_bwd']:9.2f} |")
            print(rows["softpool3d (compiled)"]["gpu_table"])
        out_bytes = torch.Size(F.max_pool3d(x, k, s, p).shape).numel() * x.element_size()
        results[(label, k)] = (rows, in_bytes, out_bytes)

    dispatch = report_dispatch(device, args.repeats)
    if args.quick:
        print("\n--quick uses small shapes: the targets (r3d stem 4x64x16x56x56) are not checked.")
        return 0
    print(f"\nTargets ({device.type}):")
    report("tiny fwd+bwd host time <= 1.5x max pooling's (module and function)", dispatch, 1.5, "<=")
    for (label, k), (rows, _, _) in results.items():
        if label == "late stage":  # narrow rows (W 14)
            sp = rows["softpool3d (compiled)"]
            report(f"late stage k={k}: forward <= 1.5x avg_pool3d forward", sp["fwd"] / rows["avg_pool3d"]["fwd"], 1.5, "<=")
            report(f"late stage k={k}: fwd+bwd <= 1.0x max_pool3d fwd+bwd",
                   sp["fwd_bwd"] / rows["max_pool3d"]["fwd_bwd"], 1.0, "<=")
    key = ("r3d stem", 2)
    rows, in_bytes, out_bytes = results[key]
    sp = rows["softpool3d (compiled)"]
    checks = [
        ("forward <= 1.5x avg_pool3d forward", sp["fwd"] / rows["avg_pool3d"]["fwd"], 1.5, "<="),
        ("fwd+bwd <= 1.0x max_pool3d fwd+bwd", sp["fwd_bwd"] / rows["max_pool3d"]["fwd_bwd"], 1.0, "<="),
        ("fwd+bwd >= 4x faster than composite", rows["composite avg(x*e^x)/avg(e^x)"]["fwd_bwd"] / sp["fwd_bwd"],
         4.0, ">="),
        ("saved bytes <= input + output", sp["saved"] / (in_bytes + out_bytes), 1.0, "<="),
    ]
    for text, ratio, bound, op in checks:
        report("r3d stem k=2: " + text, ratio, bound, op)
    if args.kernel_time:
        print("GPU kernel time (the same targets on what the device does):")
        for (label, k), (rows, _, _) in results.items():
            sp = rows["softpool3d (compiled)"]
            report(f"{label} k={k}: forward <= 1.5x avg_pool3d forward", sp["gpu_fwd"] / rows["avg_pool3d"]["gpu_fwd"],
                   1.5, "<=")
            report(f"{label} k={k}: fwd+bwd <= 1.0x max_pool3d fwd+bwd",
                   sp["gpu_fwd_bwd"] / rows["max_pool3d"]["gpu_fwd_bwd"], 1.0, "<=")
    return 0


def report(text, ratio, bound, op):
    ok = ratio <= bound if op == "<=" else ratio >= bound
    print(f"  {'MET ' if ok else 'MISS'} {text}: {ratio:.2f}")


def zoo_latency(args):
    """Forward and forward+backward time of every zoo method on the r3d stem output shape, and the
    methods' targets (fwd+bwd <= 3x max_pool3d for those written as pooling compositions)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    k, s, p = (int(v) for v in args.zoo_kernel.split(","))
    shape = (1, 8, 16, 14, 14) if args.quick else CASES[0][1]
    device = torch.device(args.device)
    x = torch.randn(shape, device=device, dtype=DTYPES[args.dtype])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {args.dtype}, input {'x'.join(map(str, shape))}, "
          f"kernel {k} stride {s} padding {p}, {'eval' if args.zoo_eval else 'train'} mode")
    print(f"| {'method':<14} | {'fwd ms':>9} | {'fwd+bwd ms':>10} | {'fwd / max':>9} | {'f+b / max':>9} |")
    print(f"|{'-' * 16}|{'-' * 11}|{'-' * 12}|{'-' * 11}|{'-' * 11}|")
    rows = {}
    for name in ["max"] + [n for n in list_pools() if n != "max"]:
        pool = build_pool(name, 3, k, s, p, channels=shape[1]).to(device, x.dtype).train(not args.zoo_eval)
        reps = max(3, args.repeats // 3)
        rows[name] = measure(name, lambda t, *_: pool(t), x, k, s, p, reps, 1)
        r, base = rows[name], rows["max"]
        print(f"| {name:<14} | {r['fwd']:9.2f} | {r['fwd_bwd']:10.2f} | {r['fwd'] / base['fwd']:9.2f} | "
              f"{r['fwd_bwd'] / base['fwd_bwd']:9.2f} |", flush=True)
    print("\nTargets (fwd+bwd <= 3x max_pool3d):")
    for name in ("sum", "lp", "trainable_lp", "mixed", "gated", "stochastic", "dpp_lite_sym", "dpp_lite_asym"):
        if name == "stochastic" and not args.zoo_eval:
            continue  # its target is in eval mode (training samples explicit windows)
        report(name, rows[name]["fwd_bwd"] / rows["max"]["fwd_bwd"], 3.0, "<=")
    return 0


if __name__ == "__main__":
    sys.exit(main())
