"""tools/benchmark_train.py: the plain loop trains exactly what the engine trains (same weights after
the same steps, LR schedule included), the phase timer attributes known delays to the right phase,
and the tool runs on CPU with a tiny model from synthetic tensors and from the loader, ending with
its ratio lines."""
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from vidpool.config import load_cfg

from . import load_tool

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TOOL = os.path.join(ROOT, "tools", "benchmark_train.py")
TINY = ["MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "4", "MODEL.NUM_CLASSES", "5", "DATA.NUM_FRAMES", "4",
        "DATA.SAMPLING_RATE", "8", "DATA.TRAIN_JITTER_SCALES", "[16, 18]", "DATA.TRAIN_CROP_SIZE", "16",
        "DATA.TEST_CROP_SIZE", "16", "TRAIN.BATCH_SIZE", "2", "DATA_LOADER.NUM_WORKERS", "0", "LOG_PERIOD", "0",
        "SOLVER.BASE_LR", "0.01", "SOLVER.WARMUP_EPOCHS", "0.5", "SOLVER.WARMUP_START_LR", "0.0001",
        "SOLVER.LR_POLICY", "cosine", "SOLVER.MAX_EPOCH", "1", "TRAIN.DATASET", "ucf101"]


def _tool():
    return load_tool("benchmark_train")


@pytest.mark.parametrize("pool", ["max", "softpool"])
def test_plain_loop_trains_what_the_engine_trains(pool):
    """Four steps with a warm-up that changes the LR every step: the engine's step and the plain loop
    end with the same weights, which moved from the initial ones."""
    bench = _tool()
    cfg = load_cfg(None, TINY + ["MODEL.POOL", pool])
    device = torch.device("cpu")
    batches = bench.synthetic_batches(cfg, 2, device, distinct=3)
    engine = bench.run_variant(cfg, "engine", batches, 4, device, False)
    plain = bench.run_variant(cfg, "plain", batches, 4, device, False)
    torch.manual_seed(cfg.RNG_SEED)
    initial = bench.build(cfg, device, False)[0].state_dict()
    moved = [k for k, v in engine["weights"].items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert "fc.weight" in moved and len(moved) > 10
    for key, value in engine["weights"].items():
        torch.testing.assert_close(plain["weights"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert len(engine["steps"]) == len(plain["steps"]) == 3  # every step after the first is timed


def test_phase_timer_attributes_delays_to_their_phase():
    """Known sleeps before the forward (the data wait), in the forward and in the backward land in
    those phases; the optimizer step of a tiny linear model takes far less than any of them."""
    bench = _tool()

    class SlowBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            time.sleep(0.25)
            return g

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            time.sleep(0.03)
            return self.fc(SlowBackward.apply(x))

    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    timer = bench.PhaseTimer(model, opt, torch.device("cpu"))
    for _ in range(4):
        time.sleep(0.1)  # waiting for data
        loss = model(torch.randn(3, 4, requires_grad=True)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    timer.close()
    assert len(timer.steps) == 3
    for s in timer.steps:
        assert s["data"] >= 0.1 and s["forward"] >= 0.03 and s["backward"] >= 0.25
        assert s["forward"] < 0.1 and s["optim"] < 0.03  # neither took in another phase's delay
        assert s["step"] == pytest.approx(s["data"] + s["forward"] + s["backward"] + s["optim"])


def _run(*args):
    done = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def _ratios(lines):
    last = lines[-2:]
    assert re.fullmatch(r"r3d_10: softpool step / max step \(engine\) \d+\.\d{3}", last[0]), last
    assert re.fullmatch(r"r3d_10: engine step / plain loop step max \d+\.\d{3}, softpool \d+\.\d{3}", last[1]), last
    rows = [line for line in lines if line.startswith("| r3d_10 |")]
    assert [r.split(" | ")[2:4] for r in rows] == [["max", "engine"], ["max", "plain"], ["softpool", "engine"],
                                                   ["softpool", "plain"]]
    return rows


def test_tool_on_cpu_with_synthetic_clips():
    # bf16 on clips large enough that no batch norm normalises a handful of values (on 4 x 16^2 clips of
    # 2 the last stage's BN sees 2 values and bf16 rounding sometimes turned the loss into NaN)
    lines = _run("--cfg", "configs/demo/r3d10_softpool.yaml", "--device", "cpu", "--threads", "1", "--steps", "2",
                 "--warmup", "1", "--batch", "4", "--amp", "bf16", *TINY, "DATA.TRAIN_CROP_SIZE", "48",
                 "DATA.TRAIN_JITTER_SCALES", "[48, 56]", "DATA.NUM_FRAMES", "8")
    rows = _ratios(lines)
    assert all(r.startswith("| r3d_10 | 4x8x48^2 |") for r in rows)
    assert "AMP bf16" in "\n".join(lines)


@pytest.mark.slow
def test_tool_on_cpu_from_the_loader(synthetic_root):
    lines = _run("--cfg", "configs/demo/r3d10_softpool.yaml", "--device", "cpu", "--threads", "1", "--steps", "2",
                 "--warmup", "1", "--batch", "2", "--input", "loader", "--workers", "1", *TINY,
                 "DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "DATA.FRAME_CACHE", "")
    _ratios(lines)
    assert "input loader (1 workers)" in "\n".join(lines)


def test_tool_errors_name_the_mistake():
    done = subprocess.run([sys.executable, TOOL, "--cfg", "configs/nope.yaml"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 2 and "no such config: configs/nope.yaml" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_misspelt_pooling_is_one_message_before_any_training():
    done = subprocess.run([sys.executable, TOOL, "--cfg", "configs/demo/r3d10_softpool.yaml", "--pools", "max,softpol",
                           "--device", "cpu", *TINY], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "MODEL.POOL 'softpol'" in done.stderr and "did you mean 'softpool'" in done.stderr
    assert "Traceback" not in done.stderr and "[r3d_10 max engine]" not in done.stderr  # nothing trained first
