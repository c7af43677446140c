"""Spatial clip transforms on uint8 frames (T, H, W, 3) -> float clips (C, T, H, W).

Training: short side scaled to a random size in the shape's jitter range, a random square crop of
the shape's crop size, a horizontal flip with probability 1/2, normalisation. Testing: short side to
the test crop size, then 1 (centre) or 3 (along the longer side) square crops, normalised.
Crops and flips are done on uint8 before conversion to float, so the float work is on crops only.
Resizing, cropping and flipping use ``torchvision.transforms.v2.functional``.
"""
from __future__ import annotations

import random
from typing import List, Optional, Sequence

import torch
from torchvision.transforms.v2 import functional as TF

from .sampling import ClipShape, spatial_crop_boxes


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, C, H, W) frames with the short side at ``size`` (aspect ratio kept)."""
    if min(frames.shape[-2:]) == size:
        return frames
    return TF.resize(frames, [size], antialias=True)


def normalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (T, C, H, W) -> float32 (C, T, H, W), scaled to [0, 1] then (x - mean) / std per channel.
    Done as one converting copy and two in-place passes (x * 1/(255 std) - mean/std) rather than
    v2's to_dtype + normalize + transpose, which take five passes over the clip."""
    c = frames.shape[1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need {c} values (one per channel), got {len(mean)} and {len(std)}")
    out = torch.empty((c,) + frames.shape[:1] + frames.shape[2:], dtype=torch.float32)
    out.copy_(frames.transpose(0, 1))
    scale = torch.tensor([1 / (255 * s) for s in std]).view(c, 1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)]).view(c, 1, 1, 1)
    return out.mul_(scale).sub_(shift)


def _to_tchw(frames: torch.Tensor) -> torch.Tensor:
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


def jitter_short_side(shape: ClipShape, rng: random.Random) -> int:
    """A random short side in the shape's jitter range (never below the crop)."""
    lo, hi = shape.jitter_scales
    return max(rng.randint(lo, hi), shape.crop_size)


def train_transform(frames: torch.Tensor, shape: ClipShape, mean: Sequence[float], std: Sequence[float],
                    rng: random.Random, flip: bool = True, short_side: Optional[int] = None) -> torch.Tensor:
    """``short_side``: the jittered scale when it was drawn already (e.g. to decode at that size)."""
    x = _to_tchw(frames)
    x = resize_short_side(x, jitter_short_side(shape, rng) if short_side is None else short_side)
    h, w = x.shape[-2:]
    top, left = rng.randint(0, h - shape.crop_size), rng.randint(0, w - shape.crop_size)
    x = TF.crop(x, top, left, shape.crop_size, shape.crop_size)
    if flip and rng.random() < 0.5:
        x = TF.horizontal_flip(x)
    return normalize(x, mean, std)


def eval_transform(frames: torch.Tensor, crop_size: int, crops: int, mean: Sequence[float],
                   std: Sequence[float]) -> List[torch.Tensor]:
    """One normalised (C, T, crop, crop) clip per spatial crop, in left/centre/right order."""
    x = resize_short_side(_to_tchw(frames), crop_size)
    h, w = x.shape[-2:]
    return [normalize(TF.crop(x, top, left, crop_size, crop_size), mean, std)
            for top, left in spatial_crop_boxes(h, w, crop_size, crops)]
