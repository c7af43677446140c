"""The shared dataset: annotation records -> decoded, sampled, transformed clips.

Readers (hacs.py, kinetics.py, ucf101.py) turn official annotation files into ``VideoRecord`` rows
and an ``IndexReport``; ``VideoClipDataset`` does the rest:

- mode ``train``: one random clip per record, random short-side jitter, crop and flip.
- mode ``val``: one clip per record, centred in time and space, at the shape's crop size.
- mode ``test``: ``num_views`` evenly spaced clips x ``num_crops`` spatial crops per record; item
  ``i`` is record ``i // (views * crops)`` and every sample says which view it is.

Clips come out as uint8 (C, T, H, W), on the GPU with ``decode_device="cuda"`` (torchcodec);
``vidpool.models.model_input`` (or ``vidpool.data.transforms.normalize``) converts and normalises
them where the model runs, so loader workers ship a quarter of float32's bytes.

Items are plain indices or ``(index, ClipShape[, seed])`` tuples, so a batch sampler can change the
clip shape per batch (multigrid) without touching the dataset, safely with workers. A training item's
seed makes its random choices (clip position, sampling rate, scale, crop, flip, replacement of an
unreadable video) a function of that seed alone; without one they come from a per-process generator.

Unreadable videos: any exception while reading or transforming one video (a decode error, a stream
of size zero, a text file, a permission error, ...) makes that video unreadable. In training the
sample is replaced by another random record (up to ``max_retries`` times) and the failed paths travel
with the sample (``skipped``; ``bad``: (path, reason) pairs) so the trainer can count and record
them; in val/test the sample comes back with ``valid=False`` and a zero clip, to be counted as a
failure, never dropped. Each failing file is warned about once per process. ``reading`` tells which
video each loader worker is decoding at the moment, to name the file when a decoder crashes its
process.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import random
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from ..decoding import DecodeError, read_clip
from ..sampling import SHORT_MODES, ClipShape, clip_step, frame_window, random_clip, uniform_clips
from ..transforms import eval_crops, jitter_short_side, train_crop

log = logging.getLogger("vidpool.data")

MODES = ("train", "val", "test")


@dataclass(frozen=True)
class VideoRecord:
    path: str
    label: int  # -1: unlabelled (e.g. a test split without labels)
    video_id: str
    start: Optional[float] = None  # segment in seconds; None = from the start / to the end
    end: Optional[float] = None
    line: int = 0  # line of the annotation file it came from (0: not line-based, e.g. JSON)


@dataclass
class IndexReport:
    """What a reader found: annotation rows read, rows used, videos found or missing, and rows it
    skipped on purpose (e.g. HACS negatives) or because they were malformed."""
    source: str
    rows: int = 0
    used: int = 0
    missing: int = 0
    skipped: dict = field(default_factory=dict)
    missing_examples: List[str] = field(default_factory=list)
    missing_paths: List[str] = field(default_factory=list)  # every one (the run writes them out)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def __str__(self) -> str:
        parts = [f"{self.rows} rows", f"{self.used} used", f"{self.missing} videos missing"]
        parts += [f"{n} {why}" for why, n in sorted(self.skipped.items())]
        text = f"{self.source}: " + ", ".join(parts)
        if self.missing_examples:
            text += f" (e.g. {', '.join(self.missing_examples)})"
        return text


def note_missing(report: IndexReport, path: str) -> None:
    report.missing += 1
    report.missing_paths.append(path)
    if len(report.missing_examples) < 3:
        report.missing_examples.append(path)


# what downloaders write (yt-dlp merges into .mkv or .webm when it cannot into .mp4); the first found wins
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def videos_by_stem(folder: str) -> dict:
    """{name without extension: path} of the video files in ``folder`` ({} when it does not exist),
    ``.mp4`` preferred when one video exists in several containers."""
    found = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in VIDEO_EXTENSIONS and entry.is_file():
            best = found.get(stem)
            if best is None or VIDEO_EXTENSIONS.index(ext.lower()) < \
                    VIDEO_EXTENSIONS.index(os.path.splitext(best)[1].lower()):
                found[stem] = entry.path
    return found


class AnnotationError(ValueError):
    """A malformed annotation row; the message names the file and line."""


def bad_row(report: IndexReport, path: str, line: int, why: str, skip: bool) -> None:
    """Raise for a malformed row, or (``skip``) warn and count it."""
    message = f"{path}, line {line}: {why}"
    if not skip:
        raise AnnotationError(message + " (set DATA.SKIP_BAD_ROWS True to skip such rows)")
    log.warning("skipping malformed annotation row: %s", message)
    report.skip("malformed rows skipped")


def text_rows(path: str, report: IndexReport):
    """(line number, stripped text) of the non-empty lines of a text annotation file, counted in
    ``report.rows``."""
    with open(path, encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            text = text.strip()
            if text:
                report.rows += 1
                yield line, text


def read_class_names(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: class names repeat")
    return names


def packaged_classes(name: str) -> str:
    """Path of an official class list shipped with vidpool (hacs_200, kinetics700, ucf101)."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "classes", f"{name}.txt")


_warned: set = set()


def unreadable_reason(path: str, error: Exception) -> str:
    """One line saying why the video at ``path`` could not be used, without the path (the exception
    type when it is not a DecodeError)."""
    text = " ".join(str(error).split()) or repr(error)
    if text.startswith(path + ": "):
        text = text[len(path) + 2:]
    return text if isinstance(error, DecodeError) else f"{type(error).__name__}: {text}"


def _warn_once(path: str, reason: str) -> None:
    if path not in _warned:
        _warned.add(path)
        log.warning("unreadable video %s: %s", path, reason)


class ReadingNow:
    """The video each loader worker is reading right now, in shared memory (set before a read, cleared
    after): when a decoder crashes its worker process, these are the files to blame."""

    SLOT = 1024

    def __init__(self, slots: int = 256):
        self.slots = slots
        self.buffer = multiprocessing.RawArray("c", slots * self.SLOT)

    def _slot(self) -> int:
        info = torch.utils.data.get_worker_info()
        return (info.id if info is not None else 0) % self.slots

    def set(self, path: str) -> None:
        data = path.encode("utf-8", "replace")[: self.SLOT - 1] + b"\0"
        start = self._slot() * self.SLOT
        self.buffer[start:start + len(data)] = data

    def clear(self) -> None:
        self.buffer[self._slot() * self.SLOT] = b"\0"

    def paths(self) -> List[str]:
        raw = bytes(self.buffer)
        out = [raw[i:i + self.SLOT].split(b"\0", 1)[0].decode("utf-8", "replace")
               for i in range(0, len(raw), self.SLOT)]
        return [p for p in out if p]


class VideoClipDataset(torch.utils.data.Dataset):
    def __init__(self, records: Sequence[VideoRecord], classes: Sequence[str], mode: str, shape: ClipShape, *,
                 decoder: str = "pyav", decode_device: str = "cpu", target_fps: float = 30.0,
                 test_crop_size: int = 256, num_views: int = 1, num_crops: int = 1, short: str = "repeat",
                 flip: bool = True, max_retries: int = 10, name: str = "videos", frame_cache=None):
        if mode not in MODES:
            raise ValueError(f"dataset mode must be one of {MODES}, got {mode!r}")
        if short not in SHORT_MODES:
            raise ValueError(f"DATA.SHORT_CLIPS must be one of {SHORT_MODES}, got {short!r}")
        if not records:
            raise ValueError(f"{name} ({mode}): no videos to read; check the annotation file and DATA.PATH_PREFIX")
        self.records, self.classes, self.mode, self.shape = list(records), list(classes), mode, shape
        self.decoder, self.decode_device, self.target_fps = decoder, decode_device, float(target_fps)
        self.test_crop_size, self.short, self.flip, self.max_retries, self.name = \
            int(test_crop_size), short, flip, int(max_retries), name
        self.views = (num_views, num_crops) if mode == "test" else (1, 1)
        self.frame_cache = frame_cache  # a FrameCache: frames come from it instead of the decoder
        self._rng, self._rng_pid = None, None
        self.reading = ReadingNow()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.records) * self.views[0] * self.views[1]

    def _random(self) -> random.Random:
        # one generator per process, seeded from torch (the DataLoader seeds each worker)
        if self._rng_pid != os.getpid():
            self._rng, self._rng_pid = random.Random(torch.initial_seed()), os.getpid()
        return self._rng

    def _sample(self, rec: VideoRecord, shape: ClipShape, t_view: int, s_view: int,
                rng: Optional[random.Random] = None) -> torch.Tensor:
        self.reading.set(rec.path)
        try:
            return self._read(rec, shape, t_view, s_view, rng or self._random())
        finally:
            self.reading.clear()

    def _read(self, rec: VideoRecord, shape: ClipShape, t_view: int, s_view: int, rng: random.Random) -> torch.Tensor:

        def choose(info):
            """The clip's frame indices, from the video's frame rate and length (one open per clip)."""
            if info.num_frames <= 0:
                raise DecodeError(f"{rec.path}: no frames")
            window = frame_window(info.fps, info.num_frames, rec.start, rec.end)
            if self.mode == "train":
                rate = shape.sampling_rate
                if shape.max_sampling_rate > rate:  # multigrid: fewer frames spanning about the same time
                    rate = rng.randint(rate, shape.max_sampling_rate)
                step = clip_step(rate, info.fps, self.target_fps)
                return random_clip(window, shape.num_frames, step, rng, self.short)
            step = clip_step(shape.sampling_rate, info.fps, self.target_fps)
            return uniform_clips(window, shape.num_frames, step, self.views[0], self.short)[t_view]

        crop = self.test_crop_size if self.mode == "test" else shape.crop_size
        if self.mode == "train":
            # the jittered scale is drawn first so that the decoder produces frames at that size
            short = jitter_short_side(shape, rng)
            frames = self._frames(rec.path, choose, short)
            return train_crop(frames, shape, rng, self.flip, short_side=short)
        frames = self._frames(rec.path, choose, crop)
        return eval_crops(frames, crop, self.views[1])[s_view]

    def _frames(self, path: str, choose, short_side: int) -> torch.Tensor:
        """The clip's uint8 frames: decoded at ``short_side``, or from the frame cache at its size (the
        transforms bring them to ``short_side``)."""
        if self.frame_cache is not None:
            return self.frame_cache.read_clip(path, choose)[0].to(self.decode_device)
        return read_clip(path, choose, self.decoder, short_side=short_side, exact=True, device=self.decode_device)[0]

    def __getitem__(self, item):
        index, shape, seed = (tuple(item) + (None,))[:3] if isinstance(item, tuple) else (item, self.shape, None)
        if self.mode == "train":
            return self._train_item(index, shape, None if seed is None else random.Random(seed))
        rec_index, view = divmod(index, self.views[0] * self.views[1])
        t_view, s_view = divmod(view, self.views[1])
        rec = self.records[rec_index]
        sample = {"label": rec.label, "index": rec_index, "video_id": rec.video_id,
                  "temporal_view": t_view, "spatial_view": s_view, "skipped": []}
        try:
            return dict(sample, clip=self._sample(rec, shape, t_view, s_view), valid=True, bad=[])
        except Exception as e:  # noqa: BLE001 - whatever one video does, it is that video's failure
            reason = unreadable_reason(rec.path, e)
            _warn_once(rec.path, reason)
            crop = self.test_crop_size if self.mode == "test" else shape.crop_size
            zeros = torch.zeros(3, shape.num_frames, crop, crop, dtype=torch.uint8, device=self.decode_device)
            return dict(sample, clip=zeros, valid=False, skipped=[rec.path], bad=[(rec.path, reason)])

    def _train_item(self, index: int, shape: ClipShape, rng: Optional[random.Random] = None):
        rng = rng or self._random()
        skipped, bad = [], []
        for _ in range(self.max_retries + 1):
            rec = self.records[index]
            try:
                clip = self._sample(rec, shape, 0, 0, rng)
            except Exception as e:  # noqa: BLE001 - whatever one video does, it is that video's failure
                reason = unreadable_reason(rec.path, e)
                _warn_once(rec.path, reason)
                skipped.append(rec.path)
                bad.append((rec.path, reason))
                index = rng.randrange(len(self.records))
                continue
            return {"clip": clip, "label": rec.label, "index": index, "video_id": rec.video_id,
                    "temporal_view": 0, "spatial_view": 0, "valid": True, "skipped": skipped, "bad": bad}
        raise RuntimeError(f"{self.name}: {len(skipped)} unreadable videos in a row ({', '.join(skipped[:3])}, ...); "
                           "check DATA.PATH_PREFIX and the video files")


def collate_clips(batch):
    """Stack clips and labels; keep ids and view indices as tensors/lists; flatten the skipped paths."""
    out = {"clip": torch.stack([b["clip"] for b in batch]),
           "label": torch.tensor([b["label"] for b in batch], dtype=torch.long),
           "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
           "temporal_view": torch.tensor([b["temporal_view"] for b in batch], dtype=torch.long),
           "spatial_view": torch.tensor([b["spatial_view"] for b in batch], dtype=torch.long),
           "valid": torch.tensor([b["valid"] for b in batch], dtype=torch.bool),
           "video_id": [b["video_id"] for b in batch],
           "skipped": [p for b in batch for p in b["skipped"]],
           "bad": [e for b in batch for e in b.get("bad", [])]}
    return out
