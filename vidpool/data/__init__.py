"""Video data: annotation files -> (path, label, window) records -> decoded clip -> augmented tensor.

``build_dataset(cfg, split)`` / ``build_loader(cfg, split)`` read the config; everything below them
takes plain arguments. See the README's "Data" section for the dataset layouts.
"""
from .build import DATASETS, build_dataset, build_loader, default_shape, iterate
from .datasets.base import IndexReport, VideoClipDataset, VideoRecord, collate_clips
from .decoding import DecodeError, VideoInfo, decode_frames, probe, read_clip
from .samplers import ClipBatchSampler
from .sampling import ClipShape

__all__ = ["DATASETS", "build_dataset", "build_loader", "default_shape", "iterate", "IndexReport", "VideoClipDataset",
           "VideoRecord", "collate_clips", "DecodeError", "VideoInfo", "decode_frames", "probe", "read_clip",
           "ClipBatchSampler", "ClipShape"]
