"""McNemar's test against tables computed by hand, and predictions.csv matching."""
import csv

import pytest

from vidpool.analysis.mcnemar import Table, exact_p, mcnemar, table_from_predictions



def test_hand_computed_tables():
    # (|25 - 10| - 1)^2 / 35 = 196 / 35 = 5.6: above 5.024 (97.5 %), below 6.635 (99 %);
    # p = P(|Z| >= sqrt(5.6) = 2.3664) = 0.01796
    r = mcnemar(Table(n00=10, n01=25, n10=10, n11=55))
    assert r.chi2 == pytest.approx(5.6) and r.level == 97.5
    assert r.p_value == pytest.approx(0.01796, abs=2e-4)
    # (|30 - 12| - 1)^2 / 42 = 289 / 42 = 6.881 >= 6.635: 99 %
    assert mcnemar(Table(0, 30, 12, 100)).chi2 == pytest.approx(289 / 42) and mcnemar(Table(0, 30, 12, 100)).level == 99
    # (|5 - 0| - 1)^2 / 5 = 3.2 < 3.841; exact: 2 * (1/2)^5 = 0.0625
    r = mcnemar(Table(3, 5, 0, 7))
    assert r.chi2 == pytest.approx(3.2) and r.level == 0 and r.exact_p_value == pytest.approx(0.0625)
    # equal discordant counts: no evidence; the corrected statistic stays at 0 and both p-values at 1
    r = mcnemar(Table(1, 3, 3, 1))
    assert r.chi2 == 0 and r.p_value == 1 and r.exact_p_value == 1
    # exact two-sided binomial by hand: n = 10, k = 2: 2 * (1 + 10 + 45) / 1024
    assert exact_p(2, 8) == pytest.approx(112 / 1024)


def test_no_discordant_pairs_is_a_clear_error():
    with pytest.raises(ValueError, match="n01 \\+ n10 = 0"):
        mcnemar(Table(4, 0, 0, 9))
    with pytest.raises(ValueError, match=">= 0"):
        Table(1, -1, 0, 0)


def _write(path, rows):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["video_id", "true_label", "predicted_label", "top5_labels", "true_name", "predicted_name",
                      "correct"])
        for vid, label, correct in rows:
            out.writerow([vid, label, label if correct else label + 1, "", "", "", int(correct)])


def test_predictions_matched_by_video_id(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(a, [("v1", 0, 1), ("v2", 1, 0), ("v3", 2, 1), ("v4", 0, 0), ("v5", 1, 1), ("only_a", 0, 1),
               ("clash", 3, 1)])
    _write(b, [("v5", 1, 0), ("v4", 0, 1), ("v3", 2, 1), ("v2", 1, 1), ("v1", 0, 1), ("only_b", 2, 0),
               ("clash", 4, 1)])
    m = table_from_predictions(str(a), str(b))
    # v1, v3 both right; v2, v4 A wrong and B right; v5 A right and B wrong
    assert m.table == Table(n00=0, n01=2, n10=1, n11=2)
    assert (m.only_a, m.only_b, m.label_mismatch) == (["only_a"], ["only_b"], ["clash"])
    bad = tmp_path / "bad.csv"
    bad.write_text("id,ok\nv1,1\n")
    with pytest.raises(ValueError, match="not a predictions.csv"):
        table_from_predictions(str(bad), str(b))
