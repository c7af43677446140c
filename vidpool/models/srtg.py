"""SRTG: Squeeze-and-Recursion blocks with Temporal Gates (Stergiou & Poppe 2021) on 3D ResNets.

A Squeeze-and-Recursion (SR) block squeezes each frame of x (N, C, T, H, W) to its spatial mean,
runs a 2-layer LSTM (hidden size = channels) over the T frames, and recalibrates the features with
the LSTM output h broadcast over space: x * (1 + h). (The "1 +" makes a zero h the identity, so the
block can be inserted into a trained network without changing it.)

Hidden size on bottleneck networks (50/101 layers): after the residual addition a bottleneck block
has 4x its width in channels (up to 2048), and a 2-layer LSTM that wide costs 322 M parameters and
+0.49 GFLOPs on r3d-50 (16 frames). By default (``sr_hidden="width"``) the hidden size is capped at
the block's width (its ``planes``) and a linear layer maps h back to the C channels. That adds
+0.06 GFLOPs to r3d-50 and +0.13 to r3d-101 at 16 frames, the cost the SRTG paper reports (+0.06
and +0.14). On basic-block networks (18/34) the cap never binds: hidden = channels, no projection.
``sr_hidden="channels"`` gives the uncapped LSTM everywhere.

Temporal gate (``gate="cycle"``): per sample, the squeezed sequence s and its recalibrated version
s * (1 + h) are tested for cycle consistency with soft nearest neighbours, both ways (each frame
goes to its soft nearest neighbour in the other sequence and must come back to itself). Only the
samples that pass are recalibrated; the others pass through unchanged, so a batch where nobody
passes leaves the block the identity. Both sequences live in the same channel space, so the test is
meaningful from the first step and the gate starts open instead of collapsing to "always closed"
(comparing s with h itself, in unrelated spaces, fails almost always at initialisation, and a
closed gate sends the LSTM no gradient). ``gate_from_epoch`` delays the gate; ``set_epoch(model,
epoch)`` tells every SR block the current epoch. ``pass_rate`` holds the last batch's share of
passing samples, for logging.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model
from .resnet3d import (_LAYERS, BasicBlock, Bottleneck, ResNet3d, _r2plus1d_stem, _r3d_stem, conv2plus1d,
                       conv3x3x3, stage_widths)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, T, T) squared Euclidean distances between the frames of a and b (N, T, C); written out
    rather than torch.cdist, which has no ONNX translation."""
    return (a[:, :, None] - b[:, None]).pow(2).sum(-1)


def cycle_consistent(u: torch.Tensor, v: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """(N,) bool: for every frame i of u (N, T, C), the soft nearest neighbour of u_i in v has u_i as
    a nearest neighbour in u. Frames are compared as temporally centred, unit-length vectors. "A
    nearest" and not "the argmin": identical frames (a video's repeated last frame, a static shot) tie,
    and every frame of a tie counts as its own nearest neighbour."""
    u = F.normalize(u - u.mean(1, keepdim=True), dim=-1)
    v = F.normalize(v - v.mean(1, keepdim=True), dim=-1)
    soft = torch.softmax(-_squared_distances(u, v) / temperature, dim=-1) @ v
    d = _squared_distances(soft, u)  # d[n, i, j]: soft neighbour of u_i to u_j
    own = d.diagonal(dim1=1, dim2=2)
    return (own <= d.amin(-1) * (1 + 1e-6) + 1e-12).all(-1)


class LSTM(nn.Module):
    """The SR block's LSTM: batch-first, unidirectional, zero initial state, no dropout or projection.
    Parameters and initialisation are nn.LSTM's, under nn.LSTM's names (``weight_ih_l0``, ...), so
    state_dicts are interchangeable with nn.LSTM's. Runs torch's fused LSTM kernel, except under
    torch.compile, which cannot trace LSTMs: there the same equations run one time step at a time
    (gates i, f, g, o in PyTorch's order). ``forward`` returns (h of every step, None)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 2):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        bound = hidden_size ** -0.5
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size
            for name, shape in ((f"weight_ih_l{layer}", (4 * hidden_size, n_in)),
                                (f"weight_hh_l{layer}", (4 * hidden_size, hidden_size)),
                                (f"bias_ih_l{layer}", (4 * hidden_size,)), (f"bias_hh_l{layer}", (4 * hidden_size,))):
                self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, batch_first=True"

    def _weights(self, layer: int):
        return [getattr(self, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def forward(self, seq: torch.Tensor):
        if torch.compiler.is_compiling():
            return self._steps(seq), None
        zeros = seq.new_zeros(self.num_layers, seq.shape[0], self.hidden_size)
        flat = [w for layer in range(self.num_layers) for w in self._weights(layer)]
        return torch._VF.lstm(seq, (zeros, zeros), flat, True, self.num_layers, 0.0, self.training, False, True)[0], None

    def _steps(self, seq: torch.Tensor) -> torch.Tensor:
        out = seq
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._weights(layer)
            inputs = out @ w_ih.t() + (b_ih + b_hh)
            h = c = seq.new_zeros(seq.shape[0], self.hidden_size)
            steps = []
            for t in range(seq.shape[1]):
                i, f, g, o = (inputs[:, t] + h @ w_hh.t()).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                steps.append(h)
            out = torch.stack(steps, 1)
        return out


class SqueezeRecursion(nn.Module):
    """SR block on C channels; ``hidden`` (default C) is the LSTM width, mapped back to C by a linear
    layer when it differs."""

    RECALIB = ("residual", "original")
    COMPARE = ("recalibrated", "hidden")

    def __init__(self, channels: int, layers: int = 2, gate: str = "cycle", gate_from_epoch: int = 0,
                 temperature: float = 0.1, hidden: Optional[int] = None, recalib: str = "residual",
                 gate_compare: str = "recalibrated"):
        super().__init__()
        if gate not in ("none", "cycle"):
            raise ValueError(f"SqueezeRecursion: gate must be 'none' or 'cycle', got {gate!r}")
        if recalib not in self.RECALIB or gate_compare not in self.COMPARE:
            raise ValueError(f"SqueezeRecursion: recalib must be one of {self.RECALIB} and gate_compare one of "
                             f"{self.COMPARE}, got {recalib!r}, {gate_compare!r}")
        self.recalib, self.gate_compare = recalib, gate_compare
        hidden = channels if hidden is None else int(hidden)
        if hidden <= 0:
            raise ValueError(f"SqueezeRecursion: hidden size must be positive, got {hidden}")
        self.lstm = LSTM(channels, hidden, layers)
        self.proj = nn.Linear(hidden, channels) if hidden != channels else None
        self.gate, self.gate_from_epoch, self.temperature = gate, int(gate_from_epoch), float(temperature)
        self.epoch = 0
        self.register_buffer("pass_rate", torch.ones(()), persistent=False)
        # samples tested and passed since the last gate_pass_rate(model, reset=True)
        self.register_buffer("gate_counts", torch.zeros(2), persistent=False)

    def extra_repr(self) -> str:
        return (f"gate={self.gate}, gate_from_epoch={self.gate_from_epoch}, recalib={self.recalib}, "
                f"gate_compare={self.gate_compare}")

    def forward(self, x):
        seq = x.mean((3, 4)).transpose(1, 2)  # (N, T, C)
        h, _ = self.lstm(seq)
        if self.proj is not None:
            h = torch.tanh(self.proj(h))  # in (-1, 1) as the LSTM's own outputs, so 1 + h stays in (0, 2)
        scale = 1 + h if self.recalib == "residual" else h
        out = x * scale.transpose(1, 2)[..., None, None]
        if self.gate == "none" or self.epoch < self.gate_from_epoch:
            return out
        with torch.no_grad():
            s = seq.detach()
            r = (seq * scale).detach() if self.gate_compare == "recalibrated" else h.detach()
            passed = cycle_consistent(s, r, self.temperature) & cycle_consistent(r, s, self.temperature)
            self.pass_rate.fill_(passed.float().mean())
            # the count as a reduction, not new_tensor(numel()): under tracing (fvcore's FLOP count)
            # numel() is a tensor and new_tensor warns on every call
            self.gate_counts += torch.stack([torch.ones_like(passed, dtype=torch.float).sum(), passed.float().sum()])
        return torch.where(passed.view(-1, 1, 1, 1, 1), out, x)


def gate_pass_rate(model: nn.Module, reset: bool = False):
    """(samples tested, samples passed) by the temporal gates of ``model`` since the last reset, summed
    over its SR blocks; (0, 0) without gated SR blocks."""
    tested = passed = 0.0
    for m in model.modules():
        if isinstance(m, SqueezeRecursion):
            tested += float(m.gate_counts[0])
            passed += float(m.gate_counts[1])
            if reset:
                m.gate_counts.zero_()
    return tested, passed


def set_epoch(model: nn.Module, epoch: int) -> None:
    """Tell every SR block the current epoch (gates switch on at ``gate_from_epoch``)."""
    for m in model.modules():
        if isinstance(m, SqueezeRecursion):
            m.epoch = int(epoch)


class SRBlock(nn.Module):
    """A residual block (basic or bottleneck) with an SR block at ``place``: start (block input),
    top (after the first conv), mid (before the residual addition), end (after it), final (after the
    last ReLU). ``sr_hidden``: "width" caps the LSTM at the block's width, "channels" does not."""

    PLACES = ("start", "top", "mid", "end", "final")
    HIDDEN = ("width", "channels")

    def __init__(self, body, n_in, planes, conv, stride=1, downsample=None, *, place="final",
                 sr_hidden="width", **sr_kw):
        super().__init__()
        if place not in self.PLACES:
            raise ValueError(f"SRTG place must be one of {self.PLACES}, got {place!r}")
        if sr_hidden not in self.HIDDEN:
            raise ValueError(f"SRTG sr_hidden must be one of {self.HIDDEN}, got {sr_hidden!r}")
        self.body = body(n_in, planes, conv, stride, downsample)
        self.place = place
        channels = {"start": n_in, "top": planes}.get(place, planes * body.expansion)
        hidden = min(channels, planes) if sr_hidden == "width" else channels
        self.sr = SqueezeRecursion(channels, hidden=hidden, **sr_kw)

    def forward(self, x):
        b = self.body
        if self.place == "start":
            x = self.sr(x)
        shortcut = x if b.downsample is None else b.downsample(x)
        convs = [b.conv1, b.conv2] + ([b.conv3] if hasattr(b, "conv3") else [])
        y = convs[0](x)
        if self.place == "top":
            y = self.sr(y)
        for conv in convs[1:]:
            y = conv(y)
        if self.place == "mid":
            y = self.sr(y)
        y = y + shortcut
        if self.place == "end":
            y = self.sr(y)
        y = b.relu(y)
        return self.sr(y) if self.place == "final" else y


def _srtg(depth, conv, stem, num_classes, pool, place="final", gate="cycle", gate_from_epoch=0,
          sr_hidden="width", recalib="residual", gate_compare="recalibrated", **kw):
    body = BasicBlock if depth < 50 else Bottleneck

    def block(n_in, planes, conv_, stride=1, downsample=None):
        return SRBlock(body, n_in, planes, conv_, stride, downsample, place=place, gate=gate,
                       gate_from_epoch=gate_from_epoch, sr_hidden=sr_hidden, recalib=recalib,
                       gate_compare=gate_compare)
    block.expansion = body.expansion
    return ResNet3d(block, _LAYERS[depth], conv, stem, num_classes, pool=pool, **kw)


def _register(prefix, conv, stem):
    for depth in (18, 34, 50, 101):
        def builder(num_classes: int = 400, pool: str = "max", depth=depth, base_width: int = 64, **kw):
            return _srtg(depth, conv, stem(base_width), num_classes, pool, widths=stage_widths(base_width), **kw)
        builder.__name__ = f"srtg_{prefix}_{depth}"
        builder.__doc__ = (f"SRTG {prefix}-{depth}: an SR block in every residual block "
                           "(place=final, gate=cycle, gate_from_epoch=0, sr_hidden=width by default)")
        register_model(builder)


_register("r3d", conv3x3x3, _r3d_stem)
_register("r2plus1d", conv2plus1d, _r2plus1d_stem)
