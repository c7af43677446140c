"""A decoded-frame cache: every frame of a video decoded once, kept on disk as uint8, read back memory-mapped.

For datasets small enough to keep decoded (the synthetic demo set: 0.82 GiB for 3000 videos; a
UCF-101 at short side 128 is on the order of 150 GiB), reading a clip's frames from the cache costs a
fraction of decoding them (one process made 1692 demo training clips/s from the cache against 122
decoding them: tools/benchmark_data.py --recipe demo), so a CPU-bound training run spends its time
training. Set ``DATA.FRAME_CACHE`` to a folder; a video is decoded
in full the first time it is read and written there, and every later read, in any process or run,
maps the file instead. ``vidpool cache-frames`` fills the cache ahead of training.

- Frames are stored with their short side at ``short_side`` when the video is more than 1.25x
  larger (the rule the decoder uses), else at their stored size; the transforms scale them to each
  clip's size, so any clip shape up to that side reads from the same entry.
- An entry is named by a hash of the video's real path, size and modification time, the stored
  short side and the decoder: a replaced or edited video gets a new entry, never a stale one.
  Old entries stay until the folder is removed.
- Each entry holds the decoder's frame count estimate and frame rate, so clips are sampled exactly as
  when decoding: the same frame indices, and indices past the last decodable frame repeat it.
- Writes go to a temporary file renamed into place, so concurrent runs and loader workers filling
  the same entry never see a partial file. An entry that cannot be read (a truncated file) is warned
  about and decoded again; a cache that cannot be written (read-only, disk full) is warned about once
  per process and the clips come from decoding, unchanged.
- Videos that cannot be decoded raise ``DecodeError`` as without the cache and are not cached.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .decoding import DecodeError, VideoInfo, _check_backend, _checked, read_clip

log = logging.getLogger("vidpool.data")

FORMAT = 2  # bumped when the entry layout or the decoded frames change (2: display matrix and aspect applied); part of every entry's name


class FrameCache:
    """Decoded frames of videos in ``root``, stored at short side ``short_side`` (see the module doc)."""

    def __init__(self, root: str, short_side: int, backend: str = "pyav"):
        _check_backend(backend)
        if int(short_side) < 1:
            raise ValueError(f"frame cache short side must be >= 1, got {short_side}")
        self.root, self.short_side, self.backend = str(root), int(short_side), backend
        self._write_failed = False
        self._warned: set = set()

    def __repr__(self) -> str:
        return f"FrameCache({self.root!r}, short side {self.short_side}, {self.backend})"

    def entry(self, path: str) -> str:
        """The entry's file name without extension (``.npy``: frames, ``.json``: video info)."""
        real = os.path.realpath(path)
        st = os.stat(real)  # a missing video raises here, as the decoder would
        key = f"{FORMAT}|{real}|{st.st_size}|{st.st_mtime_ns}|{self.short_side}|{self.backend}"
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        return os.path.join(self.root, digest[:2], digest)

    def _load(self, base: str) -> Optional[Tuple[np.ndarray, VideoInfo]]:
        """The entry's frames (memory-mapped) and info; None when there is none or it is unreadable."""
        if not os.path.exists(base + ".npy"):
            return None
        try:
            with open(base + ".json", encoding="utf-8") as f:
                meta = json.load(f)
            frames = np.load(base + ".npy", mmap_mode="r")
            info = VideoInfo(float(meta["fps"]), int(meta["num_frames"]), int(meta["width"]), int(meta["height"]))
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(frames) != meta["stored"]:
                raise ValueError(f"frames {frames.dtype} {frames.shape}, {meta['stored']} expected")
            return frames, info
        except (OSError, ValueError, KeyError, TypeError) as e:
            if base not in self._warned:
                self._warned.add(base)
                log.warning("frame cache entry %s is unreadable (%s): decoding its video again", base,
                            " ".join(str(e).split()))
            return None

    def _fill(self, path: str, base: str) -> Tuple[np.ndarray, VideoInfo]:
        """Decode every frame of ``path`` and write the entry (when the cache is writable)."""

        def every_frame(info: VideoInfo) -> Sequence[int]:
            if info.num_frames <= 0:
                raise DecodeError(f"{path}: no frames")
            return range(info.num_frames)

        frames, info, _ = read_clip(path, every_frame, self.backend, short_side=self.short_side, exact=False)
        frames = frames.numpy()
        if not self._write_failed:
            try:
                self._write(base, frames, info, path)
            except OSError as e:
                self._write_failed = True
                log.warning("frame cache %s cannot be written (%s): clips are decoded instead, with the same "
                            "result (warned once per process)", self.root, e)
        return frames, info

    @staticmethod
    def _write(base: str, frames: np.ndarray, info: VideoInfo, path: str) -> None:
        os.makedirs(os.path.dirname(base), exist_ok=True)
        tmp = f"{base}.{os.getpid()}.tmp"
        meta = {"path": os.path.realpath(path), "fps": info.fps, "num_frames": info.num_frames,
                "width": info.width, "height": info.height, "stored": len(frames)}
        try:
            with open(tmp + ".json", "w", encoding="utf-8") as f:
                json.dump(meta, f)
            with open(tmp + ".npy", "wb") as f:
                np.save(f, frames)
            os.replace(tmp + ".json", base + ".json")
            os.replace(tmp + ".npy", base + ".npy")  # last: an entry with frames is complete
        finally:
            for leftover in (tmp + ".json", tmp + ".npy"):
                if os.path.exists(leftover):
                    os.remove(leftover)

    def frames(self, path: str) -> Tuple[np.ndarray, VideoInfo, bool]:
        """All frames of ``path`` (T, H, W, 3) at the cache's size, the video's info, and whether they
        came from the cache (False: decoded now, and written when the cache is writable)."""
        if not os.path.isfile(path):
            raise DecodeError(f"{path}: no such file")
        base = self.entry(path)
        hit = self._load(base)
        if hit is not None:
            return hit[0], hit[1], True
        frames, info = self._fill(path, base)
        return frames, info, False

    def read_clip(self, path: str, choose: Callable[[VideoInfo], Sequence[int]]
                  ) -> Tuple[torch.Tensor, VideoInfo, List[int]]:
        """``decoding.read_clip`` from the cache: ``choose(info)`` picks the frame indices; returns the
        uint8 frames (T, H, W, 3) at the cache's size, the video's info and the chosen indices."""
        frames, info, _ = self.frames(path)
        indices = _checked(choose(info))
        pick = np.clip(np.asarray(indices, dtype=np.int64), 0, len(frames) - 1)
        return torch.from_numpy(np.ascontiguousarray(frames[pick])), info, indices


def cache_short_side(cfg) -> int:
    """The short side a config's clips are cut from: the largest training scale or crop, or test crop."""
    d = cfg.DATA
    return int(max(max(d.TRAIN_JITTER_SCALES), d.TRAIN_CROP_SIZE, d.TEST_CROP_SIZE))


def frame_cache(cfg) -> Optional[FrameCache]:
    """The config's frame cache (DATA.FRAME_CACHE), or None when it is off."""
    root = cfg.DATA.FRAME_CACHE
    return FrameCache(root, cache_short_side(cfg), cfg.DATA.DECODER) if root else None
