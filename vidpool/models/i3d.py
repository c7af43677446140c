"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman 2017).

Stem 7x7x7 stride-2 conv; max pools (1,3,3)/(1,2,2) after the stem and after Conv3d_2c,
(3,3,3)/2 before Mixed_4b and (2,2,2)/2 before Mixed_5b; Mixed_3b ... Mixed_5c Inception modules
whose fourth branch is a 3x3x3 stride-1 max pool; global average pool, dropout and 1x1x1 conv
logits. All 13 pools are built by ``vidpool.ops.build_pool(pool, ...)``. Convolutions use
symmetric "same" padding; the head pools globally, so any clip size works.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vidpool.ops import build_pool

from ._registry import register_model
from .resnet3d import head_pool_module


class Unit3d(nn.Sequential):
    """Conv3d (no bias) + BN + ReLU, "same" padding for odd kernels."""

    def __init__(self, n_in: int, n_out: int, kernel=1, stride=1):
        kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
        super().__init__(nn.Conv3d(n_in, n_out, kernel, stride, tuple(k // 2 for k in kernel), bias=False),
                         nn.BatchNorm3d(n_out, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True))


class InceptionBlock(nn.Module):
    """Four branches concatenated: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 stride-1 pool -> 1x1."""

    def __init__(self, n_in: int, widths: Sequence[int], pool: str, **pool_kw):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.branch0 = Unit3d(n_in, b0)
        self.branch1 = nn.Sequential(Unit3d(n_in, b1a), Unit3d(b1a, b1b, 3))
        self.branch2 = nn.Sequential(Unit3d(n_in, b2a), Unit3d(b2a, b2b, 3))
        self.branch3 = nn.Sequential(build_pool(pool, 3, 3, 1, 1, channels=n_in, **pool_kw), Unit3d(n_in, b3))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


# (name, input channels, branch widths) of the Inception modules, by stage
_MIXED = {
    3: [("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64))],
    4: [("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)), ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
        ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)), ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
        ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128))],
    5: [("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)), ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128))],
}


class I3D(nn.Module):
    def __init__(self, num_classes: int = 400, pool: str = "max", head_pool: str = "avg", dropout: float = 0.5,
                 **pool_kw):
        super().__init__()

        def make_pool(kernel, stride, padding, channels):
            return build_pool(pool, 3, kernel, stride, padding, channels=channels, **pool_kw)

        layers = [
            ("Conv3d_1a_7x7", Unit3d(3, 64, 7, 2)),
            ("MaxPool3d_2a_3x3", make_pool((1, 3, 3), (1, 2, 2), (0, 1, 1), 64)),
            ("Conv3d_2b_1x1", Unit3d(64, 64)),
            ("Conv3d_2c_3x3", Unit3d(64, 192, 3)),
            ("MaxPool3d_3a_3x3", make_pool((1, 3, 3), (1, 2, 2), (0, 1, 1), 192)),
        ]
        layers += [(n, InceptionBlock(c, w, pool, **pool_kw)) for n, c, w in _MIXED[3]]
        layers.append(("MaxPool3d_4a_3x3", make_pool(3, 2, 1, 480)))
        layers += [(n, InceptionBlock(c, w, pool, **pool_kw)) for n, c, w in _MIXED[4]]
        layers.append(("MaxPool3d_5a_2x2", make_pool(2, 2, 0, 832)))
        layers += [(n, InceptionBlock(c, w, pool, **pool_kw)) for n, c, w in _MIXED[5]]
        self.features = nn.Sequential()
        for name, module in layers:
            self.features.add_module(name, module)
        self.head_pool = head_pool_module(head_pool)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv3d(1024, num_classes, 1)  # with bias, no BN or activation
        self.num_features = 1024

    def forward_features(self, x):
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D: expected clips of shape (N, 3, T, H, W), got {tuple(x.shape)}")
        return self.features(x)

    def forward(self, x):
        return self.logits(self.dropout(self.head_pool(self.forward_features(x)))).flatten(1)


@register_model
def i3d(num_classes: int = 400, pool: str = "max", **kw):
    """I3D (Inception-v1 inflated), about 12.7 M parameters at 400 classes."""
    return I3D(num_classes, pool, **kw)
