"""The pooling geometries and memory layouts both CUDA test files run: the emulated kernels on the host
(test_cuda_emulated.py) and the real ones on a GPU (test_cuda_device.py)."""
import random

import torch

from .test_softpool_values import CASES


def _random_geometry(rng):
    nd = rng.choice([1, 2, 3])
    k = tuple(rng.randint(1, 4) for _ in range(nd))
    s = tuple(rng.randint(1, 4) for _ in range(nd))
    p = tuple(rng.randint(0, kv // 2) for kv in k)
    ceil = rng.random() < 0.5
    size = tuple(rng.randint(max(kv, 2), 9) for kv in k)  # T != H != W in general
    return (rng.randint(1, 2), rng.randint(1, 3)) + size, k, s, p, ceil


def _random_adaptive(rng):
    nd = rng.choice([1, 2, 3])
    size = tuple(rng.randint(1, 7) for _ in range(nd))
    out = tuple(rng.randint(1, 9) for _ in range(nd))  # larger than the input too
    return (rng.randint(1, 2), rng.randint(1, 3)) + size, out


def _random_blocked(rng):
    """Overlapping windows the blocked backward takes (stride <= 2, kernel <= 2 x stride on every axis),
    on inputs from 1 cell to 9: the 3x3x3 stride-2 stem pool and its relatives."""
    nd = rng.choice([1, 2, 3])
    while True:
        s = tuple(rng.randint(1, 2) for _ in range(nd))
        k = tuple(rng.randint(1, 2 * sv) for sv in s)
        if any(kv > sv for kv, sv in zip(k, s)):
            break
    p = tuple(rng.randint(0, kv // 2) for kv in k)
    ceil = rng.random() < 0.5
    size = tuple(rng.randint(max(kv - 2 * pv, 1), 9) for kv, pv in zip(k, p))
    return (rng.randint(1, 2), rng.randint(1, 3)) + size, k, s, p, ceil


_rng = random.Random(1234)
GEOMETRIES = list(CASES) + [_random_geometry(_rng) for _ in range(40)]
BLOCKED = [((2, 3, 5, 9, 11), (3, 3, 3), (2, 2, 2), (1, 1, 1), True), ((1, 2, 4, 8, 8), (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
           ((1, 2, 1, 6, 7), (1, 3, 3), (1, 2, 2), (0, 1, 1), False)]
BLOCKED += [_random_blocked(random.Random(4321 + i)) for i in range(17)]
GEOMETRIES += BLOCKED
ADAPTIVE = [_random_adaptive(_rng) for _ in range(20)] + [((1, 2, 3, 5, 4), (5, 7, 6)), ((2, 1, 9), (1,))]


def _layout(x, name):
    """The same values as x in another memory layout."""
    if name == "channels_last" and x.dim() in (4, 5):
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        return x.contiguous(memory_format=fmt)
    if name == "gapped":  # every other cell of a twice-as-wide buffer
        wide = torch.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x
