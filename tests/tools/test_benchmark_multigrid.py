"""tools/benchmark_multigrid.py on the tiny synthetic set: both runs train (the multigrid one at its
long-cycle crops), the final line's top-1 difference is recomputed from the runs' predictions.csv,
its wall-time ratio is checked against the runs' own training times, and seeds are its own option."""
import csv
import os
import re
import subprocess
import sys

import pytest

from vidpool.engine.run_log import read_stats

from . import load_tool

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TOOL = os.path.join(ROOT, "tools", "benchmark_multigrid.py")
TINY = ["MODEL.BASE_WIDTH", "8", "MODEL.NUM_CLASSES", "5", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "8",
        "DATA.TRAIN_JITTER_SCALES", "[32, 36]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
        "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "8", "TEST.NUM_ENSEMBLE_VIEWS", "1", "DATA_LOADER.NUM_WORKERS", "0",
        "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[0, 1]", "LOG_PERIOD", "0", "TENSORBOARD.ENABLE", "False"]


def _top1(out):
    with open(os.path.join(out, "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    return 100.0 * sum(r["correct"] == "1" for r in rows) / len(rows)


def _epochs(out):
    return read_stats(str(out), "epoch")


@pytest.mark.slow
def test_benchmark_runs_both_schedules_and_reports_the_means(synthetic_root, tmp_path):
    out = tmp_path / "bench"
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, TOOL, "--seeds", "0", "1", "--out", str(out), "--frame-cache", str(cache),
                           "DATA.PATH_TO_DATA_DIR",
                           os.path.join(synthetic_root, "ucf101"), *TINY], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"multigrid wall-time ratio (\d+\.\d\d), top-1 difference ([+-]\d+\.\d\d) points "
                     r"\(95 % CI ([+-]\d+\.\d\d) to ([+-]\d+\.\d\d), 2 seeds, not all held out\); vs plain at the same "
                     r"wall time ([+-]\d+\.\d\d) points \(95 % CI ([+-]\d+\.\d\d) to ([+-]\d+\.\d\d)\)", last)
    assert m, last
    assert any(f.endswith(".npy") for _, _, files in os.walk(cache) for f in files)  # filled and read from
    diffs, matched_diffs = [], []
    rows = {(int(r[0]), r[1].strip()): r for r in (line.split("|")[1:-1] for line in done.stdout.splitlines()
                                                   if re.match(r"\| [01] \| ", line))}
    for seed in (0, 1):
        plain, mg, matched = out / f"plain_seed{seed}", out / f"multigrid_seed{seed}", out / f"plain_matched_seed{seed}"
        diffs.append(_top1(mg) - _top1(plain))
        matched_diffs.append(_top1(mg) - _top1(matched))
        # the plain schedule shortened to multigrid's wall time: 2 epochs x the multigrid run's ratio
        ratio = float(rows[seed, "multigrid"][6])
        assert len(_epochs(matched)) == max(1, round(2 * ratio)) or abs(2 * ratio % 1 - 0.5) < 0.02
        # plain trains the full 32-px crop; multigrid's long cycle starts at round(0.7071 x 32) = 23 px
        assert {r["crop_size"] for r in _epochs(plain)} == {32}
        assert [r["crop_size"] for r in _epochs(mg)][0] == 23 and _epochs(mg)[-1]["crop_size"] == 32
        assert os.path.isfile(out / f"curves_seed{seed}.png")
    assert float(m.group(2)) == pytest.approx(sum(diffs) / 2, abs=0.006)
    assert float(m.group(3)) <= float(m.group(2)) <= float(m.group(4))
    assert float(m.group(5)) == pytest.approx(sum(matched_diffs) / 2, abs=0.006)
    assert float(m.group(6)) <= float(m.group(5)) <= float(m.group(7))
    # R is the mean of the per-seed ratios of the whole commands' wall times (the table's rows)
    mg_rows = [rows[seed, "multigrid"] for seed in (0, 1)]
    assert float(m.group(1)) == pytest.approx(sum(float(r[6]) for r in mg_rows) / 2, abs=0.006)
    rejected = subprocess.run([sys.executable, TOOL, "--out", str(out), "RNG_SEED", "3"], capture_output=True,
                              text=True, cwd=ROOT)
    assert rejected.returncode == 2 and "--seeds" in rejected.stderr


def test_last_line_calls_seeds_held_out_only_when_all_are():
    tool = load_tool("benchmark_multigrid")
    assert tool.seeds_word([10, 11, 12, 13, 14]) == tool.seeds_word([12]) == "held-out seeds"
    assert tool.seeds_word([0]) == tool.seeds_word([10, 2]) == "seeds, not all held out"
