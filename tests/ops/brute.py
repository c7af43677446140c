"""Float64 brute-force SoftPool, written independently of vidpool: one Python loop per window.

Window counts come from torch's own max/adaptive pooling output shapes; window cells are the
plain definition [o*s - p, o*s - p + k) intersected with the input (adaptive: floor/ceil of
o*n/out), and each window's softmax is torch.softmax in float64.
"""
import itertools
import math

import torch
import torch.nn.functional as F

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _ranges_regular(n, out, k, s, p):
    return [range(max(o * s - p, 0), min(o * s - p + k, n)) for o in range(out)]


def _ranges_adaptive(n, out):
    return [range(math.floor(o * n / out), math.ceil((o + 1) * n / out)) for o in range(out)]


def _pool(x, ranges_per_axis):
    x64 = x.to(torch.float64)
    lead = x.shape[: x.dim() - len(ranges_per_axis)]
    outs = []
    for lead_idx in itertools.product(*[range(n) for n in lead]):
        plane = x64[lead_idx]
        for win in itertools.product(*ranges_per_axis):
            cells = plane[tuple(slice(r.start, r.stop) for r in win)].reshape(-1)
            outs.append((torch.softmax(cells, 0) * cells).sum())
    out_shape = tuple(lead) + tuple(len(r) for r in ranges_per_axis)
    return torch.stack(outs).reshape(out_shape)


def soft_pool(x, kernel, stride=None, padding=0, ceil_mode=False):
    """SoftPool of x (batched or not) with per-axis tuples (ints broadcast), in float64."""
    nd = len(kernel)
    stride = kernel if stride is None else stride
    padding = (padding,) * nd if isinstance(padding, int) else padding
    ref_shape = _MAX_POOL[nd](x.detach().float(), kernel, stride, padding, ceil_mode=ceil_mode).shape[-nd:]
    ranges = [_ranges_regular(n, o, k, s, p)
              for n, o, k, s, p in zip(x.shape[-nd:], ref_shape, kernel, stride, padding)]
    return _pool(x, ranges)


def adaptive_soft_pool(x, output_size):
    nd = len(output_size)
    ranges = [_ranges_adaptive(n, o) for n, o in zip(x.shape[-nd:], output_size)]
    return _pool(x, ranges)


def avg_pool(x, kernel, stride):
    """Plain window means (no padding), float64, for the SoftPool >= average property."""
    nd = len(kernel)
    ref_shape = _MAX_POOL[nd](x.float(), kernel, stride).shape[-nd:]
    ranges = [_ranges_regular(n, o, k, s, 0) for n, o, k, s in zip(x.shape[-nd:], ref_shape, kernel, stride)]
    lead = x.shape[: x.dim() - nd]
    outs = []
    x64 = x.to(torch.float64)
    for lead_idx in itertools.product(*[range(n) for n in lead]):
        for win in itertools.product(*ranges):
            idx = tuple(slice(r.start, r.stop) for r in win)
            outs.append(x64[lead_idx][idx].mean())
    return torch.stack(outs).reshape(tuple(lead) + tuple(len(r) for r in ranges))


def pool_windows(x, kernel, stride, padding, ceil_mode, fn):
    """Apply fn(cells, slots, channel) to every window of x (N, C, *spatial) and stack the results.

    cells: float64 1-d tensor of the window's cells inside the input; slots: their positions in the
    window in row-major order (so per-position weights can be looked up); channel: the channel index.
    """
    nd = len(kernel)
    out_shape = _MAX_POOL[nd](x.detach().float(), kernel, stride, padding, ceil_mode=ceil_mode).shape[-nd:]
    x64 = x.to(torch.float64)
    results = []
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for out_idx in itertools.product(*[range(o) for o in out_shape]):
            cells, slots = [], []
            for slot, offs in enumerate(itertools.product(*[range(k) for k in kernel])):
                pos = [o * s - p + off for o, s, p, off in zip(out_idx, stride, padding, offs)]
                if all(0 <= q < size for q, size in zip(pos, x.shape[2:])):
                    cells.append(x64[(n, c) + tuple(pos)])
                    slots.append(slot)
            results.append(fn(torch.stack(cells), slots, c))
    return torch.stack(results).reshape(tuple(x.shape[:2]) + tuple(out_shape))


def _lse(x, ranges_per_axis):
    """log(sum(exp)) of every window, float64 (differentiable: its gradient is the window softmax)."""
    x64 = x.to(torch.float64)
    lead = x.shape[: x.dim() - len(ranges_per_axis)]
    outs = []
    for lead_idx in itertools.product(*[range(n) for n in lead]):
        for win in itertools.product(*ranges_per_axis):
            outs.append(torch.logsumexp(x64[lead_idx][tuple(slice(r.start, r.stop) for r in win)].reshape(-1), 0))
    return torch.stack(outs).reshape(tuple(lead) + tuple(len(r) for r in ranges_per_axis))


def window_lse(x, kernel, stride=None, padding=0, ceil_mode=False, adaptive=False):
    """Per-window logsumexp for regular windows (kernel, stride, ...) or adaptive ones (kernel = output size)."""
    nd = len(kernel)
    if adaptive:
        return _lse(x, [_ranges_adaptive(n, o) for n, o in zip(x.shape[-nd:], kernel)])
    stride = kernel if stride is None else stride
    padding = (padding,) * nd if isinstance(padding, int) else padding
    ref_shape = _MAX_POOL[nd](x.detach().float(), kernel, stride, padding, ceil_mode=ceil_mode).shape[-nd:]
    return _lse(x, [_ranges_regular(n, o, k, s, p)
                    for n, o, k, s, p in zip(x.shape[-nd:], ref_shape, kernel, stride, padding)])
