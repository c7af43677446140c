"""How often does the comparison rule declare a difference that is not there, and how often does it
find one that is? Runs simulated from a model fitted to real runs.

The model (fitted by ``fit_model`` to the test outcomes of several seeds of one config):
- a video's chance of being classified right is drawn from a beta distribution, fitted by the
  method of moments to how many of the real runs got each video right (beta-binomial);
- a run (a seed) shifts the logit of every video's chance by the same amount, drawn from
  N(0, sigma^2), with sigma chosen so that simulated runs' top-1 spreads over seeds as the real
  runs' does.
One simulated experiment draws a test set (the videos' chances) and k seeds of A and of B from the
same model; B's logits are shifted by ``effect`` for a power study (0: no difference).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .compare import Pair, bootstrap_deltas, seed_video_interval, sign_flip_p, verdict_of


@dataclass
class Model:
    a: float  # beta distribution of a video's chance of being right
    b: float
    sigma: float  # spread of a seed's logit shift
    videos: int
    runs: int  # the real runs it was fitted to
    top1_mean: float  # their mean and spread of top-1 (%)
    top1_sd: float


def _chances(model: Model, n: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.beta(model.a, model.b, size=n)
    return np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))


def _runs(logits: np.ndarray, shifts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    chance = 1.0 / (1.0 + np.exp(-(logits[None, :] + shifts[:, None])))
    return (rng.random(chance.shape) < chance).astype(np.int8)


def load_outcomes(path: str) -> np.ndarray:
    """Runs' outcomes from a CSV with a video_id column and one 0/1 column per run."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    runs = [k for k in rows[0] if k != "video_id"]
    return np.array([[int(r[k]) for r in rows] for k in runs], dtype=np.int8)


def _read_runs(paths: Sequence[str]) -> Tuple[list, np.ndarray]:
    """The video ids and the runs' outcomes (runs, videos) of predictions.csv files."""
    from .compare import read_outcomes

    runs = [read_outcomes(p) for p in paths]
    videos = sorted(runs[0])
    if any(set(r) != set(videos) for r in runs):
        raise ValueError("the runs are not over the same test videos")
    return videos, np.array([[r[v][0] for v in videos] for r in runs], dtype=np.int8)


def outcomes_of(paths: Sequence[str]) -> np.ndarray:
    """Runs' outcomes (runs, videos) from predictions.csv files over the same videos."""
    return _read_runs(paths)[1]


def save_outcomes(path: str, paths: Sequence[str]) -> None:
    """The outcomes of predictions.csv files as one table: video_id, then one 0/1 column per run."""
    import csv

    videos, outcomes = _read_runs(paths)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id"] + [f"run{i}" for i in range(len(outcomes))])
        for i, v in enumerate(videos):
            w.writerow([v] + [int(x) for x in outcomes[:, i]])


def fit_model(outcomes: np.ndarray, seed: int = 0, seed_sd: Optional[float] = None) -> Model:
    """The model from real runs' outcomes, an array (runs, videos) of 1 right / 0 wrong; with
    ``seed_sd``, the seed spread is fitted to that top-1 standard deviation (points) instead of the
    runs' own."""
    outcomes = np.asarray(outcomes, dtype=np.float64)
    runs, n = outcomes.shape
    if runs < 2:
        raise ValueError("fitting the seed spread needs at least 2 runs")
    right = outcomes.sum(axis=0)
    mu = right.mean() / runs
    # beta-binomial: var(right) = runs mu (1 - mu) (1 + (runs - 1) rho), rho = 1 / (a + b + 1)
    rho = (right.var(ddof=1) / (runs * mu * (1 - mu)) - 1) / (runs - 1)
    rho = float(np.clip(rho, 1e-3, 0.999))
    a, b = mu * (1 / rho - 1), (1 - mu) * (1 / rho - 1)
    top1 = 100.0 * outcomes.mean(axis=1)
    target = top1.std(ddof=1) if seed_sd is None else float(seed_sd)
    rng = np.random.default_rng(seed)
    logits = _chances(Model(a, b, 0.0, n, runs, 0, 0), n, rng)
    best, best_gap = 0.0, float("inf")
    for sigma in np.linspace(0.0, 3.0, 121):  # the spread of simulated runs' top-1 against the real one
        sims = 100.0 * _runs(logits, rng.normal(0.0, sigma, 400), rng).mean(axis=1)
        gap = abs(sims.std(ddof=1) - target)
        if gap < best_gap:
            best, best_gap = float(sigma), gap
    return Model(float(a), float(b), best, n, runs, float(top1.mean()), float(target))


def simulate_pairs(model: Model, k: int, rng: np.random.Generator, effect: float = 0.0, n: int = 0) -> list:
    """One experiment: k seed pairs over one drawn test set of ``n`` videos (default: the model's)."""
    logits = _chances(model, n or model.videos, rng)
    a = _runs(logits, rng.normal(0.0, model.sigma, k), rng)
    b = _runs(logits + effect, rng.normal(0.0, model.sigma, k), rng)
    return [Pair(a[i], b[i]) for i in range(k)]


RULES: Dict[str, Callable[[Sequence[Pair], np.random.Generator], str]] = {
    "interval over seeds and videos (the rule)": lambda pairs, rng: verdict_of(seed_video_interval(pairs)),
    "two-level bootstrap interval": lambda pairs, rng: verdict_of(
        tuple(np.quantile(bootstrap_deltas(pairs, 2000, rng), [0.025, 0.975]))),
    "sign-flip permutation p <= 0.05": lambda pairs, rng: (
        "no difference shown" if sign_flip_p(np.array([100 * (p.a.mean() - p.b.mean()) for p in pairs])) > 0.05
        else "A better" if sum(p.a.mean() - p.b.mean() for p in pairs) > 0 else "B better"),
}


def rate(model: Model, k: int, experiments: int, rule: str, effect: float = 0.0, seed: int = 0) -> Tuple[float, float]:
    """Share of simulated experiments in which ``rule`` declares any difference (effect 0: the
    false-positive rate) or the right one, B better (effect > 0: the power), and the mean top-1
    difference B - A (points) the effect gave."""
    rng = np.random.default_rng(seed)
    hits, shift = 0, 0.0
    for _ in range(experiments):
        pairs = simulate_pairs(model, k, rng, effect)
        verdict = RULES[rule](pairs, rng)
        hits += verdict != "no difference shown" if effect == 0 else verdict == "B better"
        shift += 100.0 * float(np.mean([p.b.mean() - p.a.mean() for p in pairs]))
    return hits / experiments, shift / experiments
