"""The downsampling visualizer: outputs, sizes, operator equality, zoom mapping, images."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidpool import ops
from vidpool.data.datasets.synthetic import render_clip, write_mp4
from vidpool.data.decoding import probe
from vidpool.viz.pooling import crop, most_different_region, pool_frames

TOOL = ["-m", "vidpool", "visualize", "pooling"]


def test_pooled_values_are_the_operators_output():
    frames = render_clip(6, seed=3, frames=8, size=(30, 42))
    x = torch.from_numpy(frames).float().div(255).permute(3, 0, 1, 2)[None]
    for method, reference in (("softpool", ops.soft_pool3d(x, (2, 3, 3), (2, 3, 3))),
                              ("max", F.max_pool3d(x, (2, 3, 3))), ("avg", F.avg_pool3d(x, (2, 3, 3)))):
        r = pool_frames(frames, method, (2, 3, 3))
        assert torch.equal(r.values, reference[0].permute(1, 2, 3, 0))
        # display: each pooled cell repeated over its 2x3x3 window
        assert r.display.shape == frames.shape
        expected = (reference[0, :, 1, 4, 5] * 255).round().to(torch.uint8).numpy()
        assert (r.display[2:4, 12:15, 15:18] == expected).all()


def test_images_pool_in_2d():
    image = render_clip(0, seed=1, frames=1, size=(24, 36))
    r = pool_frames(image, "softpool", (2, 4, 4))
    x = torch.from_numpy(image[0]).float().div(255).permute(2, 0, 1)[None]
    assert torch.equal(r.values[0], ops.soft_pool2d(x, 4, 4)[0].permute(1, 2, 0))


def test_zoom_boxes_map_to_the_source_region():
    frame = np.zeros((20, 30, 3), np.uint8)
    frame[..., 0] = np.arange(30)[None, :]  # red = x
    frame[..., 1] = np.arange(20)[:, None]  # green = y
    part = crop(frame, (7, 4, 5, 6))
    assert part.shape == (6, 5, 3) and part[0, 0, 0] == 7 and part[0, 0, 1] == 4 and part[-1, -1, 0] == 11
    with pytest.raises(ValueError, match="not inside"):
        crop(frame, (28, 0, 5, 5))
    # the automatic box lands where the methods disagree: a bright dot on a flat background
    clip = np.full((4, 40, 40, 3), 60, np.uint8)
    clip[:, 30, 9] = 255
    results = [pool_frames(clip, m, (2, 4, 4)) for m in ("avg", "max")]
    x, y, w, h = most_different_region(results, 8)
    assert x <= 9 < x + w and y <= 30 < y + h


def test_tool_writes_video_and_figure(tmp_path):
    video = str(tmp_path / "clip.mp4")
    write_mp4(video, render_clip(2, seed=5, frames=12, size=(48, 64)), fps=8)
    image = str(tmp_path / "still.png")
    Image.fromarray(render_clip(4, seed=2, frames=1, size=(40, 50))[0]).save(image)
    out = tmp_path / "viz"
    done = subprocess.run([sys.executable, *TOOL, video, image, "--kernel", "2,4,4", "--zoom", "8,8,16,16",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    info = probe(str(out / "clip_pooling.mp4"))
    # 12 frames; original + 3 methods, each 64 wide with an 18-pixel label bar over 48 rows
    assert (info.num_frames, info.width, info.height) == (12, 4 * 64, 48 + 18)
    with Image.open(out / "clip_pooling.png") as png:  # 3 frames + 1 zoom row
        assert png.size == (4 * 64, 4 * (48 + 18))
    with Image.open(out / "still_pooling.png") as png:  # one frame + 1 zoom row, no video
        assert png.size == (4 * 50, 2 * (40 + 18))
    assert not (out / "still_pooling.mp4").exists()
    bad = subprocess.run([sys.executable, *TOOL, video, "--methods", "avg,nope", "--out", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown method" in bad.stderr
