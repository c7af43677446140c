"""HACS Clips v1.1.1: ``HACS_clips_v1.1.1.csv`` or an ActivityNet-style segments JSON.

CSV columns ``classname,youtube_id,subset,start,end,label``: subset training|validation|testing, a
2-second [start, end] window in seconds of an untrimmed video, label 1 (the action happens) or -1
(a negative clip from a video of that class). Negatives are skipped unless ``negatives="background"``,
which gives them one extra class after the official 200. The JSON form is
``{"database": {id: {"subset", "annotations": [{"label", "segment": [s, e]}]}}}``.

Videos are where the official downloader puts them: ``<root>/<classname, spaces as _>/v_<youtube_id>.mp4``
(or ``.mkv``, ``.webm`` and the other ``VIDEO_EXTENSIONS``, which yt-dlp may write instead).
"""
from __future__ import annotations

import csv
import json
import os
from typing import List, Sequence, Tuple

from .base import IndexReport, VideoRecord, bad_row, note_missing, videos_by_stem

SUBSETS = {"train": "training", "val": "validation", "test": "testing"}
NEGATIVES = ("skip", "background")
CSV_COLUMNS = ["classname", "youtube_id", "subset", "start", "end", "label"]


def video_path(root: str, classname: str, youtube_id: str) -> str:
    # YouTube ids have 11 characters and may themselves start with "v_"; 13 with "v_" means the
    # prefix is there already (as in some ActivityNet-style files)
    vid = youtube_id if youtube_id.startswith("v_") and len(youtube_id) == 13 else f"v_{youtube_id}"
    return os.path.join(root, classname.replace(" ", "_"), f"{vid}.mp4")


class _Finder:
    """The file a video path names, in whichever container it was downloaded (``.mp4`` preferred),
    or None; each class folder is listed once (many HACS clips share one untrimmed video)."""

    def __init__(self):
        self.folders = {}

    def __call__(self, path: str):
        folder, stem = os.path.split(os.path.splitext(path)[0])
        if folder not in self.folders:
            self.folders[folder] = videos_by_stem(folder)
        return self.folders[folder].get(stem)


def read_hacs(annotation: str, video_root: str, split: str, classes: Sequence[str], negatives: str = "skip",
              skip_bad_rows: bool = False, keep_missing: bool = False) -> Tuple[List[VideoRecord], IndexReport]:
    """Records of one split (train/val/test) with labels indexing ``classes`` (background = len(classes))."""
    if split not in SUBSETS:
        raise ValueError(f"HACS split must be one of {sorted(SUBSETS)}, got {split!r}")
    if negatives not in NEGATIVES:
        raise ValueError(f"DATA.HACS_NEGATIVES must be one of {NEGATIVES}, got {negatives!r}")
    if not os.path.isfile(annotation):
        raise FileNotFoundError(f"HACS annotation file not found: {annotation} (set DATA.PATH_TO_DATA_DIR / "
                                "DATA.ANNOTATION_FILE)")
    index = {name: i for i, name in enumerate(classes)}
    rows = _json_rows(annotation) if annotation.endswith(".json") else _csv_rows(annotation)
    report = IndexReport(f"HACS {SUBSETS[split]} ({os.path.basename(annotation)})")
    find, records = _Finder(), []
    for line, row in rows:
        if isinstance(row, str):  # a structural problem found while parsing
            bad_row(report, annotation, line, row, skip_bad_rows)
            continue
        classname, youtube_id, subset, start, end, label = row
        if subset != SUBSETS[split]:
            continue
        report.rows += 1
        try:
            start, end, label = float(start), float(end), int(float(label))
        except ValueError:
            bad_row(report, annotation, line, f"start/end/label not numbers: {start!r}, {end!r}, {label!r}",
                    skip_bad_rows)
            continue
        if not 0 <= start < end:
            bad_row(report, annotation, line, f"empty or negative window [{start}, {end}]", skip_bad_rows)
            continue
        if classname not in index:
            bad_row(report, annotation, line, f"unknown class {classname!r}", skip_bad_rows)
            continue
        if label not in (1, -1):
            bad_row(report, annotation, line, f"label must be 1 or -1, got {label}", skip_bad_rows)
            continue
        if label == -1 and negatives == "skip":
            report.skip("negative clips skipped")
            continue
        path = video_path(video_root, classname, youtube_id)
        found = find(path)
        if found is None:
            note_missing(report, path)
            if not keep_missing:
                continue
        path = found or path
        report.used += 1
        target = index[classname] if label == 1 else len(classes)
        records.append(VideoRecord(path, target, f"{youtube_id}@{start:g}", start, end, line=line))
    return records, report


def _csv_rows(path: str):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != CSV_COLUMNS:
            raise ValueError(f"{path}, line 1: expected the header {','.join(CSV_COLUMNS)}, got {header}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(CSV_COLUMNS):
                yield line, f"expected {len(CSV_COLUMNS)} columns, got {len(row)}"
                continue
            yield line, [v.strip() for v in row]


def _json_rows(path: str):
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise ValueError(f"{path}: expected an object with a 'database' mapping of video ids")
    for n, (vid, entry) in enumerate(data["database"].items(), start=1):
        where = f"video {vid!r} (entry {n})"
        if not isinstance(entry, dict) or "subset" not in entry:
            yield n, f"{where}: no subset"
            continue
        for ann in entry.get("annotations", []):
            try:
                (s, e), label = ann["segment"], ann["label"]
            except (KeyError, TypeError, ValueError):
                yield n, f"{where}: annotation without label and [start, end] segment: {ann}"
                continue
            yield n, [label, vid, entry["subset"], s, e, 1]
