"""Error bounds for half-type SoftPool, derived from how the kernels compute: inputs and output
gradients are exact half values, everything is computed in float32 (a few dozen float32 ulps at
most, counted generously as 128), and the result is rounded to the half type once (half an ulp).
"""
import torch

from . import brute

F32_SLACK = 128 * torch.finfo(torch.float32).eps


def _half_ulp(dtype):
    # relative half-ulp of normal numbers, and the absolute spacing of the subnormals
    info = torch.finfo(dtype)
    return 0.5 * info.eps, info.smallest_normal * info.eps


def forward_bound(x64, ref, geometry, dtype):
    """Per-output bound on |soft_pool(x) - ref|: float32 error scales with the window's largest |x|."""
    rel, sub = _half_ulp(dtype)
    window_absmax = _window_absmax(x64, geometry)
    return rel * ref.abs() * (1 + 1e-6) + F32_SLACK * window_absmax * (1 + rel) + sub


def backward_bound(x64, gy64, ref_y, ref_grad, geometry, dtype):
    """Per-cell bound on |grad - ref|: each window o adds w_oi gy_o (1 + x_i - y_o), whose float32
    error is below F32_SLACK * w_oi |gy_o| (2 + |x_i| + |y_o| + max_o |x|) (y_o is recomputed from a
    window whose cells may be larger than y_o). The sums over o are gradients of sum_o c_o lse_o."""
    rel, sub = _half_ulp(dtype)
    x = x64.detach().clone().requires_grad_()
    lse = brute.window_lse(x, *geometry)
    c_a = gy64.abs()
    c_b = gy64.abs() * (ref_y.abs() + _window_absmax(x64, geometry))
    (a,) = torch.autograd.grad(lse, x, c_a, retain_graph=True)  # sum_o w_oi |gy_o|
    (b,) = torch.autograd.grad(lse, x, c_b)
    magnitude = a * (2 + x64.abs()) + b
    return rel * ref_grad.abs() * (1 + 1e-6) + F32_SLACK * magnitude * (1 + rel) + sub


def _window_absmax(x64, geometry):
    kernel, stride, padding, ceil_mode, adaptive = geometry
    nd = len(kernel)
    if adaptive:
        pool = {1: torch.nn.functional.adaptive_max_pool1d, 2: torch.nn.functional.adaptive_max_pool2d,
                3: torch.nn.functional.adaptive_max_pool3d}[nd]
        return pool(x64.abs(), kernel)
    return brute._MAX_POOL[nd](x64.abs(), kernel, stride, padding, ceil_mode=ceil_mode)
