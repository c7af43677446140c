"""Multigrid schedules (Wu et al., "A Multigrid Method for Efficiently Training Video Models", CVPR 2020).

The long cycle trains on a sequence of clip shapes, small ones with large batches first, within each
LR step; the short cycle varies the crop from batch to batch. This module computes the schedule
PySlowFast's multigrid computes for the same config values, without changing the config:

- ``long_cycle_schedule(cfg)``: ``[(lr_step_index, (batch_factor, num_frames, crop_size), end_epoch), ...]``,
  the last entry being the fine-tuning phase at the full shape;
- ``multigrid_solver(cfg)``: a copy of ``cfg.SOLVER`` with the STEPS, LRS and MAX_EPOCH multigrid
  trains with (long cycle: one LR phase per schedule entry, the relative LR of an entry being its
  step's ``SOLVER.LRS`` value times its batch factor; short cycle only: the steps and the epoch count
  stretched by ``MULTIGRID.EPOCH_FACTOR``); the first MULTIGRID.FINETUNE_HOLD share of the
  fine-tuning phase keeps the LR of the phase before it (PySlowFast: half; with a one-step base
  schedule that halves the only low-LR phase, so 0 trains all of it at the last step's LR);
- ``epoch_shape`` / ``short_cycle``: the clip shapes and batch sizes the engine hands the batch sampler;
- ``SplitBatchNorm3d``: batch norm with statistics over groups of MULTIGRID.BN_BASE_SIZE clips.

Differences from PySlowFast: the fine-tuning phase uses the last long-cycle shape whether or not
the short cycle is on (PySlowFast indexes a short-cycle shape there and fails without it); the
relative LRs come from ``SOLVER.LRS`` (PySlowFast uses ``SOLVER.GAMMA ** step``; the two agree for
LRS = [1, GAMMA, GAMMA**2, ...] as in the paper's configs); a short-cycle crop is never larger than
the current crop (PySlowFast's batch factor rounds to 0 there). As in PySlowFast the short cycle's
crops are SHORT_CYCLE_FACTORS x the default crop (DATA.TRAIN_CROP_SIZE) and its batch factors the
area ratio to the current crop, so the batches trained are those the epoch split assumes.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from vidpool.data.sampling import ClipShape

Shape = Tuple[int, int, int]  # (batch factor, frames, crop size)
Phase = Tuple[int, Shape, int]  # (LR step index, shape, end epoch)


def _check(cfg) -> None:
    from vidpool.config.check import ConfigError

    mg, solver = cfg.MULTIGRID, cfg.SOLVER
    if mg.EPOCH_FACTOR <= 0:
        raise ConfigError(f"MULTIGRID.EPOCH_FACTOR must be > 0, got {mg.EPOCH_FACTOR}")
    if not 0 <= mg.FINETUNE_HOLD < 1:
        raise ConfigError(f"MULTIGRID.FINETUNE_HOLD must be in [0, 1), got {mg.FINETUNE_HOLD}")
    if mg.LONG_CYCLE:
        if solver.LR_POLICY != "steps_with_relative_lrs":
            raise ConfigError("MULTIGRID.LONG_CYCLE needs SOLVER.LR_POLICY steps_with_relative_lrs (each long-cycle "
                             f"shape has its own LR), got {solver.LR_POLICY!r}")
        steps = list(solver.STEPS)
        if len(steps) < 2 or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"MULTIGRID.LONG_CYCLE needs SOLVER.STEPS [0, s1, ...] strictly increasing, got {steps}")
        if solver.MAX_EPOCH <= steps[-1]:
            raise ConfigError(f"SOLVER.MAX_EPOCH ({solver.MAX_EPOCH}) must exceed the last step ({steps[-1]}): "
                             "the epochs after it are multigrid's fine-tuning phase")
        if len(solver.LRS) != len(steps):
            raise ConfigError(f"SOLVER.LRS must have one value per step, got STEPS={steps}, LRS={list(solver.LRS)}")
        factors = [tuple(f) for f in mg.LONG_CYCLE_FACTORS]
        if not factors or any(len(f) != 2 or min(f) <= 0 for f in factors):
            raise ConfigError(f"MULTIGRID.LONG_CYCLE_FACTORS must be (temporal, spatial) pairs > 0, got {factors}")
    if mg.SHORT_CYCLE and (len(mg.SHORT_CYCLE_FACTORS) != 2 or not all(0 < f < 1 for f in mg.SHORT_CYCLE_FACTORS)):
        raise ConfigError(f"MULTIGRID.SHORT_CYCLE_FACTORS must be two crop factors in (0, 1), "
                         f"got {list(mg.SHORT_CYCLE_FACTORS)}")


def _short_crops(cfg, crop: int) -> List[int]:
    """The two smaller crops of a short cycle whose full shape has ``crop``: SHORT_CYCLE_FACTORS x
    the default crop, at most ``crop``."""
    return [min(crop, max(1, int(round(f * cfg.DATA.TRAIN_CROP_SIZE)))) for f in cfg.MULTIGRID.SHORT_CYCLE_FACTORS]


def _cycle_shapes(cfg) -> List[List[Tuple[int, int, int]]]:
    """For each long-cycle factor, the shapes one short cycle visits as (batch factor, frames, crop):
    the two short-cycle crops when the short cycle is on, then the long-cycle shape itself. Batch
    factors are those training uses: the long-cycle factor keeps frames x crop^2 x batch equal to
    the default's, and a short-cycle crop multiplies it by its rounded area ratio to the current crop."""
    t0, s0 = cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE
    volume = float(t0 * s0 ** 2)
    out = []
    for tf, sf in cfg.MULTIGRID.LONG_CYCLE_FACTORS:
        t, s = int(round(t0 * tf)), int(round(s0 * sf))
        b = max(1, int(round(volume / (t * s * s))))
        crops = _short_crops(cfg, s) if cfg.MULTIGRID.SHORT_CYCLE else []
        out.append([(b * _area_factor(s, c), t, c) for c in crops] + [(b, t, s)])
    return out


def _area_factor(crop: int, smaller: int) -> int:
    return max(1, int(round((crop / smaller) ** 2)))


def long_cycle_schedule(cfg) -> List[Phase]:
    """The long-cycle schedule (see the module docstring); raises ValueError on unusable settings."""
    _check(cfg)
    if not cfg.MULTIGRID.LONG_CYCLE:
        raise ValueError("long_cycle_schedule: MULTIGRID.LONG_CYCLE is off")
    steps, max_epoch = list(cfg.SOLVER.STEPS), cfg.SOLVER.MAX_EPOCH
    cycles = _cycle_shapes(cfg)
    mean_batch = [sum(b for b, _, _ in shapes) / len(shapes) for shapes in cycles]
    total_batch = sum(mean_batch)
    # Within every LR step each shape gets epochs in proportion to its mean batch factor, so each
    # shape runs the same number of iterations.
    raw, iterations = [], 0.0
    for step in range(len(steps) - 1):
        span = steps[step + 1] - steps[step]
        for shapes, b in zip(cycles, mean_batch):
            epochs = span * b / total_batch
            iterations += epochs / b
            raw.append((step, shapes[-1], epochs))
    # The fine-tuning phase (after the last step, at the last long-cycle shape) saves iterations at
    # the same rate as the rest.
    saving = steps[-1] / iterations
    raw.append((len(steps) - 1, cycles[-1][-1], (max_epoch - steps[-1]) / saving * mean_batch[-1]))
    # Stretch to EPOCH_FACTOR x the configured epochs; phase ends are rounded cumulative epochs.
    scale = max_epoch * cfg.MULTIGRID.EPOCH_FACTOR / sum(e for _, _, e in raw)
    schedule, end = [], 0.0
    for step, (b, t, s), epochs in raw:
        end += epochs * scale
        schedule.append((step, (int(b), int(t), int(s)), int(round(end))))
    return schedule


def multigrid_solver(cfg):
    """A copy of cfg.SOLVER with the steps, relative LRs and epoch count multigrid trains with (the
    unchanged copy when multigrid is off). The config itself is never modified."""
    _check(cfg)
    solver = cfg.SOLVER.clone()
    solver.defrost()
    mg = cfg.MULTIGRID
    if mg.LONG_CYCLE:
        schedule = long_cycle_schedule(cfg)
        ends = [e for _, _, e in schedule]
        lrs = [cfg.SOLVER.LRS[step] * b for step, (b, _, _), _ in schedule]
        # the fine-tuning phase: its first MULTIGRID.FINETUNE_HOLD share keeps the LR of the phase before it
        held = int(ends[-2] + mg.FINETUNE_HOLD * (ends[-1] - ends[-2]))
        if held > ends[-2]:
            solver.STEPS = [0] + ends[:-2] + [ends[-2], held]
            solver.LRS = lrs[:-1] + [lrs[-2], lrs[-1]]
        else:
            solver.STEPS = [0] + ends[:-1]
            solver.LRS = lrs
        solver.MAX_EPOCH = ends[-1]
    elif mg.SHORT_CYCLE:
        solver.STEPS = [int(s * mg.EPOCH_FACTOR) for s in cfg.SOLVER.STEPS]
        solver.MAX_EPOCH = int(cfg.SOLVER.MAX_EPOCH * mg.EPOCH_FACTOR)
    solver.freeze()
    return solver


def shape_at(schedule: Sequence[Phase], epoch: int) -> Shape:
    """The long-cycle shape for (0-based) ``epoch``: that of the first phase ending after it."""
    ends = [e for _, _, e in schedule]
    i = bisect.bisect_right(ends, epoch)
    return schedule[min(i, len(schedule) - 1)][1]


def _scaled_jitter(scales, crop: int, reference_crop: int) -> Tuple[int, int]:
    """Short-side jitter range for ``crop``, scaled from the one used with ``reference_crop`` (never
    below the crop)."""
    return tuple(max(crop, int(round(v * crop / reference_crop))) for v in scales)


def epoch_shape(cfg, schedule: Optional[Sequence[Phase]], epoch: int) -> Tuple[ClipShape, int]:
    """The training clip shape and total batch size of ``epoch``: the config's, or the long cycle's
    (frames, crop and batch factor of the phase; the sampling rate drawn per clip between
    DATA.SAMPLING_RATE and SAMPLING_RATE x (NUM_FRAMES // frames), so a clip spans about the same
    time; the jitter scales scaled with the crop)."""
    d = cfg.DATA
    if not schedule:
        return ClipShape(d.NUM_FRAMES, d.SAMPLING_RATE, d.TRAIN_CROP_SIZE, tuple(d.TRAIN_JITTER_SCALES)), \
            cfg.TRAIN.BATCH_SIZE
    factor, frames, crop = shape_at(schedule, epoch)
    longest = d.SAMPLING_RATE * max(1, d.NUM_FRAMES // frames)
    jitter = _scaled_jitter(d.TRAIN_JITTER_SCALES, crop, d.TRAIN_CROP_SIZE)
    shape = ClipShape(frames, d.SAMPLING_RATE, crop, jitter, longest if longest > d.SAMPLING_RATE else 0)
    return shape, cfg.TRAIN.BATCH_SIZE * factor


def short_cycle(cfg, shape: ClipShape, batch_size: int) -> List[Tuple[ClipShape, int]]:
    """The (shape, batch size) pairs one short cycle visits: crops MULTIGRID.SHORT_CYCLE_FACTORS x the
    default crop (at most the current crop) with the batch scaled by the rounded area ratio to the
    current crop (so every iteration costs about the same), then ``shape`` itself with
    ``batch_size``. Jitter scales follow each crop."""
    out = []
    for crop in _short_crops(cfg, shape.crop_size):
        jitter = _scaled_jitter(shape.jitter_scales, crop, shape.crop_size)
        out.append((dataclasses.replace(shape, crop_size=crop, jitter_scales=jitter),
                    batch_size * _area_factor(shape.crop_size, crop)))
    return out + [(shape, batch_size)]


def format_schedule(schedule: Sequence[Phase]) -> str:
    lines = ["LR step  batch x  frames  crop  until epoch"]
    lines += [f"{step:7d}  {b:7d}  {t:6d}  {s:4d}  {end:11d}" for step, (b, t, s), end in schedule]
    return "\n".join(lines)


class SplitBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d whose training-mode statistics are computed per group of ``group_size``
    consecutive clips (PySlowFast's "sub-batch BN"), so the number of clips behind each statistic
    stays MULTIGRID.BN_BASE_SIZE when multigrid multiplies the batch. A batch that ``group_size``
    does not divide is split into the most equal groups of at least ``group_size`` clips; a batch of
    at most ``group_size`` clips (or ``group_size`` 0) is one group, as in BatchNorm3d. The running
    statistics are updated with the pooled mean and variance of the whole batch, exactly as
    BatchNorm3d would; evaluation, parameters, buffers and state_dict keys are BatchNorm3d's."""

    group_size = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0] // self.group_size if self.group_size and x.dim() == 5 else 1
        while k > 1 and x.shape[0] % k:
            k -= 1
        if not self.training or k <= 1:
            return super().forward(x)
        n, c = x.shape[:2]
        groups = x.reshape(k, n // k, c, *x.shape[2:]).transpose(0, 1).reshape(n // k, k * c, *x.shape[2:])
        weight = self.weight.repeat(k) if self.weight is not None else None
        bias = self.bias.repeat(k) if self.bias is not None else None
        y = F.batch_norm(groups, None, None, weight, bias, True, 0.0, self.eps)
        if self.track_running_stats:
            with torch.no_grad():  # the whole batch's statistics, unbiased variance as BatchNorm keeps
                dims = [0] + list(range(2, x.dim()))
                pooled_mean, pooled_var = x.mean(dims), x.var(dims, unbiased=True)
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(pooled_mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(pooled_var.to(self.running_var.dtype), alpha=m)
        return y.reshape(n // k, k, c, *x.shape[2:]).transpose(0, 1).reshape(x.shape)


def use_split_batchnorm(model: nn.Module) -> int:
    """Replace every BatchNorm3d of ``model`` by a SplitBatchNorm3d holding the same parameters and
    statistics (call before freezing stages or wrapping for DDP); returns how many were replaced."""
    replaced = 0
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm3d:
            new = SplitBatchNorm3d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats, device=child.weight.device if child.affine else None)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
            replaced += 1
        else:
            replaced += use_split_batchnorm(child)
    return replaced


def set_batchnorm_group(model: nn.Module, clips: int) -> None:
    """Compute the training statistics of every SplitBatchNorm3d over groups of ``clips`` clips."""
    for m in model.modules():
        if isinstance(m, SplitBatchNorm3d):
            m.group_size = int(clips)
