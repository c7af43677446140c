"""The source networks of published checkpoints, written for the tests from their documented layouts
and behaviour (module names, shapes, padding): 3D-ResNets-PyTorch's resnet / resnet2p1d and
pytorch-i3d's InceptionI3d. They give state_dicts in the published key layouts and the logits the
source code computes, independently of vidpool's models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HARA_LAYERS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
               152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}


def _conv(cin, cout, k, s=1, p=0):
    return nn.Conv3d(cin, cout, k, s, p, bias=False)


def _mid(cin, cout, t=3, d=3):
    return cin * cout * t * d * d // (cin * d * d + t * cout)


class HaraBlock(nn.Module):
    """resnet.py / resnet2p1d.py blocks: convK + bnK, or convK_s/bnK_s + convK_t/bnK_t when factorised."""

    def __init__(self, cin, planes, stride, factorised, bottleneck):
        super().__init__()
        self.factorised, self.bottleneck = factorised, bottleneck
        out = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.conv1, self.bn1 = _conv(cin, planes, 1), nn.BatchNorm3d(planes)
            self._conv3x3("2", planes, planes, stride)
            self.conv3, self.bn3 = _conv(planes, out, 1), nn.BatchNorm3d(out)
        else:
            self._conv3x3("1", cin, planes, stride)
            self._conv3x3("2", planes, planes, 1)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(_conv(cin, out, 1, stride), nn.BatchNorm3d(out))

    def _conv3x3(self, i, cin, cout, stride):
        if self.factorised:
            mid = _mid(cin, cout)
            setattr(self, f"conv{i}_s", _conv(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1)))
            setattr(self, f"bn{i}_s", nn.BatchNorm3d(mid))
            setattr(self, f"conv{i}_t", _conv(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0)))
            setattr(self, f"bn{i}_t", nn.BatchNorm3d(cout))
        else:
            setattr(self, f"conv{i}", _conv(cin, cout, 3, stride, 1))
            setattr(self, f"bn{i}", nn.BatchNorm3d(cout))

    def _apply3x3(self, i, x):
        if self.factorised:
            x = F.relu(getattr(self, f"bn{i}_s")(getattr(self, f"conv{i}_s")(x)))
            return getattr(self, f"bn{i}_t")(getattr(self, f"conv{i}_t")(x))
        return getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))

    def forward(self, x):
        if self.bottleneck:
            y = F.relu(self.bn1(self.conv1(x)))
            y = F.relu(self._apply3x3("2", y))
            y = self.bn3(self.conv3(y))
        else:
            y = F.relu(self._apply3x3("1", x))
            y = self._apply3x3("2", y)
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class HaraResNet(nn.Module):
    """3D-ResNets-PyTorch's ResNet (``factorised``: resnet2p1d), shortcut B, conv1_t_size 7, stride 1."""

    def __init__(self, depth, factorised=False, n_classes=700, widen_factor=1.0):
        super().__init__()
        self.factorised = factorised
        widths = [int(w * widen_factor) for w in (64, 128, 256, 512)]
        cin = widths[0]
        if factorised:
            mid = 3 * cin * 7 * 49 // (3 * 49 + 7 * cin)
            self.conv1_s, self.bn1_s = _conv(3, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3)), nn.BatchNorm3d(mid)
            self.conv1_t, self.bn1_t = _conv(mid, cin, (7, 1, 1), 1, (3, 0, 0)), nn.BatchNorm3d(cin)
        else:
            self.conv1, self.bn1 = _conv(3, cin, 7, (1, 2, 2), 3), nn.BatchNorm3d(cin)
        bottleneck = depth >= 50
        for i, (planes, n) in enumerate(zip(widths, HARA_LAYERS[depth])):
            blocks = []
            for j in range(n):
                blocks.append(HaraBlock(cin, planes, 2 if i and not j else 1, factorised, bottleneck))
                cin = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        if self.factorised:
            x = F.relu(self.bn1_t(self.conv1_t(F.relu(self.bn1_s(self.conv1_s(x))))))
        else:
            x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool3d(x, 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3, 4)))


def _same(x, kernel, stride):
    """TensorFlow SAME padding as pytorch-i3d computes it (odd cell at the end), zeros."""
    pad = []
    for size, k, s in list(zip(x.shape[2:], kernel, stride))[::-1]:
        total = max(k - (s if size % s == 0 else size % s), 0)
        pad += [total // 2, total - total // 2]
    return F.pad(x, pad)


class TFUnit(nn.Module):
    """pytorch-i3d's Unit3D: conv3d (+ bn, eps 1e-3) (+ relu), padded SAME at run time."""

    def __init__(self, cin, cout, k=1, s=1, bn=True, relu=True, bias=False):
        super().__init__()
        self.k, self.s, self.relu = (k,) * 3 if isinstance(k, int) else k, (s,) * 3 if isinstance(s, int) else s, relu
        self.conv3d = nn.Conv3d(cin, cout, self.k, self.s, 0, bias=bias)
        if bn:
            self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x):
        x = self.conv3d(_same(x, self.k, self.s))
        if hasattr(self, "bn"):
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class TFInception(nn.Module):
    def __init__(self, cin, w):
        super().__init__()
        self.b0, self.b1a, self.b1b = TFUnit(cin, w[0]), TFUnit(cin, w[1]), TFUnit(w[1], w[2], 3)
        self.b2a, self.b2b, self.b3b = TFUnit(cin, w[3]), TFUnit(w[3], w[4], 3), TFUnit(cin, w[5])

    def forward(self, x):
        b3 = self.b3b(F.max_pool3d(_same(x, (3, 3, 3), (1, 1, 1)), 3, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), b3], 1)


I3D_MIXED = [("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
             ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
             ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)), ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
             ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)), ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
             ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)), ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2)),
             ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)), ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128))]


class TFInceptionI3d(nn.Module):
    """pytorch-i3d's InceptionI3d. ``forward`` returns what its forward returns, logits per remaining
    time step (N, classes, T'); ``clip_logits`` their mean, DeepMind's clip score."""

    def __init__(self, n_classes=400):
        super().__init__()
        self.Conv3d_1a_7x7 = TFUnit(3, 64, 7, 2)
        self.Conv3d_2b_1x1 = TFUnit(64, 64)
        self.Conv3d_2c_3x3 = TFUnit(64, 192, 3)
        self.stages = []
        for name, *spec in I3D_MIXED:
            if name.startswith("Mixed"):
                setattr(self, name, TFInception(*spec))
            self.stages.append((name, spec))
        self.logits = TFUnit(1024, n_classes, bn=False, relu=False, bias=True)

    def forward(self, x):
        x = self.Conv3d_1a_7x7(x)
        x = F.max_pool3d(_same(x, (1, 3, 3), (1, 2, 2)), (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = F.max_pool3d(_same(x, (1, 3, 3), (1, 2, 2)), (1, 3, 3), (1, 2, 2))
        for name, spec in self.stages:
            x = getattr(self, name)(x) if name.startswith("Mixed") else F.max_pool3d(_same(x, *spec), *spec)
        x = F.avg_pool3d(x, (2, 7, 7), 1)
        return self.logits(x).squeeze(3).squeeze(3)

    def clip_logits(self, x):
        return self.forward(x).mean(2)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics (so a wrong mapping shows), eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.dim() >= 2:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model.eval()


class SRTGSqueezeRecursion(nn.Module):
    """The official SR block: LSTM(C, C, 2) over time (sequence first), x * h."""

    def __init__(self, planes):
        super().__init__()
        self.lstm = nn.LSTM(input_size=planes, hidden_size=planes, num_layers=2)

    def forward(self, x):
        h, _ = self.lstm(F.avg_pool3d(x, (1,) + tuple(x.shape[3:])).flatten(2).permute(2, 0, 1))
        return x * h.permute(1, 2, 0)[..., None, None]


def _srtg_conv(kind, cin, cout, mid, stride=1):
    if kind == "r3d":
        return nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False))
    return nn.Sequential(nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
                         nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                         nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False))


class SRTGBlock(nn.Module):
    def __init__(self, kind, cin, planes, stride, bottleneck, recursion):
        super().__init__()
        mid = cin * planes * 27 // (cin * 9 + 3 * planes)
        if bottleneck:
            self.conv1 = nn.Sequential(_conv(cin, planes, 1), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
            self.conv2 = nn.Sequential(_srtg_conv(kind, planes, planes, mid, stride), nn.BatchNorm3d(planes),
                                       nn.ReLU(inplace=True))
            self.conv3 = nn.Sequential(_conv(planes, planes, 1), nn.BatchNorm3d(planes))
        else:
            self.conv1 = nn.Sequential(_srtg_conv(kind, cin, planes, mid, stride), nn.BatchNorm3d(planes),
                                       nn.ReLU(inplace=True))
            self.conv2 = nn.Sequential(_srtg_conv(kind, planes, planes, mid), nn.BatchNorm3d(planes))
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(_conv(cin, planes, 1, stride), nn.BatchNorm3d(planes))
        if recursion:
            self.sar = SRTGSqueezeRecursion(planes)

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        if hasattr(self, "conv3"):
            y = self.conv3(y)
        y = F.relu(y + (x if self.downsample is None else self.downsample(x)))
        return self.sar(y) if hasattr(self, "sar") else y


class SRTGVideoResNet(nn.Module):
    """The official SRTG code's VideoResNet (released configuration: recursion on, no gate), with the
    3x3x3 stride-2 max pool after the stem."""

    def __init__(self, kind, depth, recursion=True, n_classes=400):
        super().__init__()
        if kind == "r3d":
            self.stem = nn.Sequential(nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                      nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                                      nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                                      nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False),
                                      nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), HARA_LAYERS[depth])):
            blocks = []
            for j in range(n):
                blocks.append(SRTGBlock(kind, cin, planes, 2 if i and not j else 1, depth >= 50, recursion))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(512, n_classes)

    def forward(self, x):
        x = F.max_pool3d(self.stem(x), 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3, 4)))
