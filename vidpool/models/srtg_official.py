"""SRTG as published: the networks of the official Squeeze-and-Recursion Temporal Gates code
(``network/srtg_resnet.py``), in its released configuration, under the same tensor names, so its
checkpoints load one to one. Written from that code's documented behaviour:

- torchvision-style VideoResNet: the 3x7x7 stem (r3d) or the 45-channel factorised stem (r(2+1)d),
  then a 3x3x3 stride-2 max pool (the layer ``pool=`` replaces), four stages of widths 64..512, global
  average pool, fc on 512 features;
- basic blocks (18, 34) whose two (2+1)D convs both take their mid channels from the block's input
  and output widths; **expansion-1 bottlenecks** (50, 101): 1x1x1, 3x3x3 (or (2+1)D) with the stride,
  1x1x1 back to the same width; a 1x1x1 conv + BN shortcut where the stride is 2;
- r3d convs wrapped in a one-element Sequential (tensor names ``conv1.0.0.weight``);
- the SR block ``sar`` after each block's last ReLU: frame-wise spatial mean, a 2-layer LSTM with
  hidden size = channels and no projection, recalibration ``x * h`` (not vidpool's ``x * (1 + h)``);
- no temporal gate: every released builder passes ``gates=False`` (the published gate code cannot
  pass a sample).

``r3d_*_official`` / ``r2plus1d_*_official`` are the same networks without SR blocks: the official
training script builds those for every ``srtg_*`` name (its builder tests for ``R3D`` before
``SRTG_R3D``), so files it wrote may hold no SR tensors at all.
"""
from __future__ import annotations

from torch import nn

from ._registry import register_model
from .resnet3d import _LAYERS, Conv2Plus1d, ResNet3d, mid_channels, tv_stem
from .srtg import LSTM


class OfficialSR(nn.Module):
    """The released SR block: x * LSTM(frame-wise spatial mean of x), the LSTM as wide as x."""

    def __init__(self, channels: int, layers: int = 2):
        super().__init__()
        self.lstm = LSTM(channels, channels, layers)

    def forward(self, x):
        h, _ = self.lstm(x.mean((3, 4)).transpose(1, 2))  # (N, T, C)
        return x * h.transpose(1, 2)[..., None, None]


def _conv_r3d(n_in, n_out, mid, stride=1):
    return nn.Sequential(nn.Conv3d(n_in, n_out, 3, stride, 1, bias=False))


def _conv_r2plus1d(n_in, n_out, mid, stride=1):
    return Conv2Plus1d(n_in, n_out, stride, mid=mid)


class OfficialBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, n_in, planes, conv, stride=1, downsample=None, recursion=True):
        super().__init__()
        mid = mid_channels(n_in, planes)  # one value for both convs, as published
        self.conv1 = nn.Sequential(conv(n_in, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes, mid), nn.BatchNorm3d(planes))
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.sar = OfficialSR(planes) if recursion else None

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.conv2(self.conv1(x)) + shortcut)
        return y if self.sar is None else self.sar(y)


class OfficialBottleneck(nn.Module):
    expansion = 1

    def __init__(self, n_in, planes, conv, stride=1, downsample=None, recursion=True):
        super().__init__()
        mid = mid_channels(n_in, planes)
        self.conv1 = nn.Sequential(nn.Conv3d(n_in, planes, 1, bias=False), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv3d(planes, planes, 1, bias=False), nn.BatchNorm3d(planes))
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.sar = OfficialSR(planes) if recursion else None

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)
        return y if self.sar is None else self.sar(y)


def official_network(kind: str, depth: int, recursion: bool, num_classes: int = 400, pool: str = "max",
                     **kw) -> ResNet3d:
    """The official code's ``[srtg_]{kind}_{depth}`` network (kind r3d or r2plus1d)."""
    if "base_width" in kw:
        raise ValueError("the official SRTG networks have the published widths (64 to 512 channels); "
                         "base_width applies to vidpool's r3d, r(2+1)d and srtg families")
    body = OfficialBasicBlock if depth < 50 else OfficialBottleneck
    conv = _conv_r3d if kind == "r3d" else _conv_r2plus1d

    def block(n_in, planes, conv_, stride=1, downsample=None):
        return body(n_in, planes, conv_, stride, downsample, recursion=recursion)
    block.expansion = 1
    return ResNet3d(block, _LAYERS[depth], conv, tv_stem(kind), num_classes, pool=pool, **kw)


def _register():
    for kind, depths in (("r3d", (18, 34, 50, 101)), ("r2plus1d", (18, 34, 50))):
        for depth in depths:
            for recursion in (True, False):
                def builder(num_classes: int = 400, pool: str = "max", kind=kind, depth=depth,
                            recursion=recursion, **kw):
                    return official_network(kind, depth, recursion, num_classes, pool, **kw)
                name = f"{'srtg_' if recursion else ''}{kind}_{depth}_official"
                builder.__name__ = name
                builder.__doc__ = (f"the official SRTG code's {'srtg_' if recursion else ''}{kind}_{depth} "
                                   f"({'SR blocks, no gate' if recursion else 'without SR blocks'}); loads its files")
                register_model(builder)


_register()
