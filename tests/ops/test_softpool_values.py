"""SoftPool forward values against the float64 brute force, and the properties the SoftPool paper states
(Stergiou, Poppe, Kalliatakis, ICCV 2021, Sec. 3)."""
import pytest
import torch
import torch.nn.functional as F

from vidpool import ops

from . import brute

POOL = {1: ops.soft_pool1d, 2: ops.soft_pool2d, 3: ops.soft_pool3d}
ADAPTIVE = {1: ops.adaptive_soft_pool1d, 2: ops.adaptive_soft_pool2d, 3: ops.adaptive_soft_pool3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}

# (input shape, kernel, stride, padding, ceil_mode): odd sizes, T != H != W, kernel != stride,
# overlapping windows, gaps between windows, padding, ceil_mode overhang.
CASES = [
    ((2, 3, 11), (3,), (2,), (1,), False),
    ((2, 3, 10), (4,), (3,), (2,), True),
    ((1, 2, 17), (2,), (5,), (0,), True),
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 0), False),
    ((2, 2, 8, 5), (2, 3), (3, 2), (1, 1), True),
    ((1, 4, 13, 6), (5, 3), (4, 3), (2, 1), True),
    ((2, 3, 5, 7, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), False),
    ((2, 3, 5, 7, 6), (3, 3, 3), (2, 2, 2), (1, 1, 1), True),
    ((1, 2, 4, 9, 7), (1, 3, 2), (1, 2, 3), (0, 1, 1), True),
    ((2, 2, 6, 5, 8), (2, 3, 3), (3, 1, 2), (1, 0, 1), False),
    ((1, 3, 3, 7, 5), (3, 2, 4), (1, 3, 2), (1, 1, 2), True),
]


def _ids(case):
    shape, k, s, p, c = case
    return f"{'x'.join(map(str, shape))}-k{''.join(map(str, k))}-s{''.join(map(str, s))}-p{''.join(map(str, p))}-{'ceil' if c else 'floor'}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_matches_brute_force_float64(case):
    shape, k, s, p, ceil = case
    x = torch.randn(shape, dtype=torch.float64) * 3
    y = POOL[len(k)](x, k, s, p, ceil)
    assert y.shape == MAX_POOL[len(k)](x, k, s, p, ceil_mode=ceil).shape
    torch.testing.assert_close(y, brute.soft_pool(x, k, s, p, ceil), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_reference_matches_brute_force(case):
    from vidpool.ops import _reference
    shape, k, s, p, ceil = case
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(_reference.soft_pool(x, k, s, p, ceil), brute.soft_pool(x, k, s, p, ceil),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,out", [
    ((2, 3, 10), (4,)), ((2, 3, 7), (7,)), ((1, 2, 9, 5), (4, 3)), ((2, 2, 5, 7, 6), (3, 2, 4)),
    ((1, 3, 4, 6, 6), (1, 1, 1)), ((1, 2, 8, 8, 8), (2, 4, 8)), ((1, 2, 3, 5, 4), (5, 7, 6)),
])
def test_adaptive_matches_brute_force(shape, out):
    x = torch.randn(shape, dtype=torch.float64)
    y = ADAPTIVE[len(out)](x, out)
    assert y.shape == shape[:2] + out
    torch.testing.assert_close(y, brute.adaptive_soft_pool(x, out), rtol=1e-12, atol=1e-12)


def test_adaptive_none_keeps_axis():
    x = torch.randn(2, 3, 4, 6, 5, dtype=torch.float64)
    y = ops.adaptive_soft_pool3d(x, (None, 2, None))
    torch.testing.assert_close(y, brute.adaptive_soft_pool(x, (4, 2, 5)))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_unbatched_equals_batched(dim):
    x = torch.randn((3,) + (7,) * dim, dtype=torch.float64)
    k = (3,) * dim
    torch.testing.assert_close(POOL[dim](x, 3, 2, 1), POOL[dim](x[None], k, 2, 1)[0], rtol=0, atol=0)
    torch.testing.assert_close(ADAPTIVE[dim](x, 2), ADAPTIVE[dim](x[None], 2)[0], rtol=0, atol=0)


def test_hand_computed_window():
    # one 2x2 window [0, 1, 2, 3]: weights e^i / sum e^j
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=torch.float64)
    import math
    e = [math.exp(v) for v in range(4)]
    expected = sum(v * ev for v, ev in zip(range(4), e)) / sum(e)
    assert ops.soft_pool2d(x, 2).item() == pytest.approx(expected, rel=1e-14)


def test_constant_window_returns_constant():
    x = torch.full((2, 3, 4, 6, 6), 1.75, dtype=torch.float32)
    torch.testing.assert_close(ops.soft_pool3d(x, 2), torch.full((2, 3, 2, 3, 3), 1.75))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bounds_and_not_below_average(dtype):
    x = torch.randn(2, 4, 6, 10, 8, dtype=dtype) * 5
    y = ops.soft_pool3d(x, (2, 3, 2), (2, 3, 2)).double()
    lo = -F.max_pool3d(-x, (2, 3, 2), (2, 3, 2)).double()
    hi = F.max_pool3d(x, (2, 3, 2), (2, 3, 2)).double()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert (y >= lo - tol).all() and (y <= hi + tol).all()
    assert (y >= brute.avg_pool(x, (2, 3, 2), (2, 3, 2)) - tol).all()


def test_permutation_inside_window_changes_nothing():
    x = torch.randn(2, 3, 4, 6, 8, dtype=torch.float64)
    # permute cells inside every non-overlapping 2x2x2 block
    blocks = x.unflatten(2, (2, 2)).unflatten(4, (3, 2)).unflatten(6, (4, 2))
    blocks = blocks.permute(0, 1, 2, 4, 6, 3, 5, 7).flatten(5)
    perm = torch.randperm(8)
    shuffled = blocks[..., perm].unflatten(5, (2, 2, 2)).permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(x.shape)
    assert not torch.equal(shuffled, x)
    torch.testing.assert_close(ops.soft_pool3d(shuffled, 2), ops.soft_pool3d(x, 2), rtol=1e-14, atol=1e-14)


def test_huge_value_dominates_and_extremes_stay_finite():
    x = torch.zeros(1, 1, 2, 2, 2)
    x[0, 0, 1, 0, 1] = 1e4
    assert ops.soft_pool3d(x, 2).item() == 1e4
    for dtype, big in [(torch.float32, 3e38), (torch.float64, 1e308), (torch.float16, 6e4), (torch.bfloat16, 3e38)]:
        x = (torch.rand(2, 2, 4, 4, 4, dtype=torch.float64) * 2 - 1) * big
        x[0, 0, :2, :2, :2] = big  # a window of ties at the top of the range: sum(x e) would overflow
        x = x.to(dtype)
        y = ops.soft_pool3d(x, 2)
        assert torch.isfinite(y).all(), dtype
        assert y[0, 0, 0, 0, 0] == x[0, 0, 0, 0, 0], dtype
        torch.testing.assert_close(y.double(), brute.soft_pool(x.double(), (2, 2, 2)), rtol=1e-2, atol=0)


def test_nan_propagates_and_infinities_take_the_limit():
    x = torch.randn(1, 1, 2, 4, 4)
    x[0, 0, 0, 0, 0] = float("nan")
    y = ops.soft_pool3d(x, 2)
    assert torch.isnan(y[0, 0, 0, 0, 0]) and torch.isfinite(y.flatten()[1:]).all()
    x = torch.randn(1, 1, 2, 2, 4)
    x[0, 0, 0, 0, 0] = float("inf")
    x[0, 0, 0, 0, 2] = float("-inf")  # weight 0 in a window with finite cells
    x[0, 0, 1, 1, 3] = float("-inf")
    y = ops.soft_pool3d(x, 2)
    assert y[0, 0, 0, 0, 0].item() == float("inf")
    expected = brute.soft_pool(x[..., 2:].double().clamp(min=-1e300), (2, 2, 2))
    torch.testing.assert_close(y[..., 1:].double(), expected, rtol=1e-6, atol=1e-6)
    assert ops.soft_pool1d(torch.full((1, 1, 2), float("-inf")), 2).item() == float("-inf")


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_half_types_close_to_float64(dtype, tol):
    x = (torch.randn(2, 4, 5, 9, 41) * 4e3).clamp(-1e4, 1e4)  # rows of several vectors
    x[0, 0, 0, 0, :4] = torch.tensor([1e4, -1e4, 1e4 - 1, 9990.0])
    xh = x.to(dtype)
    for k, s, p in [((2, 2, 2), (2, 2, 2), 0), ((3, 3, 3), (2, 2, 2), 1)]:
        y = ops.soft_pool3d(xh, k, s, p)
        assert y.dtype == dtype and torch.isfinite(y).all()
        ref = brute.soft_pool(xh.double(), k, s, (p,) * 3)
        torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced", "expanded"])
def test_strided_inputs_and_memory_format(layout):
    base = torch.randn(2, 6, 6, 9, 10, dtype=torch.float64)
    if layout == "channels_last":
        x = base.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "transposed":
        x = base.transpose(3, 4)
    elif layout == "sliced":
        x = base[:, ::2, 1:, :, ::2]
    else:
        x = base[:, :1].expand(2, 5, 6, 9, 10)
    assert not x.is_contiguous()
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        y = ops.soft_pool3d(x, k, s, p)
        ref_layout = F.max_pool3d(x, k, s, p)
        assert y.shape == ref_layout.shape
        assert y.is_contiguous(memory_format=torch.channels_last_3d) == ref_layout.is_contiguous(
            memory_format=torch.channels_last_3d)
        torch.testing.assert_close(y, brute.soft_pool(x, (k,) * 3, (s,) * 3, (p,) * 3), rtol=1e-12, atol=1e-12)


def test_channels_last_2d():
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    y = ops.soft_pool2d(x, 3, 2, 1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, brute.soft_pool(x, (3, 3), (2, 2), 1), rtol=1e-12, atol=1e-12)


def test_empty_batch():
    y = ops.soft_pool3d(torch.randn(0, 3, 4, 4, 4), 2)
    assert y.shape == (0, 3, 2, 2, 2)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_half_types_close_to_float64_at_unit_scale(dtype, tol):
    """Unit-scale inputs, where the softmax weights are far from one-hot: a max (or average) pool in
    the half path would miss the float64 SoftPool by much more than the tolerance."""
    torch.manual_seed(0)
    xh = torch.randn(2, 4, 5, 9, 11).to(dtype)
    for k, s, p in [((2, 2, 2), (2, 2, 2), 0), ((3, 3, 3), (2, 2, 2), 1)]:
        ref = brute.soft_pool(xh.double(), k, s, (p,) * 3)
        for other in (F.max_pool3d(xh.double(), k, s, p), F.avg_pool3d(xh.double(), k, s, p, count_include_pad=False)):
            assert (other - ref).abs().max() > 20 * tol  # the test can tell SoftPool from its neighbours
        y = ops.soft_pool3d(xh, k, s, p)
        assert y.dtype == dtype
        torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol * 1e-2)
