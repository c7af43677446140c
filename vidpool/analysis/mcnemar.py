"""McNemar's test for two classifiers evaluated on the same samples.

The 2x2 table counts samples by correctness: ``n00`` both wrong, ``n01`` A wrong and B right,
``n10`` A right and B wrong, ``n11`` both right. Only the discordant counts n01 and n10 carry
evidence. With continuity correction (Edwards), chi^2 = (|n01 - n10| - 1)^2 / (n01 + n10) with one
degree of freedom; the correction never makes the statistic negative (|n01 - n10| < 1 gives 0).
The exact variant is the two-sided binomial test of n01 against Binomial(n01 + n10, 1/2), for small
discordant counts where the chi^2 approximation is poor.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

# chi^2 (1 degree of freedom) critical values and the confidence they stand for
LEVELS: Tuple[Tuple[float, float], ...] = ((6.635, 99.0), (5.024, 97.5), (3.841, 95.0))


@dataclass(frozen=True)
class Table:
    n00: int  # both wrong
    n01: int  # A wrong, B right
    n10: int  # A right, B wrong
    n11: int  # both right

    def __post_init__(self):
        if min(self.n00, self.n01, self.n10, self.n11) < 0:
            raise ValueError(f"McNemar table counts must be >= 0, got {self}")

    @property
    def discordant(self) -> int:
        return self.n01 + self.n10


@dataclass
class Result:
    table: Table
    chi2: float
    p_value: float
    exact_p_value: float
    level: float  # highest of 95 / 97.5 / 99 % reached by chi^2, 0 if none


@dataclass
class Matched:
    table: Table
    only_a: List[str] = field(default_factory=list)
    only_b: List[str] = field(default_factory=list)
    label_mismatch: List[str] = field(default_factory=list)


def chi2_sf_1dof(x: float) -> float:
    """P(X >= x) for X ~ chi^2 with one degree of freedom."""
    return math.erfc(math.sqrt(max(x, 0.0) / 2.0))


def exact_p(n01: int, n10: int) -> float:
    """Two-sided exact binomial p-value of the discordant split."""
    n, k = n01 + n10, min(n01, n10)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


def mcnemar(table: Table) -> Result:
    if table.discordant == 0:
        raise ValueError("McNemar's test is undefined: the two models are right and wrong on exactly the same "
                         "samples (n01 + n10 = 0), so there is no evidence either way")
    chi2 = max(abs(table.n01 - table.n10) - 1, 0) ** 2 / table.discordant
    level = next((conf for crit, conf in LEVELS if chi2 >= crit), 0.0)
    return Result(table, chi2, chi2_sf_1dof(chi2), exact_p(table.n01, table.n10), level)


def read_outcomes(path: str) -> Dict[str, Tuple[int, str]]:
    """video id -> (1 right / 0 wrong, true label) from a predictions.csv of vidpool test."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"video_id", "correct"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a predictions.csv of vidpool test (no column {sorted(missing)})")
        rows: Dict[str, Tuple[int, str]] = {}
        for line, row in enumerate(reader, start=2):
            vid = row["video_id"]
            if vid in rows:
                raise ValueError(f"{path}:{line}: video {vid!r} appears twice")
            if row["correct"] not in ("0", "1"):
                raise ValueError(f"{path}:{line}: 'correct' must be 0 or 1, got {row['correct']!r}")
            rows[vid] = (int(row["correct"]), row.get("true_label", ""))
    return rows


def table_from_predictions(path_a: str, path_b: str) -> Matched:
    """The 2x2 table over the videos both files contain (matched by video id); ids found in one file
    only, and ids whose true labels disagree (left out), are reported."""
    a, b = read_outcomes(path_a), read_outcomes(path_b)
    counts = {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 0}
    mismatch = []
    for vid in sorted(a.keys() & b.keys()):
        (ca, la), (cb, lb) = a[vid], b[vid]
        if la and lb and la != lb:
            mismatch.append(vid)
            continue
        counts[int(ca), int(cb)] += 1
    table = Table(counts[0, 0], counts[0, 1], counts[1, 0], counts[1, 1])
    return Matched(table, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys()), mismatch)


def format_result(r: Result, name_a: str = "A", name_b: str = "B") -> str:
    t = r.table
    width = max(len(name_b) + 8, 10)
    lines = [
        f"{'':>{len(name_a) + 8}} | {name_b + ' right':>{width}} | {name_b + ' wrong':>{width}}",
        f"{name_a + ' right':>{len(name_a) + 8}} | {t.n11:>{width}} | {t.n10:>{width}}",
        f"{name_a + ' wrong':>{len(name_a) + 8}} | {t.n01:>{width}} | {t.n00:>{width}}",
        f"samples {t.n00 + t.n01 + t.n10 + t.n11}, discordant {t.discordant}: "
        f"{name_a} alone right {t.n10}, {name_b} alone right {t.n01}",
        f"chi2 (continuity corrected, 1 dof) = {r.chi2:.4f}, p = {r.p_value:.4g}",
        f"exact binomial p = {r.exact_p_value:.4g}",
    ]
    if r.level:
        better = name_a if t.n10 > t.n01 else name_b
        lines.append(f"significant at the {r.level:g} % level (chi2 >= "
                     f"{dict((c, k) for k, c in LEVELS)[r.level]}): {better} is better")
    else:
        lines.append("not significant at the 95 % level (chi2 < 3.841)")
    if t.discordant < 25:
        lines.append(f"only {t.discordant} discordant samples: trust the exact p-value over the chi2 one")
    return "\n".join(lines)
