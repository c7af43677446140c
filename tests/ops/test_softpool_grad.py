"""SoftPool backward: exact gradient, gradcheck, determinism, half types, strided gradients."""
import os

import pytest
import torch

from vidpool import ops
from vidpool.ops import _reference

from . import brute, half_bounds
from .test_softpool_values import CASES, POOL, _ids


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_gradient_matches_autograd_of_brute_force(case):
    shape, k, s, p, ceil = case
    x = (torch.randn(shape, dtype=torch.float64) * 2).requires_grad_()
    g = torch.randn_like(POOL[len(k)](x.detach(), k, s, p, ceil))
    (gx,) = torch.autograd.grad(POOL[len(k)](x, k, s, p, ceil), x, g)
    (ref,) = torch.autograd.grad(brute.soft_pool(x, k, s, p, ceil), x, g)
    torch.testing.assert_close(gx, ref, rtol=1e-10, atol=1e-12)


def test_gradient_formula_by_hand():
    # window [a, b]: y = (a e^a + b e^b) / (e^a + e^b); dy/da = w_a (1 + a - y)
    import math
    a, b = 0.3, -1.2
    wa = math.exp(a) / (math.exp(a) + math.exp(b))
    y = wa * a + (1 - wa) * b
    x = torch.tensor([[[a, b]]], dtype=torch.float64, requires_grad=True)
    ops.soft_pool1d(x, 2).sum().backward()
    assert x.grad[0, 0, 0].item() == pytest.approx(wa * (1 + a - y), rel=1e-13)
    assert x.grad[0, 0, 1].item() == pytest.approx((1 - wa) * (1 + b - y), rel=1e-13)


@pytest.mark.parametrize("dim,k,s,p,ceil", [
    (1, 3, 2, 1, True), (1, 2, 3, 0, False),
    (2, (3, 2), (2, 1), (1, 0), False), (2, 2, 2, 0, False),
    (3, 2, 2, 0, False), (3, 3, 2, 1, True), (3, (2, 3, 1), (1, 2, 2), (1, 1, 0), True),
])
def test_gradcheck(dim, k, s, p, ceil):
    x = torch.randn((2, 2) + (5, 6, 7)[3 - dim:], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: POOL[dim](t, k, s, p, ceil), (x,))


@pytest.mark.parametrize("out", [(2, 3, 2), (1, 1, 1), (4, 5, 7)])
def test_gradcheck_adaptive(out):
    x = torch.randn(1, 2, 4, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.adaptive_soft_pool3d(t, out), (x,))


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), ((1, 3, 3), (1, 2, 2), (0, 1, 1))])
def test_compiled_matches_reference_forward_and_backward(k, s, p):
    if ops.backend("cpu") != "cpp":
        pytest.skip("vidpool._C not built")
    x = torch.randn(2, 8, 7, 15, 13, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    kk, ss, pp = [(v,) * 3 if isinstance(v, int) else v for v in (k, s, p)]
    y, yr = ops.soft_pool3d(x, k, s, p), _reference.soft_pool(xr, kk, ss, pp)
    torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    yr.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (2, 3, 1)])
def test_backward_is_deterministic(k, s, p):
    x = torch.randn(2, 16, 8, 20, 20, requires_grad=True)
    y = ops.soft_pool3d(x, k, s, p)
    g = torch.randn_like(y)
    (g1,) = torch.autograd.grad(y, x, g, retain_graph=True)
    (g2,) = torch.autograd.grad(y, x, g)
    assert torch.equal(g1, g2)


def test_uncovered_cells_get_zero_gradient():
    x = torch.randn(1, 1, 11, dtype=torch.float64, requires_grad=True)
    ops.soft_pool1d(x, 2, 4).sum().backward()  # windows [0,2) [4,6) [8,10): cells 2,3,6,7,10 unused
    assert (x.grad[0, 0, [2, 3, 6, 7, 10]] == 0).all() and (x.grad[0, 0, [0, 1, 4, 5, 8, 9]] != 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_half_gradient_within_derived_bound_over_many_draws(dtype, scale):
    """Unseeded, 25 draws per run: y is recomputed in float32, so the only half-type error left is
    the final rounding of each gradient (half_bounds derives the bound); it must hold every time.
    At unit scale the weights are spread over the window, far from a max pool's one-hot routing."""
    seed = int.from_bytes(os.urandom(4), "little")
    gen = torch.Generator().manual_seed(seed)
    for draw in range(25):
        x = (torch.randn(2, 3, 4, 8, 9, generator=gen, dtype=torch.float64) * scale).to(dtype)
        x64 = x.double().requires_grad_()
        for k, s, p in [(2, 2, 0), (3, 2, 1)]:
            ref = brute.soft_pool(x64, (k,) * 3, (s,) * 3, (p,) * 3)
            g = torch.randn(ref.shape, dtype=torch.float64, generator=gen).to(dtype)
            (gr,) = torch.autograd.grad(ref, x64, g.double())
            (gh,) = torch.autograd.grad(ops.soft_pool3d(x.requires_grad_(), k, s, p), x, g)
            assert gh.dtype == dtype
            bound = half_bounds.backward_bound(x.double(), g.double(), ref.detach(), gr, ((k,) * 3, (s,) * 3, p, False,
                                                                                          False), dtype)
            excess = ((gh.double() - gr).abs() - bound).max().item()
            assert excess <= 0, f"seed {seed} draw {draw} k{k} s{s} p{p}: bound exceeded by {excess}"
            x = x.detach()


def test_gradient_with_strided_grad_output_and_channels_last():
    x = torch.randn(2, 6, 6, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    x64 = x.detach().clone().requires_grad_()
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        y = ops.soft_pool3d(x, k, s, p)
        g = torch.randn(y.shape[:-1] + (1,), dtype=torch.float64).expand(y.shape)  # stride 0
        (gx,) = torch.autograd.grad(y, x, g)
        assert gx.is_contiguous(memory_format=torch.channels_last_3d)
        (gr,) = torch.autograd.grad(brute.soft_pool(x64, (k,) * 3, (s,) * 3, (p,) * 3), x64, g)
        torch.testing.assert_close(gx, gr, rtol=1e-10, atol=1e-12)


def test_saves_only_input_and_output():
    x = torch.randn(2, 4, 4, 8, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = ops.soft_pool3d(x, 2)
    if ops.backend("cpu") == "cpp":
        assert sum(t.numel() * t.element_size() for t in saved) == (x.numel() + y.numel()) * 4


# Rows at least 2 vectors wide (16 float32 lanes with AVX-512): exercises the direct row loads,
# the shifted last chunk and the vector gradient stores of the CPU kernel.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (1, 1, 0), ((1, 2, 2), (1, 2, 2), (0, 1, 1)), (2, 3, 1), (3, 2, 1),
                                   ((2, 2, 4), (2, 2, 4), 0), (3, 1, 1), ((1, 3, 3), (1, 2, 2), (0, 1, 1)),
                                   ((1, 1, 5), (1, 1, 4), (0, 0, 2))])
@pytest.mark.parametrize("planes", [(2, 3), (1, 1)])  # with >= 2 threads: ordered scatter / gather
def test_wide_rows_match_brute_force(dtype, k, s, p, planes):
    x = (torch.randn(planes + (3, 4, 77), dtype=torch.float64) * 3).to(dtype).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    kk, ss, pp = [(v,) * 3 if isinstance(v, int) else v for v in (k, s, p)]
    y = ops.soft_pool3d(x, k, s, p)
    ref = brute.soft_pool(x64, kk, ss, pp)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
    g = torch.randn(ref.shape, dtype=torch.float64)
    (gx,) = torch.autograd.grad(y, x, g.to(dtype))
    (gr,) = torch.autograd.grad(ref, x64, g)
    torch.testing.assert_close(gx.double(), gr, rtol=tol, atol=tol)


GRADGRAD = [
    (1, 3, 2, 1, True), (2, (3, 2), (2, 1), (1, 0), False), (3, 2, 2, 0, False), (3, 3, 2, 1, True),
    (3, (2, 3, 1), (1, 2, 2), (1, 1, 0), True),
]


@pytest.mark.parametrize("dim,k,s,p,ceil", GRADGRAD)
def test_gradgradcheck(dim, k, s, p, ceil):
    x = torch.randn((2, 2) + (5, 6, 7)[3 - dim:], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: POOL[dim](t, k, s, p, ceil), (x,))


@pytest.mark.parametrize("out", [(2, 3, 9), (1, 1, 1)])
def test_gradgradcheck_adaptive(out):
    x = torch.randn(1, 2, 4, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: ops.adaptive_soft_pool3d(t, out), (x,))


def test_gradient_penalty_matches_brute_force():
    """create_graph=True through the compiled op: d/dx of |dL/dx|^2 equals the float64 brute force's."""
    x = (torch.randn(2, 3, 5, 7, 6, dtype=torch.float64) * 2).requires_grad_()
    g = torch.randn(2, 3, 3, 4, 4, dtype=torch.float64)

    def penalty_grad(pool):
        (gx,) = torch.autograd.grad(pool(x), x, g, create_graph=True)
        return torch.autograd.grad((gx ** 2).sum(), x)[0]

    ours = penalty_grad(lambda t: ops.soft_pool3d(t, 3, 2, 1, True))
    ref = penalty_grad(lambda t: brute.soft_pool(t, (3, 3, 3), (2, 2, 2), 1, True))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_infinite_maxima_give_finite_cells_their_true_gradient():
    """Overlapping windows [0,3) [2,5) [4,7) [6,9): +inf at 2 takes two windows' gradient (the limit
    of a dominant cell), its finite neighbours weigh exactly 0 there, and nothing becomes NaN."""
    for dtype in (torch.float64, torch.float32):
        x = torch.randn(1, 1, 9, dtype=dtype)
        x[0, 0, 2] = float("inf")
        x[0, 0, 7] = x[0, 0, 8] = float("-inf")
        x.requires_grad_()
        y = ops.soft_pool1d(x, 3, 2)
        assert y[0, 0, 0] == y[0, 0, 1] == float("inf")
        (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
        assert not torch.isnan(gx).any(), gx
        assert gx[0, 0, 2] == 2.0 and (gx[0, 0, [0, 1, 3, 7, 8]] == 0).all()
        # cells 4-6 see only the finite window [4,7) (and cell 6 the one of [6,9) too)
        finite = x.detach()[..., 4:7].double().requires_grad_()
        (gref,) = torch.autograd.grad(brute.soft_pool(finite, (3,), (2,)), finite, torch.ones(1, 1, 1, dtype=torch.float64))
        torch.testing.assert_close(gx[0, 0, 4:6].double(), gref[0, 0, :2], rtol=1e-5, atol=1e-6)
    # several infinite cells share the window: gy / count each, the limit of equal large cells
    x = torch.tensor([[[float("inf"), 1.0, float("inf"), float("-inf")]]], requires_grad=True)
    (gx,) = torch.autograd.grad(ops.soft_pool1d(x, 4), x, torch.ones(1, 1, 1))
    assert gx.tolist() == [[[0.5, 0.0, 0.5, 0.0]]]
    x = torch.full((1, 1, 4), float("-inf"), requires_grad=True)  # an all -inf window
    (gx,) = torch.autograd.grad(ops.soft_pool1d(x, 2), x, torch.ones(1, 1, 2))
    assert gx.tolist() == [[[0.5, 0.5, 0.5, 0.5]]]


def test_nan_input_gives_nan_gradient_in_its_windows_only():
    x = torch.randn(1, 1, 8, dtype=torch.float64)
    x[0, 0, 3] = float("nan")
    x.requires_grad_()
    y = ops.soft_pool1d(x, 2)
    (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.isnan(y[0, 0, 1]) and torch.isnan(gx[0, 0, 2:4]).all()
    assert torch.isfinite(gx[0, 0, [0, 1, 4, 5, 6, 7]]).all()


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.int32, torch.complex64])
def test_unsupported_dtypes_raise_value_error(dtype):
    x = torch.zeros(1, 1, 4, 4, 4).to(dtype)
    with pytest.raises(ValueError, match="float32, float64, float16 or bfloat16"):
        ops.soft_pool3d(x, 2)
    if ops.backend("cpu") == "cpp":  # the raw op says the same
        with pytest.raises(ValueError, match="float32, float64, float16 or bfloat16"):
            torch.ops.vidpool.soft_pool(x, [2, 2, 2], [2, 2, 2], [0, 0, 0], False)


def test_bitwise_identical_across_thread_counts():
    """Forward and backward of every geometry the value tests use, plus wide rows, channels-last and
    few-plane inputs (ordered scatter and gather paths), with 1, 2, 3 and 8 threads."""
    from .test_softpool_values import CASES
    cases = list(CASES) + [((2, 3, 3, 4, 77), (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
                           ((1, 1, 6, 9, 40), (2, 2, 2), (1, 1, 1), (0, 0, 0), True),
                           ((2, 16, 4, 14, 14), (3, 3, 3), (2, 2, 2), (1, 1, 1), False)]
    before = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 3, 8):
            torch.set_num_threads(threads)
            for i, (shape, k, s, p, ceil) in enumerate(cases):
                for dtype in (torch.float32, torch.float64, torch.bfloat16):
                    gen = torch.Generator().manual_seed(i)
                    x = (torch.randn(shape, generator=gen) * 3).to(dtype)
                    if len(shape) == 5 and i % 2:
                        x = x.contiguous(memory_format=torch.channels_last_3d)
                    x.requires_grad_()
                    y = POOL[len(k)](x, k, s, p, ceil)
                    g = torch.randn(y.shape, generator=gen).to(dtype)
                    (gx,) = torch.autograd.grad(y, x, g)
                    key = (i, dtype)
                    if key in results:
                        y0, g0 = results[key]
                        assert torch.equal(y, y0) and torch.equal(gx, g0), f"{threads} threads differ: case {i} {dtype}"
                    else:
                        results[key] = (y.detach(), gx)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), ((1, 2, 3), (1, 2, 1), (0, 1, 0))])
@pytest.mark.parametrize("layout", ["contiguous", "sliced"])
def test_narrow_rows_of_large_planes(k, s, p, layout):
    """W = 14 rows in planes too large for the transposed-block path: the row path, whose narrow
    rows load past the row's end (into the same allocation, up to its very end) for idle lanes."""
    base = torch.randn(1, 2, 40, 30, 15 if layout == "sliced" else 14, dtype=torch.float64) * 3
    x = (base[..., :14] if layout == "sliced" else base).float().requires_grad_()
    x64 = x.detach().double().requires_grad_()
    kk, ss, pp = [(v,) * 3 if isinstance(v, int) else v for v in (k, s, p)]
    y = ops.soft_pool3d(x, k, s, p)
    ref = brute.soft_pool(x64, kk, ss, pp)
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    g = torch.randn(ref.shape, dtype=torch.float64)
    (gx,) = torch.autograd.grad(y, x, g.float())
    (gr,) = torch.autograd.grad(ref, x64, g)
    torch.testing.assert_close(gx.double(), gr, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (2, 3, 0), (3, 2, 1)])  # tiling, gapped, overlapping windows
@pytest.mark.parametrize("layout", ["contiguous", "channel_slice", "row_slice", "channels_last"])
def test_narrow_rows_of_small_planes(dtype, k, s, p, layout):
    """The transposed-block path (W < one vector of outputs, small planes): planes moved in SIMD
    tiles when they are dense and evenly spaced (a tail tile: 3*5*13 cells; tail blocks of 2 and 6 planes),
    per row when rows are sliced, lane by lane for channels-last, across a batch boundary inside a
    block, with a gapped and a broadcast grad_output; forward and backward against float64."""
    gen = torch.Generator().manual_seed(k * 10 + s)
    base = torch.randn(2, 9, 3, 5, 15, generator=gen, dtype=torch.float64) * 3
    dense = base[..., :13].contiguous()
    x = {"contiguous": dense,
         "channel_slice": dense[:, 1:8],  # 14 dense planes, not evenly spaced across the batch boundary
         "row_slice": base[..., :13],
         "channels_last": dense.contiguous(memory_format=torch.channels_last_3d)}[layout]
    xl = x.to(dtype).requires_grad_()
    x64 = xl.detach().double().requires_grad_()
    kk, ss, pp = (k,) * 3, (s,) * 3, (p,) * 3
    y = ops.soft_pool3d(xl, k, s, p)
    ref = brute.soft_pool(x64, kk, ss, pp)
    assert y.shape[-1] < 8  # narrow: the block path
    tol = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 3e-2}[dtype]
    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
    for kind in ("gapped", "broadcast"):
        if kind == "gapped":
            g = torch.randn(ref.shape[:-1] + (2 * ref.shape[-1],), generator=gen, dtype=torch.float64)[..., ::2]
        else:
            g = torch.randn(ref.shape[:-1] + (1,), generator=gen, dtype=torch.float64).expand(ref.shape)
        (gx,) = torch.autograd.grad(y, xl, g.to(dtype), retain_graph=True)
        (gr,) = torch.autograd.grad(ref, x64, g, retain_graph=True)
        torch.testing.assert_close(gx.double(), gr, rtol=tol, atol=tol * (10 if dtype == torch.bfloat16 else 1))
