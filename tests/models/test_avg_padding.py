"""MODEL.POOL_COUNT_INCLUDE_PAD: average pooling over the real cells of each window, or over the whole
window with padding counted as zeros, in every backbone family; and checkpoints remember which."""
import itertools

import pytest
import torch
from torch import nn

from vidpool.config import load_cfg
from vidpool.models import build_model
from vidpool.weights.build import model_differences


def _brute_force_mean(x, kernel, stride, padding, ceil_mode, count_pad):
    """float64 window means by explicit loops over output positions: the real cells' mean, or the sum
    over the kernel's volume when padding counts (cells past the padded input never count)."""
    x = x.double()
    n, c = x.shape[:2]
    size = x.shape[2:]
    out_size = []
    for d in range(3):
        span = size[d] + 2 * padding[d] - kernel[d]
        o = (-(-span // stride[d]) if ceil_mode else span // stride[d]) + 1
        if ceil_mode and (o - 1) * stride[d] >= size[d] + padding[d]:
            o -= 1  # torch: the last window must start inside the input or its left padding
        out_size.append(o)
    out = torch.zeros(n, c, *out_size, dtype=torch.float64)
    for pos in itertools.product(*(range(o) for o in out_size)):
        lo = [pos[d] * stride[d] - padding[d] for d in range(3)]
        hi_pad = [min(lo[d] + kernel[d], size[d] + padding[d]) for d in range(3)]  # window inside input+padding
        real = [slice(max(lo[d], 0), min(lo[d] + kernel[d], size[d])) for d in range(3)]
        cells = x[:, :, real[0], real[1], real[2]]
        count = cells[0, 0].numel() if not count_pad else \
            (hi_pad[0] - lo[0]) * (hi_pad[1] - lo[1]) * (hi_pad[2] - lo[2])
        out[(slice(None), slice(None)) + pos] = cells.sum((2, 3, 4)) / count
    return out


def _as3(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * 3


@pytest.mark.parametrize("arch", ["r3d_10", "r2plus1d_10", "srtg_r3d_18", "i3d"])
@pytest.mark.parametrize("count_pad", [False, True])
def test_every_average_pool_of_the_model_follows_the_setting(arch, count_pad):
    cfg = load_cfg(None, ["MODEL.ARCH", arch, "MODEL.NUM_CLASSES", "5", "MODEL.POOL", "avg",
                          "MODEL.BASE_WIDTH", "16", "MODEL.POOL_COUNT_INCLUDE_PAD", str(count_pad)])
    model = build_model(cfg).eval()
    seen = []

    def hook(module, args, output):
        seen.append((module, args[0].detach(), output.detach()))

    pools = [m for m in model.modules() if isinstance(m, nn.modules.pooling._AvgPoolNd)]
    assert pools, f"{arch} built no average pool"
    for m in pools:
        m.register_forward_hook(hook)
    torch.manual_seed(0)
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 40, 40) + 0.5)  # positive inputs: padding counted as zero lowers border means
    assert len(seen) >= len(pools)
    border_differs = False
    for module, x, y in seen:
        geometry = (_as3(module.kernel_size), _as3(module.stride), _as3(module.padding), module.ceil_mode)
        expected = _brute_force_mean(x, *geometry, count_pad)
        assert y.shape == expected.shape
        torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-6)
        if any(geometry[2]):
            other = _brute_force_mean(x, *geometry, not count_pad)
            border_differs |= not torch.allclose(y.double(), other, rtol=1e-5, atol=1e-6)
    assert border_differs, "no padded pool saw a border where the two settings differ"


def test_the_setting_is_part_of_an_average_pool_checkpoints_model_only():
    def cfg(pool, count_pad):
        return load_cfg(None, ["MODEL.POOL", pool, "MODEL.POOL_COUNT_INCLUDE_PAD", str(count_pad)])

    assert model_differences(cfg("max", True), cfg("max", False)) == []
    assert model_differences(cfg("softpool", False), cfg("softpool", True)) == []
    diff = model_differences(cfg("avg", True), cfg("avg", False))
    assert len(diff) == 1 and "MODEL.POOL_COUNT_INCLUDE_PAD" in diff[0]
