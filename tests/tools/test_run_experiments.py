"""vidpool experiments and vidpool.experiments: a tiny grid run for real (two jobs at once),
skipped when finished, resumed after a kill; McNemar and the summary on hand-built prediction files;
clear errors for bad grids and changed settings."""
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest
import yaml

from vidpool.experiments import Cell, Grid, load_grid, markdown, summarise, write_results

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TOOL = ["-m", "vidpool", "experiments"]
TINY = {"TRAIN": {"DATASET": "ucf101", "BATCH_SIZE": 4, "EVAL_PERIOD": 0},
        "TEST": {"DATASET": "ucf101", "BATCH_SIZE": 8, "NUM_ENSEMBLE_VIEWS": 1, "NUM_SPATIAL_CROPS": 1},
        "MODEL": {"ARCH": "r3d_10", "BASE_WIDTH": 8, "NUM_CLASSES": 5},
        "DATA": {"NUM_FRAMES": 4, "SAMPLING_RATE": 8, "TRAIN_JITTER_SCALES": [32, 36], "TRAIN_CROP_SIZE": 32,
                 "TEST_CROP_SIZE": 32},
        "DATA_LOADER": {"NUM_WORKERS": 0}, "SOLVER": {"BASE_LR": 0.01, "MAX_EPOCH": 1}, "LOG_PERIOD": 0}


def _grid_file(tmp_path, root, name="tiny", **fields):
    base = tmp_path / "base.yaml"
    cfg = json.loads(json.dumps(TINY))
    cfg["DATA"]["PATH_TO_DATA_DIR"] = os.path.join(root, "ucf101")
    base.write_text(yaml.safe_dump(cfg))
    grid = {"base": str(base), "overrides": {"SOLVER.MAX_EPOCH": 1},
            "axes": {"MODEL.POOL": ["max", "softpool"], "RNG_SEED": [0, 1]},
            "baseline": {"MODEL.POOL": "max"}, "seed_key": "RNG_SEED", "out": str(tmp_path / name)}
    grid.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def _tool(*args, **kw):
    return subprocess.run([sys.executable, *TOOL, *args], capture_output=True, text=True, cwd=ROOT, **kw)


def _predictions(out):
    with open(os.path.join(out, "predictions.csv")) as f:
        return {r["video_id"]: r for r in csv.DictReader(f)}


def _accuracy(rows, k=1):
    if k == 1:
        return 100.0 * sum(r["correct"] == "1" for r in rows.values()) / len(rows)
    return 100.0 * sum(r["true_label"] in r["top5_labels"].split() for r in rows.values()) / len(rows)


@pytest.mark.slow
def test_tiny_grid_two_jobs_results_and_skip_when_finished(synthetic_root, tmp_path):
    # per_value: the softpool cells train on 6-frame clips, the max cells on the base's 4
    grid_path = _grid_file(tmp_path, synthetic_root, per_value={"MODEL.POOL": {"softpool": {"DATA.NUM_FRAMES": 6}}})
    dry = _tool("--grid", grid_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("[to run]") == 4 and not os.path.exists(tmp_path / "tiny")  # nothing ran
    done = _tool("--grid", grid_path, "--jobs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    grid = load_grid(grid_path)
    cells = {(c.values["MODEL.POOL"], c.values["RNG_SEED"]): c for c in grid.cells()}
    # two jobs at once: the runs' lifetimes (config written at start, predictions at the end) overlap
    spans = sorted((os.stat(os.path.join(c.out, "config.yaml")).st_mtime,
                    os.stat(os.path.join(c.out, "predictions.csv")).st_mtime) for c in cells.values())
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1)), spans
    for (pool, _), c in cells.items():  # each run had its threads split: 2 cores / 2 jobs (or 1 core)
        with open(os.path.join(c.out, "run.log")) as f:
            assert "-m vidpool train" in f.readline()
        with open(os.path.join(c.out, "config.yaml")) as f:  # what the run trained with
            assert yaml.safe_load(f)["DATA"]["NUM_FRAMES"] == (6 if pool == "softpool" else 4)
    with open(tmp_path / "tiny" / "results.json") as f:
        res = json.load(f)
    by_pool = {r["MODEL.POOL"]: r for r in res["records"]}
    for pool in ("max", "softpool"):
        preds = [_predictions(cells[pool, s].out) for s in (0, 1)]
        top1 = [_accuracy(p) for p in preds]
        top5 = [_accuracy(p, 5) for p in preds]
        rec = by_pool[pool]
        assert rec["runs"] == 2 and sorted(rec["seeds"]) == [0, 1]
        assert rec["top1_mean"] == pytest.approx(statistics.fmean(top1))
        assert rec["top1_std"] == pytest.approx(statistics.stdev(top1))
        assert rec["top5_mean"] == pytest.approx(statistics.fmean(top5))
        assert rec["params"] > 0 and rec["gflops"] > 0 and rec["train_s_mean"] > 0
    # softpool against max, paired by seed: the per-seed top-1 differences and discordant counts
    deltas, discordant = [], []
    for s in (0, 1):
        a, b = _predictions(cells["softpool", s].out), _predictions(cells["max", s].out)
        deltas.append(_accuracy(a) - _accuracy(b))
        discordant.append((sum(a[v]["correct"] == "0" and b[v]["correct"] == "1" for v in a),
                           sum(a[v]["correct"] == "1" and b[v]["correct"] == "0" for v in a)))
    (cmp,) = res["comparisons"]
    assert cmp["compared"] == {"MODEL.POOL": "softpool"} and cmp["seeds"] == [0, 1]
    assert cmp["delta_mean"] == pytest.approx(statistics.fmean(deltas))
    assert [(s["n01"], s["n10"]) for s in cmp["per_seed"]] == discordant
    assert cmp["verdict"] in ("compared better", "baseline better", "no difference shown")
    with open(tmp_path / "tiny" / "results.csv") as f:
        kinds = [r["kind"] for r in csv.DictReader(f)]
    assert sorted(kinds) == ["cell", "cell", "comparison"]
    assert os.path.getsize(tmp_path / "tiny" / "results.png") > 10_000
    # rerun: every cell finished, nothing trains again (no file of any run is touched)
    before = {c.name: os.stat(os.path.join(c.out, "stats.jsonl")).st_mtime_ns for c in grid.cells()}
    again = _tool("--grid", grid_path)
    assert again.returncode == 0 and "4 finished, 0 to run" in again.stdout, again.stdout + again.stderr
    assert {c.name: os.stat(os.path.join(c.out, "stats.jsonl")).st_mtime_ns for c in grid.cells()} == before


@pytest.mark.slow
def test_interrupted_cell_resumes_from_its_checkpoint(synthetic_root, tmp_path):
    grid_path = _grid_file(tmp_path, synthetic_root, name="resume", overrides={"SOLVER.MAX_EPOCH": 3},
                           axes={"MODEL.POOL": ["softpool"]}, baseline={}, seed_key=None)
    (cell,) = load_grid(grid_path).cells()
    first = os.path.join(cell.out, "checkpoints", "checkpoint_epoch_00001.pyth")
    last = os.path.join(cell.out, "checkpoints", "checkpoint_epoch_00003.pyth")
    proc = subprocess.Popen([sys.executable, *TOOL, "--grid", grid_path], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its training run die at once
    proc.wait()
    assert os.path.exists(first) and not os.path.exists(last), "the kill came too late to interrupt"
    first_mtime = os.stat(first).st_mtime_ns
    dry = _tool("--grid", grid_path, "--dry-run")
    assert "[interrupted]" in dry.stdout
    done = _tool("--grid", grid_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming" in done.stdout
    assert os.stat(first).st_mtime_ns == first_mtime  # epoch 1 was not trained again
    with open(os.path.join(cell.out, "stats.jsonl")) as f:
        epochs = [r["epoch"] for r in map(json.loads, f) if r.get("kind", "epoch") == "epoch"]
    assert epochs[-1] == 3 and epochs.count(1) == 1


def _fake_cell(cell: Cell, correct, top1, seconds=10.0):
    """A finished cell folder: marker, predictions.csv (videos v0.. with the given correctness) and
    the test record."""
    os.makedirs(cell.out)
    with open(os.path.join(cell.out, "experiment_cell.json"), "w") as f:
        json.dump(cell.marker(), f)
    with open(os.path.join(cell.out, "predictions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "true_label", "predicted_label", "correct"])
        for i, ok in enumerate(correct):
            w.writerow([f"v{i}", 1, 1 if ok else 0, int(ok)])
    with open(os.path.join(cell.out, "stats.jsonl"), "w") as f:
        f.write(json.dumps({"epoch": 1, "lr": 0.1, "train_loss": 1.0, "epoch_time_s": seconds}) + "\n")
        f.write(json.dumps({"kind": "test", "epoch": 1, "test_video_top1": top1, "test_video_top5": 100.0}) + "\n")


def test_comparisons_on_hand_built_predictions_are_paired_by_seed(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("MODEL:\n  ARCH: r3d_10\n")
    grid = Grid(name="hand", base=str(base), overrides={}, out=str(tmp_path / "hand"), seed_key="RNG_SEED",
                axes={"MODEL.ARCH": ["r3d_10", "i3d"], "MODEL.POOL": ["max", "softpool", "lp"], "RNG_SEED": [0, 1]},
                baseline={"MODEL.POOL": "max"})
    cells = {(c.values["MODEL.ARCH"], c.values["MODEL.POOL"], c.values["RNG_SEED"]): c for c in grid.cells()}
    # r3d_10, 20 videos. seed 0: max right on v0-v9 (50 %), softpool on v5-v17 (65 %): softpool alone
    #   right 8, max alone right 5; seed 1: max right on v0-v4 (25 %), softpool on v0-v15 (80 %): 11 and 0
    _fake_cell(cells["r3d_10", "max", 0], [i < 10 for i in range(20)], 50.0)
    _fake_cell(cells["r3d_10", "softpool", 0], [5 <= i < 18 for i in range(20)], 65.0)
    _fake_cell(cells["r3d_10", "max", 1], [i < 5 for i in range(20)], 25.0)
    _fake_cell(cells["r3d_10", "softpool", 1], [i < 16 for i in range(20)], 80.0)
    # i3d: lp identical to max on seed 0 only; i3d softpool has no run at all
    _fake_cell(cells["i3d", "max", 0], [i % 2 == 0 for i in range(20)], 50.0)
    _fake_cell(cells["i3d", "lp", 0], [i % 2 == 0 for i in range(20)], 50.0)
    summary = summarise(grid, with_complexity=False)
    comps = {(c["compared"]["MODEL.ARCH"], c["compared"]["MODEL.POOL"]): c for c in summary["comparisons"]}
    assert set(comps) == {("r3d_10", "softpool"), ("i3d", "lp")}
    sp = comps["r3d_10", "softpool"]
    assert sp["baseline"] == {"MODEL.ARCH": "r3d_10", "MODEL.POOL": "max"} and sp["seeds"] == [0, 1]
    assert sp["delta_mean"] == pytest.approx((15 + 55) / 2)
    assert [(s["top1_a"], s["top1_b"], s["n10"], s["n01"]) for s in sp["per_seed"]] == [(65, 50, 8, 5), (80, 25, 11, 0)]
    # exact McNemar per seed: 2 P(Bin(13, 1/2) <= 5) = 2 * 2380 / 8192; 2 P(Bin(11, 1/2) = 0) = 2 / 2048
    assert [s["p_exact"] for s in sp["per_seed"]] == pytest.approx([2 * 2380 / 8192, 2 / 2048])
    # two seeds, both in favour: the pooled table said "99 %", the seeds cannot (permutation p >= 1/2)
    assert sp["p_permutation"] == pytest.approx(0.5) and sp["p_a_better"] == 1.0
    assert sp["ci"][0] < 0 < sp["ci"][1] and sp["verdict"] == "no difference shown"
    lp = comps["i3d", "lp"]
    assert lp["delta_mean"] == 0 and lp["ci"] == [None, None] and "one seed pair" in " ".join(lp["notes"])
    recs = {(r["MODEL.ARCH"], r["MODEL.POOL"]): r for r in summary["records"]}
    assert recs["r3d_10", "softpool"]["top1_mean"] == pytest.approx(72.5)
    assert recs["r3d_10", "softpool"]["top1_std"] == pytest.approx(10.606601717798213)  # stdev([65, 80])
    assert recs["i3d", "max"]["runs"] == 1 and recs["i3d", "max"]["top1_std"] == 0.0
    assert len(summary["unfinished"]) == 12 - 6
    paths = write_results(summary, grid.out)
    md = open(paths[2]).read()
    assert "| ARCH=r3d_10, POOL=softpool | 2 | – | +35.00 |" in md and "no difference shown |" in md
    with open(paths[1]) as f:
        rows = list(csv.DictReader(f))
    assert [r["kind"] for r in rows].count("comparison") == 2 and [r["kind"] for r in rows].count("cell") == 4


def test_bad_grids_and_changed_settings_are_clear_errors(synthetic_root, tmp_path):
    bad = _grid_file(tmp_path, synthetic_root, name="bad", axes={"MODEL.POOLS": ["max"]}, baseline={}, seed_key=None)
    done = _tool("--grid", bad, "--dry-run")
    assert done.returncode == 2 and "MODEL.POOLS" in done.stderr and "did you mean MODEL.POOL" in done.stderr
    for fields, message in (({"baseline": {"MODEL.POOL": "avg"}}, "baseline MODEL.POOL: 'avg'"),
                            ({"seed_key": "SEED"}, "seed_key 'SEED' is not an axis"),
                            ({"overrides": {"MODEL.POOL": "max"}}, "both fixed in 'overrides' and varied")):
        with pytest.raises(ValueError, match=message):
            load_grid(_grid_file(tmp_path, synthetic_root, name="bad2", **fields))
    # a cell folder made for other settings is never reused or overwritten
    path = _grid_file(tmp_path, synthetic_root, name="changed", axes={"MODEL.POOL": ["max"]}, baseline={},
                      seed_key=None)
    (cell,) = load_grid(path).cells()
    os.makedirs(cell.out)
    with open(os.path.join(cell.out, "experiment_cell.json"), "w") as f:
        json.dump({"base": "elsewhere.yaml", "overrides": ["SOLVER.MAX_EPOCH", "7"]}, f)
    done = _tool("--grid", path)
    assert done.returncode == 2 and "holds a run of other settings" in done.stderr
    assert os.listdir(cell.out) == ["experiment_cell.json"]


def test_the_best_cell_group_is_chosen_on_validation(tmp_path):
    """Cell groups whose validation and test rankings disagree: the best is the validation winner,
    shown with both numbers; select_on test picks the other one and the table says its test number
    is no result; a grid may only select on val or test."""
    base = tmp_path / "base.yaml"
    base.write_text("MODEL:\n  ARCH: r3d_10\n")

    def grid(select_on):
        return Grid(name="choose", base=str(base), overrides={}, out=str(tmp_path / "choose"), seed_key="RNG_SEED",
                    axes={"MODEL.POOL": ["max", "softpool"], "RNG_SEED": [0, 1]}, baseline={},
                    select_on=select_on)

    cells = {(c.values["MODEL.POOL"], c.values["RNG_SEED"]): c for c in grid("val").cells()}
    # max: val 70 and 74 (mean 72), test 60; softpool: val 66 and 68 (mean 67), test 65
    for (pool, seed), (val, test) in {("max", 0): (70, 60), ("max", 1): (74, 60), ("softpool", 0): (66, 65),
                                      ("softpool", 1): (68, 65)}.items():
        _fake_cell(cells[pool, seed], [i < test // 5 for i in range(20)], float(test))
        with open(os.path.join(cells[pool, seed].out, "stats.jsonl"), "a") as f:
            f.write(json.dumps({"epoch": 2, "lr": 0.1, "train_loss": 1.0, "epoch_time_s": 1.0, "val_top1": val}) + "\n")
    chosen = summarise(grid("val"), with_complexity=False)
    recs = {r["MODEL.POOL"]: r for r in chosen["records"]}
    assert recs["max"]["val_top1_mean"] == pytest.approx(72) and recs["softpool"]["val_top1_mean"] == pytest.approx(67)
    assert chosen["best"] == {"values": {"MODEL.POOL": "max"}, "chosen_on": "val", "val_top1_mean": 72.0,
                              "test_top1_mean": 60.0}
    md = open(write_results(chosen, str(tmp_path / "out"))[2]).read()
    assert "Best on val: POOL=max (val top-1 72.00, test top-1 60.00); its test top-1 is the result" in md
    assert "| softpool | 2 | 67.00 ± 1.41 | 65.00 ± 0.00 |" in md
    on_test = summarise(grid("test"), with_complexity=False)
    assert on_test["best"]["values"] == {"MODEL.POOL": "softpool"} and on_test["best"]["chosen_on"] == "test"
    assert "chosen on the test split: its test number is not a result" in markdown(on_test)
    path = tmp_path / "bad.yaml"
    path.write_text(f"base: {base}\naxes: {{MODEL.POOL: [max]}}\nselect_on: train\n")
    with pytest.raises(ValueError, match="select_on must be val or test"):
        load_grid(str(path), validate=False)


def test_per_value_overrides_reach_only_their_cells_and_bad_ones_are_errors(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("MODEL:\n  ARCH: r3d_10\n")
    grid = Grid(name="pv", base=str(base), overrides={"SOLVER.MAX_EPOCH": 3}, out=str(tmp_path / "pv"),
                seed_key="RNG_SEED", axes={"MODEL.ARCH": ["r3d_10", "i3d"], "RNG_SEED": [0, 1]}, baseline={},
                per_value={"MODEL.ARCH": {"i3d": {"DATA.NUM_FRAMES": 16, "SOLVER.MAX_EPOCH": 5}}})
    for cell in grid.cells():
        pairs = cell.override_list()
        given = dict(zip(pairs[0::2], pairs[1::2]))
        if cell.values["MODEL.ARCH"] == "i3d":  # the per-value setting wins over the grid's fixed one
            assert given["DATA.NUM_FRAMES"] == "16" and given["SOLVER.MAX_EPOCH"] == "5"
        else:
            assert "DATA.NUM_FRAMES" not in given and given["SOLVER.MAX_EPOCH"] == "3"
    for per_value, message in (({"MODEL.POOL": {"max": {"DATA.NUM_FRAMES": 8}}}, "needs an axis"),
                               ({"MODEL.ARCH": {"r2plus1d_10": {"DATA.NUM_FRAMES": 8}}}, "is not a value of that axis"),
                               ({"MODEL.ARCH": {"i3d": {"RNG_SEED": 3}}}, "cannot be set per value"),
                               ({"MODEL.ARCH": {"i3d": {"DATA.NUM_FRAMESS": 8}}}, "DATA.NUM_FRAMESS")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({"base": str(base), "axes": {"MODEL.ARCH": ["r3d_10", "i3d"], "RNG_SEED": [0]},
                                        "per_value": per_value}))
        with pytest.raises(ValueError, match=message):
            load_grid(str(path))


def test_the_training_gain_of_the_last_two_epochs_decides_convergence(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("MODEL:\n  ARCH: r3d_10\n")
    grid = Grid(name="conv", base=str(base), overrides={}, out=str(tmp_path / "conv"), seed_key="RNG_SEED",
                axes={"MODEL.POOL": ["max", "avg"], "RNG_SEED": [0, 1]}, baseline={})
    cells = {(c.values["MODEL.POOL"], c.values["RNG_SEED"]): c for c in grid.cells()}
    # Training top-1 per epoch (8 epochs; the gain reads a line through the last 6).
    # max 0: a noisy plateau, 91 90.5 91 90 90.5 91.5: sum (x - 2.5) y = 0.75 over x = 0..5, slope
    #   0.75 / 17.5 per epoch (hand-computed), gain 0.086, though the last epoch is 1.5 above the
    #   one two before it (raw rise).
    # max 1: flat then a dip; avg 0: still rising 2 points an epoch (gain 4, raw 4).
    # avg 1: epoch 8 logged twice (a resumed run replays it): its last record, 90, counts.
    curves = {("max", 0): [40, 70, 91, 90.5, 91, 90, 90.5, 91.5], ("max", 1): [50, 80, 86, 86, 86, 86, 86, 85],
              ("avg", 0): [10, 40, 80, 82, 84, 86, 88, 90], ("avg", 1): [20, 60, 90, 90, 90, 90, 90, 99, 90]}
    for key, curve in curves.items():
        _fake_cell(cells[key], [True] * 4, 100.0)
        with open(os.path.join(cells[key].out, "stats.jsonl"), "a") as f:
            for epoch, top1 in enumerate(curve[:8], start=1):
                f.write(json.dumps({"epoch": epoch, "train_top1": top1}) + "\n")
            if len(curve) > 8:
                f.write(json.dumps({"epoch": 8, "train_top1": curve[8]}) + "\n")
    recs = {r["MODEL.POOL"]: r for r in summarise(grid, with_complexity=False)["records"]}
    # max 1: x = 0..5 around 2.5, y = 86 86 86 86 86 85: sum (x - 2.5) y = -2.5, slope -1/7, gain -2/7
    assert recs["max"]["train_gain"] == pytest.approx([2 * 0.75 / 17.5, -2 / 7]) and recs["max"]["converged"]
    assert recs["max"]["train_rise"] == pytest.approx([1.5, -1.0])
    assert recs["avg"]["train_gain"] == pytest.approx([4.0, 0.0], abs=1e-12) and not recs["avg"]["converged"]
    assert recs["avg"]["train_gain_max"] == pytest.approx(4.0) and recs["avg"]["train_rise_max"] == pytest.approx(4.0)
    md = markdown(summarise(grid, with_complexity=False))
    assert "| avg | 2 |" in md and "| 4.0 | 4.0 | no |" in md and "| 0.1 | 1.5 | yes |" in md
