"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman 2017).

Stem 7x7x7 stride-2 conv; max pools (1,3,3)/(1,2,2) after the stem and after Conv3d_2c,
(3,3,3)/2 before Mixed_4b and (2,2,2)/2 (ceil mode) before Mixed_5b; Mixed_3b ... Mixed_5c Inception modules
whose fourth branch is a 3x3x3 stride-1 max pool; global average pool, dropout and 1x1x1 conv
logits. All 13 pools are built by ``vidpool.ops.build_pool(pool, ...)``. Convolutions use
symmetric "same" padding; the head pools globally, so any clip size works.

``tf_same=True`` computes what pytorch-i3d (and DeepMind's TensorFlow I3D it was converted from)
computes, for its weights: TensorFlow's SAME padding, worked out from each input size, where an odd
amount of padding puts the extra cell at the end; pools padded with zeros (not -inf) the same way;
and its head, a 2x7x7 stride-1 average pool whose per-position logits are averaged (an edge frame
then counts half as much as an inner one). Spatial windows shrink to the feature map below 224x224
inputs, where pytorch-i3d itself fails. ``load_weights`` turns it on when it loads a pytorch-i3d file;
``set_tf_same(model, flag)`` switches it on a built model; the state_dict records it (the 0/1 buffer
``tf_same_padding``), so a checkpoint of such a model restores it wherever it is loaded.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidpool.ops import build_pool

from ._registry import register_model
from .resnet3d import head_pool_module


def tf_same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """``x`` zero-padded as TensorFlow's SAME padding pads it: ceil(size / stride) outputs per axis,
    the padding split in two with the odd cell at the end."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _triple(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


class Unit3d(nn.Sequential):
    """Conv3d (no bias) + BN + ReLU, "same" padding for odd kernels (TensorFlow's with ``tf_same``)."""

    tf_same = False

    def __init__(self, n_in: int, n_out: int, kernel=1, stride=1):
        kernel = _triple(kernel)
        super().__init__(nn.Conv3d(n_in, n_out, kernel, stride, tuple(k // 2 for k in kernel), bias=False),
                         nn.BatchNorm3d(n_out, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True))

    def forward(self, x):
        conv = self[0]
        if self.tf_same:
            x = tf_same_pad(x, conv.kernel_size, conv.stride)
        return super().forward(x)


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
        self.tf_same = False

    def forward(self, x):
        pooled = tf_same_pad(x, (3, 3, 3), (1, 1, 1)) if self.tf_same else x
        b3 = self.branch3[1](self.branch3[0](pooled))
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), b3], 1)


# (name, input channels, branch widths) of the Inception modules, by stage
_MIXED = {
    3: [("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64))],
    4: [("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)), ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
        ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)), ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
        ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128))],
    5: [("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)), ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128))],
}


# kernel and stride of the stand-alone pools (the symmetric layout pads each kernel // 2, 0 for 5a)
_POOLS = {"MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
          "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}


class I3D(nn.Module):
    """``base_width`` scales every channel count by base_width / 64 (64: the published network;
    smaller widths give the same architecture at a size that trains on a CPU)."""

    def __init__(self, num_classes: int = 400, pool: str = "max", head_pool: str = "avg", dropout: float = 0.5,
                 tf_same: bool = False, base_width: int = 64, **pool_kw):
        super().__init__()
        if base_width < 1:
            raise ValueError(f"I3D: base_width must be >= 1, got {base_width}")

        def ch(c: int) -> int:
            return max(1, int(round(c * base_width / 64)))

        def make_pool(kernel, stride, padding, channels, ceil_mode=False):
            return build_pool(pool, 3, kernel, stride, padding, ceil_mode, channels=channels, **pool_kw)

        layers = [
            ("Conv3d_1a_7x7", Unit3d(3, ch(64), 7, 2)),
            ("MaxPool3d_2a_3x3", make_pool((1, 3, 3), (1, 2, 2), (0, 1, 1), ch(64))),
            ("Conv3d_2b_1x1", Unit3d(ch(64), ch(64))),
            ("Conv3d_2c_3x3", Unit3d(ch(64), ch(192), 3)),
            ("MaxPool3d_3a_3x3", make_pool((1, 3, 3), (1, 2, 2), (0, 1, 1), ch(192))),
        ]
        channels = ch(192)
        # MaxPool3d_5a in ceil mode: ceil(n / 2) outputs, as TensorFlow's SAME padding gives; with
        # floor it would drop the last row, column and frame of an odd-sized map (5 of the 9
        # positions of the 3x3 map at 48-pixel crops, 13 of 49 at 112) and fail on the single frame
        # of clips of <= 4 frames (every other pool already covers its whole input)
        for stage, pool_name, pool_args in ((3, None, None), (4, "MaxPool3d_4a_3x3", (3, 2, 1, False)),
                                            (5, "MaxPool3d_5a_2x2", (2, 2, 0, True))):
            if pool_name:
                kernel, stride, padding, ceil = pool_args
                layers.append((pool_name, make_pool(kernel, stride, padding, channels, ceil)))
            for name, _, widths in _MIXED[stage]:
                block = InceptionBlock(channels, [ch(w) for w in widths], pool, **pool_kw)
                layers.append((name, block))
                channels = block.out_channels
        self.features = nn.Sequential()
        for name, module in layers:
            self.features.add_module(name, module)
        self.head_pool = head_pool_module(head_pool)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv3d(channels, num_classes, 1)  # with bias, no BN or activation
        self.num_features = channels
        self.head_pool_name = head_pool
        self.tf_same = False
        # uint8, not bool: DDP broadcasts buffers, and not every backend takes bool tensors
        self.register_buffer("tf_same_padding", torch.tensor(0, dtype=torch.uint8))
        if tf_same:
            set_tf_same(self, True)

    # the padding mode travels with the weights, as a 0/1 buffer (state_dicts stay all tensors)
    optional_state_keys = ("tf_same_padding",)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kw):
        # files without the entry (pytorch-i3d's, vidpool's before it existed) are symmetric until
        # load_weights says otherwise
        key = prefix + "tf_same_padding"
        state_dict.setdefault(key, torch.tensor(0, dtype=torch.uint8))
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)
        set_tf_same(self, bool(self.tf_same_padding))

    def forward_features(self, x):
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D: expected clips of shape (N, 3, T, H, W), got {tuple(x.shape)}")
        if not self.tf_same:
            return self.features(x)
        for name, module in self.features.named_children():
            x = module(tf_same_pad(x, *_POOLS[name]) if name in _POOLS else x)
        return x

    def forward(self, x):
        x = self.forward_features(x)
        if self.tf_same and self.head_pool_name == "avg":
            # pytorch-i3d's head: 2x7x7 windows, logits averaged over the window positions
            kernel = [min(k, n) for k, n in zip((2, 7, 7), x.shape[2:])]
            x = F.avg_pool3d(x, kernel, 1).mean((2, 3, 4), keepdim=True)
        else:
            x = self.head_pool(x)
        return self.logits(self.dropout(x)).flatten(1)


def set_tf_same(model: I3D, flag: bool) -> None:
    """Switch ``model`` between symmetric padding and pytorch-i3d's TensorFlow SAME padding (see the
    module docstring). The pools' explicit padding goes to 0 and back: TF SAME pads them with zeros
    before pooling instead."""
    if not isinstance(model, I3D):
        raise TypeError(f"set_tf_same applies to I3D models, not {type(model).__name__}")
    for module in model.modules():
        if isinstance(module, Unit3d):
            module.tf_same = flag
            conv = module[0]
            conv.padding = (0, 0, 0) if flag else tuple(k // 2 for k in conv.kernel_size)
        elif isinstance(module, InceptionBlock):
            module.tf_same = flag
            _set_pool_padding(module.branch3[0], 0 if flag else 1)
    for name, (kernel, _) in _POOLS.items():
        _set_pool_padding(getattr(model.features, name), 0 if flag else tuple(k // 2 if k > 2 else 0 for k in kernel))
    model.tf_same = flag
    model.tf_same_padding.fill_(int(flag))


def _set_pool_padding(pool: nn.Module, padding) -> None:
    if not hasattr(pool, "padding"):
        raise ValueError(f"{type(pool).__name__} has no padding to change; build the I3D with tf_same instead")
    pool.padding = _triple(padding)


@register_model
def i3d(num_classes: int = 400, pool: str = "max", **kw):
    """I3D (Inception-v1 inflated), about 12.7 M parameters at 400 classes."""
    return I3D(num_classes, pool, **kw)
