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


def _lstm(c_in, h):
    """Parameters of a 2-layer LSTM: 4 gates, W_ih (4h x in), W_hh (4h x h) and two 4h biases per layer."""
    return (4 * h * c_in + 4 * h * h + 8 * h) + (4 * h * h + 4 * h * h + 8 * h)


_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@pytest.mark.parametrize("name,base", [("srtg_r3d_18", "r3d_18"), ("srtg_r2plus1d_34", "r2plus1d_34"),
                                       ("srtg_r3d_50", "r3d_50"), ("srtg_r2plus1d_101", "r2plus1d_101")])
def test_srtg_models_add_exactly_the_sr_parameters(name, base):
    depth = int(base.rsplit("_", 1)[1])
    expansion = 4 if depth >= 50 else 1
    extra = 0
    for n, planes in zip(_BLOCKS[depth], (64, 128, 256, 512)):
        c = planes * expansion  # channels after the residual addition (place=final)
        # hidden size capped at the block's width; a linear layer (weight + bias) maps it back to c
        per_block = _lstm(c, planes) + (planes * c + c if c != planes else 0)
        extra += n * per_block
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model(name, 10)) == count(create_model(base, 10)) + extra


def test_uncapped_hidden_size_on_bottlenecks():
    extra = sum(n * _lstm(4 * p, 4 * p) for n, p in zip(_BLOCKS[50], (64, 128, 256, 512)))
    assert extra > 300e6  # why "width" is the default
    block = create_model("srtg_r3d_50", 10, sr_hidden="channels").layer4[0]
    assert block.sr.proj is None and block.sr.lstm.hidden_size == 2048
    capped = create_model("srtg_r3d_50", 10).layer4[0]
    assert capped.sr.lstm.hidden_size == 512 and capped.sr.proj.out_features == 2048
    with pytest.raises(ValueError, match="sr_hidden must be one of"):
        create_model("srtg_r3d_18", 10, sr_hidden="half")


def test_projected_recalibration_by_hand():
    block = SqueezeRecursion(16, gate="none", hidden=4)
    x = _features()
    h, _ = block.lstm(x.mean((3, 4)).transpose(1, 2))
    scale = 1 + torch.tanh(h @ block.proj.weight.T + block.proj.bias)  # bounded as the LSTM's own h
    torch.testing.assert_close(block(x), x * scale.transpose(1, 2)[..., None, None])


@pytest.mark.parametrize("name", ["srtg_r3d_18", "srtg_r2plus1d_50"])
@pytest.mark.parametrize("place", ["start", "top", "mid", "end", "final"])
def test_placements_run(place, name):
    model = create_model(name, 4, place=place, pool="softpool")
    out = model(torch.randn(2, 3, 8, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 4)


@pytest.mark.parametrize("name", ["srtg_r3d_18", "srtg_r3d_50", "srtg_r2plus1d_50"])
@pytest.mark.parametrize("place", ["start", "top", "mid", "end", "final"])
def test_zero_recursion_is_the_plain_network(name, place):
    """With every LSTM and projection weight zero, h = 0 and each SR block is the identity: the SRTG
    network must then compute exactly the plain network it wraps (checks the wiring at every place)."""
    torch.manual_seed(0)
    srtg = create_model(name, 7, place=place, gate="none").eval()
    for module in srtg.modules():
        if isinstance(module, SqueezeRecursion):
            for p in module.parameters():
                nn.init.zeros_(p)
    plain = create_model(name[len("srtg_"):], 7).eval()
    state = {k.replace(".body.", "."): v for k, v in srtg.state_dict().items() if ".sr." not in k}
    plain.load_state_dict(state)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(srtg(x), plain(x), rtol=0, atol=0)


class _Recorder(nn.Module):
    """Stands in for an SR block: passes its input through unchanged and keeps a copy of it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x


@pytest.mark.parametrize("name", ["srtg_r3d_18", "srtg_r2plus1d_50"])
@pytest.mark.parametrize("place", ["start", "top", "mid", "end", "final"])
def test_each_placement_receives_its_tensor(name, place):
    """In a downsampling block (shortcut != input), the SR block at each place receives exactly the
    tensor the SRTG paper's placement names, computed here from the plain block's parts."""
    torch.manual_seed(0)
    block = create_model(name, 4, place=place, base_width=8).layer2[0].eval()
    body = block.body
    assert body.downsample is not None
    block.sr = _Recorder()
    x = torch.randn(2, body.downsample[0].in_channels, 4, 8, 8)
    with torch.no_grad():
        out = block(x.clone())
        convs = [body.conv1, body.conv2] + ([body.conv3] if hasattr(body, "conv3") else [])
        top = convs[0](x.clone())
        last = top
        for conv in convs[1:]:
            last = conv(last)
        end = last + body.downsample(x.clone())
        expected = {"start": x, "top": top, "mid": last, "end": end, "final": torch.relu(end)}[place]
    assert len(block.sr.seen) == 1
    torch.testing.assert_close(block.sr.seen[0], expected, rtol=0, atol=0)
    torch.testing.assert_close(out, torch.relu(end), rtol=0, atol=0)  # an identity SR block: the plain block
