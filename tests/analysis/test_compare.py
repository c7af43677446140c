"""Seed-level comparisons (vidpool.analysis.compare, vidpool compare): the numbers against hand
computation and full enumeration, the files it refuses, the JSON it prints."""
import csv
import itertools
import json

import numpy as np
import pytest

from vidpool.analysis.compare import (Pair, bootstrap_deltas, compare, compare_predictions, pairs_from_predictions,
                                      sign_flip_p)


def _write(path, outcomes, labels=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "true_label", "predicted_label", "correct"])
        for i, c in enumerate(outcomes):
            label = labels[i] if labels else i % 3
            w.writerow([f"v{i:03d}", label, label if c else (label + 1) % 3, c])
    return str(path)


def test_per_seed_numbers_and_the_mean_difference_by_hand():
    # seed 1: A right on 0-2, B on 0 and 4: top-1 60 / 40, A alone right 2, B alone right 1
    # seed 2: A right on 0-7, B on 0-1: top-1 80 / 20, A alone right 6, B alone right 0
    one = Pair(np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]), np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0]))
    two = Pair(np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]), np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
    c = compare([one, two], replicates=2000)
    assert [(s["top1_a"], s["top1_b"], s["n10"], s["n01"]) for s in c.seeds] == [(30.0, 20.0, 2, 1),
                                                                                   (80.0, 20.0, 6, 0)]
    # exact McNemar: 2 * P(Bin(3, 1/2) <= 1) = 2 * 4/8, capped at 1; 2 * P(Bin(6, 1/2) = 0) = 2/64
    assert c.seeds[0]["p_exact"] == 1.0 and c.seeds[1]["p_exact"] == pytest.approx(2 / 64)
    assert c.delta_mean == pytest.approx(((30 - 20) + (80 - 20)) / 2)
    assert c.p_a_better == 1.0 and c.videos == 10
    # two pairs: the smallest possible permutation p is 2/4; an interval with 1 degree of freedom
    assert c.p_permutation == pytest.approx(0.5) and "cannot be below 0.5" in c.notes[0]
    assert c.ci[0] < 0 < c.ci[1] and c.verdict == "no difference shown"


def test_the_interval_of_seeds_and_videos_by_hand():
    """2 pairs x 4 videos. D (points): pair 1 [100, 0, 0, 100] (mean 50), pair 2 [100, -100, -100, 0]
    (mean -25). Seeds: var(50, -25) = 2812.5, / 2 = 1406.25. Videos: per-video means (100, -50, -50,
    50) have variance 5625; the spread over seeds within a video averages (0 + 5000 + 5000 + 5000) / 4
    = 3750, so the videos' own share is 5625 - 3750 / 2 = 3750, / 4 videos = 937.5. Standard error
    sqrt(2343.75), t(0.975, 1 dof) = 12.7062."""
    from vidpool.analysis.compare import seed_video_interval

    pairs = [Pair(np.array([1, 1, 0, 1]), np.array([0, 1, 0, 0])), Pair(np.array([1, 0, 0, 0]), np.array([0, 1, 1, 0]))]
    low, high = seed_video_interval(pairs)
    half = 12.706204736174707 * 2343.75 ** 0.5
    assert low == pytest.approx(12.5 - half) and high == pytest.approx(12.5 + half)
    assert seed_video_interval(pairs[:1]) == (None, None)
    one = compare(pairs[:1], replicates=100)
    assert one.ci == [None, None] and one.verdict == "no difference shown" and "one seed pair" in one.notes[0]


def test_sign_flip_p_by_hand():
    # every sign pattern of (1, 2, 3): mean 2 is reached in |mean| only by +++ and ---
    assert sign_flip_p(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 / 8)
    # (3, 1, -1): observed sum 3; the 8 sign patterns give sums 3, 5, 1, 3, -3, -1, -5, -3, of which
    # six reach |3|
    assert sign_flip_p(np.array([3.0, 1.0, -1.0])) == pytest.approx(6 / 8)
    six = np.array([0.5, 1.0, 2.0, 1.5, 3.0, 0.7])  # all positive: only the two all-equal-sign patterns
    assert sign_flip_p(six) == pytest.approx(2 / 64)
    assert sign_flip_p(np.zeros(4)) == 1.0


def _exact_distribution(pairs):
    """The two-level bootstrap statistic's exact distribution, by enumerating every draw: the seed
    draws (k**k, ordered, equally likely), and for each drawn pair every draw of its videos (n**n)."""
    k = len(pairs)
    per_pair = []
    for p in pairs:
        d = (p.a.astype(int) - p.b.astype(int))
        means = [100.0 * np.mean(d[list(idx)]) for idx in itertools.product(range(len(d)), repeat=len(d))]
        values, counts = np.unique(np.round(means, 9), return_counts=True)
        per_pair.append(dict(zip(values, counts / counts.sum())))
    dist = {}
    for draw in itertools.product(range(k), repeat=k):
        combo = {0.0: 1.0}
        for s in draw:
            combo = _convolve(combo, per_pair[s])
        for x, px in combo.items():
            dist[round(x / k, 9)] = dist.get(round(x / k, 9), 0.0) + px / k ** k
    return dist


def _convolve(a, b):
    out = {}
    for x, px in a.items():
        for y, py in b.items():
            out[round(x + y, 9)] = out.get(round(x + y, 9), 0.0) + px * py
    return out


def test_two_level_bootstrap_against_full_enumeration():
    """2 seeds x 4 videos: the Monte-Carlo distribution matches the exact one (every seed draw and
    every video draw within it), in its CDF and in the 95 % interval's end points."""
    pairs = [Pair(np.array([1, 1, 0, 1]), np.array([0, 1, 0, 0])), Pair(np.array([1, 0, 0, 0]), np.array([0, 1, 1, 0]))]
    exact = _exact_distribution(pairs)
    assert sum(exact.values()) == pytest.approx(1.0)
    values = np.array(sorted(exact))
    cdf = np.cumsum([exact[v] for v in values])
    draws = bootstrap_deltas(pairs, 400_000, np.random.default_rng(1))
    mc = np.array([(draws <= v + 1e-9).mean() for v in values])
    assert np.max(np.abs(mc - cdf)) < 0.004  # Monte-Carlo error at 400k draws is below 0.001
    # the interval's end points: the exact 2.5 % and 97.5 % quantiles
    low, high = values[np.searchsorted(cdf, 0.025)], values[np.searchsorted(cdf, 0.975)]
    c = compare(pairs, replicates=400_000)
    assert c.ci_bootstrap[0] == pytest.approx(low, abs=1e-6) and c.ci_bootstrap[1] == pytest.approx(high, abs=1e-6)
    assert np.mean(draws) == pytest.approx(sum(v * p for v, p in exact.items()), abs=0.2)


def test_files_are_paired_by_seed_and_must_cover_the_same_videos(tmp_path):
    a = _write(tmp_path / "a.csv", [1, 1, 0, 0])
    b = _write(tmp_path / "b.csv", [1, 0, 0, 1])
    pairs = pairs_from_predictions([a], [b])
    assert pairs[0].n10 == 1 and pairs[0].n01 == 1
    with pytest.raises(ValueError, match="paired by seed: 1 file"):
        pairs_from_predictions([a], [b, b])
    short = _write(tmp_path / "short.csv", [1, 1, 0])
    with pytest.raises(ValueError, match="not over the same test videos"):
        pairs_from_predictions([a], [short])
    relabelled = _write(tmp_path / "relabelled.csv", [1, 1, 0, 0], labels=[2, 2, 2, 2])
    with pytest.raises(ValueError, match="different true labels"):
        pairs_from_predictions([a], [relabelled])


def test_the_command_prints_the_numbers_and_json(tmp_path, capsys):
    from vidpool.cli import run

    rng = np.random.default_rng(0)
    a = [_write(tmp_path / f"a{s}.csv", (rng.random(60) < 0.8).astype(int)) for s in range(6)]
    b = [_write(tmp_path / f"b{s}.csv", (rng.random(60) < 0.4).astype(int)) for s in range(6)]
    assert run("compare", ["--a", *a, "--b", *b, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"delta_mean", "ci", "p_permutation", "p_a_better", "verdict", "seeds"} <= set(out)
    assert set(out["seeds"][0]) >= {"top1_a", "top1_b", "n01", "n10", "p_exact"} and len(out["seeds"]) == 6
    direct = compare_predictions(a, b)
    assert out["delta_mean"] == pytest.approx(direct.delta_mean) and out["verdict"] == "A better"
    assert out["ci"][0] > 0 and out["p_permutation"] == pytest.approx(2 / 64)
    assert run("compare", ["--a", *a, "--b", *b, "--names", "max", "soft"]) == 0
    text = capsys.readouterr().out
    assert "verdict: max better" in text and "6 seed pair(s), 60 test videos" in text
    with pytest.raises(SystemExit) as bad:
        run("compare", ["--a", a[0], "--b", str(tmp_path / "none.csv")])
    assert bad.value.code == 2 and "no such file" in capsys.readouterr().err
