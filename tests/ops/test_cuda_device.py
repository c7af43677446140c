"""The CUDA kernels on a real GPU (skipped without one; tools/gpu_check.sh runs them): against the
float64 brute force and the CPU kernels, for the geometries, layouts and dtypes of the emulated tests."""
import pytest
import torch

from vidpool import ops

from . import brute, half_bounds
from .cuda_cases import ADAPTIVE, GEOMETRIES, _layout

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or ops.backend("cuda") != "cuda",
                                reason="needs a CUDA device and vidpool's CUDA kernels")
POOL = {1: ops.soft_pool1d, 2: ops.soft_pool2d, 3: ops.soft_pool3d}
ADAPTIVE_POOL = {1: ops.adaptive_soft_pool1d, 2: ops.adaptive_soft_pool2d, 3: ops.adaptive_soft_pool3d}


@pytest.mark.parametrize("index", range(len(GEOMETRIES)))
def test_cuda_matches_brute_force_and_cpu(index):
    shape, k, s, p, ceil = GEOMETRIES[index]
    x = torch.randn(shape, dtype=torch.float64) * 3
    xr = x.clone().requires_grad_()
    ref = brute.soft_pool(xr, k, s, p, ceil)
    g = torch.randn(ref.shape, dtype=torch.float64)
    (gr,) = torch.autograd.grad(ref, xr, g)
    xc = _layout(x, ("contiguous", "channels_last", "gapped")[index % 3]).cuda().requires_grad_()
    y = POOL[len(k)](xc, k, s, p, ceil)
    (gx,) = torch.autograd.grad(y, xc, g.cuda())
    torch.testing.assert_close(y.cpu(), ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx.cpu(), gr, rtol=1e-11, atol=1e-12)
    xcpu = x.clone().requires_grad_()
    ycpu = POOL[len(k)](xcpu, k, s, p, ceil)
    torch.testing.assert_close(y.cpu(), ycpu.detach(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape,out", ADAPTIVE)
def test_cuda_adaptive(shape, out):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ref = brute.adaptive_soft_pool(x, out)
    xc = x.detach().cuda().requires_grad_()
    y = ADAPTIVE_POOL[len(out)](xc, out)
    g = torch.randn(ref.shape, dtype=torch.float64)
    torch.testing.assert_close(y.cpu(), ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(y, xc, g.cuda())[0].cpu(), torch.autograd.grad(ref, x, g)[0],
                               rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_types_within_derived_bounds(dtype):
    for seed in range(10):
        gen = torch.Generator().manual_seed(seed)
        x = (torch.randn(2, 3, 5, 9, 11, dtype=torch.float64, generator=gen) * 3).to(dtype)
        x64 = x.double().requires_grad_()
        ref = brute.soft_pool(x64, (3, 3, 3), (2, 2, 2), 1, True)
        g = torch.randn(ref.shape, dtype=torch.float64, generator=gen).to(dtype)
        (gr,) = torch.autograd.grad(ref, x64, g.double())
        xc = x.cuda().requires_grad_()
        y = ops.soft_pool3d(xc, 3, 2, 1, True)
        (gx,) = torch.autograd.grad(y, xc, g.cuda())
        geometry = ((3,) * 3, (2,) * 3, 1, True, False)
        assert ((y.cpu().double() - ref).abs() <= half_bounds.forward_bound(x.double(), ref.detach(), geometry, dtype)).all()
        assert ((gx.cpu().double() - gr).abs() <= half_bounds.backward_bound(
            x.double(), g.double(), ref.detach(), gr, geometry, dtype)).all()


def test_cuda_large_grid_and_gradgradcheck():
    """More outputs than one launch's blocks x threads would hold at small sizes, and double backward."""
    x = torch.randn(4, 64, 16, 56, 56, device="cuda")
    y = ops.soft_pool3d(x, 3, 2, 1)
    torch.testing.assert_close(y.cpu(), ops.soft_pool3d(x.cpu(), 3, 2, 1), rtol=1e-5, atol=1e-5)
    xs = torch.randn(1, 2, 4, 5, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: ops.soft_pool3d(t, 3, 2, 1, True), (xs,))


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_properties(0).total_memory < 40 * 2**30,
                    reason="needs a GPU with 40 GiB")
def test_cuda_input_past_2_31_elements():
    """An input of 2.4e9 elements (9.7 GB): offsets past 2**31 must not wrap. Non-overlapping windows, so
    the last two depth planes of the last channel pooled alone on the CPU are the exact reference."""
    x = torch.randn(1, 2, 18, 8192, 8192, device="cuda")
    assert x.numel() > 2**31
    xg = x.requires_grad_()
    y = ops.soft_pool3d(xg, 2, 2)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, xg, g)
    tail = x.detach()[:, 1:, -2:].cpu().requires_grad_()
    y_ref = ops.soft_pool3d(tail, 2, 2)
    (gx_ref,) = torch.autograd.grad(y_ref, tail, g[:, 1:, -1:].cpu())
    torch.testing.assert_close(y[:, 1:, -1:].cpu(), y_ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx[:, 1:, -2:].cpu(), gx_ref, rtol=1e-5, atol=1e-5)
