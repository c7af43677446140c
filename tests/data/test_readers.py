"""The three annotation readers on the synthetic set in each official layout, and on hand-written
files for the cases the generator does not produce (JSON, sanitised folders, lists, bad rows)."""
import csv
import json
import logging
import os
import shutil

import pytest

from vidpool.data.datasets.base import AnnotationError, read_class_names
from vidpool.data.datasets.hacs import read_hacs
from vidpool.data.datasets.kinetics import read_kinetics
from vidpool.data.datasets.synthetic import CLASSES, camel, held_out_groups
from vidpool.data.datasets.ucf101 import read_ucf101


def _truth(root):
    """(video id -> (label, group)) from the UCF-101 file names the generator wrote, read by hand."""
    truth = {}
    names = [camel(c) for c in CLASSES[:5]]
    for label, name in enumerate(names):
        for f in os.listdir(os.path.join(root, "ucf101", "UCF-101", name)):
            group = int(f.split("_g")[1][:2])
            truth[f[:-4]] = (label, group)
    return truth


def _split_of_group(group, split_id):
    """The split a synthetic video belongs to, from its group: 26-28 validate, split k's seven test."""
    if group >= 26:
        return "val"
    return "test" if group in held_out_groups(split_id) else "train"


def test_class_lists(synthetic_root):
    assert read_class_names(os.path.join(synthetic_root, "classes.txt")) == CLASSES[:5]


@pytest.mark.parametrize("split,subset_groups", [("train", False), ("val", True), ("test", True)])
def test_hacs_reader(synthetic_root, split, subset_groups):
    ann = os.path.join(synthetic_root, "hacs", "HACS_clips_v1.1.1.csv")
    records, report = read_hacs(ann, os.path.join(synthetic_root, "hacs", "videos"), split, CLASSES[:5])
    with open(ann) as f:
        rows = list(csv.DictReader(f))
    subset = {"train": "training", "val": "validation", "test": "testing"}[split]
    positives = [r for r in rows if r["subset"] == subset and r["label"] == "1"]
    negatives = [r for r in rows if r["subset"] == subset and r["label"] == "-1"]
    assert len(records) == len(positives) == report.used and report.missing == 0
    assert report.skipped.get("negative clips skipped", 0) == len(negatives)
    for rec, row in zip(records, positives):
        assert rec.label == CLASSES.index(row["classname"]) and (rec.start, rec.end) == (0.5, 2.5)
        assert rec.path.endswith(os.path.join(row["classname"].replace(" ", "_"), f"v_{row['youtube_id']}.mp4"))
        assert os.path.isfile(rec.path)
    background, _ = read_hacs(ann, os.path.join(synthetic_root, "hacs", "videos"), split, CLASSES[:5],
                              negatives="background")
    assert sum(r.label == 5 for r in background) == len(negatives)


def test_hacs_json_and_bad_rows(tmp_path, synthetic_root, caplog):
    video_root = os.path.join(synthetic_root, "hacs", "videos")
    db = {"database": {"syn00000000": {"subset": "training", "duration": 3.0,
                                       "annotations": [{"label": "moving left", "segment": [0.25, 2.25]}]},
                       "syn00000001": {"subset": "validation", "annotations": [{"label": "moving right",
                                                                                "segment": [0, 2]}]}}}
    ann = tmp_path / "segments.json"
    ann.write_text(json.dumps(db))
    records, _ = read_hacs(str(ann), video_root, "train", CLASSES)
    assert [(r.label, r.start, r.end) for r in records] == [(0, 0.25, 2.25)]
    bad = tmp_path / "HACS_clips_v1.1.1.csv"
    bad.write_text("classname,youtube_id,subset,start,end,label\n"
                   "moving left,syn00000000,training,0.5,2.5,1\n"
                   "moving left,syn00000000,training,abc,2.5,1\n"
                   "dancing,syn00000000,training,0.5,2.5,1\n")
    with pytest.raises(AnnotationError, match=r"HACS_clips_v1.1.1.csv, line 3: start/end/label not numbers"):
        read_hacs(str(bad), video_root, "train", CLASSES)
    with caplog.at_level(logging.WARNING, "vidpool.data"):
        records, report = read_hacs(str(bad), video_root, "train", CLASSES, skip_bad_rows=True)
    assert len(records) == 1 and report.skipped["malformed rows skipped"] == 2
    assert "line 4: unknown class 'dancing'" in caplog.text
    header = tmp_path / "wrong.csv"
    header.write_text("a,b,c\n")
    with pytest.raises(ValueError, match="line 1: expected the header"):
        read_hacs(str(header), video_root, "train", CLASSES)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_kinetics_reader(synthetic_root, split):
    root = os.path.join(synthetic_root, "kinetics")
    records, report = read_kinetics(root, os.path.join(root, "videos"), split, CLASSES[:5])
    truth = _truth(synthetic_root)
    expected = sum(1 for label, group in truth.values() if _split_of_group(group, 1) == split)
    assert len(records) == expected == report.rows and report.missing == 0
    for rec in records:
        assert os.path.isfile(rec.path) and rec.path.endswith("_000000_000003.mp4")
        assert CLASSES[rec.label].replace(" ", "_") == os.path.basename(os.path.dirname(rec.path))


def test_kinetics_sanitised_flat_and_list_layouts(tmp_path, synthetic_root):
    src = os.path.join(synthetic_root, "kinetics")
    classes = ["massaging person's head", "backflip (human)"]
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "massaging person's head,aaa,10,20,train,0\nbackflip (human),bbb,0,10,train,0\n"
        "backflip (human),ccc,5,15,train,0\n")
    any_video = os.path.join(src, "videos", "train", os.listdir(os.path.join(src, "videos", "train"))[0])
    any_video = os.path.join(any_video, os.listdir(any_video)[0])
    videos = tmp_path / "videos"
    (videos / "train" / "massaging_persons_head").mkdir(parents=True)  # sanitised label folder
    shutil.copy(any_video, videos / "train" / "massaging_persons_head" / "aaa_000010_000020.mp4")
    shutil.copy(any_video, videos / "train" / "bbb_000000_000010.mp4")  # flat
    records, report = read_kinetics(str(tmp_path), str(videos), "train", classes)
    assert [(r.video_id, r.label) for r in records] == [("aaa_000010_000020", 0), ("bbb_000000_000010", 1)]
    assert report.missing == 1 and "ccc_000005_000015.mp4" in report.missing_examples[0]
    kept, _ = read_kinetics(str(tmp_path), str(videos), "train", classes, keep_missing=True)
    assert len(kept) == 3
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\naaa,10,20,test\n")  # no labels
    (videos / "test").mkdir()
    shutil.copy(any_video, videos / "test" / "aaa_000010_000020.mp4")
    records, _ = read_kinetics(str(tmp_path), str(videos), "test", classes)
    assert [r.label for r in records] == [-1]
    # PySlowFast-style list: "path label"
    (tmp_path / "validate.csv").write_text("train/bbb_000000_000010.mp4 1\nnot-a-row\n")
    with pytest.raises(AnnotationError, match="validate.csv, line 2: expected 'path label'"):
        read_kinetics(str(tmp_path), str(videos), "val", classes)
    records, report = read_kinetics(str(tmp_path), str(videos), "val", classes, skip_bad_rows=True)
    assert [r.label for r in records] == [1] and report.skipped["malformed rows skipped"] == 1
    with pytest.raises(FileNotFoundError, match="validate.csv, val.csv"):
        read_kinetics(str(tmp_path / "nowhere"), str(videos), "val", classes)


@pytest.mark.parametrize("split_id", [1, 2, 3])
def test_ucf101_reader(synthetic_root, split_id):
    root = os.path.join(synthetic_root, "ucf101")
    truth = _truth(synthetic_root)
    for split in ("train", "val", "test"):
        records, report, classes = read_ucf101(root, root, split, split_id)
        assert classes == [camel(c) for c in CLASSES[:5]]
        expected = {v for v, (_, g) in truth.items() if _split_of_group(g, split_id) == split}
        assert expected
        assert {r.video_id for r in records} == expected and report.missing == 0
        assert all(r.label == truth[r.video_id][0] for r in records)


def test_ucf101_case_mismatch_and_bad_rows(tmp_path, synthetic_root):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (lists / "trainlist01.txt").write_text("HandstandPushups/v_HandStandPushups_g01_c01.avi 2\n"
                                           "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 2\n")
    (lists / "testlist01.txt").write_text("HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    folder = tmp_path / "UCF-101" / "HandstandPushups"  # the official folder / file spelling clash
    folder.mkdir(parents=True)
    (folder / "v_HandStandPushups_g01_c01.avi").write_bytes(b"x")
    with pytest.raises(AnnotationError, match="trainlist01.txt, line 2: label 2 does not match class ApplyEyeMakeup"):
        read_ucf101(str(tmp_path), str(tmp_path), "train")
    records, report, _ = read_ucf101(str(tmp_path), str(tmp_path), "train", skip_bad_rows=True)
    assert [(r.label, os.path.basename(r.path)) for r in records] == [(1, "v_HandStandPushups_g01_c01.avi")]
    records, _, _ = read_ucf101(str(tmp_path), str(tmp_path), "val")  # no val split: the test list
    assert len(records) == 1
    with pytest.raises(ValueError, match="1, 2 or 3"):
        read_ucf101(str(tmp_path), str(tmp_path), "train", split_id=4)


def test_hacs_video_names():
    from vidpool.data.datasets.hacs import video_path
    assert video_path("r", "Arm wrestling", "abcdefghijk") == os.path.join("r", "Arm_wrestling", "v_abcdefghijk.mp4")
    assert video_path("r", "X", "v_bcdefghij") == os.path.join("r", "X", "v_v_bcdefghij.mp4")  # an 11-char id
    assert video_path("r", "X", "v_abcdefghijk") == os.path.join("r", "X", "v_abcdefghijk.mp4")  # prefixed already


def test_hacs_and_kinetics_find_videos_in_any_container(tmp_path, synthetic_root):
    """yt-dlp writes .mkv or .webm when it cannot merge into .mp4: the readers find each clip
    whatever its container, prefer .mp4 when a video exists twice, and name what they looked for."""
    src = os.path.join(synthetic_root, "hacs", "videos")
    cls = sorted(os.listdir(src))[0]
    ids = sorted(os.listdir(os.path.join(src, cls)))[:4]  # v_<id>.mp4
    (tmp_path / "hacs" / cls).mkdir(parents=True)
    rows = ["classname,youtube_id,subset,start,end,label"]
    for name, ext in zip(ids, (".mkv", ".webm", ".mp4", None)):
        youtube_id = name[2:-4]
        rows.append(f"{cls.replace('_', ' ')},{youtube_id},training,0.5,2.5,1")
        if ext:
            shutil.copy(os.path.join(src, cls, name), tmp_path / "hacs" / cls / (name[:-4] + ext))
    shutil.copy(os.path.join(src, cls, ids[2]), tmp_path / "hacs" / cls / (ids[2][:-4] + ".webm"))  # a twin
    (tmp_path / "hacs.csv").write_text("\n".join(rows) + "\n")
    classes = [cls.replace("_", " ")]
    records, report = read_hacs(str(tmp_path / "hacs.csv"), str(tmp_path / "hacs"), "train", classes)
    assert [os.path.basename(r.path) for r in records] == [ids[0][:-4] + ".mkv", ids[1][:-4] + ".webm", ids[2]]
    assert report.missing == 1 and report.missing_paths == [str(tmp_path / "hacs" / cls / ids[3])]

    kin = tmp_path / "kinetics"
    (kin / "videos" / "train" / "x").mkdir(parents=True)
    (kin / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                   "x,aaa,0,10,train\nx,bbb,0,10,train\nx,ccc,0,10,train\n")
    shutil.copy(os.path.join(src, cls, ids[0]), kin / "videos" / "train" / "x" / "aaa_000000_000010.webm")
    shutil.copy(os.path.join(src, cls, ids[0]), kin / "videos" / "train" / "bbb_000000_000010.mkv")  # flat
    records, report = read_kinetics(str(kin), str(kin / "videos"), "train", ["x"])
    assert [os.path.basename(r.path) for r in records] == ["aaa_000000_000010.webm", "bbb_000000_000010.mkv"]
    assert [r.video_id for r in records] == ["aaa_000000_000010", "bbb_000000_000010"]
    assert report.missing_paths == [str(kin / "videos" / "train" / "ccc_000000_000010.mp4")]


def test_ucf101_names_the_path_it_looked_for(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n")
    (tmp_path / "UCF-101" / "ApplyEyeMakeup").mkdir(parents=True)
    _, report, _ = read_ucf101(str(tmp_path), str(tmp_path), "train")
    assert report.missing_paths == [str(tmp_path / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi")]
