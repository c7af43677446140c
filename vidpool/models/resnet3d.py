"""3D ResNets: r3d (3x3x3 convolutions) and r(2+1)d (each 3x3x3 factorised into 1x3x3 + 3x1x1)
share one skeleton and differ only in the convolution builder.

- ``r3d_{10,18,34,50,101,152,200}``: the 3D-ResNets of Hara, Kataoka et al.: 7x7x7 stem conv with
  stride (1, 2, 2), BN, ReLU, a 3x3x3 stride-2 pool (the pool ``pool=`` replaces), basic blocks up
  to 34 layers and bottlenecks (expansion 4) from 50, shortcut type B (1x1x1 conv + BN when the
  shape changes), global pool, dropout, fc.
- ``r2plus1d_{10,...,200}``: Tran et al. 2018 (2+1)D convolutions, mid channels
  floor(t d^2 N_in N_out / (d^2 N_in + t N_out)); the 7x7x7 stem is factorised the same way.
- ``r3d_18_tv`` / ``r2plus1d_18_tv``: torchvision's stems and no stem pool, with torchvision's module
  names, so ``load_state_dict(torchvision.models.video.r3d_18(...).state_dict())`` works as is.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from torch import nn

from vidpool.ops import build_pool
from vidpool.ops.softpool import AdaptiveSoftPool3d

from ._registry import register_model

ConvBuilder = Callable[[int, int, int, int], nn.Module]  # (in, out, stride, block's in) -> conv


def mid_channels(n_in: int, n_out: int, t: int = 3, d: int = 3) -> int:
    """(2+1)D mid channels that keep the parameter count of the t x d x d convolution."""
    return (t * d * d * n_in * n_out) // (d * d * n_in + t * n_out)


def conv3x3x3(n_in: int, n_out: int, stride: int = 1, block_in: int = 0) -> nn.Module:
    return nn.Conv3d(n_in, n_out, 3, stride, 1, bias=False)


class Conv2Plus1d(nn.Sequential):
    """1 x d x d spatial conv, BN, ReLU, t x 1 x 1 temporal conv (stride split between them)."""

    def __init__(self, n_in: int, n_out: int, stride: int = 1, mid: Optional[int] = None, t: int = 3, d: int = 3,
                 t_stride: Optional[int] = None):
        mid = mid_channels(n_in, n_out, t, d) if mid is None else mid
        t_stride = stride if t_stride is None else t_stride
        super().__init__(
            nn.Conv3d(n_in, mid, (1, d, d), (1, stride, stride), (0, d // 2, d // 2), bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, n_out, (t, 1, 1), (t_stride, 1, 1), (t // 2, 0, 0), bias=False))


def conv2plus1d(n_in: int, n_out: int, stride: int = 1, block_in: int = 0) -> nn.Module:
    return Conv2Plus1d(n_in, n_out, stride)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, n_in: int, planes: int, conv: ConvBuilder, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Sequential(conv(n_in, planes, stride, n_in), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes, 1, n_in), nn.BatchNorm3d(planes))
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, n_in: int, planes: int, conv: ConvBuilder, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Sequential(nn.Conv3d(n_in, planes, 1, bias=False), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes, stride, n_in), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv3d(planes, out, 1, bias=False), nn.BatchNorm3d(out))
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


def head_pool_module(name: str) -> nn.Module:
    """Global pooling for the classifier head: avg (default), max or softpool."""
    heads = {"avg": lambda: nn.AdaptiveAvgPool3d(1), "max": lambda: nn.AdaptiveMaxPool3d(1),
             "softpool": lambda: AdaptiveSoftPool3d(1)}
    if name not in heads:
        raise ValueError(f"head_pool must be one of {sorted(heads)}, got {name!r}")
    return heads[name]()


class ResNet3d(nn.Module):
    """stem -> [pool] -> layer1..4 -> global pool -> dropout -> fc, for N x 3 x T x H x W clips."""

    def __init__(self, block, layers: Sequence[int], conv: ConvBuilder, stem: nn.Module, num_classes: int,
                 pool: Optional[str] = "max", head_pool: str = "avg", dropout: float = 0.0,
                 widths: Sequence[int] = (64, 128, 256, 512), **pool_kw):
        super().__init__()
        self.stem = stem
        # the stem pool is the network's one non-global pooling layer (None: torchvision's layout)
        self.pool = None if pool is None else build_pool(pool, 3, 3, 2, 1, channels=widths[0], **pool_kw)
        n_in = widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or n_in != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv3d(n_in, planes * block.expansion, 1, stride, bias=False),
                                           nn.BatchNorm3d(planes * block.expansion))
            mods = [block(n_in, planes, conv, stride, downsample)]
            n_in = planes * block.expansion
            mods += [block(n_in, planes, conv) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*mods))
        self.head_pool = head_pool_module(head_pool)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(n_in, num_classes)
        self.num_features = n_in
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected clips of shape (N, 3, T, H, W), got {tuple(x.shape)}")
        x = self.stem(x)
        if self.pool is not None:
            x = self.pool(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        x = self.head_pool(self.forward_features(x)).flatten(1)
        return self.fc(self.dropout(x))


_LAYERS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
           152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}


def _r3d_stem(width: int = 64):
    return nn.Sequential(nn.Conv3d(3, width, 7, (1, 2, 2), 3, bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True))


def _r2plus1d_stem(width: int = 64):
    return nn.Sequential(Conv2Plus1d(3, width, 2, t=7, d=7, t_stride=1), nn.BatchNorm3d(width), nn.ReLU(inplace=True))


def stage_widths(base_width: int):
    """Stage widths of a 3D ResNet whose stem has ``base_width`` channels (64 in the papers)."""
    if not isinstance(base_width, int) or base_width < 1:
        raise ValueError(f"base_width must be a positive int, got {base_width!r}")
    return tuple(base_width * m for m in (1, 2, 4, 8))


def _resnet(depth, conv, stem, num_classes, pool, **kw):
    block = BasicBlock if depth < 50 else Bottleneck
    return ResNet3d(block, _LAYERS[depth], conv, stem, num_classes, pool=pool, **kw)


def _register_family(prefix, conv, stem, depths):
    for depth in depths:
        def builder(num_classes: int = 400, pool: str = "max", depth=depth, base_width: int = 64, **kw):
            return _resnet(depth, conv, stem(base_width), num_classes, pool, widths=stage_widths(base_width), **kw)
        builder.__name__ = f"{prefix}_{depth}"
        builder.__doc__ = f"{prefix} with {depth} layers (base_width: stem channels, 64 in the paper)"
        register_model(builder)


_register_family("r3d", conv3x3x3, _r3d_stem, (10, 18, 34, 50, 101, 152, 200))
_register_family("r2plus1d", conv2plus1d, _r2plus1d_stem, (10, 18, 34, 50, 101, 152, 200))


def tv_stem(kind: str) -> nn.Sequential:
    """torchvision's video ResNet stems (also the official SRTG code's): 3x7x7 for r3d, a 45-channel
    1x7x7 + 3x1x1 factorisation for r(2+1)d; stride (1, 2, 2), BN and ReLU."""
    if kind == "r3d":
        return nn.Sequential(nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(64),
                             nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(45),
                         nn.ReLU(inplace=True), nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False),
                         nn.BatchNorm3d(64), nn.ReLU(inplace=True))


def _tv_2plus1d_conv(n_in, n_out, stride=1, block_in=0):
    """torchvision sizes both (2+1)D convs of a block from the block's input planes."""
    return Conv2Plus1d(n_in, n_out, stride, mid=mid_channels(block_in, n_out))


@register_model
def r3d_18_tv(num_classes: int = 400, pool: str = "max", **kw):
    """torchvision's r3d_18 layout (3x7x7 stem, no stem pool); loads its state_dict as is.
    ``pool`` is accepted for a uniform interface; this network has no non-global pool."""
    return ResNet3d(BasicBlock, _LAYERS[18], conv3x3x3, tv_stem("r3d"), num_classes, pool=None, **kw)


@register_model
def r2plus1d_18_tv(num_classes: int = 400, pool: str = "max", **kw):
    """torchvision's r2plus1d_18 layout (45-channel factorised stem, no stem pool); loads its state_dict."""
    return ResNet3d(BasicBlock, _LAYERS[18], _tv_2plus1d_conv, tv_stem("r2plus1d"), num_classes, pool=None, **kw)
