"""Grad-CAM class activation maps of 3D CNNs (Selvaraju et al. 2017, over space and time).

The map of class c at a layer with activations A (C, T', H', W') is relu(sum_k w_k A_k), with w_k
the mean over (T', H', W') of d logit_c / d A_k; it is upsampled (trilinear) to the clip's size and
scaled to [0, 1]. The default layer is the model's last stage (``stage_names(model)[-1]``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def last_stage(model: nn.Module) -> nn.Module:
    from vidpool.models.heads import stage_names

    return model.get_submodule(stage_names(model)[-1])


def grad_cam(model: nn.Module, clip: torch.Tensor, target: Optional[int] = None,
             layer: Optional[nn.Module] = None) -> Tuple[torch.Tensor, int, torch.Tensor]:
    """Grad-CAM of ``clip`` (1, 3, T, H, W) for class ``target`` (default: the predicted one).
    Returns the map (T, H, W) in [0, 1], the class, and the softmax scores."""
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise ValueError(f"grad_cam: expected one clip of shape (1, 3, T, H, W), got {tuple(clip.shape)}")
    layer = layer if layer is not None else last_stage(model)
    saved = {}

    def keep(module, args, output):
        saved["a"] = output
        output.register_hook(lambda g: saved.__setitem__("g", g))

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(clip)
            cls = int(logits.argmax(1)) if target is None else int(target)
            if not 0 <= cls < logits.shape[1]:
                raise ValueError(f"grad_cam: class {cls} is not in 0..{logits.shape[1] - 1}")
            model.zero_grad(set_to_none=True)
            logits[0, cls].backward()
    finally:
        handle.remove()
        model.train(was_training)
    a, g = saved["a"].detach()[0], saved["g"][0]
    weights = g.mean(dim=(1, 2, 3))
    cam = F.relu((weights[:, None, None, None] * a).sum(0))
    cam = F.interpolate(cam[None, None], size=clip.shape[2:], mode="trilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    peak = cam.max()
    cam = cam / peak if peak > 0 else cam
    return cam, cls, logits.detach().softmax(1)[0]


def overlay(frames: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 (T, H, W, 3) frames blended with the map (T, H, W) in the jet colour map."""
    from matplotlib import colormaps

    heat = (colormaps["jet"](cam)[..., :3] * 255).astype(np.float32)
    return np.clip((1 - alpha) * frames.astype(np.float32) + alpha * heat, 0, 255).astype(np.uint8)
