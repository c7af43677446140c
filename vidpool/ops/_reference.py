"""Pure-PyTorch SoftPool.

The ground truth the compiled kernels are checked against and the fallback when ``vidpool._C``
is not built. Windows are gathered explicitly (cells outside the input become -inf, i.e. weight
0), so the memory cost is one copy of the input per window cell; autograd differentiates it.
"""
from __future__ import annotations

from typing import Sequence

import torch


def pool_output_size(size, kernel: int, stride: int, padding: int, ceil_mode: bool):
    """Output length of max/avg pooling (dilation 1) along one axis, as ``nn.MaxPool*d``."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_pads(sizes, kernel, stride, padding, ceil_mode: bool) -> list:
    """``F.pad`` amounts (last axis first) after which windows of ``kernel`` and ``stride`` with no
    padding are exactly max pooling's: ``padding`` before each axis, and after it whatever the last
    window reaches past the input (with ceil_mode its overhang; a negative amount drops unused cells)."""
    pads = []
    for n, k, s, p in zip(sizes, kernel, stride, padding):
        pads.append((p, (pool_output_size(n, k, s, p, ceil_mode) - 1) * s + k - n - p))
    return [v for pair in reversed(pads) for v in pair]


def pool_bounds(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool):
    """[start, end) of every window along one axis, clipped to the input."""
    out = pool_output_size(size, kernel, stride, padding, ceil_mode)
    starts = [o * stride - padding for o in range(out)]
    return [max(s, 0) for s in starts], [min(s + kernel, size) for s in starts]


def adaptive_bounds(size: int, out: int):
    """[start, end) of every window along one axis, as ``adaptive_avg_pool``."""
    return [(o * size) // out for o in range(out)], [-(-((o + 1) * size) // out) for o in range(out)]


def gather_windows(x: torch.Tensor, bounds: Sequence[tuple[list[int], list[int]]],
                   fill: float = float("-inf")) -> torch.Tensor:
    """(N, C, *spatial) -> (N, C, *out, K) holding each window's cells, ``fill`` where a window is short."""
    nd = len(bounds)
    cells, mask = x, None
    for i, (starts, ends) in enumerate(bounds):
        axis = 2 + 2 * i
        st = torch.tensor(starts, device=x.device)
        en = torch.tensor(ends, device=x.device)
        length = int((en - st).max())
        idx = st[:, None] + torch.arange(length, device=x.device)
        valid = idx < en[:, None]
        cells = cells.index_select(axis, idx.clamp(max=x.shape[2 + i] - 1).flatten())
        cells = cells.unflatten(axis, tuple(idx.shape))
        shape = [1] * (2 + 2 * nd)
        shape[axis], shape[axis + 1] = idx.shape
        valid = valid.view(shape)
        mask = valid if mask is None else mask & valid
    cells = cells.masked_fill(~mask, fill)
    order = [0, 1] + [2 + 2 * i for i in range(nd)] + [3 + 2 * i for i in range(nd)]
    return cells.permute(order).flatten(2 + nd)


def soft_pool_windows(x: torch.Tensor, bounds) -> torch.Tensor:
    """SoftPool of batched ``x`` over the windows given per trailing axis as ([starts], [ends])."""
    acc = torch.promote_types(x.dtype, torch.float32)
    cells = gather_windows(x.to(acc), bounds)
    m = cells.amax(-1, keepdim=True).detach()  # the output does not depend on the shift
    d = cells - m
    e = torch.exp(d)
    # sum((x - m) e) stays finite where sum(x e) could overflow (ties near the dtype's max)
    weighted = torch.where(e == 0, torch.zeros_like(e), d * e)  # -inf cells weigh 0
    m = m.squeeze(-1)
    y = m + weighted.sum(-1) / e.sum(-1)
    y = torch.where(torch.isinf(m), m, y)  # a window whose max is +-inf yields it
    return y.to(x.dtype)


def soft_pool(x, kernel_size, stride, padding, ceil_mode=False):
    """Reference SoftPool of a batched (N, C, *spatial) tensor; all arguments are per-axis tuples."""
    sizes = x.shape[2:]
    bounds = [pool_bounds(n, k, s, p, ceil_mode) for n, k, s, p in zip(sizes, kernel_size, stride, padding)]
    return soft_pool_windows(x, bounds)


def adaptive_soft_pool(x, output_size):
    """Reference adaptive SoftPool of a batched (N, C, *spatial) tensor."""
    return soft_pool_windows(x, [adaptive_bounds(n, o) for n, o in zip(x.shape[2:], output_size)])
