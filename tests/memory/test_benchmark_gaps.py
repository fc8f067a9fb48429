"""The dev-set benchmark's gap statistics (benchmarks/memory_devset.paired_gap): pure logic."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from memory_devset import paired_gap  # noqa: E402


def test_the_interval_is_paired_so_equal_systems_have_no_gap_whatever_the_spread():
    scores = [0.0, 1.0, 0.5, 1.0, 0.0, 0.25] * 50
    assert paired_gap(scores, list(scores), [i % 3 for i in range(len(scores))]) == (0.0, 0.0, 0.0, 0, 3)


def test_a_gap_sits_inside_its_interval_and_noise_widens_it():
    n = 400
    groups = [i % 4 for i in range(n)]
    theirs = [0.0] * n
    steady = [0.1] * n
    noisy = [1.0 if i % 10 == 0 else 0.0 for i in range(n)]  # the same mean gap, from a few questions
    g1, lo1, hi1, ahead1, k = paired_gap(steady, theirs, groups)
    g2, lo2, hi2, _, _ = paired_gap(noisy, theirs, groups)
    assert round(g1, 6) == round(g2, 6) == 10.0
    assert round(lo1, 6) == round(hi1, 6) == 10.0 and ahead1 == k == 4
    assert lo2 < g2 < hi2 and hi2 - lo2 > 3


def test_ahead_counts_conversations_not_questions():
    # one conversation carries the whole gap, the other two lose a little
    ours = [1.0] * 10 + [0.0] * 20
    theirs = [0.0] * 10 + [0.1] * 20
    groups = [0] * 10 + [1] * 10 + [2] * 10
    gap, lo, hi, ahead, n = paired_gap(ours, theirs, groups)
    assert gap > 0 and (ahead, n) == (1, 3)
