"""Is method A better than method B? Seed-level statistics over paired runs.

Each method is trained once per seed and tested on the same videos; run ``i`` of A is paired with
run ``i`` of B (the same seed). The unit of evidence is the seed: a table pooled over seeds counts
the same video once per seed as if it were a new video and ignores how much a method moves from
seed to seed, so no verdict is drawn from one.

Per pair: top-1 of each run, the discordant counts (``n01``: A wrong and B right, ``n10``: A right
and B wrong) and McNemar's exact p for that pair alone.

Across pairs (Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks", MLSys
2021):
- ``delta_mean``: the mean over pairs of top-1(A) - top-1(B), in percentage points;
- ``ci``: its 95 % interval with both sources of variation, the seeds and the finite test set (the
  same videos under every seed: a crossed design). With D[s, v] = 100 (A right - B right) on video v
  under seed pair s (k pairs, n videos): the variance of the mean is estimated as
  var_s(mean_v D) / k + max(var_v(mean_s D) - mean_v(var_s D) / k, 0) / n, the second term being
  the videos' own share (method of moments for two crossed random effects), and the interval is
  delta_mean +- t(k - 1) standard errors. One pair gives no interval (the seed spread is unknown);
- ``ci_bootstrap``: the paired two-level bootstrap interval (the pairs resampled, then each drawn
  pair's videos, A's and B's outcome on a video kept together), for reference: with few seeds it
  cannot show more seed spread than the few seeds have, and its intervals are too narrow (under
  no difference, 15-25 % of them exclude 0 at 3-5 seeds in the simulations of docs/experiments.md,
  against about 5 % for ``ci``);
- ``p_permutation``: the two-sided sign-flip permutation p of the per-pair differences (exact:
  every sign pattern; under "no difference" each pair's difference is as likely positive as
  negative). It needs no model, but with N pairs it cannot be below 2 / 2**N (0.25 at 3 seeds);
- ``p_a_better``: P(A > B), the probability that A's run beats B's run of the same seed, estimated
  by the share of pairs where it does (ties count half), with a 95 % percentile bootstrap interval
  over pairs (``p_a_better_ci``).

The verdict (``RULE``): "A better" when ``ci`` lies above 0, "B better" when it lies below 0,
otherwise "no difference shown"; never from a table pooled over seeds. Its false-positive rate
under no difference is tested (tests/analysis/test_compare.py, runs simulated from a model fitted to
real demo runs) and its power reported in docs/experiments.md. Resampling uses fixed seeds, so a
report is reproducible.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .mcnemar import exact_p, read_outcomes

LEVEL = 0.05
VERDICTS = ("A better", "B better", "no difference shown")
RULE = ("A better when the 95 % interval of the mean difference (seeds and test videos) lies above 0, "
        "B better when it lies below 0, otherwise no difference shown")


@dataclass
class Pair:
    """One seed: both runs' outcome on every video (1 right, 0 wrong), in the same video order."""
    a: np.ndarray
    b: np.ndarray

    @property
    def n01(self) -> int:
        return int(((self.a == 0) & (self.b == 1)).sum())

    @property
    def n10(self) -> int:
        return int(((self.a == 1) & (self.b == 0)).sum())


@dataclass
class Comparison:
    delta_mean: float
    ci: List[Optional[float]]
    ci_bootstrap: List[float]
    p_permutation: float
    p_a_better: float
    p_a_better_ci: List[float]
    verdict: str
    seeds: List[dict]
    videos: int
    rule: str = RULE
    notes: List[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def pairs_from_predictions(a_paths: Sequence[str], b_paths: Sequence[str]) -> List[Pair]:
    """Pairs of runs (the i-th file of each list), all over the same videos with the same labels."""
    if len(a_paths) != len(b_paths):
        raise ValueError(f"runs are paired by seed: {len(a_paths)} file(s) for A but {len(b_paths)} for B")
    if not a_paths:
        raise ValueError("no runs to compare")
    runs = [read_outcomes(p) for p in list(a_paths) + list(b_paths)]
    paths = list(a_paths) + list(b_paths)
    videos = sorted(runs[0])
    for path, run in zip(paths[1:], runs[1:]):
        if set(run) != set(videos):
            only_here, only_first = sorted(set(run) - set(videos)), sorted(set(videos) - set(run))
            raise ValueError(f"{path} and {paths[0]} are not over the same test videos ({len(only_here)} only in "
                             f"the first, {len(only_first)} only in the second, e.g. "
                             f"{(only_here or only_first)[:3]}); compare runs tested on the same split")
        differ = [v for v in videos if run[v][1] != runs[0][v][1]]
        if differ:
            raise ValueError(f"{path} and {paths[0]} give different true labels for {len(differ)} videos (e.g. "
                             f"{differ[:3]}): not the same annotations")
    k = len(a_paths)
    outcome = [np.array([run[v][0] for v in videos], dtype=np.int8) for run in runs]
    return [Pair(outcome[i], outcome[k + i]) for i in range(k)]


def bootstrap_deltas(pairs: Sequence[Pair], replicates: int, rng: np.random.Generator) -> np.ndarray:
    """The paired two-level bootstrap distribution of the mean top-1 difference (points): per
    replicate, draw the pairs with replacement, then each drawn pair's videos with replacement.
    A video's difference is +1 (A alone right), -1 (B alone right) or 0, so a drawn pair's mean is
    a multinomial draw of those three counts: the same distribution as drawing video by video."""
    k = len(pairs)
    n = len(pairs[0].a)
    shares = np.array([[p.n10 / n, p.n01 / n, 1 - (p.n10 + p.n01) / n] for p in pairs])
    drawn = rng.integers(0, k, size=(replicates, k))
    counts = rng.multinomial(n, shares[drawn])  # (replicates, k, 3)
    return 100.0 * ((counts[..., 0] - counts[..., 1]) / n).mean(axis=1)


def seed_video_interval(pairs: Sequence[Pair], level: float = LEVEL) -> Tuple[Optional[float], Optional[float]]:
    """The interval of the mean difference with seeds and videos as crossed random effects (see the
    module's text); (None, None) for one pair."""
    from scipy.stats import t as student

    k, n = len(pairs), len(pairs[0].a)
    if k < 2:
        return None, None
    d = 100.0 * np.stack([p.a.astype(np.float64) - p.b for p in pairs])  # (k, n)
    per_seed = d.mean(axis=1)
    within = d.var(axis=0, ddof=1).mean()  # per video, the spread over seeds
    videos = max(d.mean(axis=0).var(ddof=1) - within / k, 0.0) if n > 1 else 0.0
    se = math.sqrt(per_seed.var(ddof=1) / k + videos / n)
    half = float(student.ppf(1 - level / 2, k - 1)) * se
    return float(per_seed.mean() - half), float(per_seed.mean() + half)


def sign_flip_p(deltas: np.ndarray) -> float:
    """Two-sided sign-flip permutation p of the mean of ``deltas``, exact for up to 16 pairs."""
    from scipy.stats import permutation_test

    if np.all(deltas == 0) or len(deltas) < 2:
        return 1.0  # one pair: both signs give the same |mean|
    result = permutation_test((deltas,), np.mean, permutation_type="samples", alternative="two-sided",
                              n_resamples=2 ** min(len(deltas), 16), random_state=0)
    return float(result.pvalue)


def a_better_share(deltas: np.ndarray) -> float:
    return float(np.mean((deltas > 0) + 0.5 * (deltas == 0)))


def compare(pairs: Sequence[Pair], replicates: int = 10000, seed: int = 0, level: float = LEVEL) -> Comparison:
    """Seed-level comparison of paired runs; see the module's text for every number and the rule."""
    from scipy.stats import bootstrap

    if not pairs:
        raise ValueError("no runs to compare")
    n = len(pairs[0].a)
    if any(len(p.a) != n or len(p.b) != n for p in pairs) or n == 0:
        raise ValueError("every run must cover the same, non-empty set of videos")
    rng = np.random.default_rng(seed)
    top1 = [(100.0 * p.a.mean(), 100.0 * p.b.mean()) for p in pairs]
    deltas = np.array([a - b for a, b in top1])
    boot = bootstrap_deltas(pairs, replicates, rng)
    ci_boot = [float(np.quantile(boot, level / 2)), float(np.quantile(boot, 1 - level / 2))]
    ci = list(seed_video_interval(pairs, level))
    p_perm = sign_flip_p(deltas)
    share = a_better_share(deltas)
    notes = []
    if len(pairs) > 1 and np.ptp(deltas) > 0:
        share_ci = bootstrap((deltas,), lambda d, axis: np.mean((d > 0) + 0.5 * (d == 0), axis=axis),
                             method="percentile", n_resamples=replicates, random_state=seed,
                             confidence_level=1 - level).confidence_interval
        p_ci = [float(share_ci.low), float(share_ci.high)]
    else:
        p_ci = [share, share]
    if len(pairs) == 1:
        notes.append("one seed pair: the seed-to-seed spread is unknown, so there is no interval and no verdict; "
                     "run more seeds")
    smallest = 2.0 / 2 ** len(pairs)
    if smallest > level:
        notes.append(f"with {len(pairs)} seed pair(s) the permutation p cannot be below {smallest:.3g}")
    verdict = verdict_of(ci)
    seeds = [{"top1_a": a, "top1_b": b, "n01": p.n01, "n10": p.n10,
              "p_exact": exact_p(p.n01, p.n10) if p.n01 + p.n10 else 1.0} for (a, b), p in zip(top1, pairs)]
    return Comparison(float(deltas.mean()), ci, ci_boot, p_perm, share, p_ci, verdict, seeds, n, notes=notes)


def compare_predictions(a_paths: Sequence[str], b_paths: Sequence[str], **kwargs) -> Comparison:
    return compare(pairs_from_predictions(a_paths, b_paths), **kwargs)


def format_comparison(c: Comparison, name_a: str = "A", name_b: str = "B") -> str:
    verdict = {"A better": f"{name_a} better", "B better": f"{name_b} better"}.get(c.verdict, c.verdict)
    lines = [f"{len(c.seeds)} seed pair(s), {c.videos} test videos each; A = {name_a}, B = {name_b}",
             "| seed pair | top-1 A % | top-1 B % | A alone right | B alone right | exact McNemar p (this pair) |",
             "|---|---|---|---|---|---|"]
    for i, s in enumerate(c.seeds, start=1):
        lines.append(f"| {i} | {s['top1_a']:.2f} | {s['top1_b']:.2f} | {s['n10']} | {s['n01']} | {s['p_exact']:.3g} |")
    interval = f"95 % CI {c.ci[0]:+.2f} to {c.ci[1]:+.2f} (seeds and test videos)" if c.ci[0] is not None \
        else "no interval from one seed pair"
    lines += [f"mean difference A - B: {c.delta_mean:+.2f} points, {interval}; two-level bootstrap "
              f"{c.ci_bootstrap[0]:+.2f} to {c.ci_bootstrap[1]:+.2f} (too narrow with few seeds; not used)",
              f"sign-flip permutation p = {c.p_permutation:.3g}; P(A > B) = {c.p_a_better:.2f} "
              f"(95 % CI {c.p_a_better_ci[0]:.2f} to {c.p_a_better_ci[1]:.2f})",
              *[f"note: {note}" for note in c.notes],
              f"verdict: {verdict}  (rule: {c.rule})"]
    return "\n".join(lines)


def verdict_of(ci) -> str:
    """The rule (``RULE``) from the interval of the mean difference (None ends: no interval)."""
    low, high = ci
    if low is not None and low > 0:
        return VERDICTS[0]
    if high is not None and high < 0:
        return VERDICTS[1]
    return VERDICTS[2]
