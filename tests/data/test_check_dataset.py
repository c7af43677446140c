"""The pre-flight dataset check: sandboxed scanning (a crashing or hanging decoder costs one file),
the report, and cleaned annotation files that a run can read."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from vidpool.config import load_cfg
from vidpool.data import build_dataset
from vidpool.data.check import check_video, scan_videos

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def misbehaving_check(path, backend):
    """check_video, except that some files crash or hang the process checking them."""
    if path.endswith("crash.mp4"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if path.endswith("hang.mp4"):
        time.sleep(600)
    return check_video(path, backend)


@pytest.mark.slow
def test_scan_survives_crashing_and_hanging_decoders(synthetic_root, tmp_path):
    good = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(synthetic_root, "ucf101")) for f in fs
                  if f.endswith(".avi"))[:6]
    (tmp_path / "text.mp4").write_text("no video here")
    crash, hang = str(tmp_path / "crash.mp4"), str(tmp_path / "hang.mp4")
    shutil.copy(good[0], crash), shutil.copy(good[0], hang)
    paths = good[:3] + [crash, str(tmp_path / "text.mp4"), hang, str(tmp_path / "gone.mp4")] + good[3:]
    seen = []
    results = scan_videos(paths, workers=2, timeout=8, on_result=lambda i, r: seen.append(i), check=misbehaving_check)
    status = [r["status"] for r in results]
    assert status == ["ok"] * 3 + ["crashed", "unreadable", "timeout", "missing"] + ["ok"] * 3
    assert "SIGSEGV" in results[3]["reason"] and sorted(seen) == list(range(len(paths)))
    assert results[0]["fps"] == 8 and (results[0]["width"], results[0]["height"]) == (64, 48)


@pytest.mark.slow
def test_tool_reports_and_writes_annotations_a_run_can_read(synthetic_root, tmp_path):
    root = tmp_path / "ucf101"
    shutil.copytree(os.path.join(synthetic_root, "ucf101"), root)
    lists = root / "ucfTrainTestlist"
    train = [line.split()[0] for line in open(lists / "trainlist01.txt") if line.strip()]
    os.remove(root / "UCF-101" / train[0])  # missing
    (root / "UCF-101" / train[1]).write_text("not a video")  # unreadable
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "-m", "vidpool", "check-data", "--split", "train",
                           "--workers", "2", "--out", str(out), "TRAIN.DATASET", "ucf101", "DATA.PATH_TO_DATA_DIR",
                           str(root), "DATA.NUM_FRAMES", "8", "DATA.SAMPLING_RATE", "16", "DATA.TARGET_FPS", "30"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.load(open(out / "report.json"))
    # 8 frames every 16 at 30 fps = 4.27 s, the synthetic videos last 3 s: the readable ones are too short
    assert report["records"] == {"missing": 1, "unreadable": 1, "too_short": 24}
    assert report["histograms"]["fps"] == {"8": 24} and report["histograms"]["resolution"] == {"64x48": 24}
    # the files on disk (the missing one is not), by container
    assert report["histograms"]["extension"] == {".avi": 25} and "containers (extension: files): .avi: 25" in done.stdout
    problems = {os.path.basename(line.split("\t")[0]): line.split("\t")[1] for line in open(out / "problems.tsv")}
    assert problems[os.path.basename(train[0])] == "missing" and problems[os.path.basename(train[1])] == "unreadable"
    assert "DATA.PATH_TO_DATA_DIR" in done.stdout
    cleaned = [line.split()[0] for line in open(out / "ucfTrainTestlist" / "trainlist01.txt")]
    assert cleaned == train[2:]  # too-short videos stay (DATA.SHORT_CLIPS pads them)
    assert open(out / "ucfTrainTestlist" / "testlist01.txt").read() == open(lists / "testlist01.txt").read()
    cfg = load_cfg(None, ["TRAIN.DATASET", "ucf101", "DATA.PATH_TO_DATA_DIR", str(out), "DATA.PATH_PREFIX",
                          str(root), "MODEL.NUM_CLASSES", "5"])
    assert [os.path.basename(r.path) for r in build_dataset(cfg, "train").records] == \
        [os.path.basename(t) for t in train[2:]]
