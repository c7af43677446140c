"""swap_pooling on torchvision image models and on a small video network."""
import pytest
import torch
import torchvision
from torch import nn

from vidpool import ops
from vidpool.ops import swap_pooling


def _pool_names(model, classes):
    return [n for n, m in model.named_modules() if type(m) in classes]


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resnet18_softpool_keeps_weights_and_geometry():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    before = _weights(model)
    assert swap_pooling(model, "softpool") == ["maxpool"]
    assert isinstance(model.maxpool, ops.SoftPool2d)
    assert (model.maxpool.kernel_size, model.maxpool.stride, model.maxpool.padding) == (3, 2, 1)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and model.conv1.weight.grad is not None


def test_densenet121_counts():
    model = torchvision.models.densenet121()
    expected = _pool_names(model, (nn.AvgPool2d, nn.MaxPool2d))
    # torchvision's densenet121 holds 1 max pool module (pool0) and 3 average pool modules
    # (transition1-3); its final pooling is functional and cannot be swapped
    assert len(_pool_names(model, (nn.AvgPool2d,))) == 3 and len(_pool_names(model, (nn.MaxPool2d,))) == 1
    assert swap_pooling(model, "softpool") == expected
    assert all(isinstance(m, ops.SoftPool2d) for n, m in model.named_modules() if n in expected)
    assert swap_pooling(model, "dpp_lite_sym", include="features.transition*") == expected[1:]
    assert model.features.transition2.pool.alpha.shape == (256,)  # channels of transition2.conv
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_inception_v3_all_max_pool_modules():
    model = torchvision.models.inception_v3(init_weights=False, aux_logits=False)
    expected = _pool_names(model, (nn.MaxPool2d,))
    assert expected == ["maxpool1", "maxpool2"]
    assert swap_pooling(model, "softpool", exclude=["*avgpool*"]) == expected
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)  # adaptive pools untouched by default


def test_trainable_method_channels_static_and_traced_agree():
    torch.manual_seed(0)
    a, b = torchvision.models.resnet18(num_classes=5), torchvision.models.resnet18(num_classes=5)
    b.load_state_dict(a.state_dict())
    swap_pooling(a, "lip")
    swap_pooling(b, "lip", example_input=torch.randn(1, 3, 32, 32))
    assert a.maxpool.logit.in_channels == b.maxpool.logit.in_channels == 64
    x = torch.randn(2, 3, 48, 48)
    a(x).sum().backward()
    assert a.maxpool.logit.weight.grad is not None and a.maxpool.logit.weight.grad.abs().sum() > 0


def test_adaptive_pools_only_when_asked():
    model = torchvision.models.resnet18()
    assert swap_pooling(model, "softpool", adaptive=True) == ["maxpool", "avgpool"]
    assert isinstance(model.avgpool, ops.AdaptiveSoftPool2d) and model.avgpool.output_size == (1, 1)
    with pytest.raises(ValueError, match="adaptive pools can become"):
        swap_pooling(torchvision.models.resnet18(), "lp", adaptive=True)


def test_video_network_3d_pools_and_zoo_pools_are_swapped_again():
    net = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(),
                        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)), nn.Conv3d(8, 16, 3, padding=1),
                        nn.AvgPool3d(2, ceil_mode=True))
    x = torch.rand(2, 3, 4, 17, 17)
    shape = net(x).shape
    assert swap_pooling(net, "softpool") == ["3", "5"]
    assert isinstance(net[3], ops.SoftPool3d) and net[5].ceil_mode
    assert net(x).shape == shape
    assert swap_pooling(net, "dpp_full_asym") == ["3", "5"]
    assert net[3].alpha.shape == (8,) and net[5].alpha.shape == (16,)
    net(x).sum().backward()
    assert net[5].filter.grad is not None


def test_errors_are_clear():
    with pytest.raises(ValueError, match="cannot infer the channel count.*example_input"):
        swap_pooling(nn.Sequential(nn.MaxPool2d(2)), "lip")
    with pytest.raises(ValueError, match="dilation"):
        swap_pooling(nn.Sequential(nn.MaxPool2d(3, dilation=2)), "softpool")
    with pytest.raises(ValueError, match="unknown pooling method"):
        swap_pooling(nn.Sequential(nn.MaxPool2d(2)), "bogus")


def test_branchy_models_need_tracing_and_wrong_guesses_fail_clearly():
    from vidpool.models import create_model
    model = create_model("i3d", 5)
    x = torch.randn(2, 3, 8, 32, 32)
    swap_pooling(model, "dpp_lite_sym", include="*branch3*")  # static guess: branch2's width
    with pytest.raises(ValueError, match="built for 32 channels but got an input with 192.*example_input"):
        model(x)
    model = create_model("i3d", 5)
    swap_pooling(model, "dpp_lite_sym", example_input=x)
    assert model.features.Mixed_3b.branch3[0].channels == 192
    assert model.features.MaxPool3d_4a_3x3.channels == 480
    assert model(x).shape == (2, 5)
