"""The CUDA kernels, executed on the host: vidpool._cuda_emulated compiles softpool_cuda_kernels.cuh
(the very lines nvcc compiles for the GPU) through a shim that runs the launch grid serially.
Checked against the float64 brute force on random geometries, layouts, launch grids and dtypes."""
import os
import random

import pytest
import torch

from . import brute, half_bounds
from .cuda_cases import ADAPTIVE, BLOCKED, GEOMETRIES, _layout

emulated = pytest.importorskip("vidpool._cuda_emulated", reason="vidpool._cuda_emulated not built")

# (threads per block, block cap, 64-bit index math forced): the kernels take 32-bit index math
# wherever the sizes allow it, so the forced rows are what runs the 64-bit instantiation here.
GRIDS = [(256, 1 << 20, False), (32, 1, False), (7, 3, True), (1, 1, False), (64, 2, True)]


def _grid_id(grid):
    return f"t{grid[0]}b{grid[1]}" + ("i64" if grid[2] else "")


@pytest.mark.parametrize("grid", GRIDS, ids=_grid_id)
@pytest.mark.parametrize("index", range(len(GEOMETRIES)))
def test_emulated_forward_backward_float64(index, grid):
    shape, k, s, p, ceil = GEOMETRIES[index]
    gen = torch.Generator().manual_seed(index)
    x = torch.randn(shape, dtype=torch.float64, generator=gen) * 3
    layout = ("contiguous", "channels_last", "gapped")[index % 3]
    xl = _layout(x, layout)
    y = emulated.soft_pool(xl, list(k), list(s), list(p), ceil, *grid)
    xr = x.clone().requires_grad_()
    ref = brute.soft_pool(xr, k, s, p, ceil)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref.detach(), rtol=1e-12, atol=1e-12)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
    if index % 2:  # stride-0 grad_output, as expand() or a sum's backward gives
        g = g[..., :1].expand(ref.shape)
    (gr,) = torch.autograd.grad(ref, xr, g)
    gx = emulated.soft_pool_backward(g, xl, list(k), list(s), list(p), ceil, *grid)
    assert gx.stride() == torch.empty_like(xl, memory_format=torch._prims_common.suggest_memory_format(xl)).stride()
    torch.testing.assert_close(gx, gr, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("grid", GRIDS[:3], ids=_grid_id)
@pytest.mark.parametrize("shape,out", ADAPTIVE)
def test_emulated_adaptive_float64(shape, out, grid):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ref = brute.adaptive_soft_pool(x, out)
    y = emulated.adaptive_soft_pool(x.detach(), list(out), *grid)
    torch.testing.assert_close(y, ref.detach(), rtol=1e-12, atol=1e-12)
    g = torch.randn(ref.shape, dtype=torch.float64)
    (gr,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(emulated.adaptive_soft_pool_backward(g, x.detach(), list(out), *grid), gr,
                               rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("index", range(0, len(GEOMETRIES), 3))
def test_emulated_every_dtype(index, dtype):
    """float32 and the half types (accumulated in float32) within bounds derived from the formula."""
    shape, k, s, p, ceil = GEOMETRIES[index]
    seed = int.from_bytes(os.urandom(4), "little")  # unseeded: the bound must hold for any draw
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, dtype=torch.float64, generator=gen) * 3).to(dtype)
    x64 = x.double().requires_grad_()
    ref = brute.soft_pool(x64, k, s, p, ceil)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=gen).to(dtype)
    (gr,) = torch.autograd.grad(ref, x64, g.double())
    wide = index % 2 == 0
    y = emulated.soft_pool(x, list(k), list(s), list(p), ceil, 32, 2, wide)
    gx = emulated.soft_pool_backward(g, x, list(k), list(s), list(p), ceil, 32, 2, wide)
    assert y.dtype == gx.dtype == dtype
    geometry = (k, s, p, ceil, False)
    if dtype == torch.float32:
        torch.testing.assert_close(y.double(), ref.detach(), rtol=1e-5, atol=1e-5, msg=f"seed {seed}")
        torch.testing.assert_close(gx.double(), gr, rtol=1e-5, atol=1e-5, msg=f"seed {seed}")
        return
    fb = half_bounds.forward_bound(x.double(), ref.detach(), geometry, dtype)
    bb = half_bounds.backward_bound(x.double(), g.double(), ref.detach(), gr, geometry, dtype)
    assert ((y.double() - ref).abs() <= fb).all(), f"seed {seed}"
    assert ((gx.double() - gr).abs() <= bb).all(), f"seed {seed}: worst excess {((gx.double() - gr).abs() - bb).max()}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("index", range(len(BLOCKED)))
def test_emulated_blocked_gather_equals_the_cell_gather(index, dtype):
    """The blocked backward sums each cell's windows in the per-cell gather's order: bitwise the same
    gradient, in every layout, on grids small enough that the grid-stride loops wrap. (Both are also
    checked against the float64 brute force above: BLOCKED is part of GEOMETRIES.)"""
    shape, k, s, p, ceil = BLOCKED[index]
    gen = torch.Generator().manual_seed(100 + index)
    x = (torch.randn(shape, dtype=torch.float64, generator=gen) * 3).to(dtype)
    x.view(-1)[:: 5] = x.view(-1)[0]  # ties inside windows
    args = (list(k), list(s), list(p), ceil)
    assert emulated.backward_path(x, *args, False) == "blocked"
    g = torch.randn(emulated.soft_pool(x, *args, 256, 1 << 20, False).shape, dtype=torch.float64, generator=gen).to(dtype)
    for layout in ("contiguous", "channels_last", "gapped"):
        xl = _layout(x, layout)
        for grid in ((256, 1 << 20, False), (3, 2, False), (5, 1, True)):
            blocked = emulated.soft_pool_backward(g, xl, *args, *grid)
            cell = emulated.soft_pool_backward(g, xl, *args, *grid, cell_gather=True)
            assert torch.equal(blocked, cell), (layout, grid)
            assert blocked.stride() == cell.stride()


def test_emulated_backward_paths():
    """Which backward each geometry gets: per window for disjoint windows, the blocked gather for the
    overlapping pools of the benchmark (k=3, s=2, p=1), the per-cell gather where a cell's windows
    reach further back than one stride, where strides pass 2, for adaptive windows, and on request."""
    x3 = torch.randn(1, 2, 8, 14, 14)
    path = emulated.backward_path
    assert path(x3, [2, 2, 2], [2, 2, 2], [0, 0, 0], False, False) == "disjoint"
    assert path(x3, [3, 3, 3], [2, 2, 2], [1, 1, 1], False, False) == "blocked"
    assert path(x3, [3, 3, 3], [2, 2, 2], [1, 1, 1], False, True) == "cell_gather"
    assert path(x3, [1, 3, 3], [1, 2, 2], [0, 1, 1], True, False) == "blocked"
    assert path(x3, [3, 3, 3], [1, 1, 1], [1, 1, 1], False, False) == "cell_gather"  # k = 3 > 2s
    assert path(x3, [5, 5, 5], [3, 3, 3], [2, 2, 2], False, False) == "cell_gather"  # s = 3
    assert emulated.adaptive_backward_path(x3, [3, 5, 5]) == "cell_gather"
    assert emulated.adaptive_backward_path(x3, [4, 7, 7]) == "disjoint"
    taken = [path(torch.empty(sh), list(k), list(s), list(p), c, False) for sh, k, s, p, c in GEOMETRIES]
    assert {"disjoint", "blocked", "cell_gather"} <= set(taken)  # the brute-force tests run all three


def test_emulated_kernels_match_the_cpu_kernels():
    """Same math, different launchers: the CPU and the emulated CUDA kernels agree to rounding."""
    from vidpool import ops
    x = torch.randn(2, 5, 6, 9, 11, dtype=torch.float64, requires_grad=True)
    y = ops.soft_pool3d(x, 3, 2, 1, True)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    for wide in (False, True):
        ye = emulated.soft_pool(x.detach(), [3, 3, 3], [2, 2, 2], [1, 1, 1], True, 64, 3, wide)
        torch.testing.assert_close(ye, y.detach(), rtol=1e-13, atol=1e-13)
        gxe = emulated.soft_pool_backward(g, x.detach(), [3] * 3, [2] * 3, [1] * 3, True, 64, 3, wide)
        torch.testing.assert_close(gxe, gx, rtol=1e-12, atol=1e-13)


def test_emulated_adaptive_products_past_int32():
    """Adaptive windows multiply an index by the other axis's size: 50000 x 50000 passes 2**31 though
    every tensor is small, so the launcher must pick 64-bit index math (the CPU kernels' int64 is the
    reference)."""
    from vidpool import ops
    x = torch.randn(1, 1, 50000, dtype=torch.float64)
    for out in (49999, 50000):
        y = ops.adaptive_soft_pool1d(x.clone().requires_grad_(), out)
        g = torch.randn_like(y)
        xr = x.clone().requires_grad_()
        (gr,) = torch.autograd.grad(ops.adaptive_soft_pool1d(xr, out), xr, g)
        torch.testing.assert_close(emulated.adaptive_soft_pool(x, [out], 256, 1 << 20, False), y.detach(),
                                   rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(emulated.adaptive_soft_pool_backward(g, x, [out], 256, 1 << 20, False), gr,
                                   rtol=1e-12, atol=1e-13)


def test_emulated_infinite_windows():
    """+-inf maxima take their limits; finite cells get gradient 0 there, and no NaN spreads."""
    x = torch.randn(1, 1, 9, dtype=torch.float64)
    x[0, 0, 2] = float("inf")
    x[0, 0, 7] = x[0, 0, 8] = float("-inf")
    y = emulated.soft_pool(x, [3], [2], [0], False, 2, 1, False)  # windows [0,3) [2,5) [4,7) [6,9)
    assert y[0, 0, 0] == y[0, 0, 1] == float("inf")
    g = torch.ones_like(y)
    gx = emulated.soft_pool_backward(g, x, [3], [2], [0], False, 2, 1, False)
    assert not torch.isnan(gx).any()
    assert gx[0, 0, 2] == 2.0  # one infinite cell in each of two windows: gy routed to it, as the limit
    assert (gx[0, 0, [0, 1, 3]] == 0).all()  # weight exactly 0 beside an infinite max
    assert gx[0, 0, 4] != 0  # window [4,7) is finite: cell 4 gets its ordinary gradient
    assert (gx[0, 0, [7, 8]] == 0).all()  # -inf cells in a finite window weigh 0


def test_emulated_launch_arguments_checked():
    x = torch.randn(1, 1, 4)
    with pytest.raises(ValueError, match="threads"):
        emulated.soft_pool(x, [2], [2], [0], False, 0, 1, False)
    with pytest.raises(ValueError, match="float32, float64, float16 or bfloat16"):
        emulated.soft_pool(x.to(torch.float8_e4m3fn), [2], [2], [0], False, 32, 1, False)


def test_emulated_fast_division_is_exact():
    """The kernels' 32-bit index math divides by multiply-high and shift: exact against Python's //
    for divisors of every size class and numerators up to 2**31 - 1."""
    rng = random.Random(7)
    top = 2**31 - 1
    divisors = [1, 2, 3, 5, 7, 14, 56, 64, 65, 255, 256, 257, 1000, 2**16 - 1, 2**16 + 1, 2**30, 2**30 + 1, top]
    divisors += [rng.randint(1, top) for _ in range(40)] + [rng.randint(1, 100) for _ in range(40)]
    for d in divisors:
        n = [0, 1, d - 1, d, d + 1, top, top - 1, top - top % d, top - top % d - 1]
        n += [rng.randint(0, top) for _ in range(200)] + [rng.randint(0, 10 * d) for _ in range(50)]
        n = [v for v in n if 0 <= v <= top]
        assert emulated.fast_div32(n, d) == [v // d for v in n], d
    with pytest.raises(RuntimeError, match="divisor 0"):
        emulated.fast_div32([1], 0)
