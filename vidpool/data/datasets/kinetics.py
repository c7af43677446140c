"""Kinetics-700 (2020): the official CSVs or PySlowFast-style ``path label`` lists.

Official CSV: a header with ``label,youtube_id,time_start,time_end,split`` (any order, extra columns
ignored; the test CSV may have no label column). Each row is a trimmed clip file named
``{youtube_id}_{start:06d}_{end:06d}.mp4`` (or ``.mkv``, ``.webm``, ...: ``VIDEO_EXTENSIONS``), found
under ``<root>/<split>/<label>/`` (label folder names may be sanitised: spaces as ``_``, quotes and
parentheses removed) or flat under
``<root>/<split>/``; the split folder may be spelt train|val|validate|test. Rather than guessing
folder names, each split folder is listed once and clips are found by file name.

List files (no header): ``path label`` per line, the path relative to the video root or absolute.
Annotation file per split: train.csv; validate.csv or val.csv; test.csv.
"""
from __future__ import annotations

import csv
import os
from typing import Dict, List, Sequence, Tuple

from .base import IndexReport, VideoRecord, bad_row, note_missing, text_rows, videos_by_stem

SPLIT_FILES = {"train": ["train.csv"], "val": ["validate.csv", "val.csv"], "test": ["test.csv"]}
SPLIT_DIRS = {"train": ["train", "training"], "val": ["val", "validate", "validation"], "test": ["test", "testing"]}
REQUIRED = ("youtube_id", "time_start", "time_end")


def annotation_file(annotation_dir: str, split: str) -> str:
    if split not in SPLIT_FILES:
        raise ValueError(f"Kinetics split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    for name in SPLIT_FILES[split]:
        path = os.path.join(annotation_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no Kinetics annotation file for split {split!r} in {annotation_dir} "
                            f"(looked for {', '.join(SPLIT_FILES[split])}; set DATA.PATH_TO_DATA_DIR)")


def clip_name(youtube_id: str, start: float, end: float) -> str:
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4"


def _list_split_dirs(video_root: str, split: str) -> Dict[str, str]:
    """{clip name without extension: path} of every video file in the split's folder and its label
    subfolders, in whichever container it was downloaded (``.mp4`` preferred)."""
    found = {}
    for name in SPLIT_DIRS[split]:
        top = os.path.join(video_root, name)
        if not os.path.isdir(top):
            continue
        for stem, path in videos_by_stem(top).items():
            found.setdefault(stem, path)
        for entry in sorted(os.scandir(top), key=lambda e: e.name):
            if entry.is_dir():
                for stem, path in videos_by_stem(entry.path).items():
                    found.setdefault(stem, path)
    return found


def read_kinetics(annotation_dir: str, video_root: str, split: str, classes: Sequence[str],
                  skip_bad_rows: bool = False, keep_missing: bool = False) -> Tuple[List[VideoRecord], IndexReport]:
    path = annotation_file(annotation_dir, split)
    with open(path, newline="", encoding="utf-8") as f:
        first = f.readline()
    if "youtube_id" in first:
        return _read_official(path, video_root, split, classes, skip_bad_rows, keep_missing)
    return _read_list(path, video_root, split, len(classes), skip_bad_rows, keep_missing)


def _read_official(path, video_root, split, classes, skip_bad_rows, keep_missing):
    index = {name: i for i, name in enumerate(classes)}
    files = _list_split_dirs(video_root, split)
    report = IndexReport(f"Kinetics {split} ({os.path.basename(path)})")
    records = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing_cols = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing_cols:
            raise ValueError(f"{path}, line 1: header lacks {', '.join(missing_cols)} (got {reader.fieldnames})")
        labelled = "label" in reader.fieldnames
        if not labelled and split == "train":
            raise ValueError(f"{path}, line 1: no label column, but a training split needs labels")
        for line, row in enumerate(reader, start=2):
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            report.rows += 1
            try:
                start, end = float(row["time_start"]), float(row["time_end"])
            except (TypeError, ValueError):
                bad_row(report, path, line, f"time_start/time_end not numbers: {row}", skip_bad_rows)
                continue
            label = -1
            if labelled:
                name = (row["label"] or "").strip()
                if name not in index:
                    bad_row(report, path, line, f"unknown class {name!r}", skip_bad_rows)
                    continue
                label = index[name]
            youtube_id = (row["youtube_id"] or "").strip()
            if not youtube_id:
                bad_row(report, path, line, "empty youtube_id", skip_bad_rows)
                continue
            name = clip_name(youtube_id, start, end)
            video = files.get(name[:-4])
            if video is None:
                video = os.path.join(video_root, split, name)
                note_missing(report, video)
                if not keep_missing:
                    continue
            report.used += 1
            records.append(VideoRecord(video, label, name[:-4], line=line))
    return records, report


def _read_list(path, video_root, split, num_classes, skip_bad_rows, keep_missing):
    report = IndexReport(f"Kinetics {split} ({os.path.basename(path)}, path-label list)")
    records = []
    for line, text in text_rows(path, report):
        parts = text.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            bad_row(report, path, line, f"expected 'path label', got {text!r}", skip_bad_rows)
            continue
        label = int(parts[1])
        if label == -1 and split == "train":
            bad_row(report, path, line, "label -1 (unlabelled) in a training split", skip_bad_rows)
            continue
        if not -1 <= label < num_classes:
            bad_row(report, path, line, f"label {label} outside 0..{num_classes - 1}", skip_bad_rows)
            continue
        video = parts[0] if os.path.isabs(parts[0]) else os.path.join(video_root, parts[0])
        if not os.path.isfile(video):
            note_missing(report, video)
            if not keep_missing:
                continue
        report.used += 1
        records.append(VideoRecord(video, label, os.path.splitext(os.path.basename(video))[0], line=line))
    return records, report
