"""UCF-101: the official ``ucfTrainTestlist`` (classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt).

classInd.txt numbers the classes from 1 (``1 ApplyEyeMakeup``) and fixes their order. Train lists
hold ``Class/v_Class_gGG_cCC.avi N``, test lists the path alone; the class comes from the folder.
Videos live under ``<root>/<Class>/`` (or ``<root>/UCF-101/<Class>/``). Names are matched without
regard to case, because the official files disagree: the folder ``HandstandPushups`` holds files
named ``v_HandStandPushups_*``. UCF-101 has no validation split: ``val`` reads ``vallist0k.txt``
(vidpool's own, same format as a test list; the synthetic set writes one) when it exists, and
otherwise the test list, with a warning that choices made on it are made on the test videos.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Tuple

from .base import IndexReport, VideoRecord, bad_row, note_missing, text_rows

log = logging.getLogger("vidpool.data")

LIST_DIR = "ucfTrainTestlist"


def list_dir(annotation_dir: str) -> str:
    for cand in (os.path.join(annotation_dir, LIST_DIR), annotation_dir):
        if os.path.isfile(os.path.join(cand, "classInd.txt")):
            return cand
    raise FileNotFoundError(f"no UCF-101 classInd.txt in {annotation_dir} or {os.path.join(annotation_dir, LIST_DIR)} "
                            "(set DATA.PATH_TO_DATA_DIR to the folder holding ucfTrainTestlist)")


def read_class_index(path: str) -> List[str]:
    """Class names in classInd.txt order (line i is class i + 1)."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            parts = text.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise ValueError(f"{path}, line {line}: expected 'index ClassName', got {text.strip()!r}")
            names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise ValueError(f"{path}: class indices must run 1..{len(names)} without gaps")
    return [names[i] for i in range(1, len(names) + 1)]


def _video_root(video_root: str) -> str:
    """The folder holding the class folders: ``UCF-101/`` under the video root when it is there."""
    return os.path.join(video_root, "UCF-101") if os.path.isdir(os.path.join(video_root, "UCF-101")) else video_root


def _video_index(video_root: str) -> Dict[str, Dict[str, str]]:
    """{lower-case class folder: {lower-case file name: path}}, listing each folder once."""
    root = _video_root(video_root)
    index = {}
    if os.path.isdir(root):
        for entry in os.scandir(root):
            if entry.is_dir():
                index[entry.name.lower()] = {f.name.lower(): f.path for f in os.scandir(entry.path)}
    return index


def list_file(lists: str, split: str, split_id: int) -> str:
    """The list a split reads: trainlist0k.txt, testlist0k.txt, and for val vallist0k.txt (vidpool's
    own, e.g. written by the synthetic set) when it exists, else the test list."""
    if split == "val":
        own = os.path.join(lists, f"vallist0{split_id}.txt")
        if os.path.isfile(own):
            return own
    return os.path.join(lists, f"{'train' if split == 'train' else 'test'}list0{split_id}.txt")


def read_ucf101(annotation_dir: str, video_root: str, split: str, split_id: int = 1, skip_bad_rows: bool = False,
                keep_missing: bool = False) -> Tuple[List[VideoRecord], IndexReport, List[str]]:
    """(records, report, class names) of split train/val/test of official split ``split_id`` (1-3)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"UCF-101 split must be train, val or test, got {split!r}")
    if split_id not in (1, 2, 3):
        raise ValueError(f"DATA.UCF101_SPLIT must be 1, 2 or 3, got {split_id}")
    lists = list_dir(annotation_dir)
    classes = read_class_index(os.path.join(lists, "classInd.txt"))
    by_name = {c.lower(): i for i, c in enumerate(classes)}
    path = list_file(lists, split, split_id)
    if split == "val" and os.path.basename(path).startswith("test"):
        log.warning("UCF-101 has no validation list (%s): validating on the test list, so whatever is chosen "
                    "on validation is chosen on the test videos; write vallist0%d.txt (videos from the training "
                    "list's groups, left out of it) to validate apart", os.path.join(lists, f"vallist0{split_id}.txt"),
                    split_id)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"UCF-101 list not found: {path}")
    videos = _video_index(video_root)
    report = IndexReport(f"UCF-101 {split} (split {split_id}, {os.path.basename(path)})")
    records = []
    for line, text in text_rows(path, report):
        parts = text.split()
        rel = parts[0].replace("\\", "/")
        folder, _, name = rel.rpartition("/")
        if not folder or folder.lower() not in by_name:
            bad_row(report, path, line, f"unknown class folder in {rel!r}", skip_bad_rows)
            continue
        label = by_name[folder.lower()]
        if len(parts) > 1 and (not parts[1].isdigit() or int(parts[1]) != label + 1):
            bad_row(report, path, line, f"label {parts[1]} does not match class {classes[label]} "
                    f"(classInd {label + 1})", skip_bad_rows)
            continue
        video = videos.get(folder.lower(), {}).get(name.lower())
        if video is None:
            video = os.path.join(_video_root(video_root), rel)  # where it was looked for
            note_missing(report, video)
            if not keep_missing:
                continue
        report.used += 1
        records.append(VideoRecord(video, label, os.path.splitext(name)[0], line=line))
    return records, report, classes
