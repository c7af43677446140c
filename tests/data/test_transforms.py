"""Spatial transforms: shapes, value ranges, flips and crop regions against hand-built frames."""
import random

import pytest
import torch

from vidpool.data.sampling import ClipShape
from vidpool.data.transforms import eval_crops, eval_transform, normalize, train_crop, train_transform

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def _frames(t=4, h=60, w=80):
    """uint8 frames whose red channel is the column, green the row, blue the frame number."""
    x = torch.zeros(t, h, w, 3, dtype=torch.uint8)
    x[..., 0] = torch.arange(w, dtype=torch.uint8)[None, None, :]
    x[..., 1] = torch.arange(h, dtype=torch.uint8)[None, :, None]
    x[..., 2] = torch.arange(t, dtype=torch.uint8)[:, None, None] * 50
    return x


def test_normalize_values():
    x = torch.full((3, 2, 4, 4), 255, dtype=torch.uint8)
    y = normalize(x, MEAN, STD)
    assert y.shape == (3, 2, 4, 4) and y.dtype == torch.float32
    torch.testing.assert_close(y, torch.full_like(y, (1 - 0.45) / 0.225))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_normalize_batches_per_channel_against_float64(layout):
    """A batch of uint8 clips with a different mean and std per channel: float32 within rounding of
    (x / 255 - mean) / std in float64, in the asked layout."""
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.3)
    x = torch.randint(0, 256, (2, 3, 4, 5, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = normalize(x, mean, std, layout)
    ref = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(3, 1, 1, 1)) / \
        torch.tensor(std, dtype=torch.float64).view(3, 1, 1, 1)
    assert y.dtype == torch.float32 and y.is_contiguous(memory_format=layout)
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="uint8 clips"):
        normalize(x.float(), mean, std)
    with pytest.raises(ValueError, match="3 values"):
        normalize(x, mean[:2], std[:2])


def test_crops_are_uint8_and_the_float_transforms_normalise_them():
    """The loader's crops stay uint8 (channels first); train_transform / eval_transform are the same
    crops normalised, value for value."""
    shape = ClipShape(4, 2, 32, (40, 48))
    crop = train_crop(_frames(), shape, random.Random(3))
    y = train_transform(_frames(), shape, MEAN, STD, random.Random(3))
    assert crop.dtype == torch.uint8 and crop.shape == (3, 4, 32, 32) and crop.is_contiguous()
    torch.testing.assert_close(y.double(), (crop.double() / 255 - 0.45) / 0.225, rtol=0, atol=1e-5)
    frames = _frames(h=60, w=80)
    for c, f in zip(eval_crops(frames, 60, 3), eval_transform(frames, 60, 3, MEAN, STD)):
        assert c.dtype == torch.uint8
        torch.testing.assert_close(f.double(), (c.double() / 255 - 0.45) / 0.225, rtol=0, atol=1e-5)
    # the left crop of a frame that needs no resizing is the frame's first 60 columns, channels first
    assert torch.equal(eval_crops(frames, 60, 3)[0], frames[:, :, :60].permute(3, 0, 1, 2))


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
