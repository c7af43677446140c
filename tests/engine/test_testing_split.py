"""Testing on the split that has labels: TEST.SPLIT, unlabelled splits as clear errors, accuracies over
all and over readable videos, mean class accuracy, top-5 scores, the test record in stats and
TensorBoard."""
import csv
import json
import os
import shutil

import pytest
import torch

from vidpool.config import load_cfg
from vidpool.data import build_dataset
from vidpool.engine import test as run_test
from vidpool.engine.checkpoint import checkpoint_path, save_checkpoint
from vidpool.models import create_model

from .test_train import TINY


def _kinetics_without_test_labels(synthetic_root, tmp_path):
    """The synthetic Kinetics layout with test.csv as the 2020 release has it: no label column."""
    src = os.path.join(synthetic_root, "kinetics")
    dst = tmp_path / "kinetics"
    os.makedirs(dst)
    os.symlink(os.path.join(src, "videos"), dst / "videos")
    for name in ("train.csv", "validate.csv"):
        shutil.copy(os.path.join(src, name), dst / name)
    with open(os.path.join(src, "test.csv")) as f, open(dst / "test.csv", "w", newline="") as g:
        out = csv.writer(g)
        out.writerow(["youtube_id", "time_start", "time_end", "split"])
        for row in csv.DictReader(f):
            out.writerow([row["youtube_id"], row["time_start"], row["time_end"], row["split"]])
    return str(dst)


def _cfg(root, *extra):
    return load_cfg(None, ["TRAIN.DATASET", "kinetics", "TEST.DATASET", "kinetics", "DATA.PATH_TO_DATA_DIR", root,
                           "DATA.PATH_PREFIX", os.path.join(root, "videos"), "MODEL.NUM_CLASSES", "5",
                           "DATA.CLASS_NAMES_FILE", os.path.join(os.path.dirname(root), "classes5.txt")] + list(extra))


def test_test_split_chooses_the_annotations_and_an_unlabelled_split_is_an_error(synthetic_root, tmp_path):
    root = _kinetics_without_test_labels(synthetic_root, tmp_path)
    with open(os.path.join(synthetic_root, "classes.txt")) as f, open(tmp_path / "classes5.txt", "w") as g:
        g.writelines(f.readlines()[:5])
    with open(os.path.join(root, "validate.csv")) as f:
        val_ids = [r["youtube_id"] for r in csv.DictReader(f)]
    ds = build_dataset(_cfg(root, "TEST.SPLIT", "val", "TEST.NUM_ENSEMBLE_VIEWS", "2"), "test")
    assert [r.video_id.split("_")[0] for r in ds.records] == val_ids and all(r.label >= 0 for r in ds.records)
    assert ds.mode == "test" and len(ds) == 2 * 3 * len(val_ids)  # test views on the validation videos
    with pytest.raises(ValueError, match=r"test\.csv.*none of the \d+ videos of the test split has a label.*"
                                         r"TEST\.SPLIT val"):
        build_dataset(_cfg(root, "TEST.SPLIT", "test"), "test")
    with pytest.raises(ValueError, match="TEST.SPLIT must be val or test"):
        build_dataset(_cfg(root, "TEST.SPLIT", "validation"), "test")
    # a training split without labels: the official CSV without its column, a list with label -1
    shutil.copy(os.path.join(root, "test.csv"), os.path.join(root, "train.csv"))
    with pytest.raises(ValueError, match=r"train\.csv, line 1: no label column"):
        build_dataset(_cfg(root), "train")


def test_unlabelled_rows_of_a_training_list(synthetic_root, tmp_path):
    from vidpool.data.datasets.base import AnnotationError
    from vidpool.data.datasets.kinetics import read_kinetics

    src = os.path.join(synthetic_root, "kinetics", "videos", "train")
    videos = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs)[:3]
    (tmp_path / "train.csv").write_text(f"{videos[0]} 1\n{videos[1]} -1\n{videos[2]} 0\n")
    with pytest.raises(AnnotationError, match=r"train\.csv, line 2: label -1 \(unlabelled\) in a training split"):
        read_kinetics(str(tmp_path), str(tmp_path), "train", ["a", "b"])
    records, report = read_kinetics(str(tmp_path), str(tmp_path), "train", ["a", "b"], skip_bad_rows=True)
    assert [r.label for r in records] == [1, 0] and report.skipped == {"malformed rows skipped": 1}


def test_summary_counts_all_and_readable_videos(synthetic_root, tmp_path):
    """14 test videos, one missing and one that is not a video: the summary's accuracies, counts and
    mean class accuracy, recomputed from predictions.csv; the top-5 scores are probabilities."""
    root = tmp_path / "ucf101"
    shutil.copytree(os.path.join(synthetic_root, "ucf101"), root, symlinks=False)
    with open(root / "ucfTrainTestlist" / "testlist01.txt") as f:
        tests = [line.split()[0] for line in f if line.strip()]
    os.remove(root / "UCF-101" / tests[0])
    os.remove(root / "UCF-101" / tests[1])
    (root / "UCF-101" / tests[1]).write_text("not a video")
    torch.manual_seed(0)
    model = create_model("r3d_10", 5, pool="softpool", base_width=8)
    out = tmp_path / "run"
    save_checkpoint(checkpoint_path(str(out), 3), {"epoch": 3, "model": model.state_dict()})
    cfg = load_cfg(None, TINY + ["DATA.PATH_TO_DATA_DIR", str(root), "OUTPUT_DIR", str(out)])
    summary = run_test(cfg)
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 14 and summary["videos"] == 14 and summary["readable_videos"] == 12
    assert summary["missing_videos"] == 1 and summary["unreadable_videos"] == 1 and summary["split"] == "test"
    unread = {os.path.splitext(os.path.basename(t))[0] for t in tests[:2]}
    assert {r["video_id"] for r in rows if r["predicted_label"] == "-1"} == unread
    correct = [r["correct"] == "1" for r in rows]
    readable = [r["video_id"] not in unread for r in rows]
    assert summary["video_top1"] == pytest.approx(100 * sum(correct) / 14)
    assert summary["video_top1_readable"] == pytest.approx(100 * sum(correct) / 12)
    top5 = [r["true_label"] in r["top5_labels"].split() for r in rows]
    assert summary["video_top5_readable"] == pytest.approx(100 * sum(t for t, ok in zip(top5, readable) if ok) / 12)
    by_class = {}
    for r, ok in zip(rows, correct):
        by_class.setdefault(r["true_label"], []).append(ok)
    assert summary["mean_class_accuracy"] == pytest.approx(100 * sum(sum(v) / len(v) for v in by_class.values())
                                                           / len(by_class))
    for r, ok in zip(rows, readable):
        scores = [float(v) for v in r["top5_scores"].split()]
        assert (len(scores) == 5 and scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-5)
                if ok else scores == [])
    with open(out / "stats.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["kind"] for r in records] == ["test"] and records[0]["epoch"] == 3
    assert records[0]["test_video_top1_readable"] == summary["video_top1_readable"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "runs"))
    events.Reload()
    (scalar,) = events.Scalars("test_video_top1")
    assert scalar.step == 3 and scalar.value == pytest.approx(summary["video_top1"])
