"""SRTG: the Squeeze-and-Recursion block and its temporal gate."""
import pytest
import torch
from torch import nn

from vidpool.models import create_model
from vidpool.models.srtg import SqueezeRecursion, cycle_consistent, set_epoch


def _features(n=6, c=16, t=8):
    torch.manual_seed(0)
    return torch.relu(torch.randn(n, c, t, 5, 5) + 0.5 * torch.randn(n, c, t, 1, 1).cumsum(2))


class Flattening(nn.Module):
    """Stands in for the LSTM of chosen samples: returns h with s * (1 + h) constant over time,
    which destroys the temporal structure, so those samples must fail the gate."""

    def __init__(self, lstm, flatten):
        super().__init__()
        self.lstm, self.flatten = lstm, flatten

    def forward(self, s):
        h, state = self.lstm(s)
        flat = (s.mean(1, keepdim=True) / s.clamp(min=1e-3) - 1).detach()
        mask = self.flatten.view(-1, 1, 1)
        return torch.where(mask, flat, h), state


def test_recalibration_by_hand():
    block = SqueezeRecursion(16, gate="none")
    x = _features()
    h, _ = block.lstm(x.mean((3, 4)).transpose(1, 2))
    torch.testing.assert_close(block(x), x * (1 + h.transpose(1, 2))[..., None, None])


def test_gate_is_open_from_the_start():
    block = SqueezeRecursion(16)
    x = _features()
    out = block(x)
    assert block.pass_rate.item() == 1.0 and not torch.equal(out, x)


def test_no_sample_passing_is_the_identity():
    block = SqueezeRecursion(16)
    block.lstm = Flattening(block.lstm, torch.ones(6, dtype=torch.bool))
    x = _features().requires_grad_()
    out = block(x)
    assert block.pass_rate.item() == 0.0 and torch.equal(out, x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_gradients_reach_the_lstm_through_passing_samples_only():
    block = SqueezeRecursion(16)
    lstm = block.lstm
    block.lstm = Flattening(lstm, torch.tensor([False, True, False, True, True, True]))
    x = _features()
    out = block(x)
    assert block.pass_rate.item() == pytest.approx(2 / 6)
    assert torch.equal(out[1], x[1]) and not torch.equal(out[0], x[0])
    out[[1, 3]].sum().backward()  # failing samples only
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in lstm.parameters())
    out = block(x)
    out[[0, 2]].sum().backward()  # passing samples
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lstm.parameters())


def test_cycle_consistency_by_construction():
    s = torch.randn(3, 6, 8)
    assert cycle_consistent(s, s * 2 + 1).all()  # same temporal structure, other scale and offset
    assert cycle_consistent(s, s[:, torch.randperm(6)]).all()  # a permutation still cycles back
    assert not cycle_consistent(s, s.mean(1, keepdim=True).expand_as(s) + 1e-3 * torch.randn(3, 6, 8)).any()
    assert cycle_consistent(s[:, :1], s[:, :1]).all()  # one frame trivially cycles


def test_gate_off_and_gate_from_epoch():
    x = _features()
    block = SqueezeRecursion(16, gate_from_epoch=2)
    block.lstm = Flattening(block.lstm, torch.ones(6, dtype=torch.bool))
    assert not torch.equal(block(x), x)  # before the gate epoch: everything recalibrated
    model = nn.Sequential(block)
    set_epoch(model, 2)
    assert torch.equal(block(x), x)
    with pytest.raises(ValueError, match="gate must be"):
        SqueezeRecursion(4, gate="sometimes")


@pytest.mark.parametrize("name,base", [("srtg_r3d_18", "r3d_18"), ("srtg_r2plus1d_34", "r2plus1d_34")])
def test_srtg_models_add_exactly_the_lstm_parameters(name, base):
    def lstm_params(c):
        return 2 * (8 * c * c + 8 * c)  # 2 layers of 4 gates: W_ih, W_hh (C x C) and two biases
    layers = (2, 2, 2, 2) if base.endswith("18") else (3, 4, 6, 3)
    extra = sum(n * lstm_params(c) for n, c in zip(layers, (64, 128, 256, 512)))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model(name, 10)) == count(create_model(base, 10)) + extra


@pytest.mark.parametrize("place", ["start", "top", "mid", "end", "final"])
def test_placements_run(place):
    model = create_model("srtg_r3d_18", 4, place=place, pool="softpool")
    out = model(torch.randn(2, 3, 8, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 4)
