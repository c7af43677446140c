"""Spatio-temporal downsampling pictures: the same clip (or image) pooled by several methods.

Frames are pooled as RGB values in [0, 1] by the zoo's modules (``vidpool.ops.build_pool``), so
what is shown is the operator's own output; for display each pooled cell is repeated back to the
original size (nearest neighbour), kernel-stride cells along time as well.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from vidpool.ops import build_pool
from vidpool.ops.zoo import needs_channels

Box = Tuple[int, int, int, int]  # x, y, w, h in original pixels


@dataclass
class Pooled:
    method: str
    values: torch.Tensor  # float (T', H', W', 3) in [0, 1]: the pooling module's output
    display: np.ndarray  # uint8 (T, H, W, 3): the output brought back to the input's size


def load_frames(path: str, max_frames: int = 64, start: int = 0,
                short_side: Optional[int] = None) -> Tuple[np.ndarray, Optional[float]]:
    """uint8 (T, H, W, 3) frames and the frame rate: an image gives one frame (and no rate); a video
    gives up to ``max_frames`` consecutive frames from ``start`` (opened once)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"):
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert("RGB")
            if short_side and min(img.size) != short_side:
                scale = short_side / min(img.size)
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                 Image.Resampling.LANCZOS)
            return np.asarray(img)[None].copy(), None
    from vidpool.data.decoding import read_clip

    def choose(info):
        if start >= info.num_frames:
            raise ValueError(f"{path} has {info.num_frames} frames; --start {start} is past its end")
        return list(range(start, min(info.num_frames, start + max_frames)))

    frames, info, _ = read_clip(path, choose, short_side=short_side, exact=short_side is not None)
    return frames.numpy(), info.fps


def pool_frames(frames: np.ndarray, method: str, kernel: Sequence[int], stride: Optional[Sequence[int]] = None) -> Pooled:
    """Pool uint8 (T, H, W, 3) ``frames`` with zoo method ``method``: 3D (time, height, width) for a
    clip, 2D (height, width) for a single frame (kernel and stride then use their last two values)."""
    stride = list(stride or kernel)
    x = torch.from_numpy(frames).float().div(255).permute(3, 0, 1, 2)[None]  # 1, 3, T, H, W
    single = frames.shape[0] == 1
    dim, k, s = (2, kernel[-2:], stride[-2:]) if single else (3, kernel, stride)
    if single:
        x = x[:, :, 0]
    pool = build_pool(method, dim, tuple(k), tuple(s), channels=3 if needs_channels(method) else None)
    pool.eval()
    with torch.no_grad():
        y = pool(x).clamp(0, 1)
    if single:
        y = y[:, :, None]
    values = y[0].permute(1, 2, 3, 0).contiguous()  # T', H', W', 3
    reps = [1 if single else int(s[0]), int(s[-2]), int(s[-1])]
    big = values.repeat_interleave(reps[0], 0).repeat_interleave(reps[1], 1).repeat_interleave(reps[2], 2)
    t, h, w = frames.shape[:3]
    big = torch.nn.functional.pad(big.permute(3, 0, 1, 2), (0, max(0, w - big.shape[2]), 0, max(0, h - big.shape[1]),
                                                             0, max(0, t - big.shape[0])), mode="replicate")
    display = (big.permute(1, 2, 3, 0)[:t, :h, :w] * 255).round().to(torch.uint8).numpy()
    return Pooled(method, values, display)


def most_different_region(results: Sequence[Pooled], size: int) -> Box:
    """The ``size`` x ``size`` box (original pixels) where the methods' displayed frames differ the
    most (summed over time of the per-pixel spread across methods)."""
    stack = np.stack([r.display.astype(np.float32) for r in results])  # M, T, H, W, 3
    spread = stack.std(0).sum((0, 3))  # H, W
    h, w = spread.shape
    size = max(1, min(size, h, w))
    integral = np.pad(spread.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x), int(y), size, size


def crop(frame: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > frame.shape[1] or y + h > frame.shape[0]:
        raise ValueError(f"zoom box {box} is not inside the {frame.shape[1]}x{frame.shape[0]} frame")
    return frame[y:y + h, x:x + w]


def labelled(image: np.ndarray, text: str, height: int = 18) -> np.ndarray:
    """``image`` with a black bar of ``height`` pixels above it holding ``text``."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (image.shape[1], height), (0, 0, 0))
    ImageDraw.Draw(bar).text((4, 3), text, fill=(255, 255, 255))
    return np.concatenate([np.asarray(bar), image], 0)


def side_by_side(frames: np.ndarray, results: Sequence[Pooled]) -> np.ndarray:
    """uint8 (T, 18 + H, (1 + M) W, 3): the original and each method, labelled, left to right."""
    panels = [("original", frames)] + [(r.method, r.display) for r in results]
    out = []
    for t in range(frames.shape[0]):
        out.append(np.concatenate([labelled(p[t], name) for name, p in panels], 1))
    return np.stack(out)


def write_video(path: str, frames: np.ndarray, fps: float) -> None:
    """MP4 (H.264) or GIF, by the file name."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.lower().endswith(".gif"):
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
        return
    from vidpool.data.datasets.synthetic import write_mp4

    h, w = frames.shape[1:3]
    even = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # H.264 4:2:0 wants even sizes
    write_mp4(path, even, fps=max(1, int(round(fps))))


def figure(path: str, frames: np.ndarray, results: Sequence[Pooled], boxes: Sequence[Box],
           show: Sequence[int]) -> None:
    """PNG: rows = the frames ``show``, columns = original + methods; then, per zoom box, a row of
    the boxed region of the middle shown frame, enlarged, for each column (the box drawn in red on
    the original)."""
    from PIL import Image, ImageDraw

    columns = [("original", frames)] + [(r.method, r.display) for r in results]
    h, w = frames.shape[1:3]
    rows = []
    for t in show:
        row = []
        for name, video in columns:
            tile = Image.fromarray(video[t])
            if name == "original":
                draw = ImageDraw.Draw(tile)
                for x, y, bw, bh in boxes:
                    draw.rectangle([x, y, x + bw - 1, y + bh - 1], outline=(255, 0, 0))
            row.append(labelled(np.asarray(tile), f"{name}, frame {t}"))
        rows.append(np.concatenate(row, 1))
    middle = show[len(show) // 2]
    for i, box in enumerate(boxes):
        row = []
        for name, video in columns:
            region = Image.fromarray(crop(video[middle], box)).resize((w, h), Image.Resampling.NEAREST)
            row.append(labelled(np.asarray(region), f"{name}, zoom {i + 1} {box}"))
        rows.append(np.concatenate(row, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def visualize(path: str, out_dir: str, methods: Sequence[str] = ("avg", "max", "softpool"),
              kernel: Sequence[int] = (2, 3, 3), stride: Optional[Sequence[int]] = None, max_frames: int = 64,
              start: int = 0, short_side: Optional[int] = None, zooms: Sequence[Box] = (), gif: bool = False,
              progress=None) -> List[str]:
    """Write the side-by-side video (videos only) and the PNG figure for ``path`` into ``out_dir``;
    returns the files written."""
    frames, fps = load_frames(path, max_frames, start, short_side)
    results = []
    for m in methods:
        results.append(pool_frames(frames, m, kernel, stride))
        if progress:
            progress(f"{m}: {tuple(results[-1].values.shape[:3])} from {tuple(frames.shape[:3])}")
    h, w = frames.shape[1:3]
    boxes = list(zooms) or [most_different_region(results, max(8, min(h, w) // 5))]
    name = os.path.splitext(os.path.basename(path))[0]
    written = []
    if frames.shape[0] > 1:
        video = os.path.join(out_dir, f"{name}_pooling.{'gif' if gif else 'mp4'}")
        write_video(video, side_by_side(frames, results), fps)
        written.append(video)
    t = frames.shape[0]
    show = sorted({0, t // 2, t - 1}) if t > 1 else [0]
    png = os.path.join(out_dir, f"{name}_pooling.png")
    figure(png, frames, results, boxes, show)
    written.append(png)
    return written
