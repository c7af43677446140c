"""3D average pooling that accepts every input 3D max pooling accepts.

torch's ``avg_pool3d`` refuses an input smaller than the kernel along some axis even when the
padding makes the window fit ("input image ... smaller than kernel size"), while ``max_pool3d``
takes it (``avg_pool1d``/``avg_pool2d`` take it too). An I3D Inception block (3x3x3 stride-1 pool,
padding 1) meets exactly that at 8 input frames: its last stage sees 2 frames. For those inputs the
window sums are taken over an explicitly zero-padded tensor and divided by each window's count, as
torch counts for the inputs it accepts: with ``count_include_pad`` the cells of
[-padding, size + padding), else those of the input; a ceil_mode overhang past that never counts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._reference import pool_pads
from .softpool import _tuple


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None):
    """``F.avg_pool3d`` with the same arguments and results, also where torch refuses the input."""
    k = _tuple(kernel_size, 3, "kernel_size", "avg_pool3d")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _tuple(
        stride, 3, "stride", "avg_pool3d")
    p = _tuple(padding, 3, "padding", "avg_pool3d")
    sizes = tuple(x.shape[-3:])
    if all(n >= kk for n, kk in zip(sizes, k)) or any(2 * pp > kk for pp, kk in zip(p, k)):
        return F.avg_pool3d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)  # torch's own errors
    pads = pool_pads(sizes, k, s, p, ceil_mode)  # the windows then tile it with padding 0
    sums = F.avg_pool3d(F.pad(x, pads), k, s, 0, divisor_override=1)
    if divisor_override is not None:
        return sums / divisor_override
    if count_include_pad:  # ones over [-padding, size + padding), aligned with the padded input
        region = [n + 2 * pp for n, pp in zip(sizes, p)]
        region_pads = [v for before, after in zip(pads[::2], pads[1::2]) for v in (0, after - before)]
    else:  # ones over the input
        region, region_pads = list(sizes), pads
    ones = torch.ones([1] * (x.dim() - 3) + region, dtype=x.dtype, device=x.device)
    return sums / F.avg_pool3d(F.pad(ones, region_pads), k, s, 0, divisor_override=1)


class AvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d`` that also pools inputs smaller than the kernel where the padding covers them."""

    def forward(self, x):
        return avg_pool3d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)
