"""vidpool's SRTG variant: the published semantics as options, and the variant's fixed bugs."""
import json
import os

import pytest
import torch

from vidpool.models import create_model
from vidpool.models import srtg
from vidpool.models.srtg import SqueezeRecursion, cycle_consistent


@pytest.mark.parametrize("recalib", ["residual", "original"])
def test_recalibration_by_hand(recalib):
    torch.manual_seed(0)
    block = SqueezeRecursion(4, gate="none", recalib=recalib).eval()
    x = torch.randn(2, 4, 5, 3, 3)
    with torch.no_grad():
        seq = x.mean((3, 4)).transpose(1, 2)
        lstm = torch.nn.LSTM(4, 4, 2, batch_first=True)
        lstm.load_state_dict(block.lstm.state_dict())
        h = lstm(seq)[0].transpose(1, 2)[..., None, None]  # (N, C, T, 1, 1)
        expected = x * (1 + h) if recalib == "residual" else x * h
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_repeated_frames_pass_the_cycle_check():
    torch.manual_seed(0)
    frames = torch.randn(1, 5, 8)
    frames[:, 3:] = frames[:, 2:3]  # a short video's last frame, repeated
    assert bool(cycle_consistent(frames, frames))
    assert bool(cycle_consistent(frames, 3 * frames))
    static = torch.randn(1, 1, 8).expand(1, 6, 8)  # a static shot
    assert bool(cycle_consistent(static, static))
    # the check still fails where it should: distinct frames against an unrelated sequence
    g = torch.Generator().manual_seed(1)
    u, v = torch.randn(64, 6, 8, generator=g), torch.randn(64, 6, 8, generator=g)
    assert cycle_consistent(u, v).float().mean() < 0.5


def test_bottleneck_projection_keeps_the_scale_in_0_2():
    block = SqueezeRecursion(16, hidden=4, gate="none")
    with torch.no_grad():
        block.proj.weight.mul_(1000)
        block.proj.bias.fill_(50)
    x = torch.ones(2, 16, 4, 2, 2)
    scale = block(x)  # x is 1: the output is the scale
    assert float(scale.min()) >= 0 and float(scale.max()) <= 2


@pytest.mark.parametrize("compare", ["recalibrated", "hidden"])
def test_gate_compares_the_chosen_sequence(monkeypatch, compare):
    seen = []

    def spy(u, v, temperature=0.1):
        seen.append((u.clone(), v.clone()))
        return torch.ones(u.shape[0], dtype=torch.bool)
    monkeypatch.setattr(srtg, "cycle_consistent", spy)
    torch.manual_seed(0)
    block = SqueezeRecursion(4, gate="cycle", gate_compare=compare).eval()
    x = torch.randn(2, 4, 5, 3, 3)
    with torch.no_grad():
        block(x)
        seq = x.mean((3, 4)).transpose(1, 2)
        h = block.lstm(seq)[0]
    expected = seq * (1 + h) if compare == "recalibrated" else h
    assert torch.allclose(seen[0][0], seq) and torch.allclose(seen[0][1], expected)
    assert torch.allclose(seen[1][0], expected) and torch.allclose(seen[1][1], seq)
    assert srtg.gate_pass_rate(block) == (2.0, 2.0)


def test_variant_and_official_options_are_checked():
    with pytest.raises(ValueError, match="recalib must be one of"):
        create_model("srtg_r3d_18", 5, recalib="x*h")
    from vidpool.config import load_cfg
    from vidpool.models import build_model

    model = build_model(load_cfg(None, ["MODEL.ARCH", "srtg_r3d_18", "MODEL.BASE_WIDTH", "8", "MODEL.SRTG_RECALIB",
                                        "original", "MODEL.SRTG_GATE_COMPARE", "hidden"]))
    blocks = [m for m in model.modules() if isinstance(m, SqueezeRecursion)]
    assert len(blocks) == 8 and all((b.recalib, b.gate_compare) == ("original", "hidden") for b in blocks)
    with pytest.raises(ValueError, match="BASE_WIDTH applies to"):
        build_model(load_cfg(None, ["MODEL.ARCH", "srtg_r3d_18_official", "MODEL.BASE_WIDTH", "8"]))


@pytest.mark.slow
def test_gate_state_comes_from_the_checkpoint_and_pass_rates_are_logged(synthetic_root, tmp_path, monkeypatch):
    from tests.engine.test_train import tiny_cfg
    from vidpool.engine import test as run_test
    from vidpool.engine import tester, train

    srtg_opts = ["MODEL.ARCH", "srtg_r3d_18", "MODEL.SRTG_GATE_FROM_EPOCH", "1", "TEST.ENABLE", "False"]
    out = tmp_path / "run"
    train(tiny_cfg(synthetic_root, out, *srtg_opts))
    with open(os.path.join(out, "stats.jsonl")) as f:
        epochs = [r for r in map(json.loads, f) if r.get("kind", "epoch") == "epoch"]
    assert "srtg_gate_pass_rate" not in epochs[0] and 0 <= epochs[1]["srtg_gate_pass_rate"] <= 1
    built = []
    real = tester.build_model
    monkeypatch.setattr(tester, "build_model", lambda cfg: built.append(real(cfg)) or built[-1])
    for stop, gate_on in ((1, False), (2, True)):
        ckpt = os.path.join(out, "checkpoints", f"checkpoint_epoch_{stop:05d}.pyth")
        run_test(tiny_cfg(synthetic_root, tmp_path / f"t{stop}", *srtg_opts, "TEST.CHECKPOINT_FILE_PATH", ckpt))
        assert (srtg.gate_pass_rate(built[-1])[0] > 0) == gate_on
