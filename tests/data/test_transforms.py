"""Spatial transforms: shapes, value ranges, flips and crop regions against hand-built frames."""
import random

import pytest
import torch

from vidpool.data.sampling import ClipShape
from vidpool.data.transforms import normalize, eval_transform, train_transform

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def _frames(t=4, h=60, w=80):
    """uint8 frames whose red channel is the column, green the row, blue the frame number."""
    x = torch.zeros(t, h, w, 3, dtype=torch.uint8)
    x[..., 0] = torch.arange(w, dtype=torch.uint8)[None, None, :]
    x[..., 1] = torch.arange(h, dtype=torch.uint8)[None, :, None]
    x[..., 2] = torch.arange(t, dtype=torch.uint8)[:, None, None] * 50
    return x


def test_normalize_values():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    y = normalize(x, MEAN, STD)
    assert y.shape == (3, 2, 4, 4) and y.dtype == torch.float32
    torch.testing.assert_close(y, torch.full_like(y, (1 - 0.45) / 0.225))


def test_train_transform_shape_range_and_flip():
    shape = ClipShape(4, 2, 32, (40, 48))
    rng = random.Random(0)
    flips = 0
    for _ in range(40):
        y = train_transform(_frames(), shape, MEAN, STD, rng)
        assert y.shape == (3, 4, 32, 32)
        pixels = y * 0.225 + 0.45
        assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
        red = pixels[0, 0, 16]  # one row of the red (= column) channel
        flips += bool(red[0] > red[-1])  # columns decrease: flipped
        assert torch.allclose(pixels[2, 1], torch.full_like(pixels[2, 1], 50 / 255), atol=2 / 255)  # frame order kept
    assert 8 < flips < 32
    assert train_transform(_frames(), shape, MEAN, STD, rng, flip=False).shape == (3, 4, 32, 32)


def test_test_crops_map_to_left_centre_right():
    frames = _frames(h=60, w=80)
    crops = eval_transform(frames, 60, 3, MEAN, STD)  # short side already 60: no resize
    assert len(crops) == 3 and all(c.shape == (3, 4, 60, 60) for c in crops)
    first_cols = [round(float((c[0, 0, 0, 0] * 0.225 + 0.45) * 255)) for c in crops]
    assert first_cols == [0, 10, 20]  # left, centre, right crops start at these columns
    centre = eval_transform(frames, 30, 1, MEAN, STD)  # short side 60 -> 30, width 80 -> 40
    assert centre[0].shape == (3, 4, 30, 30)
    assert round(float((centre[0][1, 0, 0, 0] * 0.225 + 0.45) * 255)) in (0, 1)  # top row of the frame


def test_bad_frames():
    with pytest.raises(ValueError, match="uint8 frames"):
        eval_transform(torch.zeros(4, 10, 10, 3), 8, 1, MEAN, STD)
