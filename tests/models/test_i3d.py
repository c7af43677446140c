"""I3D: parameter count from the published layer table, pools, shapes."""
import math

import pytest
import torch
from torch import nn

from vidpool import ops
from vidpool.models import create_model


def _unit(i, o, k=1):
    return i * o * k ** 3 + 2 * o  # conv without bias + BN


def _inception(i, w):
    b0, b1a, b1b, b2a, b2b, b3 = w
    return _unit(i, b0) + _unit(i, b1a) + _unit(b1a, b1b, 3) + _unit(i, b2a) + _unit(b2a, b2b, 3) + _unit(i, b3)


def test_parameter_count_from_the_layer_table():
    table = [(192, (64, 96, 128, 16, 32, 32)), (256, (128, 128, 192, 32, 96, 64)),
             (480, (192, 96, 208, 16, 48, 64)), (512, (160, 112, 224, 24, 64, 64)),
             (512, (128, 128, 256, 24, 64, 64)), (512, (112, 144, 288, 32, 64, 64)),
             (528, (256, 160, 320, 32, 128, 128)), (832, (256, 160, 320, 32, 128, 128)),
             (832, (384, 192, 384, 48, 128, 128))]
    expected = _unit(3, 64, 7) + _unit(64, 64) + _unit(64, 192, 3) + sum(_inception(i, w) for i, w in table)
    expected += 1024 * 400 + 400  # 1x1x1 logits conv with bias
    model = create_model("i3d", 400)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert round(expected / 1e6, 1) == 12.7


def test_all_thirteen_pools_follow_the_pool_argument():
    model = create_model("i3d", 10, pool="softpool")
    pools = [n for n, m in model.named_modules() if isinstance(m, ops.SoftPool3d)]
    assert len(pools) == 13 and not any(isinstance(m, nn.MaxPool3d) for m in model.modules())
    geometry = {n: (m.kernel_size, m.stride, m.padding, m.ceil_mode) for n, m in model.named_modules() if n in pools}
    assert geometry["features.MaxPool3d_2a_3x3"] == ((1, 3, 3), (1, 2, 2), (0, 1, 1), False)
    assert geometry["features.MaxPool3d_4a_3x3"] == (3, 2, 1, False)
    assert geometry["features.MaxPool3d_5a_2x2"] == (2, 2, 0, True)
    assert geometry["features.Mixed_4c.branch3.0"] == (3, 1, 1, False)


def test_feature_map_sizes_at_16x224():
    model = create_model("i3d", 400).eval()
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 16, 224, 224)).shape == (1, 1024, 2, 7, 7)


@pytest.mark.parametrize("pool", ["max", "softpool", "avg"])
def test_feature_maps_cover_the_whole_clip_as_tensorflow_same_padding_does(pool):
    """Stride 2 in time (stem, 4a, 5a) and space (stem, 2a, 3a, 4a, 5a), each giving ceil(n / 2)
    outputs as the published network's SAME padding does: ceil(T / 8) x ceil(H / 32) x ceil(W / 32).
    Odd maps before MaxPool3d_5a (48- and 112-pixel crops) keep their last row and column, and clips
    of 2 or 4 frames (multigrid's smallest shapes) reach the head."""
    model = create_model("i3d", 10, pool=pool, base_width=8).eval()
    tf = create_model("i3d", 10, pool=pool, base_width=8, tf_same=True).eval()
    with torch.no_grad():
        for t, h, w in ((2, 48, 48), (4, 48, 64), (8, 48, 48), (8, 112, 112), (5, 40, 72), (16, 96, 160)):
            expected = (math.ceil(t / 8), math.ceil(h / 32), math.ceil(w / 32))
            x = torch.randn(1, 3, t, h, w)
            assert model.forward_features(x).shape[2:] == expected, (t, h, w)
            assert tf.forward_features(x).shape[2:] == expected, (t, h, w)


def test_base_width_scales_every_layer_of_the_table():
    """MODEL.BASE_WIDTH 16: every channel count of the layer table / 4 (parameters from the table),
    the MODEL.BASE_WIDTH key reaches it, and a demo-sized clip runs through."""
    from vidpool.config import load_cfg
    from vidpool.models import build_model

    table = [(48, (16, 24, 32, 4, 8, 8)), (64, (32, 32, 48, 8, 24, 16)), (120, (48, 24, 52, 4, 12, 16)),
             (128, (40, 28, 56, 6, 16, 16)), (128, (32, 32, 64, 6, 16, 16)), (128, (28, 36, 72, 8, 16, 16)),
             (132, (64, 40, 80, 8, 32, 32)), (208, (64, 40, 80, 8, 32, 32)), (208, (96, 48, 96, 12, 32, 32))]
    expected = _unit(3, 16, 7) + _unit(16, 16) + _unit(16, 48, 3) + sum(_inception(i, w) for i, w in table)
    expected += 256 * 10 + 10
    model = build_model(load_cfg(None, ["MODEL.ARCH", "i3d", "MODEL.NUM_CLASSES", "10", "MODEL.BASE_WIDTH", "16"]))
    assert sum(p.numel() for p in model.parameters()) == expected and model.num_features == 256
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 8, 48, 48)).shape == (2, 10)


def test_every_pool_runs_at_the_demo_clip_size():
    """At 8x48x48 the last Inception stage sees 2 frames, fewer than its 3x3x3 pools' kernel: average
    pooling (refused there by torch's avg_pool3d) must run like max pooling, forward and backward,
    and swap_pooling still finds its pools."""
    from vidpool.config import load_cfg
    from vidpool.models import build_model

    for pool in ("avg", "sum", "mixed", "softpool"):
        cfg = load_cfg(None, ["MODEL.ARCH", "i3d", "MODEL.NUM_CLASSES", "10", "MODEL.BASE_WIDTH", "16",
                              "MODEL.POOL", pool])
        model = build_model(cfg).train()
        x = torch.randn(2, 3, 8, 48, 48)
        model(x).sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    replaced = ops.swap_pooling(model.eval(), "avg")
    assert len(replaced) == 13
    assert ops.swap_pooling(model, "max") == replaced
    assert all(isinstance(model.get_submodule(n), nn.MaxPool3d) for n in replaced)
