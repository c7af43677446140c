"""Spatial clip transforms on uint8 frames (T, H, W, 3) -> uint8 clips (C, T, H, W), and the
normalisation that turns those into the model's float input.

Training: short side scaled to a random size in the shape's jitter range, a random square crop of
the shape's crop size, a horizontal flip with probability 1/2. Testing: short side to the test crop
size, then 1 (centre) or 3 (along the longer side) square crops. Resizing, cropping and flipping use
``torchvision.transforms.v2.functional`` on uint8.

The data loader hands clips over as uint8 (a quarter of float32's bytes through the workers' shared
memory and the host-to-device copy); ``normalize`` (called by ``vidpool.models.model_input`` on the
device the model runs on) converts to float32 and normalises. ``train_transform`` /
``eval_transform`` are the crops followed by ``normalize`` on the CPU, for callers that want
finished float clips.
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


def normalize(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 clips (C, T, H, W) or batches (N, C, T, H, W) -> float32 on the same device, scaled to
    [0, 1] then (x - mean) / std per channel. One converting copy and two in-place passes
    (x * 1/(255 std) - mean/std) rather than v2's to_dtype + normalize, which take more passes over
    the clip; ``memory_format``: the layout of the result (e.g. channels_last_3d for a batch)."""
    if clips.dtype != torch.uint8 or clips.dim() not in (4, 5):
        raise ValueError(f"expected uint8 clips (C, T, H, W) or (N, C, T, H, W), got {clips.dtype} "
                         f"{tuple(clips.shape)}")
    c = clips.shape[-4]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need {c} values (one per channel), got {len(mean)} and {len(std)}")
    out = torch.empty_like(clips, dtype=torch.float32, memory_format=memory_format)
    out.copy_(clips)
    scale, shift = _constants(tuple(mean), tuple(std), clips.device)
    return out.mul_(scale).sub_(shift)


_CONSTANTS: dict = {}


def _constants(mean: tuple, std: tuple, device: torch.device):
    """1 / (255 std) and mean / std as (C, 1, 1, 1) float32 tensors on ``device``, made once (a copy
    to a GPU per batch would wait for the host)."""
    key = (mean, std, str(device))
    if key not in _CONSTANTS:
        c = len(std)
        _CONSTANTS[key] = (torch.tensor([1 / (255 * s) for s in std]).view(c, 1, 1, 1).to(device),
                           torch.tensor([m / s for m, s in zip(mean, std)]).view(c, 1, 1, 1).to(device))
    return _CONSTANTS[key]


def _to_cthw(frames: torch.Tensor) -> torch.Tensor:
    """(T, C, H, W) uint8 frames as one contiguous (C, T, H, W) clip."""
    return frames.transpose(0, 1).contiguous()


def _to_tchw(frames: torch.Tensor) -> torch.Tensor:
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


def jitter_short_side(shape: ClipShape, rng: random.Random) -> int:
    """A random short side in the shape's jitter range (never below the crop)."""
    lo, hi = shape.jitter_scales
    return max(rng.randint(lo, hi), shape.crop_size)


def train_crop(frames: torch.Tensor, shape: ClipShape, rng: random.Random, flip: bool = True,
               short_side: Optional[int] = None) -> torch.Tensor:
    """uint8 (C, T, crop, crop) training clip; ``short_side``: the jittered scale when it was drawn
    already (e.g. to decode at that size)."""
    x = _to_tchw(frames)
    x = resize_short_side(x, jitter_short_side(shape, rng) if short_side is None else short_side)
    h, w = x.shape[-2:]
    top, left = rng.randint(0, h - shape.crop_size), rng.randint(0, w - shape.crop_size)
    x = TF.crop(x, top, left, shape.crop_size, shape.crop_size)
    if flip and rng.random() < 0.5:
        x = TF.horizontal_flip(x)
    return _to_cthw(x)


def eval_crops(frames: torch.Tensor, crop_size: int, crops: int) -> List[torch.Tensor]:
    """One uint8 (C, T, crop, crop) clip per spatial crop, in left/centre/right order."""
    x = resize_short_side(_to_tchw(frames), crop_size)
    h, w = x.shape[-2:]
    return [_to_cthw(TF.crop(x, top, left, crop_size, crop_size))
            for top, left in spatial_crop_boxes(h, w, crop_size, crops)]


def train_transform(frames: torch.Tensor, shape: ClipShape, mean: Sequence[float], std: Sequence[float],
                    rng: random.Random, flip: bool = True, short_side: Optional[int] = None) -> torch.Tensor:
    """``train_crop`` then ``normalize``: a float32 (C, T, crop, crop) clip."""
    return normalize(train_crop(frames, shape, rng, flip, short_side), mean, std)


def eval_transform(frames: torch.Tensor, crop_size: int, crops: int, mean: Sequence[float],
                   std: Sequence[float]) -> List[torch.Tensor]:
    """``eval_crops`` then ``normalize``: one float32 (C, T, crop, crop) clip per spatial crop."""
    return [normalize(c, mean, std) for c in eval_crops(frames, crop_size, crops)]
