"""Spatio-temporal SoftPool: softmax-weighted window averages in 1D, 2D and 3D.

For a window R: ``w_i = exp(x_i) / sum_R exp(x_j)``, ``y = sum_R w_i x_i``. The compiled
kernels (``vidpool._C``, registered as ``torch.ops.vidpool.*``) subtract the window max before
exponentiating, accumulate half types in float32, and back-propagate the exact gradient
``w_i (1 + x_i - y)`` deterministically. Without ``_C`` the pure-PyTorch reference runs instead.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
from torch import nn

import contextlib

from . import _decomposed, _reference
from ._reference import pool_output_size

try:
    from vidpool import _C
except ImportError as exc:  # no compiler at install time: fall back to the reference
    _C = None
    _C_ERROR = str(exc)

__all__ = [
    "soft_pool1d", "soft_pool2d", "soft_pool3d",
    "adaptive_soft_pool1d", "adaptive_soft_pool2d", "adaptive_soft_pool3d",
    "SoftPool1d", "SoftPool2d", "SoftPool3d",
    "AdaptiveSoftPool1d", "AdaptiveSoftPool2d", "AdaptiveSoftPool3d",
    "backend",
]

IntOrTuple = Union[int, Sequence[int]]
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # what the kernels compute
_warned_fallback = False
_decompose = False


@contextlib.contextmanager
def decomposed():
    """Within this block SoftPool runs as standard tensor operations (``_decomposed``) instead of the
    compiled op: what exporters trace, so the exported graph runs without vidpool."""
    global _decompose
    before, _decompose = _decompose, True
    try:
        yield
    finally:
        _decompose = before


def _has_kernel(dispatch_key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("vidpool::soft_pool", dispatch_key)


def backend(device: Union[str, torch.device] = "cpu") -> str:
    """Which implementation SoftPool uses on ``device``: ``"cpp"``, ``"cuda"`` or ``"reference"``."""
    device = torch.device(device)
    if _C is not None:
        if device.type in ("cpu", "meta"):  # meta: the registered fake kernels compute shapes only
            return "cpp"
        if device.type == "cuda" and _has_kernel("CUDA"):
            return "cuda"
    return "reference"


def _warn_fallback(device: torch.device) -> None:
    global _warned_fallback
    if _warned_fallback:
        return
    _warned_fallback = True
    why = f"vidpool._C could not be imported ({_C_ERROR})" if _C is None else (
        f"vidpool._C has no kernels for {device.type} tensors")
    warnings.warn(f"{why}; SoftPool falls back to the pure-PyTorch reference, which is slower and "
                  "uses more memory. Rebuild with `pip install --no-build-isolation -e .` (see README).",
                  RuntimeWarning, stacklevel=3)


def _tuple(value, n: int, name: str, fname: str) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, (tuple, list, torch.Size)) and len(value) == 1 and n > 1:
        value = tuple(value) * n
    if (isinstance(value, (tuple, list, torch.Size)) and len(value) == n
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return tuple(value)
    raise ValueError(f"{fname}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def _pool_args(dim: int, kernel_size, stride, padding, fname: str):
    """Validate and expand kernel_size/stride/padding to per-axis tuples (stride None = kernel)."""
    k = _tuple(kernel_size, dim, "kernel_size", fname)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else _tuple(
        stride, dim, "stride", fname)
    p = _tuple(padding, dim, "padding", fname)
    if any(v <= 0 for v in k):
        raise ValueError(f"{fname}: kernel_size must be positive, got {k}")
    if any(v <= 0 for v in s):
        raise ValueError(f"{fname}: stride must be positive, got {s}")
    if any(v < 0 or 2 * v > kv for v, kv in zip(p, k)):
        raise ValueError(f"{fname}: padding must be >= 0 and at most half the kernel size, "
                         f"got padding={p} for kernel_size={k}")
    return k, s, p


def _check_input(x, dim: int, fname: str) -> bool:
    """Validate the input; returns True when it is unbatched (C, *spatial)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fname}: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (dim + 1, dim + 2):
        raise ValueError(f"{fname}: expected a {dim + 1}-d (C, ...) or {dim + 2}-d (N, C, ...) input, "
                         f"got {x.dim()}-d input of shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise ValueError(f"{fname}: input must be a floating point tensor of dtype float32, float64, float16 "
                         f"or bfloat16, got {x.dtype}")
    if any(n == 0 for n in x.shape[-dim:]):
        raise ValueError(f"{fname}: input has an empty spatial axis, shape {tuple(x.shape)}")
    return x.dim() == dim + 1


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch._prims_common.suggest_memory_format(x)


def _ints(value, dim: int) -> list:
    return [value] * dim if type(value) is int else list(value)


_OPS = {}  # the compiled ops' default overloads, looked up once (torch.ops attribute access is slow)


def _op(name: str):
    op = _OPS.get(name)
    if op is None:
        op = _OPS[name] = getattr(torch.ops.vidpool, name).default
    return op


def _direct(x: torch.Tensor, dim: int) -> bool:
    """Whether a call on ``x`` can go straight to the compiled op: a batched plain tensor on a device
    with kernels, outside tracing and the decomposed() block. The op checks its arguments itself."""
    if _C is None or _decompose or type(x) is not torch.Tensor or x.dim() != dim + 2:
        return False
    return (x.is_cpu or (x.is_cuda and _has_kernel("CUDA"))) and not torch.compiler.is_compiling()


def _soft_pool(x, dim, kernel_size, stride, padding, ceil_mode, fname):
    if _direct(x, dim):
        # the common call, with the least host time; anything the op rejects is checked again below,
        # which raises the error with its friendlier message
        try:
            k = _ints(kernel_size, dim)
            s = k if stride is None or not _ints(stride, dim) else _ints(stride, dim)
            return _op("soft_pool")(x, k, s, _ints(padding, dim), bool(ceil_mode))
        except (RuntimeError, ValueError, TypeError):
            pass
    unbatched = _check_input(x, dim, fname)
    k, s, p = _pool_args(dim, kernel_size, stride, padding, fname)
    for axis, (n, kv, sv, pv) in enumerate(zip(x.shape[-dim:], k, s, p)):
        if pool_output_size(n, kv, sv, pv, bool(ceil_mode)) < 1:
            raise ValueError(f"{fname}: input of shape {tuple(x.shape)} is too small for kernel_size={k}, "
                             f"stride={s}, padding={p}: spatial axis {axis} would have no output")
    xb = x.unsqueeze(0) if unbatched else x
    if _decompose:
        y = _decomposed.soft_pool(xb, k, s, p, bool(ceil_mode))
    elif backend(x.device) == "reference":
        _warn_fallback(x.device)
        y = _reference.soft_pool(xb, k, s, p, bool(ceil_mode)).contiguous(memory_format=_memory_format(xb))
    else:
        y = torch.ops.vidpool.soft_pool(xb, list(k), list(s), list(p), bool(ceil_mode))
    return y.squeeze(0) if unbatched else y


def _adaptive_soft_pool(x, dim, output_size, fname):
    if _direct(x, dim):
        try:
            if type(output_size) is int or None not in output_size:  # None keeps an axis: the path below
                return _op("adaptive_soft_pool")(x, _ints(output_size, dim))
        except (RuntimeError, ValueError, TypeError):
            pass
    unbatched = _check_input(x, dim, fname)
    if isinstance(output_size, (tuple, list)) and len(output_size) == dim:
        output_size = tuple(n if o is None else o for o, n in zip(output_size, x.shape[-dim:]))
    out = _tuple(output_size, dim, "output_size", fname)
    if any(o <= 0 for o in out):
        raise ValueError(f"{fname}: output_size must be positive, got {out}")
    xb = x.unsqueeze(0) if unbatched else x
    if _decompose and all(o == 1 for o in out):
        y = _decomposed.global_soft_pool(xb, dim)
    elif _decompose:  # windows that depend on the input size: the reference's gather (static shapes)
        y = _reference.adaptive_soft_pool(xb, out)
    elif backend(x.device) == "reference":
        _warn_fallback(x.device)
        y = _reference.adaptive_soft_pool(xb, out).contiguous(memory_format=_memory_format(xb))
    else:
        y = torch.ops.vidpool.adaptive_soft_pool(xb, list(out))
    return y.squeeze(0) if unbatched else y


def soft_pool1d(x: torch.Tensor, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                padding: IntOrTuple = 0, ceil_mode: bool = False) -> torch.Tensor:
    """SoftPool over the last axis of a (N, C, L) or (C, L) tensor; arguments as ``F.max_pool1d``."""
    return _soft_pool(x, 1, kernel_size, stride, padding, ceil_mode, "soft_pool1d")


def soft_pool2d(x: torch.Tensor, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                padding: IntOrTuple = 0, ceil_mode: bool = False) -> torch.Tensor:
    """SoftPool over (H, W) of a (N, C, H, W) or (C, H, W) tensor; arguments as ``F.max_pool2d``."""
    return _soft_pool(x, 2, kernel_size, stride, padding, ceil_mode, "soft_pool2d")


def soft_pool3d(x: torch.Tensor, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                padding: IntOrTuple = 0, ceil_mode: bool = False) -> torch.Tensor:
    """SoftPool over (T, H, W) of a (N, C, T, H, W) or (C, T, H, W) tensor; arguments as ``F.max_pool3d``."""
    return _soft_pool(x, 3, kernel_size, stride, padding, ceil_mode, "soft_pool3d")


def adaptive_soft_pool1d(x: torch.Tensor, output_size: IntOrTuple) -> torch.Tensor:
    """SoftPool over windows chosen as ``F.adaptive_avg_pool1d`` chooses them."""
    return _adaptive_soft_pool(x, 1, output_size, "adaptive_soft_pool1d")


def adaptive_soft_pool2d(x: torch.Tensor, output_size: IntOrTuple) -> torch.Tensor:
    """SoftPool over windows chosen as ``F.adaptive_avg_pool2d`` (``None`` keeps that axis)."""
    return _adaptive_soft_pool(x, 2, output_size, "adaptive_soft_pool2d")


def adaptive_soft_pool3d(x: torch.Tensor, output_size: IntOrTuple) -> torch.Tensor:
    """SoftPool over windows chosen as ``F.adaptive_avg_pool3d`` (``None`` keeps that axis)."""
    return _adaptive_soft_pool(x, 3, output_size, "adaptive_soft_pool3d")


class _SoftPoolNd(nn.Module):
    dim = 0
    __constants__ = ["kernel_size", "stride", "padding", "ceil_mode"]

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                 padding: IntOrTuple = 0, ceil_mode: bool = False) -> None:
        super().__init__()
        _pool_args(self.dim, kernel_size, stride, padding, type(self).__name__)  # fail at construction
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return "kernel_size={kernel_size}, stride={stride}, padding={padding}, ceil_mode={ceil_mode}".format(
            **self.__dict__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _soft_pool(x, self.dim, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          type(self).__name__)


class SoftPool1d(_SoftPoolNd):
    """SoftPool over the last axis; constructed like ``nn.MaxPool1d`` (no dilation/return_indices)."""
    dim = 1


class SoftPool2d(_SoftPoolNd):
    """SoftPool over (H, W); constructed like ``nn.MaxPool2d`` (no dilation/return_indices)."""
    dim = 2


class SoftPool3d(_SoftPoolNd):
    """Spatio-temporal SoftPool over (T, H, W); constructed like ``nn.MaxPool3d``."""
    dim = 3


class _AdaptiveSoftPoolNd(nn.Module):
    dim = 0
    __constants__ = ["output_size"]

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _adaptive_soft_pool(x, self.dim, self.output_size, type(self).__name__)


class AdaptiveSoftPool1d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool to a fixed output length, like ``nn.AdaptiveAvgPool1d``."""
    dim = 1


class AdaptiveSoftPool2d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool to a fixed (H, W), like ``nn.AdaptiveAvgPool2d``."""
    dim = 2


class AdaptiveSoftPool3d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool to a fixed (T, H, W), like ``nn.AdaptiveAvgPool3d``."""
    dim = 3


def _register_torch_library() -> None:
    """Fake (meta) kernels for the compiled ops and the backward ops' autograd (torch.compile,
    opcheck, second derivatives)."""

    def fake_soft_pool(x, kernel_size, stride, padding, ceil_mode):
        out = [pool_output_size(n, k, s, p, ceil_mode)
               for n, k, s, p in zip(x.shape[2:], kernel_size, stride, padding)]
        return torch.empty([x.shape[0], x.shape[1], *out], dtype=x.dtype, device=x.device,
                           memory_format=_memory_format(x))

    def fake_adaptive(x, output_size):
        return torch.empty([x.shape[0], x.shape[1], *output_size], dtype=x.dtype, device=x.device,
                           memory_format=_memory_format(x))

    def fake_backward(grad_output, x, output, *args):
        return torch.empty_like(x, memory_format=_memory_format(x))

    def fake_dpp(x, alpha, lam, kernel_size, stride, padding, ceil_mode, asym, eps):
        return fake_soft_pool(x, kernel_size, stride, padding, ceil_mode)

    def fake_dpp_backward(grad_output, x, alpha, lam, *args):
        return torch.empty_like(x, memory_format=_memory_format(x)), torch.empty_like(alpha), torch.empty_like(lam)

    def fake_gated(x, mask, kernel_size, stride, padding, ceil_mode):
        return fake_soft_pool(x, kernel_size, stride, padding, ceil_mode)

    def fake_gated_backward(grad_output, x, mask, *args):
        return torch.empty_like(x, memory_format=_memory_format(x)), torch.empty_like(mask)

    def fake_lp(x, p, kernel_size, stride, padding, ceil_mode):
        return fake_soft_pool(x, kernel_size, stride, padding, ceil_mode)

    def fake_lp_backward(grad_output, x, p, *args):
        return torch.empty_like(x, memory_format=_memory_format(x)), torch.empty_like(p)

    torch.library.register_fake("vidpool::lp_pool", fake_lp)  # the zoo's fused kernels (CPU)
    torch.library.register_fake("vidpool::lp_pool_backward", fake_lp_backward)
    torch.library.register_fake("vidpool::gated_pool", fake_gated)
    torch.library.register_fake("vidpool::gated_pool_backward", fake_gated_backward)
    torch.library.register_fake("vidpool::dpp_pool", fake_dpp)
    torch.library.register_fake("vidpool::dpp_pool_backward", fake_dpp_backward)
    torch.library.register_fake("vidpool::soft_pool", fake_soft_pool)
    torch.library.register_fake("vidpool::adaptive_soft_pool", fake_adaptive)
    torch.library.register_fake("vidpool::soft_pool_backward", fake_backward)
    torch.library.register_fake("vidpool::adaptive_soft_pool_backward", fake_backward)

    # The forward ops' autograd is registered in C++ (csrc/ops.cpp: it saves the input and output and
    # calls the backward op): less host time per fwd+bwd than a registration from Python.
    # Double backward: the backward ops take (grad_output, input, output, *geometry) and recompute y
    # from the input, so their own derivatives are with respect to grad_output and input only.
    def setup_backward(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.geometry = inputs[3:]

    def double_backward_soft_pool(ctx, v):
        gy, x = ctx.saved_tensors
        bounds = [_reference.pool_bounds(n, k, s, p, c) for n, k, s, p, c in
                  zip(x.shape[2:], *ctx.geometry[:3], [ctx.geometry[3]] * (x.dim() - 2))]
        return _backward_derivatives(v, gy, x, bounds) + (None,) * 5

    def double_backward_adaptive(ctx, v):
        gy, x = ctx.saved_tensors
        bounds = [_reference.adaptive_bounds(n, o) for n, o in zip(x.shape[2:], ctx.geometry[0])]
        return _backward_derivatives(v, gy, x, bounds) + (None, None)

    torch.library.register_autograd("vidpool::soft_pool_backward", double_backward_soft_pool,
                                    setup_context=setup_backward)
    torch.library.register_autograd("vidpool::adaptive_soft_pool_backward", double_backward_adaptive,
                                    setup_context=setup_backward)


def _backward_derivatives(v, gy, x, bounds):
    """Derivatives of the backward gx_i = sum_o gy_o w_oi (1 + x_i - y_o) along v (shaped as x):

        d/d gy_o = sum_i w_oi (1 + x_i - y_o) v_i  =: a_o          (the forward's JVP along v)
        d/d x_j  = sum_o gy_o w_oj [v_j (2 + x_j - y_o) - a_o - b_o (1 + x_j - y_o)],  b_o = sum_i w_oi v_i

    computed on each window's cells (explicit windows: memory K x the input, used only for second
    derivatives) and scattered back by the transpose of the window gather. Differentiable itself."""
    acc = torch.promote_types(x.dtype, torch.float32)
    inside = _reference.gather_windows(torch.ones_like(x, dtype=acc), bounds, fill=0.0) > 0
    xw = _reference.gather_windows(x.to(acc), bounds)
    vw = _reference.gather_windows(v.to(acc), bounds, fill=0.0)
    m = xw.amax(-1, keepdim=True)
    d = torch.where(xw == m, torch.zeros_like(xw), xw - m)  # as the kernels: equal infinities differ by 0
    e = torch.where(inside, torch.exp(d), torch.zeros_like(d))
    total = e.sum(-1, keepdim=True)
    w = e / total
    y = m + torch.where(e == 0, torch.zeros_like(d), d * e).sum(-1, keepdim=True) / total
    live = w > 0
    u = torch.where(live, 1 + torch.where(xw == y, torch.zeros_like(xw), xw - y), torch.zeros_like(xw))
    a = (w * u * vw).sum(-1, keepdim=True)
    b = (w * vw).sum(-1, keepdim=True)
    cells = gy.to(acc).unsqueeze(-1) * w * (vw * (u + 1) - a - b * u)
    cells = torch.where(live, cells, torch.zeros_like(cells))
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        z = torch.zeros(x.shape, dtype=acc, device=x.device, requires_grad=True)
        (gx,) = torch.autograd.grad(_reference.gather_windows(z, bounds, fill=0.0), z, cells,
                                    create_graph=create_graph)
    return a.squeeze(-1).to(gy.dtype), gx.to(x.dtype)


if _C is not None:
    _register_torch_library()
