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
    done = subprocess.run([sys.executable, TOOL, "--seeds", "0", "1", "--out", str(out), "DATA.PATH_TO_DATA_DIR",
                           os.path.join(synthetic_root, "ucf101"), *TINY], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"multigrid wall-time ratio (\d+\.\d\d), top-1 difference ([+-]\d+\.\d\d) points "
                     r"\(95 % CI ([+-]\d+\.\d\d) to ([+-]\d+\.\d\d), 2 seeds\)", last)
    assert m, last
    diffs = []
    for seed in (0, 1):
        plain, mg = out / f"plain_seed{seed}", out / f"multigrid_seed{seed}"
        diffs.append(_top1(mg) - _top1(plain))
        # plain trains the full 32-px crop; multigrid's long cycle starts at round(0.7071 x 32) = 23 px
        assert {r["crop_size"] for r in _epochs(plain)} == {32}
        assert [r["crop_size"] for r in _epochs(mg)][0] == 23 and _epochs(mg)[-1]["crop_size"] == 32
        assert os.path.isfile(out / f"curves_seed{seed}.png")
    assert float(m.group(2)) == pytest.approx(sum(diffs) / 2, abs=0.006)
    assert float(m.group(3)) <= float(m.group(2)) <= float(m.group(4))
    # R is the mean of the per-seed ratios of the whole commands' wall times (the table's rows)
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if re.match(r"\| [01] \| multigrid", line)]
    assert len(rows) == 2 and float(m.group(1)) == pytest.approx(sum(float(r[6]) for r in rows) / 2, abs=0.006)
    rejected = subprocess.run([sys.executable, TOOL, "--out", str(out), "RNG_SEED", "3"], capture_output=True,
                              text=True, cwd=ROOT)
    assert rejected.returncode == 2 and "--seeds" in rejected.stderr
