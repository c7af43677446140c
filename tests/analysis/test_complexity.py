"""Model cost helpers and the model_info / benchmark_models tools."""
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from vidpool.analysis.complexity import count_parameters, flops_and_activations, train_step_seconds

REPO = Path(__file__).resolve().parents[2]


def test_flops_count_multiply_adds_by_hand():
    model = nn.Sequential(nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1), bias=False), nn.Flatten(),
                          nn.Linear(4 * 2 * 5 * 5, 7))
    gflops, acts = flops_and_activations(model, torch.zeros(1, 3, 2, 5, 5))
    conv = 3 * 9 * 4 * (2 * 5 * 5)  # per output: 3 in-channels x 9 taps
    assert gflops * 1e9 == conv + 200 * 7
    assert acts * 1e6 == 4 * 2 * 5 * 5 + 7
    assert count_parameters(model) == 3 * 4 * 9 + 200 * 7 + 7


def test_train_step_updates_the_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(3, 2, 1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 3))
    before = model[0].weight.clone()
    assert train_step_seconds(model, torch.randn(2, 3, 2, 4, 4), repeats=1) > 0
    assert not torch.equal(before, model[0].weight)


def test_model_info_tool():
    out = subprocess.run([sys.executable, "-m", "vidpool", "info", "--model", "r3d_10", "--frames", "4", "--size",
                          "32,48", "--markdown", "--no-time"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| r3d_10")]
    assert len(rows) == 1 and rows[0].count("|") == 7
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    from vidpool.models import create_model

    model = create_model("r3d_10", 400)
    g32, acts = flops_and_activations(model, torch.zeros(1, 3, 4, 32, 32))
    g48, _ = flops_and_activations(model, torch.zeros(1, 3, 4, 48, 48))
    assert cells == ["r3d_10", f"{count_parameters(model) / 1e6:.2f}", f"{g32:.2f}", f"{g48:.2f}", "—", f"{acts:.1f}"]
    assert g48 / g32 > 2  # the two sizes were really measured (spatial cost grows ~ 2.25x)
    bad = subprocess.run([sys.executable, "-m", "vidpool", "info", "--model", "r3d_11"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--model 'r3d_11' is not one of" in bad.stderr and "did you mean 'r3d_" in bad.stderr and "Traceback" not in bad.stderr


def test_info_reports_the_configured_model():
    """--cfg: the model training would build (the demo's quarter width), not the registered default."""
    from vidpool.config import load_cfg
    from vidpool.models import build_model

    cfg = load_cfg("configs/demo/r3d10_softpool.yaml")
    out = subprocess.run([sys.executable, "-m", "vidpool", "info", "--cfg", "configs/demo/r3d10_softpool.yaml",
                          "--no-time", "--markdown"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = [line for line in out.stdout.splitlines() if line.startswith("| r3d_10")]
    params = float(row[0].strip("|").split("|")[1])
    expected = count_parameters(build_model(cfg)) / 1e6
    assert abs(params - expected) < 0.006 and expected < 2  # 0.91 M, not the 64-wide 14.6 M


def test_lstm_multiply_adds_by_hand():
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 5, 2, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    gflops, _ = flops_and_activations(Seq(), torch.zeros(3, 7, 6))
    assert round(gflops * 1e9) == 3 * 7 * 4 * 5 * ((6 + 5) + (5 + 5))


def test_benchmark_models_tool_times_both_layouts():
    out = subprocess.run([sys.executable, "tools/benchmark_models.py", "--model", "r3d_10", "--base-width", "4",
                          "--classes", "5", "--frames", "2", "--size", "16", "--batch", "2", "--rounds", "1",
                          "--threads", "1", "--pools", "max,softpool", "--channels-last"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("  ")]
    assert [(r[0], r[1]) for r in rows] == [("max", "contiguous"), ("max", "channels_last"),
                                            ("softpool", "contiguous"), ("softpool", "channels_last")]
    assert rows[0][4] == "(1.000x"  # the baseline against itself
    for r in rows[1::2]:  # speed-up = contiguous time / channels_last time, from the printed times
        speedup = float(r[-1].rstrip("x"))
        contiguous = float(next(c for c in rows if c[0] == r[0] and c[1] == "contiguous")[2])
        cl, half = float(r[2]), 0.0005  # times are printed to the millisecond
        assert (contiguous - half) / (cl + half) - 0.005 <= speedup <= (contiguous + half) / max(cl - half, 1e-9) + 0.005
