"""3D ResNets: torchvision equivalence, parameter counts computed independently, pooling per model."""
import pytest
import torch
import torchvision
from torch import nn

from vidpool import ops
from vidpool.models import create_model, list_models


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,tv_builder", [("r3d_18_tv", torchvision.models.video.r3d_18),
                                             ("r2plus1d_18_tv", torchvision.models.video.r2plus1d_18)])
def test_loads_torchvision_state_dict_and_matches_outputs(name, tv_builder):
    torch.manual_seed(0)
    tv = tv_builder(num_classes=7)
    for m in tv.modules():  # non-trivial BN statistics so eval mode really exercises them
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = create_model(name, 7)
    ours.load_state_dict(tv.state_dict(), strict=True)
    tv.eval()
    ours.eval()
    x = torch.randn(2, 3, 8, 32, 32)
    torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)


# Parameter counts from the architecture description, computed without the model code.
def _bn(c):
    return 2 * c


def _conv(i, o, k):
    return i * o * k


def _count_r3d(layers, bottleneck, classes=400, factorised=False):
    def conv3(i, o, block_in):
        if not factorised:
            return _conv(i, o, 27)
        mid = (27 * i * o) // (9 * i + 3 * o)
        return _conv(i, mid, 9) + _bn(mid) + _conv(mid, o, 3)

    if factorised:  # 7x7x7 stem as 1x7x7 + 7x1x1
        mid = (7 * 49 * 3 * 64) // (49 * 3 + 7 * 64)
        total = _conv(3, mid, 49) + _bn(mid) + _conv(mid, 64, 7) + _bn(64)
    else:
        total = _conv(3, 64, 343) + _bn(64)
    n_in = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        for b in range(blocks):
            out = planes * (4 if bottleneck else 1)
            if bottleneck:
                total += _conv(n_in, planes, 1) + _bn(planes) + conv3(planes, planes, n_in) + _bn(planes)
                total += _conv(planes, out, 1) + _bn(out)
            else:
                total += conv3(n_in, planes, n_in) + _bn(planes) + conv3(planes, planes, n_in) + _bn(planes)
            if b == 0 and (i > 0 or n_in != out):
                total += _conv(n_in, out, 1) + _bn(out)
            n_in = out
    return total + n_in * classes + classes


@pytest.mark.parametrize("name,layers,bottleneck,factorised", [
    ("r3d_18", (2, 2, 2, 2), False, False), ("r3d_34", (3, 4, 6, 3), False, False),
    ("r3d_50", (3, 4, 6, 3), True, False), ("r2plus1d_18", (2, 2, 2, 2), False, True)])
def test_parameter_counts(name, layers, bottleneck, factorised):
    assert n_params(create_model(name, 400)) == _count_r3d(layers, bottleneck, 400, factorised)


def test_r3d_50_matches_the_reference_architecture_size():
    assert round(n_params(create_model("r3d_50", 400)) / 1e6, 1) == 47.0


@pytest.mark.parametrize("pool", ["softpool", "avg", "lp", "s3pool"])
def test_parameter_free_pools_leave_parameter_counts_unchanged(pool):
    assert n_params(create_model("r3d_50", 400, pool=pool)) == n_params(create_model("r3d_50", 400))


def test_pool_choice_and_swap():
    model = create_model("r3d_18", 10, pool="softpool")
    assert isinstance(model.pool, ops.SoftPool3d) and (model.pool.kernel_size, model.pool.stride) == (3, 2)
    model = create_model("r3d_18", 10)
    assert isinstance(model.pool, nn.MaxPool3d)
    assert ops.swap_pooling(model, "dpp_lite_sym") == ["pool"] and model.pool.alpha.shape == (64,)
    assert isinstance(create_model("r3d_18", 10, head_pool="softpool").head_pool, ops.AdaptiveSoftPool3d)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'r3d_19'.*r3d_18"):
        create_model("r3d_19", 10)
    with pytest.raises(ValueError, match="unknown pooling method"):
        create_model("r3d_18", 10, pool="nope")
    with pytest.raises(ValueError, match="expected clips of shape"):
        create_model("r3d_10", 3)(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward_on_a_tiny_clip(name):
    torch.manual_seed(0)
    model = create_model(name, 5, pool="softpool")
    x = torch.randn(2, 3, 8, 32, 32, requires_grad=True)  # 2 clips: batch norm needs > 1 value at 1x1x1
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and all(p.grad is not None for p in model.parameters())
