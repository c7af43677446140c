"""No video can stop a run: every kind of broken file is caught, counted and listed in
OUTPUT_DIR/bad_videos.txt in training, validation and testing; a worker killed by its decoder stops
the run with the files it was reading."""
import os
import shutil
import signal

import pytest

from vidpool.data.datasets import base
from vidpool.data.datasets.synthetic import BROKEN_KINDS, break_video
from vidpool.engine import test as run_test
from vidpool.engine import train

from .test_train import _stats, tiny_cfg


def _break(root, rel, kind, good):
    path = os.path.join(root, "UCF-101", rel)
    if kind in BROKEN_KINDS:
        break_video(path, kind, good)
    else:  # a file that is fine on disk; the patched reader raises for it
        os.remove(path)
        shutil.copy(good, path)
    return path


def test_broken_files_of_every_kind_are_listed_and_never_stop_a_run(synthetic_root, tmp_path, monkeypatch):
    root = tmp_path / "ucf101"
    shutil.copytree(os.path.join(synthetic_root, "ucf101"), root)
    lists = root / "ucfTrainTestlist"
    train_rel = [line.split()[0] for line in open(lists / "trainlist01.txt") if line.strip()]
    test_rel = [line.split()[0] for line in open(lists / "testlist01.txt") if line.strip()]
    val_rel = [line.split()[0] for line in open(lists / "vallist01.txt") if line.strip()]
    good = os.path.join(root, "UCF-101", train_rel[-1])
    kinds = ["empty", "text", "truncated", "audio", "zero-division", "permission"]
    bad_train = {_break(str(root), rel, kind, good): kind for rel, kind in zip(train_rel, kinds)}
    bad_test = {_break(str(root), rel, kind, good): kind for rel, kind in zip(test_rel, ["text", "permission"])}
    bad_val = {_break(str(root), val_rel[0], "empty", good): "empty"}
    real_read = base.read_clip

    def read_clip(path, *args, **kwargs):  # failures vidpool's decoder does not raise itself
        kind = {**bad_train, **bad_val, **bad_test}.get(path)
        if kind == "zero-division":
            raise ZeroDivisionError("division by zero")  # e.g. a stream that reports a 0x0 frame size
        if kind == "permission":
            raise PermissionError(13, "Permission denied", path)
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(base, "read_clip", read_clip)
    out = tmp_path / "run"
    cfg = tiny_cfg(str(tmp_path), out, "DATA.PATH_TO_DATA_DIR", str(root), "TRAIN.BATCH_SIZE", "2",
                   "SOLVER.MAX_EPOCH", "1", "TENSORBOARD.ENABLE", "False")
    stats = train(cfg)
    assert stats["epoch"] == 1 and stats["skipped_videos"] >= len(bad_train)  # 13 batches of 2: every record
    assert stats["val_unreadable"] == len(bad_val)
    summary = run_test(cfg)
    assert summary["videos"] == 14 and summary["readable_videos"] == 12
    with open(out / "bad_videos.txt") as f:
        listed = dict(line.rstrip("\n").split("\t") for line in f)
    assert set(listed) == set(bad_train) | set(bad_val) | set(bad_test)  # once each, over the three splits
    expected = {"empty": "empty file", "text": "cannot open", "truncated": "", "audio": "no video stream",
                "zero-division": "ZeroDivisionError: division by zero", "permission": "PermissionError"}
    for path, kind in {**bad_train, **bad_val, **bad_test}.items():
        assert expected[kind] in listed[path] and not listed[path].startswith(path), (kind, listed[path])
    assert _stats(out)[0]["skipped_videos"] == stats["skipped_videos"]


@pytest.mark.skipif(not hasattr(signal, "SIGSEGV"), reason="POSIX signals")
def test_a_crashed_worker_names_the_video_it_was_reading(synthetic_root, tmp_path, monkeypatch):
    from vidpool.data import build_loader, iterate

    cfg = tiny_cfg(synthetic_root, tmp_path, "DATA_LOADER.NUM_WORKERS", "2", "DATA_LOADER.PERSISTENT_WORKERS", "False")
    loader = build_loader(cfg, "test")
    victim = loader.dataset.records[5].path
    real_read = base.read_clip

    def read_clip(path, *args, **kwargs):
        if path == victim:
            os.kill(os.getpid(), signal.SIGSEGV)  # what a decoder bug does to the worker process
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(base, "read_clip", read_clip)
    with pytest.raises(RuntimeError, match="DataLoader worker") as error:
        for _ in iterate(loader):
            pass
    assert victim in str(error.value) and "vidpool check-data" in str(error.value)
