"""Temporal sampling positions, multi-view indices and spatial crop boxes, against hand-computed values."""
import random

import pytest

from vidpool.data.sampling import (ClipShape, clip_indices, clip_step, frame_window, random_clip,
                                   spatial_crop_boxes, uniform_clips)


def test_frame_window_from_seconds():
    assert frame_window(30, 300, 2.0, 4.0) == (60, 120)
    assert frame_window(25, 100, None, None) == (0, 100)
    assert frame_window(30, 300, 9.5, 12.0) == (285, 300)  # clipped to the video
    assert frame_window(30, 300, 20.0, 22.0) == (299, 300)  # past the end: the last frame, never empty
    assert frame_window(29.97, 1000, 1.0, 3.0) == (29, 90)  # floor(29.97), ceil(89.91)


def test_step_is_frame_rate_aware():
    assert clip_step(4, 30, 30) == 4
    assert clip_step(4, 60, 30) == 8  # same time span at twice the frame rate
    assert clip_step(2, 15, 30) == 1


def test_clip_indices_by_hand():
    assert clip_indices((10, 100), 4, 3.0, 5.0) == [15, 18, 21, 24]
    assert clip_indices((0, 50), 5, 1.5, 0.0) == [0, 1, 3, 4, 6]
    # a window shorter than the clip: repeat the last frame, or loop
    assert clip_indices((20, 25), 4, 2.0, 0.0) == [20, 22, 24, 24]
    assert clip_indices((20, 25), 4, 2.0, 0.0, short="loop") == [20, 22, 24, 21]
    with pytest.raises(ValueError, match="short-clip mode"):
        clip_indices((0, 5), 2, 1.0, 0.0, short="pad")


def test_random_clip_stays_inside_and_covers_the_window():
    rng = random.Random(0)
    starts = set()
    for _ in range(500):
        idx = random_clip((100, 160), 8, 4.0, rng)  # 32 frames of span in 60: slack 28
        assert 100 <= idx[0] and idx[-1] < 160 and all(b - a == 4 for a, b in zip(idx, idx[1:]))
        starts.add(idx[0])
    assert min(starts) == 100 and max(starts) == 127  # offsets uniform in [0, 28), floored
    assert random_clip((5, 10), 4, 2.0, rng) == [5, 7, 9, 9]  # too short: from the start


def test_uniform_views_by_hand():
    views = uniform_clips((0, 100), 4, 5.0, 3)  # span 20, slack 80: offsets 0, 40, 80
    assert views == [[0, 5, 10, 15], [40, 45, 50, 55], [80, 85, 90, 95]]
    assert uniform_clips((0, 100), 4, 5.0, 1) == [[40, 45, 50, 55]]  # one view: centred
    assert uniform_clips((10, 14), 3, 2.0, 2) == [[10, 12, 13], [10, 12, 13]]  # too short
    with pytest.raises(ValueError):
        uniform_clips((0, 10), 2, 1.0, 0)


def test_spatial_crop_boxes():
    assert spatial_crop_boxes(256, 340, 256, 3) == [(0, 0), (0, 42), (0, 84)]
    assert spatial_crop_boxes(256, 340, 224, 1) == [(16, 58)]
    assert spatial_crop_boxes(400, 300, 300, 3) == [(0, 0), (50, 0), (100, 0)]  # portrait: top to bottom
    with pytest.raises(ValueError, match="1 or 3"):
        spatial_crop_boxes(10, 10, 5, 2)


def test_clip_shape_validation():
    ClipShape(8, 2, 112, (128, 160))
    with pytest.raises(ValueError):
        ClipShape(0, 2, 112, (128, 160))
    with pytest.raises(ValueError, match="jitter"):
        ClipShape(8, 2, 112, (160, 128))
