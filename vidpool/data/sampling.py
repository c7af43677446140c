"""Temporal clip sampling in frame indices, frame-rate aware.

A clip is ``num_frames`` frames taken every ``sampling_rate`` frames *at ``target_fps``*: in a video
of ``fps`` frames per second the step is ``sampling_rate * fps / target_fps`` source frames, so a clip
spans the same time whatever the video's frame rate (PySlowFast's convention, target 30 fps).

Windows are half-open frame ranges [start, end) (an annotated segment, or the whole video). When
the window is shorter than the clip, ``short="repeat"`` repeats the window's last frame and
``short="loop"`` wraps around to the window's start.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

SHORT_MODES = ("repeat", "loop")


@dataclass(frozen=True)
class ClipShape:
    """What one batch's clips look like: frames, sampling rate (at the target fps), crop size and the
    short-side jitter range for training. The sampler hands it to the dataset with every index."""
    num_frames: int
    sampling_rate: int
    crop_size: int
    jitter_scales: Tuple[int, int]
    max_sampling_rate: int = 0  # > sampling_rate: training draws each clip's rate from [sampling_rate, this]

    def __post_init__(self):
        if self.num_frames < 1 or self.sampling_rate < 1 or self.crop_size < 1:
            raise ValueError(f"ClipShape: frames, sampling rate and crop must be >= 1, got {self}")
        if self.max_sampling_rate and self.max_sampling_rate < self.sampling_rate:
            raise ValueError(f"ClipShape: max_sampling_rate must be 0 or >= sampling_rate, got {self}")
        lo, hi = self.jitter_scales
        if not 0 < lo <= hi:
            raise ValueError(f"ClipShape: jitter scales must satisfy 0 < min <= max, got {self.jitter_scales}")


def frame_window(fps: float, num_frames: int, start_sec: Optional[float], end_sec: Optional[float]) -> Tuple[int, int]:
    """[start, end) frame range of a segment given in seconds (None: the video's start / end),
    clipped to the video; never empty for a non-empty video."""
    if num_frames <= 0:
        raise ValueError("frame_window: the video has no frames")
    lo = 0 if start_sec is None else int(math.floor(start_sec * fps + 1e-6))
    hi = num_frames if end_sec is None else int(math.ceil(end_sec * fps - 1e-6))
    lo = min(max(lo, 0), num_frames - 1)
    hi = min(max(hi, lo + 1), num_frames)
    return lo, hi


def clip_step(sampling_rate: int, fps: float, target_fps: float) -> float:
    return sampling_rate * fps / target_fps


def clip_indices(window: Tuple[int, int], num_frames: int, step: float, offset: float,
                 short: str = "repeat") -> List[int]:
    """Indices of a clip starting ``offset`` source frames into ``window``, one every ``step``."""
    if short not in SHORT_MODES:
        raise ValueError(f"short-clip mode must be one of {SHORT_MODES}, got {short!r}")
    lo, hi = window
    length = hi - lo
    out = []
    for i in range(num_frames):
        pos = int(math.floor(offset + i * step + 1e-6))
        if pos >= length:
            pos = pos % length if short == "loop" else length - 1
        out.append(lo + pos)
    return out


def _span(num_frames: int, step: float) -> float:
    """Source frames a clip covers: from its first frame to one step past its last."""
    return num_frames * step


def random_clip(window: Tuple[int, int], num_frames: int, step: float, rng: random.Random,
                short: str = "repeat") -> List[int]:
    """A clip at a uniformly random position inside the window (the start when it does not fit)."""
    slack = (window[1] - window[0]) - _span(num_frames, step)
    return clip_indices(window, num_frames, step, rng.uniform(0, slack) if slack > 0 else 0.0, short)


def uniform_clips(window: Tuple[int, int], num_frames: int, step: float, views: int,
                  short: str = "repeat") -> List[List[int]]:
    """``views`` clips evenly spaced from the window's start to its end (one view: the centred clip)."""
    if views < 1:
        raise ValueError(f"number of temporal views must be >= 1, got {views}")
    slack = max(0.0, (window[1] - window[0]) - _span(num_frames, step))
    offsets = [slack / 2] if views == 1 else [slack * v / (views - 1) for v in range(views)]
    return [clip_indices(window, num_frames, step, o, short) for o in offsets]


def spatial_crop_boxes(height: int, width: int, crop: int, crops: int) -> Sequence[Tuple[int, int]]:
    """Top-left corners of ``crops`` (1: centre; 3: start, centre, end along the longer side)
    square crops of size ``crop`` in a height x width frame."""
    if crops not in (1, 3):
        raise ValueError(f"number of spatial crops must be 1 or 3, got {crops}")
    if crop > height or crop > width:
        raise ValueError(f"crop {crop} larger than the frame {height}x{width}")
    cy, cx = (height - crop) // 2, (width - crop) // 2
    if crops == 1:
        return [(cy, cx)]
    if width >= height:
        return [(cy, 0), (cy, cx), (cy, width - crop)]
    return [(0, cx), (cy, cx), (height - crop, cx)]
