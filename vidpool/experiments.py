"""Ablation grids: many training runs that differ in a few config keys, and their comparison.

A grid (YAML; the format is in `vidpool experiments`'s help) names a base config, fixed
overrides, axes of config overrides, a baseline (values of some axes that every other value is
tested against), the seed axis averaged over, and an output folder.

Every combination of axis values is a cell: a normal training run (``vidpool train``) in its own
OUTPUT_DIR under ``out``. A finished cell (its test written) is skipped, an interrupted one resumes
from its checkpoints, and a cell whose folder holds a run of other overrides is an error, so a grid
can be rerun or extended safely. The summary groups the cells over the seed axis (mean and sample
standard deviation of the video top-1/top-5) and compares every non-baseline value of the baseline
axes with the baseline, matching the other axes and pairing the runs by seed, with seed-level
statistics and one verdict rule (:mod:`vidpool.analysis.compare`).
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from vidpool.analysis.compare import RULE, compare_predictions
from vidpool.engine.run_log import read_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_FILE = "experiment_cell.json"  # the overrides a cell folder was created for
CONVERGED_GAIN = 1.0  # points: a run whose training top-1 rose less over its last two epochs has converged
FIT_EPOCHS = 6  # the rise over the last two epochs is read from a line through the last 6 (training_gain)


@dataclass
class Grid:
    name: str
    base: str
    overrides: Dict[str, Any]
    axes: Dict[str, List[Any]]
    baseline: Dict[str, Any]
    seed_key: Optional[str]
    out: str
    select_on: str = "val"  # the split a "best" cell group is chosen on
    # axis key -> axis value -> overrides for the cells with that value (e.g. a per-family input size)
    per_value: Dict[str, Dict[Any, Dict[str, Any]]] = field(default_factory=dict)

    def cells(self) -> List["Cell"]:
        keys = list(self.axes)
        return [Cell(self, dict(zip(keys, values))) for values in itertools.product(*self.axes.values())]

    @property
    def group_keys(self) -> List[str]:
        """The axes a summary record is keyed by: every axis but the seed."""
        return [k for k in self.axes if k != self.seed_key]


def _value_text(value: Any) -> str:
    """A YAML value as the text of a KEY VALUE override (fvcore parses it back with literal_eval)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    return repr(value) if isinstance(value, (int, float)) else json.dumps(value)


def _slug(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "_"


@dataclass
class Cell:
    grid: Grid
    values: Dict[str, Any]  # axis key -> value

    @property
    def name(self) -> str:
        return "__".join(f"{k.split('.')[-1]}-{_slug(v)}" for k, v in self.values.items())

    @property
    def out(self) -> str:
        return os.path.join(self.grid.out, "cells", self.name)

    def override_list(self) -> List[str]:
        """KEY VALUE pairs for ``vidpool train``: the grid's fixed overrides, those ``per_value`` gives
        this cell's axis values (in the order of ``per_value``), then this cell's values."""
        pairs = dict(self.grid.overrides)
        for key, by_value in self.grid.per_value.items():
            for value, extra in by_value.items():
                if _slug(value) == _slug(self.values[key]):
                    pairs.update(extra)
        pairs.update(self.values)
        out = []
        for k, v in pairs.items():
            out += [k, _value_text(v)]
        return out

    def group(self) -> Tuple:
        return tuple(self.values[k] for k in self.grid.group_keys)

    def seed(self):
        return self.values.get(self.grid.seed_key) if self.grid.seed_key else None

    def marker(self) -> dict:
        return {"base": self.grid.base, "overrides": self.override_list()}

    def made_for(self) -> Optional[dict]:
        """What the cell's folder was created for (None: no marker)."""
        path = os.path.join(self.out, CELL_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def finished(self) -> bool:
        """Tested, by a run of exactly this cell's settings."""
        return (os.path.isfile(os.path.join(self.out, "predictions.csv")) and self.made_for() == self.marker()
                and final_test_record(self.out) is not None)

    def started(self) -> bool:
        return os.path.isdir(self.out)


def _resolve(path: str, grid_file: str) -> str:
    """Paths in a grid are relative to the working directory, else to the grid file's folder."""
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    beside = os.path.join(os.path.dirname(os.path.abspath(grid_file)), path)
    return os.path.abspath(beside) if os.path.exists(beside) else os.path.abspath(path)


def load_grid(path: str, validate: bool = True) -> Grid:
    """Reads and checks a grid file: the base config exists, every key is a config key (checked by
    loading every cell's config when ``validate``), the baseline and seed key are axes."""
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a grid is a mapping with base, axes, ... (got {type(raw).__name__})")
    unknown = set(raw) - {"base", "overrides", "axes", "baseline", "seed_key", "out", "name", "select_on", "per_value"}
    if unknown:
        raise ValueError(f"{path}: unknown grid field(s) {sorted(unknown)} (base, overrides, axes, baseline, "
                         "seed_key, out, name, select_on, per_value)")
    select_on = raw.get("select_on", "val")
    if select_on not in ("val", "test"):
        raise ValueError(f"{path}: select_on must be val or test, got {select_on!r}")
    for required in ("base", "axes"):
        if required not in raw:
            raise ValueError(f"{path}: the grid needs '{required}'")
    axes = raw["axes"]
    if not isinstance(axes, dict) or not axes:
        raise ValueError(f"{path}: 'axes' must map config keys to lists of values")
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise ValueError(f"{path}: axis {k} needs a non-empty list of values, got {v!r}")
        if len(set(map(_slug, v))) != len(v):
            raise ValueError(f"{path}: axis {k} repeats a value: {v}")
    overrides = raw.get("overrides") or {}
    both = set(overrides) & set(axes)
    if both:
        raise ValueError(f"{path}: {sorted(both)} both fixed in 'overrides' and varied in 'axes'")
    if "OUTPUT_DIR" in axes or "OUTPUT_DIR" in overrides:
        raise ValueError(f"{path}: OUTPUT_DIR is set per cell (under 'out'); do not override it")
    per_value = raw.get("per_value") or {}
    if not isinstance(per_value, dict):
        raise ValueError(f"{path}: per_value maps an axis to {{value: {{KEY: VALUE}}}}, got {per_value!r}")
    for k, by_value in per_value.items():
        if k not in axes or not isinstance(by_value, dict):
            raise ValueError(f"{path}: per_value {k}: needs an axis (axes: {sorted(axes)}) mapped to "
                             "{value: {KEY: VALUE}}")
        for value, extra in by_value.items():
            if _slug(value) not in {_slug(v) for v in axes[k]}:
                raise ValueError(f"{path}: per_value {k}: {value!r} is not a value of that axis ({axes[k]})")
            if not isinstance(extra, dict) or not extra:
                raise ValueError(f"{path}: per_value {k}: {value}: needs a mapping of config keys to values")
            clash = sorted(set(extra) & (set(axes) | {"OUTPUT_DIR"}))
            if clash:
                raise ValueError(f"{path}: per_value {k}: {value}: {clash} cannot be set per value "
                                 "(axes and OUTPUT_DIR are set per cell)")
    baseline = raw.get("baseline") or {}
    for k, v in baseline.items():
        if k not in axes or v not in axes[k]:
            raise ValueError(f"{path}: baseline {k}: {v!r} is not a value of an axis (axes: {sorted(axes)})")
    seed_key = raw.get("seed_key")
    if seed_key is not None and seed_key not in axes:
        raise ValueError(f"{path}: seed_key {seed_key!r} is not an axis")
    if seed_key is not None and seed_key in baseline:
        raise ValueError(f"{path}: the seed axis cannot be the baseline")
    name = raw.get("name") or os.path.splitext(os.path.basename(path))[0]
    grid = Grid(name=name, base=_resolve(raw["base"], path), overrides=dict(overrides), axes=dict(axes),
                baseline=dict(baseline), seed_key=seed_key, per_value=dict(per_value),
                out=os.path.abspath(raw.get("out") or os.path.join("output", "experiments", name)), select_on=select_on)
    if not os.path.isfile(grid.base):
        raise FileNotFoundError(f"{path}: base config {raw['base']} not found")
    if validate:
        from vidpool.config import load_cfg

        for cell in grid.cells():
            try:
                load_cfg(grid.base, cell.override_list())
            except (KeyError, ValueError) as e:
                raise ValueError(f"{path}: cell {cell.name}: {str(e).strip(chr(34))}") from None
    return grid


def final_test_record(out: str) -> Optional[dict]:
    tests = read_stats(out, "test")
    return tests[-1] if tests else None


def final_val_top1(out: str) -> Optional[float]:
    """The validation top-1 of a run's last validated epoch (None: it never validated)."""
    epochs = [r for r in read_stats(out, "epoch") if r.get("val_top1") is not None]
    return float(epochs[-1]["val_top1"]) if epochs else None


def _train_top1(out: str) -> Dict[int, float]:
    """Training top-1 per epoch (the last record of an epoch, so one replayed after a resume counts once)."""
    return {r["epoch"]: r["train_top1"] for r in read_stats(out, "epoch") if r.get("train_top1") is not None}


def training_rise(out: str, epochs: int = 2) -> Optional[float]:
    """The last epoch's training top-1 minus the one ``epochs`` before it (points); None when the
    run has no more than ``epochs`` epochs. Reported beside training_gain: one epoch's figure moves
    by about ±0.65 points by chance (2,000 clips at 90 %), so this difference alone cannot tell a
    converged run from one still learning."""
    top1 = _train_top1(out)
    last = max(top1, default=None)
    if last is None or last - epochs not in top1:
        return None
    return float(top1[last] - top1[last - epochs])


def training_gain(out: str, epochs: int = 2, fit: int = FIT_EPOCHS) -> Optional[float]:
    """How much a run's training top-1 rose over its last ``epochs`` epochs (points), read from the
    least-squares line through its last ``fit`` epochs (all of them when it has fewer): the line's
    slope times ``epochs``. The convergence check of a cell. With fit = epochs + 1 this is the plain
    difference (training_rise); over 6 epochs its chance spread is a third of that difference's,
    and on a curve still bending upwards it overstates the last epochs' rise (a strict check). None
    when the run has no more than ``epochs`` epochs."""
    top1 = _train_top1(out)
    last = max(top1, default=None)
    if last is None or last - epochs not in top1:
        return None
    xs = [e for e in range(last - max(fit, epochs + 1) + 1, last + 1) if e in top1]
    slope, _ = statistics.linear_regression(xs, [top1[e] for e in xs])
    return float(slope * epochs)


def train_seconds(out: str) -> float:
    """Training time of a run: the sum of its epochs' times (the last record of each epoch, so an
    epoch replayed after a resume counts once)."""
    epochs = {r["epoch"]: r.get("epoch_time_s", 0.0) for r in read_stats(out, "epoch")}
    return float(sum(epochs.values()))


def complexity(grid: Grid, cell: Cell) -> Dict[str, float]:
    """Parameters and GFLOPs (fvcore, one test clip) of a cell's model."""
    import torch

    from vidpool.analysis.complexity import count_parameters, flops_and_activations
    from vidpool.config import load_cfg
    from vidpool.models import build_model

    cfg = load_cfg(grid.base, cell.override_list())
    model = build_model(cfg).eval()
    size = cfg.DATA.TEST_CROP_SIZE
    clip = torch.zeros(1, 3, cfg.DATA.NUM_FRAMES, size, size)
    flops, _ = flops_and_activations(model, clip)
    return {"params": count_parameters(model), "gflops": flops}


# ------------------------------------------------------------------------------------------ running


@dataclass
class Runner:
    grid: Grid
    jobs: int = 1
    threads: Optional[int] = None  # per job; default: this machine's cores split over the jobs
    python: str = sys.executable
    log: Any = print
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def command(self, cell: Cell) -> List[str]:
        return [self.python, "-m", "vidpool", "train", "--cfg", self.grid.base,
                "OUTPUT_DIR", cell.out] + cell.override_list()

    def threads_per_job(self) -> int:
        if self.threads:
            return self.threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // max(1, self.jobs))

    def check_folder(self, cell: Cell) -> None:
        """A cell folder made for other settings (the grid changed) is an error, never reused."""
        have, want = cell.made_for(), cell.marker()
        if have is not None and have != want:
            raise RuntimeError(f"{cell.out} holds a run of other settings ({have['overrides']} from {have['base']}), "
                               f"not {want['overrides']}: move it away or give the grid another 'out'")
        if have is None and os.path.isdir(cell.out) and os.listdir(cell.out):
            raise RuntimeError(f"{cell.out} exists but was not made by this runner: move it away")

    def claim(self, cell: Cell) -> None:
        os.makedirs(cell.out, exist_ok=True)
        if cell.made_for() is None:
            with open(os.path.join(cell.out, CELL_FILE), "w") as f:
                json.dump(cell.marker(), f, indent=1)

    def run_cell(self, cell: Cell, index: int, total: int) -> dict:
        self.claim(cell)
        state = "resuming" if os.path.isdir(os.path.join(cell.out, "checkpoints")) else "starting"
        threads = self.threads_per_job()
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.log(f"[{index}/{total}] {state} {cell.name} ({threads} thread{'s' * (threads > 1)})")
        start = time.time()
        with open(os.path.join(cell.out, "run.log"), "a") as logf:
            logf.write(f"$ {' '.join(self.command(cell))}\n")
            logf.flush()
            done = subprocess.run(self.command(cell), cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        seconds = time.time() - start
        if done.returncode != 0 or not cell.finished():
            raise RuntimeError(f"cell {cell.name} failed (exit {done.returncode}) after {seconds:.0f} s; "
                               f"see {os.path.join(cell.out, 'run.log')}")
        rec = final_test_record(cell.out)
        self.log(f"[{index}/{total}] done {cell.name} in {seconds:.0f} s: video top-1 "
                 f"{rec['test_video_top1']:.2f}%")
        return {"cell": cell.name, "seconds": seconds}

    def run(self) -> List[Cell]:
        """Runs every unfinished cell (``jobs`` at a time); returns the cells that failed. Raises
        RuntimeError, before running anything, when a cell's folder holds other settings."""
        cells = self.grid.cells()
        for cell in cells:  # every folder checked before anything runs
            self.check_folder(cell)
        todo = [c for c in cells if not c.finished()]
        self.log(f"grid {self.grid.name}: {len(cells)} cells, {len(cells) - len(todo)} finished, {len(todo)} to run "
                 f"({sum(c.started() for c in todo)} interrupted), {self.jobs} at a time -> {self.grid.out}")
        failed: List[Cell] = []

        def one(item):
            i, cell = item
            try:
                self.run_cell(cell, i, len(todo))
            except RuntimeError as e:
                with self._lock:
                    failed.append(cell)
                self.log(f"error: {e}")

        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            list(pool.map(one, enumerate(todo, start=1)))
        return failed


# -------------------------------------------------------------------------------------- summarising


def _mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(grid: Grid, with_complexity: bool = True) -> dict:
    """Records per cell group (over seeds) and comparisons against the baseline, from the
    finished cells' files; unfinished cells are listed and left out."""
    cells = grid.cells()
    done = [c for c in cells if c.finished()]
    groups: Dict[Tuple, List[Cell]] = {}
    for c in done:
        groups.setdefault(c.group(), []).append(c)
    records = []
    for key, members in groups.items():
        tests = [final_test_record(c.out) for c in members]
        top1, top5 = [t["test_video_top1"] for t in tests], [t["test_video_top5"] for t in tests]
        rec: Dict[str, Any] = dict(zip(grid.group_keys, key))
        rec["seeds"] = [c.seed() for c in members] if grid.seed_key else []
        rec["runs"] = len(members)
        rec["top1_mean"], rec["top1_std"] = _mean_std(top1)
        rec["top5_mean"], rec["top5_std"] = _mean_std(top5)
        rec["top1"], rec["top5"] = top1, top5
        val = [final_val_top1(c.out) for c in members]
        rec["val_top1"] = val if all(v is not None for v in val) else []
        rec["val_top1_mean"], rec["val_top1_std"] = _mean_std(rec["val_top1"]) if rec["val_top1"] else (None, None)
        rec["train_s_mean"], rec["train_s_std"] = _mean_std([train_seconds(c.out) for c in members])
        gains = [training_gain(c.out) for c in members]
        rec["train_gain"] = gains  # training top-1 over the last two epochs, fitted, per run (points)
        rec["train_gain_max"] = max(gains) if gains and None not in gains else None
        rises = [training_rise(c.out) for c in members]
        rec["train_rise"] = rises  # the same as a plain difference of two epochs' figures, per run
        rec["train_rise_max"] = max(rises) if rises and None not in rises else None
        rec["converged"] = rec["train_gain_max"] is not None and rec["train_gain_max"] < CONVERGED_GAIN
        if with_complexity:
            rec.update(complexity(grid, members[0]))
        records.append(rec)
    return {"grid": {"name": grid.name, "base": grid.base, "overrides": grid.overrides, "axes": grid.axes,
                     "baseline": grid.baseline, "seed_key": grid.seed_key, "out": grid.out, "select_on": grid.select_on,
                     "per_value": grid.per_value},
            "records": records, "comparisons": compare(grid, done), "best": best(grid, records),
            "unfinished": [c.name for c in cells if not c.finished()]}


def best(grid: Grid, records: Sequence[dict]) -> Optional[dict]:
    """The cell group with the highest mean top-1 on the grid's ``select_on`` split (val unless the
    grid says test), with both splits' numbers; None when no group has that split's numbers."""
    key = "val_top1_mean" if grid.select_on == "val" else "top1_mean"
    candidates = [r for r in records if r.get(key) is not None]
    if not candidates:
        return None
    chosen = max(candidates, key=lambda r: r[key])
    return {"values": {k: chosen[k] for k in grid.group_keys}, "chosen_on": grid.select_on,
            "val_top1_mean": chosen.get("val_top1_mean"), "test_top1_mean": chosen["top1_mean"]}


def compare(grid: Grid, done: Sequence[Cell]) -> List[dict]:
    """Every non-baseline cell group against the baseline group with the same values on the other
    axes, runs paired by seed, with the seed-level statistics of :mod:`vidpool.analysis.compare`
    (A = the compared group, B = the baseline)."""
    if not grid.baseline:
        return []
    by_values = {tuple(sorted((k, _slug(v)) for k, v in c.values.items())): c for c in done}
    out = []
    for key in sorted({c.group() for c in done}, key=str):
        values = dict(zip(grid.group_keys, key))
        if all(values[k] == v for k, v in grid.baseline.items()):
            continue
        base_values = {**values, **grid.baseline}
        seeds, notes, mine, theirs, val_deltas = [], [], [], [], []
        for c in sorted((c for c in done if c.group() == key), key=lambda c: str(c.seed())):
            partner = by_values.get(tuple(sorted((k, _slug(v)) for k, v in {**c.values, **grid.baseline}.items())))
            if partner is None:
                notes.append(f"no finished baseline run for seed {c.seed()}")
                continue
            mine.append(os.path.join(c.out, "predictions.csv"))
            theirs.append(os.path.join(partner.out, "predictions.csv"))
            seeds.append(c.seed())
            vals = final_val_top1(c.out), final_val_top1(partner.out)
            val_deltas.append(None if None in vals else vals[0] - vals[1])
        if not seeds:
            continue
        rec: Dict[str, Any] = {"compared": values, "baseline": base_values, "seeds": seeds, "notes": notes,
                               # the validation split's mean difference (clip top-1, last epoch), beside test's
                               "delta_val_mean": statistics.fmean(val_deltas) if None not in val_deltas else None}
        try:
            result = compare_predictions(mine, theirs)
        except ValueError as e:
            notes.append(f"not compared: {e}")
            out.append(rec)
            continue
        names = {"A better": "compared better", "B better": "baseline better"}
        rec.update(delta_mean=result.delta_mean, ci=result.ci, ci_bootstrap=result.ci_bootstrap,
                   p_permutation=result.p_permutation, p_a_better=result.p_a_better,
                   p_a_better_ci=result.p_a_better_ci, verdict=names.get(result.verdict, result.verdict),
                   per_seed=result.seeds)
        notes.extend(result.notes)
        out.append(rec)
    return out


def _fmt(v: Optional[float], digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _p(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.3g}"


def _label(values: Dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in values.items())


def markdown(summary: dict) -> str:
    g = summary["grid"]
    keys = [k for k in g["axes"] if k != g["seed_key"]]
    seeds = f" over {g['seed_key']} {g['axes'][g['seed_key']]}" if g["seed_key"] else ""
    lines = [f"# {g['name']}", "", f"Video top-1 / top-5 (%), mean ± sample std{seeds}: validation (last validated "
             "epoch, clips) and test (videos) side by side; training time per run; training gain: the most any "
             "run's training top-1 rose over its last two epochs (points), read from the least-squares line "
             f"through its last {FIT_EPOCHS} epochs (converged when every run's gain is below {CONVERGED_GAIN:g}); "
             "raw rise: the same as the plain difference of the two epochs' figures, which moves by about a "
             "point by chance.", "",
             "| " + " | ".join(k.split(".")[-1] for k in keys) + " | runs | val top-1 | test top-1 | test top-5 | "
             "params (M) | GFLOPs | train s | training gain | raw rise | converged |", "|" + "---|" * (len(keys) + 10)]
    for r in summary["records"]:
        params = _fmt(r["params"] / 1e6) if "params" in r else "–"
        val = f"{_fmt(r['val_top1_mean'])} ± {_fmt(r['val_top1_std'])}" if r.get("val_top1_mean") is not None else "–"
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + f" | {r['runs']} | {val} | "
                     f"{_fmt(r['top1_mean'])} ± {_fmt(r['top1_std'])} | {_fmt(r['top5_mean'])} ± {_fmt(r['top5_std'])} | "
                     f"{params} | {_fmt(r.get('gflops'), 3)} | {_fmt(r['train_s_mean'], 0)} | "
                     f"{_fmt(r.get('train_gain_max'), 1)} | {_fmt(r.get('train_rise_max'), 1)} | "
                     f"{'yes' if r.get('converged') else 'no'} |")
    chosen = summary.get("best")
    if chosen:
        warning = (" — chosen on the test split: its test number is not a result" if chosen["chosen_on"] == "test"
                   else "; its test top-1 is the result to report")
        lines += ["", f"Best on {chosen['chosen_on']}: {_label(chosen['values'])} (val top-1 "
                  f"{_fmt(chosen['val_top1_mean'])}, test top-1 {_fmt(chosen['test_top1_mean'])}){warning}."]
    if summary["comparisons"]:
        lines += ["", f"Against the baseline ({_label(g['baseline'])}), runs paired by seed on the same test videos: "
                  "mean top-1 difference (compared - baseline, points) with its 95 % interval over seeds and videos, "
                  "the sign-flip permutation p over seeds, P(compared > baseline) and the verdict "
                  f"({RULE}; docs/experiments.md).", "",
                  "Δ val is the validation split's mean difference (clip top-1, last epoch), for reference.", "",
                  "| compared | seeds | Δ val top-1 | Δ test top-1 | 95 % CI | permutation p | P(compared > baseline) "
                  "| verdict |", "|---|---|---|---|---|---|---|---|"]
        for c in summary["comparisons"]:
            if "verdict" not in c:
                lines.append(f"| {_label(c['compared'])} | {len(c['seeds'])} | – | – | – | – | – | not compared |")
                continue
            ci = f"{_fmt(c['ci'][0])} to {_fmt(c['ci'][1])}" if c["ci"][0] is not None else "– (one seed)"
            dval = "–" if c.get("delta_val_mean") is None else f"{c['delta_val_mean']:+.2f}"
            lines.append(f"| {_label(c['compared'])} | {len(c['seeds'])} | {dval} | {c['delta_mean']:+.2f} | {ci} | "
                         f"{_p(c['p_permutation'])} | {c['p_a_better']:.2f} | {c['verdict']} |")
    if summary["unfinished"]:
        lines += ["", f"Unfinished cells (left out): {', '.join(summary['unfinished'])}"]
    return "\n".join(lines) + "\n"


def write_results(summary: dict, out: str) -> List[str]:
    """results.json (everything), results.csv (one row per record and per comparison, column
    ``kind``) and results.md in ``out``; returns the paths."""
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"results.{ext}") for ext in ("json", "csv", "md")]
    with open(paths[0], "w") as f:
        json.dump(summary, f, indent=1, default=str)
    keys = [k for k in summary["grid"]["axes"] if k != summary["grid"]["seed_key"]]
    fields = ["kind"] + keys + ["runs", "seeds", "val_top1_mean", "val_top1_std", "top1_mean", "top1_std", "top5_mean",
                                "top5_std", "params", "gflops",
                                "train_s_mean", "train_s_std", "train_gain_max", "train_rise_max", "converged", "baseline",
                                "delta_val_mean", "delta_mean", "ci_low", "ci_high",
                                "p_permutation", "p_a_better", "verdict"]
    with open(paths[1], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in summary["records"]:
            w.writerow({"kind": "cell", **r, "seeds": " ".join(map(str, r["seeds"]))})
        for c in summary["comparisons"]:
            ci = c.get("ci") or [None, None]
            w.writerow({"kind": "comparison", **c["compared"],
                        **{k: c[k] for k in ("delta_val_mean", "delta_mean", "p_permutation", "p_a_better", "verdict")
                           if k in c},
                        "ci_low": ci[0], "ci_high": ci[1], "baseline": _label(c["baseline"]), "runs": len(c["seeds"]),
                        "seeds": " ".join(map(str, c["seeds"]))})
    with open(paths[2], "w") as f:
        f.write(markdown(summary))
    return paths
