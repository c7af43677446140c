"""How much detail each pooling method keeps: downsample, bring back, compare (paper Table 1).

Protocol: values in [0, 1] (8-bit RGB / 255); pool with kernel k and stride k (ceil_mode, so the
last partial window is kept), in eval mode and with trainable methods at their initialisation;
bring the result back to the original size by filling each window with its pooled value (nearest
neighbour by the block, then cropped); compare with scikit-image: SSIM with a 7x7 uniform window
over RGB (data_range 1) and PSNR (data_range 1). Videos are compared per frame (SSIM averaged over
frames, PSNR over the clip); "2D" pools each frame, "3D" pools k x k x k spatio-temporal windows.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterable, List, Sequence

import numpy as np
import torch

from vidpool.ops import build_pool

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm"}
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


@dataclass
class Sample:
    name: str
    kind: str           # "image" or "video"
    data: torch.Tensor  # image (C, H, W), video (C, T, H, W); float32 in [0, 1]


def load_image(path: str) -> torch.Tensor:
    from PIL import Image
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def load_video(path: str, max_frames: int = 16) -> torch.Tensor:
    """The first ``max_frames`` frames as a player shows them (display matrix and aspect applied),
    (3, T, H, W) in [0, 1]."""
    from vidpool.data.decoding import DecodeError, read_clip

    try:
        frames, _, _ = read_clip(path, lambda info: range(max(1, min(max_frames, info.num_frames or max_frames))))
    except DecodeError as e:
        raise ValueError(str(e)) from None
    arr = frames.numpy().astype(np.float32) / 255.0  # (T, H, W, 3)
    return torch.from_numpy(arr).permute(3, 0, 1, 2).contiguous()


def skimage_photo(name: str) -> torch.Tensor:
    import skimage.data
    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    return torch.from_numpy(arr[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def collect(paths: Iterable[str], max_frames: int = 16) -> List[Sample]:
    """Images and videos from files and folders (recursively); unreadable files are logged and skipped."""
    samples, skipped = [], 0
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                files += [os.path.join(root, n) for n in sorted(names)]
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    for f in files:
        ext = os.path.splitext(f)[1].lower()
        try:
            if ext in IMAGE_EXTS:
                samples.append(Sample(os.path.basename(f), "image", load_image(f)))
            elif ext in VIDEO_EXTS:
                samples.append(Sample(os.path.basename(f), "video", load_video(f, max_frames)))
        except Exception as exc:  # a broken file must not stop the benchmark; it is counted
            skipped += 1
            log.warning("skipping %s: %s", f, exc)
    if skipped:
        log.warning("skipped %d unreadable file(s)", skipped)
    return samples


def reconstruct(x: torch.Tensor, method: str, k: int, dim: int) -> torch.Tensor:
    """Pool a batched (N, C, ...) tensor with kernel = stride = k over its last ``dim`` axes and
    bring it back to its size by repeating each pooled value over its window."""
    torch.manual_seed(0)  # trainable methods start from the same initialisation every call
    pool = build_pool(method, dim, k, k, 0, True, channels=x.shape[1]).eval()
    with torch.no_grad():
        y = pool(x)
    for axis in range(dim):
        y = y.repeat_interleave(k, dim=2 + axis)
    return y[(slice(None), slice(None)) + tuple(slice(0, n) for n in x.shape[2:])]


def ssim_psnr(original: torch.Tensor, restored: torch.Tensor):
    """SSIM and PSNR of one (C, H, W) image or the frames of one (C, T, H, W) video."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    a = original.numpy().astype(np.float64)
    b = np.clip(restored.numpy().astype(np.float64), 0.0, 1.0)
    if a.ndim == 3:
        a, b = a[:, None], b[:, None]
    ssim = np.mean([structural_similarity(a[:, t], b[:, t], data_range=1.0, channel_axis=0, win_size=7)
                    for t in range(a.shape[1])])
    return float(ssim), float(peak_signal_noise_ratio(a, b, data_range=1.0))


def evaluate(samples: Sequence[Sample], methods: Sequence[str], kernels: Sequence[int] = (2, 3, 5),
             progress=None) -> List[dict]:
    """One row per (dataset, kernel, method) with mean SSIM and PSNR over the samples."""
    groups = {}
    for s in samples:
        if s.kind == "image":
            groups.setdefault("images 2D", []).append((s, 2))
        else:
            groups.setdefault("videos 2D (per frame)", []).append((s, 2))
            groups.setdefault("videos 3D (spatio-temporal)", []).append((s, 3))
    rows = []
    for dataset, items in groups.items():
        for k in kernels:
            for method in methods:
                scores = []
                for sample, dim in items:
                    x = sample.data
                    # 2D on video: frames become the batch
                    xb = x.permute(1, 0, 2, 3) if (dim == 2 and x.dim() == 4) else x[None]
                    rec = reconstruct(xb, method, k, dim)
                    rec = rec.permute(1, 0, 2, 3) if (dim == 2 and x.dim() == 4) else rec[0]
                    scores.append(ssim_psnr(x, rec))
                    if progress:
                        progress(f"{dataset} k={k} {method} {sample.name}")
                ssim, psnr = np.mean(scores, axis=0)
                rows.append({"dataset": dataset, "kernel": k, "method": method, "samples": len(items),
                             "ssim": float(ssim), "psnr": float(psnr)})
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """Methods as rows; SSIM and PSNR per (dataset, kernel) as columns."""
    cols = sorted({(r["dataset"], r["kernel"]) for r in rows}, key=lambda c: (c[0], c[1]))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    at = {(r["dataset"], r["kernel"], r["method"]): r for r in rows}
    head = "| method | " + " | ".join(f"{d} k={k} SSIM / PSNR" for d, k in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for m in methods:
        cells = [f"{at[(d, k, m)]['ssim']:.3f} / {at[(d, k, m)]['psnr']:.2f}" for d, k in cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
