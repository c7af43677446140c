"""vidpool visualize curves on fabricated stats.jsonl files."""
import json
import os
import subprocess
import sys

from PIL import Image

TOOL = ["-m", "vidpool", "visualize", "curves"]


def _run_dir(path, epochs, with_val):
    os.makedirs(path)
    with open(os.path.join(path, "stats.jsonl"), "w") as f:
        for e in range(1, epochs + 1):
            row = {"epoch": e, "lr": 0.1 / e, "train_loss": 2.0 / e, "train_top1": 10.0 * e, "num_frames": 4 * e,
                   "crop_size": 32, "batch_size": 64 // e}
            if with_val and e % 2 == 0:
                row.update(val_loss=2.5 / e, val_top1=9.0 * e)
            f.write(json.dumps(row) + "\n")
    return str(path)


def test_two_runs_into_one_png(tmp_path):
    a = _run_dir(tmp_path / "max", 4, True)
    b = _run_dir(tmp_path / "softpool", 6, False)
    out = tmp_path / "figs" / "curves.png"
    done = subprocess.run([sys.executable, *TOOL, a, os.path.join(b, "stats.jsonl"), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 runs, 10 epochs" in done.stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (1210, 825)  # 11 x 7.5 inches at 110 dpi
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # something was drawn


def test_bad_inputs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    os.makedirs(empty)
    (empty / "stats.jsonl").write_text("")
    broken = tmp_path / "broken"
    os.makedirs(broken)
    (broken / "stats.jsonl").write_text('{"epoch": 1, "lr": 0.1, "train_loss": 1}\n{oops\n')
    for path, message in ((tmp_path / "missing", "no stats.jsonl"), (empty, "has no epochs"),
                          (broken, "stats.jsonl:2: not JSON")):
        done = subprocess.run([sys.executable, *TOOL, str(path), "--out", str(tmp_path / "x.png")],
                              capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "x.png").exists()


def test_plotted_series_are_the_stats(tmp_path, monkeypatch):
    """Every line drawn carries exactly the values of its run's stats.jsonl."""
    import matplotlib.pyplot as plt

    from vidpool.cli import viz_curves as tool
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    runs = [tool.load(_run_dir(tmp_path / "a", 4, True)), tool.load(_run_dir(tmp_path / "b", 3, False))]
    tool.plot(runs, ["a", "b"], str(tmp_path / "out.png"))
    lines = {line.get_label(): [list(line.get_xdata()), list(line.get_ydata())]
             for ax in figures[0].axes for line in ax.get_lines()}
    for label, epochs in (("a", 4), ("b", 3)):
        e = list(range(1, epochs + 1))
        assert lines[f"{label} train"] in ([e, [2.0 / k for k in e]], [e, [10.0 * k for k in e]])
        assert lines[label] == [e, [0.1 / k for k in e]]  # learning rate
        assert lines[f"{label} batch"] == [e, [64 // k for k in e]]
        assert lines[f"{label} frames x crop^2 / 1000"] == [e, [4 * k * 32 ** 2 / 1e3 for k in e]]
    loss_ax, top1_ax = figures[0].axes[:2]
    by_axis = {ax: {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()} for ax in (loss_ax, top1_ax)}
    assert by_axis[loss_ax]["a train"] == [2.0, 1.0, 2 / 3, 0.5] and by_axis[top1_ax]["a train"] == [10, 20, 30, 40]
    assert by_axis[loss_ax]["a val"] == [2.5 / 2, 2.5 / 4] and by_axis[top1_ax]["a val"] == [18.0, 36.0]
    assert "b val" not in by_axis[loss_ax]  # no validation recorded, none drawn


def test_time_axis_is_cumulative_training_minutes_with_the_final_test(tmp_path, monkeypatch):
    """--x time: every series against the running sum of epoch_time_s in minutes; the last test
    record's top-1 is a star at the run's end; epochs without a time are a clear error."""
    import matplotlib.pyplot as plt

    run = tmp_path / "mg"
    os.makedirs(run)
    times = [30.0, 90.0, 60.0]
    with open(run / "stats.jsonl", "w") as f:
        for e, t in enumerate(times, start=1):
            f.write(json.dumps({"epoch": e, "lr": 0.1, "train_loss": 1.0 / e, "train_top1": 20.0 * e,
                                "epoch_time_s": t, "num_frames": 8, "crop_size": 32, "batch_size": 16}) + "\n")
        f.write(json.dumps({"kind": "test", "epoch": 3, "test_video_top1": 71.5}) + "\n")
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    from vidpool.cli import viz_curves as tool
    assert tool.main([str(run), "--x", "time", "--out", str(tmp_path / "t.png")]) == 0
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for ax in figures[0].axes for line in ax.get_lines()}
    assert lines["mg train"][0] == [0.5, 2.0, 3.0]  # 30 s, 120 s, 180 s
    assert lines["mg test 71.5"] == ([3.0], [71.5])
    assert figures[0].axes[0].get_xlabel() == "training time (min)"
    (run / "stats.jsonl").write_text(json.dumps({"epoch": 1, "lr": 0.1, "train_loss": 1.0}) + "\n")
    done = subprocess.run([sys.executable, *TOOL, str(run), "--x", "time", "--out", str(tmp_path / "u.png")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no epoch_time_s" in done.stderr
