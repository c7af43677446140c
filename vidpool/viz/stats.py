"""Plots of runs' statistics: training curves from stats.jsonl (against epochs or training time)
and the summary of an ablation grid (vidpool.experiments). Used by `vidpool visualize curves` and
`vidpool experiments`."""
import os

from vidpool.engine.run_log import read_stats


def load(path: str):
    file = os.path.join(path, "stats.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no stats.jsonl at {path}")
    rows = read_stats(file, "epoch", strict=True)  # test summaries and iteration records are not epochs
    if not rows:
        raise ValueError(f"{file} has no epochs")
    missing = [k for k in ("epoch", "train_loss", "lr") if k not in rows[0]]
    if missing:
        raise ValueError(f"{file}: not a vidpool stats.jsonl (no {missing})")
    return rows


def elapsed_minutes(rows):
    """Training time at the end of each epoch, in minutes (the running sum of ``epoch_time_s``)."""
    total, out = 0.0, []
    for r in rows:
        if r.get("epoch_time_s") is None:
            raise ValueError(f"epoch {r.get('epoch')} has no epoch_time_s: cannot plot against time")
        total += r["epoch_time_s"]
        out.append(total / 60.0)
    return out


def series(rows, key, x="epoch"):
    xs = [r["epoch"] for r in rows] if x == "epoch" else elapsed_minutes(rows)
    points = [(xv, r[key]) for xv, r in zip(xs, rows) if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot(runs, labels, out: str, x: str = "epoch", finals=None) -> None:
    """Curves of ``runs`` (each a list of epoch records) in one PNG. ``x``: "epoch" or "time"
    (training minutes, to compare runs by what they cost); ``finals``: per run, an optional final
    test top-1 drawn as a marker at the run's end."""
    if x not in ("epoch", "time"):
        raise ValueError(f"x must be 'epoch' or 'time', got {x!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (loss_ax, top1_ax), (lr_ax, shape_ax) = axes
    for i, (rows, label) in enumerate(zip(runs, labels)):
        color = f"C{i}"
        loss_ax.plot(*series(rows, "train_loss", x), color=color, label=f"{label} train")
        top1_ax.plot(*series(rows, "train_top1", x), color=color, label=f"{label} train")
        ex, ey = series(rows, "val_loss", x)
        if ex:
            loss_ax.plot(ex, ey, color=color, linestyle="--", marker="o", label=f"{label} val")
        ex, ey = series(rows, "val_top1", x)
        if ex:
            top1_ax.plot(ex, ey, color=color, linestyle="--", marker="o", label=f"{label} val")
        if finals and finals[i] is not None:
            end = series(rows, "lr", x)[0][-1]
            top1_ax.plot([end], [finals[i]], color=color, marker="*", markersize=12, linestyle="none",
                         label=f"{label} test {finals[i]:.1f}")
        lr_ax.step(*series(rows, "lr", x), where="post", color=color, label=label)
        epochs = [r["epoch"] for r in rows] if x == "epoch" else elapsed_minutes(rows)
        volume = [r.get("num_frames", 0) * r.get("crop_size", 0) ** 2 / 1e3 for r in rows]
        shape_ax.step(epochs, volume, where="post", color=color, label=f"{label} frames x crop^2 / 1000")
        batch = [r.get("batch_size", 0) for r in rows]
        shape_ax.step(epochs, batch, where="post", color=color, linestyle=":", label=f"{label} batch")
    xlabel = "epoch" if x == "epoch" else "training time (min)"
    loss_ax.set(title="loss", xlabel=xlabel)
    top1_ax.set(title="top-1 (%)", xlabel=xlabel)
    lr_ax.set(title="learning rate", xlabel=xlabel, yscale="log")
    shape_ax.set(title="input shape and batch", xlabel=xlabel)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)




def plot_results(summary: dict, out: str) -> None:
    """The records of an ablation summary (vidpool.experiments.summarise): video top-1 and top-5
    mean +- std over seeds per cell, with params, GFLOPs and training time under each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = summary["grid"]
    keys = [k for k in grid["axes"] if k != grid["seed_key"]]
    recs = summary["records"]
    if not recs:
        raise ValueError("no finished cell to plot")
    names = []
    for r in recs:
        cost = []
        if r.get("params") is not None:
            cost.append(f"{r['params'] / 1e6:.2f}M")
        if r.get("gflops") is not None:
            cost.append(f"{r['gflops']:.2f} GF")
        if r.get("train_s_mean") is not None:
            cost.append(f"{r['train_s_mean']:.0f} s")
        names.append("\n".join([" ".join(str(r[k]) for k in keys), " ".join(cost)]))
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.9 * len(recs) + 2), 8), sharex=True)
    for ax, metric in zip(axes, ("top1", "top5")):
        means = [r[f"{metric}_mean"] for r in recs]
        stds = [r[f"{metric}_std"] or 0.0 for r in recs]
        bars = ax.bar(range(len(recs)), means, yerr=stds, capsize=4,
                      color=[f"C{i % 10}" for i in range(len(recs))], alpha=0.85)
        for bar, r in zip(bars, recs):  # the seeds themselves
            ax.plot([bar.get_x() + bar.get_width() / 2] * len(r[metric]), r[metric], "k.", markersize=4)
        low = min(min(r[metric]) for r in recs)
        ax.set(ylabel=f"video {metric[:3]}-{metric[3:]} (%)", ylim=(max(0.0, low - 10), 100.5))
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(recs)))
    axes[1].set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    runs = sorted({r["runs"] for r in recs})
    axes[0].set_title(f"{grid['name']}: mean ± std over {'/'.join(map(str, runs))} run(s), dots: single runs")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
