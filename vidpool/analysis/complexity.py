"""Model size and cost: parameters, GFLOPs and activations (fvcore), and a training-step time.

fvcore counts one fused multiply-add as one FLOP, as the SoftPool and SRTG papers' GFLOPs do.
Operators fvcore has no rule for (pooling, including vidpool's SoftPool, and elementwise ops) are
not counted; the paper reports the same GFLOPs with and without SoftPool for the same reason.
LSTMs (SRTG) are counted by ``lstm_flop_handle``.
"""
from __future__ import annotations

import logging
import statistics
import time

import torch

log = logging.getLogger(__name__)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lstm_flop_handle(inputs, outputs):
    """Multiply-adds of ``aten::lstm`` (fvcore has no rule for it): per layer and time step,
    4 gates x hidden x (input + hidden) for each sample."""
    from fvcore.nn.jit_handles import get_shape

    x, out = get_shape(inputs[0]), get_shape(outputs[0])
    layers, batch_first = inputs[4].toIValue(), inputs[8].toIValue()
    n, t = (x[0], x[1]) if batch_first else (x[1], x[0])
    c, h = x[2], out[2]
    return n * t * 4 * h * ((c + h) + (layers - 1) * (2 * h))


def flops_and_activations(model: torch.nn.Module, clip: torch.Tensor):
    """(GFLOPs as multiply-adds, million activations) of one forward pass on ``clip``."""
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    model = model.eval()
    with torch.no_grad():
        flops = FlopCountAnalysis(model, clip).set_op_handle("aten::lstm", lstm_flop_handle)
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        acts = ActivationCountAnalysis(model, clip)
        acts.unsupported_ops_warnings(False)
        acts.uncalled_modules_warnings(False)
        return flops.total() / 1e9, acts.total() / 1e6


def train_step(model: torch.nn.Module, clip: torch.Tensor):
    """A callable doing one SGD step (forward, cross-entropy, backward, update) of ``model`` on ``clip``."""
    model = model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    target = torch.zeros(clip.shape[0], dtype=torch.long)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(clip), target).backward()
        opt.step()

    return step


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_seconds(model: torch.nn.Module, clip: torch.Tensor, repeats: int = 3) -> float:
    """Median time of one ``train_step`` on ``clip``, after one warm-up step."""
    return median_seconds(train_step(model, clip), repeats)
