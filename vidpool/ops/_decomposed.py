"""SoftPool written with standard tensor operations only (pad, unfold, max pool, exp, sums),
for exporting: ONNX, TorchScript and torch.export graphs of a SoftPool model then need neither
vidpool nor its extension to run. Stable as the compiled kernels are: every window's weights are
exp(x - m) with m the window max (a max pool over the same windows), so nothing overflows; cells
outside the input (padding, ceil_mode overhang) are padded with the dtype's lowest finite value and
get weight 0 without producing 0 * inf. Half types are computed in float32. Shapes stay symbolic:
no Python int is taken from the input's spatial size except through the pooling arithmetic.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def soft_pool(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
              ceil_mode: bool) -> torch.Tensor:
    """SoftPool of batched ``x`` (N, C, *spatial) with per-axis kernel, stride, padding."""
    nd = len(kernel)
    dtype = x.dtype
    x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    m = _MAX_POOL[nd](x, list(kernel), list(stride), list(padding), ceil_mode=ceil_mode)
    # pad so that every window's cells exist: ``padding`` before and after, and with ceil_mode up to
    # stride - 1 more cells after (the last window's overhang); constants, so shapes stay symbolic
    pads = []
    for axis in reversed(range(nd)):
        pads += [padding[axis], padding[axis] + (stride[axis] - 1 if ceil_mode else 0)]
    cells = F.pad(x, pads, value=torch.finfo(x.dtype).min) if any(pads) else x
    for axis in range(nd):  # (N, C, *out, *kernel): each window's cells, as views
        span = (m.shape[2 + axis] - 1) * stride[axis] + kernel[axis]
        cells = cells.narrow(2 + axis, 0, span).unfold(2 + axis, kernel[axis], stride[axis])
    cells = cells.flatten(-nd)
    e = torch.exp(cells - m.unsqueeze(-1))
    return ((e * cells).sum(-1) / e.sum(-1)).to(dtype)


def global_soft_pool(x: torch.Tensor, nd: int) -> torch.Tensor:
    """SoftPool over all ``nd`` trailing axes at once (adaptive output size 1), keeping them as 1s."""
    dtype = x.dtype
    x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    dims = tuple(range(2, 2 + nd))
    e = torch.exp(x - x.amax(dims, keepdim=True))
    return ((e * x).sum(dims, keepdim=True) / e.sum(dims, keepdim=True)).to(dtype)
