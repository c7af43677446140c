"""SGD with per-group LR factors, and the learning-rate schedule as a function of (fractional) epoch.

Policies: ``steps_with_relative_lrs`` (phase i starts at SOLVER.STEPS[i] and runs at
BASE_LR x SOLVER.LRS[i]; the paper: 0.1, x0.1 every 40 epochs, 100 epochs) and ``cosine`` (from
BASE_LR down to COSINE_END_LR at MAX_EPOCH). A linear warm-up from WARMUP_START_LR to the policy's
LR covers the first WARMUP_EPOCHS. The LR is set every iteration from the fractional epoch, so a
resumed run follows the same schedule.
"""
from __future__ import annotations

import bisect
import math

import torch
from torch import nn

from vidpool.models.heads import classifier_name

POLICIES = ("steps_with_relative_lrs", "cosine")


def check_schedule(solver) -> None:
    if solver.LR_POLICY not in POLICIES:
        raise ValueError(f"SOLVER.LR_POLICY must be one of {POLICIES}, got {solver.LR_POLICY!r}")
    if solver.LR_POLICY == "steps_with_relative_lrs":
        steps, lrs = list(solver.STEPS), list(solver.LRS)
        if not steps or steps[0] != 0 or steps != sorted(steps) or len(steps) != len(lrs):
            raise ValueError(f"SOLVER.STEPS must start at 0, increase, and match SOLVER.LRS in length; "
                             f"got STEPS={steps}, LRS={lrs}")


def policy_lr(solver, epoch: float) -> float:
    if solver.LR_POLICY == "cosine":
        t = min(max(epoch / solver.MAX_EPOCH, 0.0), 1.0)
        return solver.COSINE_END_LR + (solver.BASE_LR - solver.COSINE_END_LR) * 0.5 * (1 + math.cos(math.pi * t))
    phase = bisect.bisect_right(list(solver.STEPS), epoch) - 1
    return solver.BASE_LR * solver.LRS[max(phase, 0)]


def lr_at(solver, epoch: float) -> float:
    """The learning rate at fractional ``epoch`` (warm-up included)."""
    lr = policy_lr(solver, epoch)
    if epoch < solver.WARMUP_EPOCHS:
        end = policy_lr(solver, solver.WARMUP_EPOCHS)
        lr = solver.WARMUP_START_LR + (end - solver.WARMUP_START_LR) * epoch / solver.WARMUP_EPOCHS
    return lr


def build_optimizer(model: nn.Module, solver, backbone_lr_scale: float = 1.0) -> torch.optim.SGD:
    """SGD over the trainable parameters in up to four groups (classifier or backbone x decayed or not);
    each group's ``lr_scale`` multiplies the scheduled LR."""
    check_schedule(solver)
    model = getattr(model, "module", model)  # DistributedDataParallel: the same parameters, unprefixed names
    head = classifier_name(model) + "."
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith(head)
        no_decay = solver.ZERO_WD_1D_PARAM and p.dim() <= 1
        key = (is_head, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr_scale": 1.0 if is_head else float(backbone_lr_scale),
                           "weight_decay": 0.0 if no_decay else solver.WEIGHT_DECAY}
        groups[key]["params"].append(p)
    if not groups:
        raise ValueError("no trainable parameters (are all stages frozen?)")
    return torch.optim.SGD([groups[k] for k in sorted(groups)], lr=solver.BASE_LR, momentum=solver.MOMENTUM,
                           nesterov=solver.NESTEROV and solver.MOMENTUM > 0, weight_decay=solver.WEIGHT_DECAY)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
