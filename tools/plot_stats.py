#!/usr/bin/env python
"""Training curves of one or more runs, from their stats.jsonl, in one PNG.

    python tools/plot_stats.py output/demo_r3d10_max output/demo_r3d10_softpool --out curves.png

Each argument is a run's OUTPUT_DIR (or its stats.jsonl). Panels: training loss (and validation
loss when recorded), top-1 (training, and validation when recorded), learning rate, and the input
shape (frames x crop, with the batch size) per epoch, so multigrid runs show their cycles. Runs are
labelled with their folder names unless --labels is given.
"""
import argparse
import json
import os
import sys


def load(path: str):
    file = os.path.join(path, "stats.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no stats.jsonl at {path}")
    rows = []
    with open(file) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{file}:{line_no}: not JSON ({e.msg})") from None
    rows = [r for r in rows if r.get("kind", "epoch") == "epoch"]  # test summaries are not epochs
    if not rows:
        raise ValueError(f"{file} has no epochs")
    missing = [k for k in ("epoch", "train_loss", "lr") if k not in rows[0]]
    if missing:
        raise ValueError(f"{file}: not a vidpool stats.jsonl (no {missing})")
    return rows


def series(rows, key):
    points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot(runs, labels, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (loss_ax, top1_ax), (lr_ax, shape_ax) = axes
    for i, (rows, label) in enumerate(zip(runs, labels)):
        color = f"C{i}"
        loss_ax.plot(*series(rows, "train_loss"), color=color, label=f"{label} train")
        top1_ax.plot(*series(rows, "train_top1"), color=color, label=f"{label} train")
        ex, ey = series(rows, "val_loss")
        if ex:
            loss_ax.plot(ex, ey, color=color, linestyle="--", marker="o", label=f"{label} val")
        ex, ey = series(rows, "val_top1")
        if ex:
            top1_ax.plot(ex, ey, color=color, linestyle="--", marker="o", label=f"{label} val")
        lr_ax.step(*series(rows, "lr"), where="post", color=color, label=label)
        epochs = [r["epoch"] for r in rows]
        volume = [r.get("num_frames", 0) * r.get("crop_size", 0) ** 2 / 1e3 for r in rows]
        shape_ax.step(epochs, volume, where="post", color=color, label=f"{label} frames x crop^2 / 1000")
        batch = [r.get("batch_size", 0) for r in rows]
        shape_ax.step(epochs, batch, where="post", color=color, linestyle=":", label=f"{label} batch")
    loss_ax.set(title="loss", xlabel="epoch")
    top1_ax.set(title="top-1 (%)", xlabel="epoch")
    lr_ax.set(title="learning rate", xlabel="epoch", yscale="log")
    shape_ax.set(title="input shape and batch", xlabel="epoch")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="OUTPUT_DIR of a run, or its stats.jsonl")
    ap.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")
    ap.add_argument("--out", default="training_curves.png", help="PNG to write")
    args = ap.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        ap.error(f"{len(args.runs)} runs but {len(args.labels)} labels")
    try:
        runs = [load(p) for p in args.runs]
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    labels = args.labels or [os.path.basename(os.path.normpath(p if os.path.isdir(p) else os.path.dirname(p)))
                             for p in args.runs]
    plot(runs, labels, args.out)
    print(f"wrote {args.out} ({len(runs)} runs, {sum(len(r) for r in runs)} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
