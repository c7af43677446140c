"""The pooling methods the SoftPool paper compares, in 1D, 2D and 3D, behind one registry.

Every module takes ``dim`` plus the ``nn.MaxPool*d`` geometry (kernel_size, stride=None, padding=0,
ceil_mode=False) and gives max pooling's output size. Windows are those of max pooling: padding
and ceil_mode overhang cells belong to no window (``avg`` alone follows ``nn.AvgPool*d`` and its
``count_include_pad``). Random methods (mixed, stochastic, s3pool) sample from the torch RNG in
``train()`` mode only and are deterministic in ``eval()``. Trainable methods need ``channels``.

On float32/float64 CPU tensors, lp, trainable_lp, gated and dpp lite run fused kernels
(``csrc/zoo_cpu.cpp``: one pass over each window forward and backward). Elsewhere, and for the other
methods that are functions of per-window sums (sum, stochastic in eval), they are computed with torch's
pooling and convolution kernels and hand-written backwards (gated: strided slices where the windows
tile the input, else a depthwise convolution). Fused kernels and hand-written backwards are once
differentiable; memory stays O(input + output). The others gather explicit windows
(``WindowPool.windows``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._avg_pool import AvgPool3d, avg_pool3d
from ._reference import pool_output_size, pool_pads
from . import softpool as _softpool_module
from .softpool import SoftPool1d, SoftPool2d, SoftPool3d, _pool_args

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: avg_pool3d}  # 3D: also inputs smaller than the kernel


class WindowPool(nn.Module):
    """Base class: validated geometry and access to each output's window cells."""

    def __init__(self, dim: int, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        if dim not in (1, 2, 3):
            raise ValueError(f"{type(self).__name__}: dim must be 1, 2 or 3, got {dim!r}")
        self.dim = dim
        self.kernel_size, self.stride, self.padding = _pool_args(dim, kernel_size, stride, padding, type(self).__name__)
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, ceil_mode={self.ceil_mode}")

    def windows(self, x, fill=0.0):
        """(N, C, *out, K) window cells in window order (K = prod(kernel_size)), ``fill`` at cells
        outside the input (padding, ceil_mode overhang), and the (1, 1, *out, K) validity mask."""
        self.check_input(x)

        def unfold(t, value):
            t = self.padded(t, value)
            for axis, (k, s) in enumerate(zip(self.kernel_size, self.stride)):
                t = t.unfold(2 + axis, k, s)
            return t.flatten(-self.dim)

        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=torch.bool, device=x.device)
        return unfold(x, fill), unfold(ones, False)

    def geometry(self):
        """(kernel_size, stride, padding, ceil_mode) as the compiled ops take them."""
        return (list(self.kernel_size), list(self.stride), list(self.padding), self.ceil_mode)

    def window_sum(self, t):
        """Sum over each window's cells (padding and overhang cells excluded: they pool as zeros)."""
        if self.dim == 1:  # avg_pool1d has no divisor_override: pool a (N, C, 1, L) view in 2D
            return F.avg_pool2d(t.unsqueeze(-2), (1,) + self.kernel_size, (1,) + self.stride, (0,) + self.padding,
                                ceil_mode=self.ceil_mode, divisor_override=1).squeeze(-2)
        return _AVG[self.dim](t, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                              divisor_override=1)

    def tiles(self, t):
        """t viewed as (N, C, o1, k1, o2, k2, ...) when the windows tile it exactly (kernel == stride, no
        padding, sizes divisible by the kernel), else None. An output-shaped tensor u broadcasts
        against the view as ``u.reshape(self.untiled_shape(u))``: the transpose of a window sum, free."""
        if self.kernel_size != self.stride or any(self.padding) or not t.is_contiguous() or any(
                n % k for n, k in zip(t.shape[2:], self.kernel_size)):
            return None
        shape = list(t.shape[:2])
        for n, k in zip(t.shape[2:], self.kernel_size):
            shape += [n // k, k]
        return t.view(shape)

    def untiled_shape(self, u):
        shape = list(u.shape[:2])
        for o in u.shape[2:]:
            shape += [o, 1]
        return shape

    def spread(self, u, like):
        """The transpose of ``window_sum``: every cell gets the sum of u over the windows holding it."""
        with torch.enable_grad():
            z = torch.zeros_like(like, requires_grad=True)
            (out,) = torch.autograd.grad(self.window_sum(z), z, u)
        return out

    def padded(self, x, value=0.0):
        """x padded with ``value`` so that windows of the kernel and stride (a convolution, an unfold)
        are max pooling's (the padding, and with ceil_mode the last window's overhang; a negative pad
        drops unused cells)."""
        pads = pool_pads(x.shape[2:], self.kernel_size, self.stride, self.padding, self.ceil_mode)
        return F.pad(x, pads, value=value) if any(pads) else x  # no copy when the windows need no padding

    def check_input(self, x):
        if x.dim() != self.dim + 2:
            raise ValueError(f"{type(self).__name__}: expected a {self.dim + 2}-d (N, C, ...) input, "
                             f"got shape {tuple(x.shape)}")
        channels = getattr(self, "channels", None)
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{type(self).__name__}: built for {channels} channels but got an input with "
                             f"{x.shape[1]}; build it with channels={x.shape[1]} (with swap_pooling, pass "
                             "example_input=... so channels are traced)")

    def max(self, x):
        return _MAX[self.dim](x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode)

    def mean(self, x):
        """Mean over each window's cells (padding excluded)."""
        return _AVG[self.dim](x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                              count_include_pad=False)

    def _per_channel(self, param, ndim):
        """Broadcast a (C,) parameter over (N, C, ...) of ``ndim`` dims."""
        return param.view((1, -1) + (1,) * (ndim - 2))


class SumPool(WindowPool):
    """Sum of each window's cells."""

    def forward(self, x):
        self.check_input(x)
        return self.window_sum(x)


def _lp(pool, x, p):
    """(sum |a|^p)^(1/p) over each window of ``pool``; p a float or a (1, C, 1...) tensor.

    Fast path (``_LpWindowSum``): |a| scaled by its plane's largest magnitude (so a^p cannot
    overflow; the result is 1-homogeneous, so it does not depend on that detached scale), then one
    window sum. Where a window with nonzero cells has terms below the dtype's normal range (large p,
    a window of small values beside a large one), the windows are gathered and each is scaled by its
    own max instead, so the p -> inf limit stays the max.
    """
    pool.check_input(x)
    if _fused_available(x, "lp_pool"):
        p_vec = (p.reshape(-1) if isinstance(p, torch.Tensor) else torch.tensor([float(p)])).to(x.dtype)
        return _Fused.apply("lp_pool", x, pool.geometry(), p_vec.expand(x.shape[1]).contiguous())
    with torch.no_grad():  # the plane's largest magnitude, without a full-size |x| tensor
        dims = tuple(range(2, x.dim()))
        m = torch.maximum(x.amax(dims, keepdim=True), -x.amin(dims, keepdim=True))
        m = torch.where(m > 0, m, torch.ones_like(m))
    y = _LpWindowSum.apply(x, p, pool, m)
    if y is not None:
        return y
    cells = pool.windows(x.abs())[0]
    scale = cells.amax(-1, keepdim=True).detach()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    exponent = p.unsqueeze(-1) if isinstance(p, torch.Tensor) else p
    return ((cells / scale).pow(exponent).sum(-1, keepdim=True).pow(1.0 / exponent) * scale).squeeze(-1)


def _pow_(r, p):
    """r^p in place for r >= 0: a per-channel tensor p goes through exp(p ln r), much faster on CPU
    than pow with a tensor exponent (r = 0 gives 0 for p > 0)."""
    return r.log_().mul_(p).exp_() if isinstance(p, torch.Tensor) else r.pow_(p)


class _LpWindowSum(torch.autograd.Function):
    """y = m S^(1/p), S = window sum of P = r^p, r = |x|/m, with a hand-written backward (a few passes
    over the input instead of autograd's dozen):

        dy_o/dx_i = sign(x_i) r_i^(p-1) y_o / (m S_o)
        dy_o/dp   = y_o (sum_o(r^p ln r) / (p S_o) - ln(S_o) / p^2) = y_o (sum_o(P ln P) / S_o - ln S_o) / p^2

    With a learned p the forward keeps ln P (one input-sized tensor) and the window sums of P ln P, so
    the backward needs neither a logarithm nor a power of the input: r^(p-1) = exp(ln P (p-1)/p),
    computed in place of ln P.
    Returns None (forward only) when some window with nonzero cells has S below the normal range."""

    @staticmethod
    def forward(ctx, x, p, pool, m):
        # full-size temporaries updated in place where possible: every new large CPU tensor costs page faults
        learned = isinstance(p, torch.Tensor) and ctx.needs_input_grad[1]
        info = torch.finfo(x.dtype)
        if learned:
            # ln P, with -inf (r = 0) clamped to the lowest finite value: exp gives 0 there, and P ln P
            # is 0 rather than 0 * -inf; NaN stays NaN
            log_p = x.abs().div_(m).log_().mul_(p).clamp_(min=info.min)
            power = log_p.exp()
            total = pool.window_sum(power)
            plogp = pool.window_sum(power.mul_(log_p))
            del power
        else:
            total = pool.window_sum(_pow_(x.abs().div_(m), p))
            log_p = plogp = None
        small = total < math.prod(pool.kernel_size) * info.tiny / info.eps
        if bool(small.any()) and bool((small & (pool.window_sum(x.abs()) > 0)).any()):
            return None
        y = total.pow(1.0 / p) * m
        ctx.save_for_backward(x, m, total, y, p if isinstance(p, torch.Tensor) else None, plogp)
        # an intermediate the backward consumes in place: kept on ctx, outside autograd's version checks
        ctx.p, ctx.pool, ctx.log_p = p, pool, log_p
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, m, total, y, p_tensor, plogp = ctx.saved_tensors
        log_p, ctx.log_p = ctx.log_p, None  # the first backward consumes it
        p, pool = (p_tensor if p_tensor is not None else ctx.p), ctx.pool
        live = total > 0
        safe = torch.where(live, total, torch.ones_like(total))
        c = torch.where(live, g * y / (m * safe), torch.zeros_like(g))
        gp = None
        if plogp is not None:
            dy_dp = torch.where(live, y * (plogp / safe - torch.log(safe)) / (p * p), torch.zeros_like(y))
            gp = (g * dy_dp).sum(dim=[0] + list(range(2, g.dim())), keepdim=True).sum_to_size(p_tensor.shape)
        # sign(x) r^(p-1), in one temporary; copysign gives +-r^0 = +-1 at x = +-0 when p = 1, where
        # the derivative of |x| is taken as 0
        if log_p is not None:
            # ln P is an internal temporary: the first backward turns it into the gradient in place (no
            # new input-sized tensor); a second one (retain_graph=True) recomputes from x instead
            cell = log_p.mul_((p - 1) / p).exp_().copysign_(x)
        else:
            cell = _pow_(x.abs().div_(m), p - 1).copysign_(x)
        if bool((torch.as_tensor(p) <= 1).any()):  # r^0 at r = 0 (NaN through exp(0 * ln 0))
            cell.masked_fill_(x == 0, 0)
        tiles = pool.tiles(cell)
        if tiles is not None:
            gx = tiles.mul_(c.reshape(pool.untiled_shape(c))).view(x.shape)
        else:
            gx = cell.mul_(pool.spread(c, x))
        return gx, gp, None, None


class LpPool(WindowPool):
    """Power average (sum |a|^p)^(1/p): p = 1 is sum pooling, p -> inf is max pooling.

    Defined on magnitudes (an Lp norm): negative inputs count by their absolute value.
    """

    def __init__(self, dim, kernel_size, stride=None, padding=0, ceil_mode=False, p: float = 2.0):
        super().__init__(dim, kernel_size, stride, padding, ceil_mode)
        if not p >= 1:
            raise ValueError(f"LpPool: p must be >= 1, got {p}")
        self.p = float(p)

    def forward(self, x):
        return _lp(self, x, self.p)

    def extra_repr(self):
        return super().extra_repr() + f", p={self.p}"


class TrainableLpPool(WindowPool):
    """Lp pooling with a learned p per channel (initialised to ``p_init``, used clamped to p >= 1)."""

    def __init__(self, dim, kernel_size, stride=None, padding=0, ceil_mode=False, *, channels: int,
                 p_init: float = 2.0):
        super().__init__(dim, kernel_size, stride, padding, ceil_mode)
        self.channels = int(channels)
        self.p = nn.Parameter(torch.full((channels,), float(p_init)))

    def forward(self, x):
        return _lp(self, x, self._per_channel(self.p.clamp(min=1.0), x.dim()))


class MixedPool(WindowPool):
    """lambda * max + (1 - lambda) * avg. In training lambda ~ Bernoulli(``max_prob``) per forward;
    in eval its expectation ``max_prob``. A fixed ``alpha`` overrides both."""

    def __init__(self, dim, kernel_size, stride=None, padding=0, ceil_mode=False, max_prob: float = 0.5,
                 alpha: Optional[float] = None):
        super().__init__(dim, kernel_size, stride, padding, ceil_mode)
        self.max_prob, self.alpha = float(max_prob), alpha

    def forward(self, x):
        if self.alpha is not None:
            lam = float(self.alpha)
        elif self.training:
            lam = float(torch.rand(()) < self.max_prob)
        else:
            lam = self.max_prob
        return lam * self.max(x) + (1.0 - lam) * self.mean(x)


class _TiledGated(torch.autograd.Function):
    """Gated pooling where the windows tile the input (kernel == stride, no padding). The gate logit
    sum_j w_j x_j adds the kernel-volume strided slices x[..., a::k, b::k, c::k] (output-sized); max and
    mean are torch's pooling; the backward writes the input gradient as one broadcast over the tiled
    view plus a scatter of the max branch to max pooling's indices (no convolution, no zero fills):

        dy/dx_j = g ((1 - gate) / K + gate (1 - gate) (max - mean) w_j + gate [j = argmax])
    """

    @staticmethod
    def forward(ctx, x, mask, pool):
        slices = _tile_slices(pool, x)
        rows = mask.shape[0]  # 1 (one mask per layer) or C (per channel)
        w = mask.to(x.dtype)
        logit = x[slices[0]] * w[:, 0].view((1, rows) + (1,) * pool.dim)
        for j in range(1, len(slices)):
            logit.addcmul_(x[slices[j]], w[:, j].view((1, rows) + (1,) * pool.dim))
        top, arg = _MAX[pool.dim](x, pool.kernel_size, pool.stride, return_indices=True)
        mean = pool.mean(x)
        gate = torch.sigmoid_(logit)
        ctx.save_for_backward(x, w, gate, top, mean, arg)
        ctx.pool = pool
        return torch.lerp(mean, top, gate)  # gate * max + (1 - gate) * mean

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, w, gate, top, mean, arg = ctx.saved_tensors
        pool = ctx.pool
        slices = _tile_slices(pool, x)
        rows, n, c = w.shape[0], x.shape[0], x.shape[1]
        g_max = g * gate
        g_mean = (g - g_max).div_(len(slices))
        g_logit = g_max.mul(1 - gate).mul_(top - mean)
        gx = torch.empty_like(x, memory_format=torch.contiguous_format)
        tiles = pool.tiles(gx)
        tiles.copy_(g_mean.reshape(pool.untiled_shape(g_mean)))
        mask_view = [1, rows]
        for k in pool.kernel_size:
            mask_view += [1, k]
        tiles.addcmul_(g_logit.reshape(pool.untiled_shape(g_logit)), w.view(mask_view))
        gx.view(n, c, -1).scatter_add_(2, arg.reshape(n, c, -1), g_max.reshape(n, c, -1))
        reduce = [0] + list(range(2, x.dim()))
        gw = torch.stack([(g_logit * x[sl]).sum(reduce) for sl in slices], dim=-1)  # (C, K)
        return gx, (gw if rows > 1 else gw.sum(0, keepdim=True)), None


def _tile_slices(pool, x):
    """Index tuples of the kernel-volume strided slices of x, in window cell order (row-major over the
    kernel), when the windows tile x exactly; else None."""
    if pool.kernel_size != pool.stride or any(pool.padding) or any(
            n % k for n, k in zip(x.shape[2:], pool.kernel_size)) or x.numel() == 0:
        return None
    offsets = [()]
    for k in pool.kernel_size:
        offsets = [o + (a,) for o in offsets for a in range(k)]
    return [(slice(None), slice(None)) + tuple(slice(a, None, k) for a, k in zip(o, pool.kernel_size))
            for o in offsets]


class GatedPool(WindowPool):
    """sigmoid(w . R) * max + (1 - sigmoid(w . R)) * avg with a learned gating mask w over the window,
    one per layer (default) or one per channel (``per_channel=True``, needs ``channels``)."""

    def __init__(self, dim, kernel_size, stride=None, padding=0, ceil_mode=False, channels: Optional[int] = None,
                 per_channel: bool = False):
        super().__init__(dim, kernel_size, stride, padding, ceil_mode)
        if per_channel and channels is None:
            raise ValueError("GatedPool: per_channel=True needs channels")
        self.channels = int(channels) if per_channel else None
        rows = channels if per_channel else 1
        # small random mask: gates start near 0.5 (an even mix) and differ between windows
        self.mask = nn.Parameter(torch.randn(rows, math.prod(self.kernel_size)) * 0.01)

    def forward(self, x):
        self.check_input(x)
        if _fused_available(x, "gated_pool"):
            return _Fused.apply("gated_pool", x, self.geometry(), self.mask.to(x.dtype))
        if _tile_slices(self, x) is not None:
            return _TiledGated.apply(x, self.mask, self)
        # w . R for every window: a depthwise convolution with the mask as each channel's filter
        channels = x.shape[1]
        weight = self.mask.view((self.mask.shape[0], 1) + self.kernel_size).expand(
            (channels, 1) + self.kernel_size).to(x.dtype)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[self.dim]
        gate = torch.sigmoid(conv(self.padded(x), weight, stride=self.stride, groups=channels))
        return gate * self.max(x) + (1 - gate) * self.mean(x)


class StochasticPool(WindowPool):
    """Training: one cell per window drawn with probability a_i / sum(a); eval: sum(p_i a_i).

    Needs non-negative activations: negative inputs are treated as 0 (as after a ReLU); a window
    with no positive cell outputs 0.
    """

    def forward(self, x):
        if not self.training:
            self.check_input(x)
            return _StochasticExpectation.apply(x, self)
        a = self.windows(x)[0].clamp(min=0)
        total = a.sum(-1, keepdim=True)
        has_mass = total > 0
        probs = torch.where(has_mass, a / torch.where(has_mass, total, torch.ones_like(total)), 1.0 / a.shape[-1])
        flat = probs.detach().reshape(-1, a.shape[-1])
        pick = torch.multinomial(flat, 1).view(a.shape[:-1] + (1,))
        return a.gather(-1, pick).squeeze(-1)


class _StochasticExpectation(torch.autograd.Function):
    """y = sum(a^2) / sum(a) per window (0 without mass), a = max(x, 0), as two window sums. Its
    backward dy_o/dx_i = [x_i > 0] (2 a_i - y_o) / sum_o(a) takes a few passes over the input instead
    of autograd's dozen: where the windows tile the input, the per-window factors broadcast over a
    view of it without being spread out first."""

    @staticmethod
    def forward(ctx, x, pool):
        a = x.clamp(min=0)
        total = pool.window_sum(a)
        has_mass = total > 0
        safe = torch.where(has_mass, total, torch.ones_like(total))
        y = torch.where(has_mass, pool.window_sum(a.square_()) / safe, torch.zeros_like(total))  # in place
        ctx.save_for_backward(x, safe, has_mass, y)
        ctx.pool = pool
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, safe, has_mass, y = ctx.saved_tensors
        pool = ctx.pool
        c1 = torch.where(has_mass, g / safe, torch.zeros_like(g))
        c2 = c1 * y
        tiles = pool.tiles(x)
        if tiles is not None:
            t1, t2 = c1.reshape(pool.untiled_shape(c1)), c2.reshape(pool.untiled_shape(c2))
            return torch.addcmul(-t2, tiles, t1, value=2).masked_fill_(tiles <= 0, 0).view(x.shape), None
        return torch.addcmul(-pool.spread(c2, x), x, pool.spread(c1, x), value=2).masked_fill_(x <= 0, 0), None


class S3Pool(WindowPool):
    """Stride-1 max pooling, then per axis one row/column/frame from each stride-sized cell:
    drawn at random in training, the first of the cell in eval (plain strided sampling)."""

    def forward(self, x):
        out = [pool_output_size(n, k, s, p, self.ceil_mode)
               for n, k, s, p in zip(x.shape[2:], self.kernel_size, self.stride, self.padding)]
        # right-pad with -inf so the stride-1 windows needed by ceil_mode exist; -inf never wins a max
        extra = [max(0, (o - 1) * s + k - (n + 2 * p))
                 for o, n, k, s, p in zip(out, x.shape[2:], self.kernel_size, self.stride, self.padding)]
        pads = [v for e in reversed(extra) for v in (0, e)]
        xp = F.pad(x, pads, value=float("-inf")) if any(extra) else x
        y = _MAX[self.dim](xp, self.kernel_size, 1, self.padding)
        for axis, (o, s) in enumerate(zip(out, self.stride)):
            length = y.shape[2 + axis]
            idx = torch.arange(o, device=x.device) * s
            if self.training:
                idx = idx + torch.randint(0, s, (o,), device=x.device)
            y = y.index_select(2 + axis, idx.clamp(max=length - 1))
        return y


class LIPPool(WindowPool):
    """Local importance pooling: sum(w a) / sum(w) over the window with w = exp(G(a)), G a learned
    1x1 convolution per position. G starts as the identity, so LIP starts as SoftPool."""

    def __init__(self, dim, kernel_size, stride=None, padding=0, ceil_mode=False, *, channels: int):
        super().__init__(dim, kernel_size, stride, padding, ceil_mode)
        self.channels = int(channels)
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
        self.logit = conv(channels, channels, 1)
        with torch.no_grad():
            self.logit.weight.copy_(torch.eye(channels).view(self.logit.weight.shape))
            self.logit.bias.zero_()

    def forward(self, x):
        cells = self.windows(x)[0]
        weights = torch.softmax(self.windows(self.logit(x), fill=float("-inf"))[0], dim=-1)
        return (weights * cells).sum(-1)


def _fused_available(x, op):
    """The zoo's compiled CPU kernels (csrc/zoo_cpu.cpp: lp_pool, gated_pool, dpp_pool) serve float32/float64
    CPU tensors; other devices and dtypes take the compositions."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or _softpool_module._C is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"vidpool::{op}", "CPU")
    except RuntimeError:  # an older build without the op
        return False


class _Fused(torch.autograd.Function):
    """A zoo method through its fused CPU kernel (csrc/zoo_cpu.cpp, where the formulas are):
    torch.ops.vidpool.<op>(x, *params, *args) forward, and <op>_backward(grad, x, *params, *args)
    returning the gradients of x and of each parameter. Once differentiable."""

    @staticmethod
    def forward(ctx, op, x, args, *params):
        ctx.save_for_backward(x, *params)
        ctx.op, ctx.args = op, args
        return getattr(torch.ops.vidpool, op)(x, *params, *args)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, *params = ctx.saved_tensors
        gx, *gparams = getattr(torch.ops.vidpool, ctx.op + "_backward")(g, x, *params, *ctx.args)
        return (None, gx, None, *gparams)


class DPPPool(WindowPool):
    """Detail-preserving pooling: sum(w I) / sum(w) over the window, w = alpha + rho_lambda(I_q - I~_p).

    I~ is the window's linear downscaling: its mean (``variant="lite"``) or a learned positive filter
    over the window per channel, initialised to the mean (``"full"``). rho is symmetric
    (sqrt(x^2 + eps^2))^lambda or asymmetric (only above-neighbourhood values rewarded). alpha and
    lambda are learned per channel, initialised to ``alpha_init``/``lambda_init`` and used clamped
    at 0; lambda = 0 is average pooling, large lambda tends to extremum/max pooling.
    """

    def __init__(self, dim, kernel_size, stride=None, padding=0, ceil_mode=False, *, channels: int,
                 variant: str = "lite", reward: str = "sym", alpha_init: float = 1.0, lambda_init: float = 1.0,
                 eps: float = 1e-3):
        super().__init__(dim, kernel_size, stride, padding, ceil_mode)
        if variant not in ("lite", "full") or reward not in ("sym", "asym"):
            raise ValueError(f"DPPPool: variant must be lite|full and reward sym|asym, got {variant!r}, {reward!r}")
        self.variant, self.reward, self.eps = variant, reward, float(eps)
        self.channels = int(channels)
        self.alpha = nn.Parameter(torch.full((channels,), float(alpha_init)))
        self.lam = nn.Parameter(torch.full((channels,), float(lambda_init)))
        if variant == "full":
            self.filter = nn.Parameter(torch.ones(channels, math.prod(self.kernel_size)))

    def forward(self, x):
        if self.variant == "lite" and _fused_available(x, "dpp_pool"):
            self.check_input(x)
            alpha, lam = (t.clamp(min=0).to(x.dtype) for t in (self.alpha, self.lam))
            return _Fused.apply("dpp_pool", x, self.geometry() + (self.reward == "asym", self.eps), alpha, lam)
        cells, mask = self.windows(x)
        mask = mask.to(x.dtype)
        nd = cells.dim()
        if self.variant == "lite":
            f = mask
        else:
            f = self.filter.clamp(min=1e-6).view((1, -1) + (1,) * self.dim + (self.filter.shape[1],)) * mask
        smooth = (f * cells).sum(-1, keepdim=True) / f.sum(-1, keepdim=True)
        diff = cells - smooth
        if self.reward == "asym":
            diff = diff.clamp(min=0)
        lam = self._per_channel(self.lam.clamp(min=0), nd)
        alpha = self._per_channel(self.alpha.clamp(min=0), nd)
        w = (alpha + torch.sqrt(diff * diff + self.eps ** 2).pow(lam)) * mask
        return (w * cells).sum(-1) / w.sum(-1)


def _torch_pool(kind):
    def build(dim, kernel_size, stride=None, padding=0, ceil_mode=False, **kw):
        _pool_args(dim, kernel_size, stride, padding, kind)
        cls = AvgPool3d if (kind, dim) == ("AvgPool", 3) else getattr(nn, f"{kind}{dim}d")
        return cls(kernel_size, stride, padding, ceil_mode=ceil_mode, **kw)
    return build


def _softpool(dim, kernel_size, stride=None, padding=0, ceil_mode=False):
    return {1: SoftPool1d, 2: SoftPool2d, 3: SoftPool3d}[dim](kernel_size, stride, padding, ceil_mode)


def _dpp(variant, reward):
    def build(*args, **kw):
        return DPPPool(*args, variant=variant, reward=reward, **kw)
    return build


# name -> (builder, channels, one-line description); channels: "required" (per-channel parameters),
# "optional" (taken when given: gated with per_channel=True) or None (never taken)
POOLS = {
    "avg": (_torch_pool("AvgPool"), None, "window mean (nn.AvgPool*d; count_include_pad as there)"),
    "max": (_torch_pool("MaxPool"), None, "window maximum (nn.MaxPool*d)"),
    "sum": (SumPool, None, "window sum"),
    "lp": (LpPool, None, "power average (sum |a|^p)^(1/p), fixed p (default 2)"),
    "trainable_lp": (TrainableLpPool, "required", "power average with a learned p >= 1 per channel"),
    "mixed": (MixedPool, None, "random max/avg mix in training, their average in eval"),
    "gated": (GatedPool, "optional", "learned sigmoid gate between max and avg"),
    "stochastic": (StochasticPool, None, "sample a cell with p_i = a_i / sum(a) (eval: expectation)"),
    "s3pool": (S3Pool, None, "stride-1 max pool, then random (eval: regular) subsampling"),
    "lip": (LIPPool, "required", "local importance pooling with a learned 1x1 logit module"),
    "dpp_lite_sym": (_dpp("lite", "sym"), "required", "detail-preserving pooling, mean-downscaled, symmetric reward"),
    "dpp_lite_asym": (_dpp("lite", "asym"), "required", "detail-preserving pooling, mean-downscaled, asymmetric reward"),
    "dpp_full_sym": (_dpp("full", "sym"), "required", "detail-preserving pooling, learned downscaling, symmetric"),
    "dpp_full_asym": (_dpp("full", "asym"), "required", "detail-preserving pooling, learned downscaling, asymmetric"),
    "softpool": (_softpool, None, "SoftPool: softmax-weighted window average (compiled)"),
}


def list_pools() -> list:
    """Names accepted by ``build_pool`` and ``swap_pooling``."""
    return sorted(POOLS)


def needs_channels(name: str) -> bool:
    """True for methods with per-channel parameters: they cannot be built without ``channels``."""
    return _lookup(name)[1] == "required"


def accepts_channels(name: str) -> bool:
    """True for methods that use ``channels`` when given (all that need it, and gated)."""
    return _lookup(name)[1] is not None


def _lookup(name):
    if name not in POOLS:
        raise ValueError(f"unknown pooling method {name!r}; choose one of: {', '.join(list_pools())}")
    return POOLS[name]


def build_pool(name: str, dim: int, kernel_size, stride=None, padding=0, ceil_mode=False,
               channels: Optional[int] = None, **kw) -> nn.Module:
    """A pooling module of method ``name`` for ``dim``-d inputs with max pooling's geometry."""
    builder, takes_channels, _ = _lookup(name)
    if dim not in (1, 2, 3):
        raise ValueError(f"build_pool: dim must be 1, 2 or 3, got {dim!r}")
    if takes_channels == "required" and (channels is None or int(channels) <= 0):
        trainable = ", ".join(n for n in list_pools() if needs_channels(n))
        raise ValueError(f"build_pool: {name!r} has per-channel parameters and needs channels=<int> "
                         f"(methods that need channels: {trainable}); got channels={channels!r}")
    if takes_channels is not None and channels is not None:
        kw["channels"] = int(channels)
    return builder(dim, kernel_size, stride, padding, ceil_mode, **kw)
