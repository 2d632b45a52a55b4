"""The 95% intervals of `lorarar eval`: bootstrap over pairs, paired differences, and the report that shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lorarar.world.evaluate import summarise, write_report
from lorarar.world.uncertainty import pair_interval, paired_difference_interval


def test_two_pairs_give_the_exact_percentile_interval() -> None:
    """Resampling (0, 1) gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5% points are 0, 1."""
    assert pair_interval([0.0, 1.0]) == (0.0, 1.0)


def test_pairs_that_agree_give_a_point_and_one_pair_gives_none() -> None:
    assert pair_interval([0.25] * 16) == pytest.approx((0.25, 0.25))
    assert pair_interval([0.0] * 16) == (0.0, 0.0)
    assert pair_interval([0.5]) is None
    assert paired_difference_interval([0.5], [0.7]) is None


def test_many_pairs_match_the_normal_approximation() -> None:
    """With 400 pairs the bootstrap interval is the central limit theorem's mean +- 1.96 standard errors."""
    rates = np.random.default_rng(3).integers(0, 7, 400) / 6
    low, high = pair_interval(rates)  # type: ignore[misc]
    half = 1.96 * rates.std(ddof=1) / np.sqrt(len(rates))
    assert low == pytest.approx(rates.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(rates.mean() + half, abs=0.1 * half)


def test_the_interval_is_reproducible() -> None:
    rates = np.random.default_rng(1).random(16)
    assert pair_interval(rates) == pair_interval(rates)
    assert pair_interval(rates, seed=1) != pair_interval(rates)


def test_a_shift_on_every_pair_is_certain_and_pairing_removes_the_spread_between_pairs() -> None:
    rng = np.random.default_rng(2)
    direct = rng.random(16)  # pairs differ a lot from each other
    shifted = direct + 0.1
    assert paired_difference_interval(direct, shifted) == pytest.approx((0.1, 0.1))
    noisy = direct + 0.1 + rng.normal(0, 0.02, 16)
    low, high = paired_difference_interval(direct, noisy)  # type: ignore[misc]
    assert 0.05 < low < 0.1 < high < 0.15
    separate = pair_interval(direct)
    assert separate is not None and high - low < (separate[1] - separate[0]) / 5


def test_paired_rates_must_cover_the_same_pairs() -> None:
    with pytest.raises(ValueError, match="paired rates differ in length: 3 vs 2"):
        paired_difference_interval([0.1, 0.2, 0.3], [0.1, 0.2])


def _rows(method: str, both: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "content": f"c{i}",
            "style": f"s{i}",
            "method": method,
            "merge_seconds": 0.001 * (i + 1),
            "content_fidelity": 1.0,
            "style_fidelity": b,
            "both_correct": b,
            "feature_distance": 10.0,
        }
        for i, b in enumerate(both)
    ]


def test_summary_and_report_compare_each_method_with_the_direct_merge(tmp_path: Path) -> None:
    rows = _rows("hypernet", [0.5, 1.0, 0.5, 0.0]) + _rows("direct", [0.0, 0.5, 0.5, 0.0])
    summary = summarise(rows, ["hypernet", "direct"])
    direct, hyper = summary["direct"], summary["hypernet"]
    assert direct["both_correct"] == 0.25 and "vs" not in direct
    assert direct["content_fidelity_ci"] == (1.0, 1.0)
    assert direct["both_correct_ci"] == pair_interval([0.0, 0.5, 0.5, 0.0])
    assert hyper["vs"] == "direct"
    assert hyper["both_correct_difference"] == 0.25
    assert hyper["both_correct_difference_ci"] == paired_difference_interval([0.0, 0.5, 0.5, 0.0], [0.5, 1.0, 0.5, 0.0])
    assert hyper["median_merge_ms"] == pytest.approx(2.5)

    report = {"split": "test", "methods": ["hypernet", "direct"], "pairs": 4, "n_per_pair": 2, "scorer": "world"}
    write_report({**report, "summary": summary, "per_pair": rows}, {}, tmp_path)
    table = (tmp_path / "merge_quality.md").read_text().splitlines()
    low, high = hyper["both_correct_difference_ci"]
    b_low, b_high = hyper["both_correct_ci"]
    assert table[2] == (
        "| method | content fidelity | style fidelity | both correct | feature distance | median merge time "
        "| both correct vs direct |"
    )
    assert table[4] == (
        f"| hypernet | 1.000 [1.000, 1.000] | 0.500 [{b_low:.3f}, {b_high:.3f}] | 0.500 [{b_low:.3f}, {b_high:.3f}] "
        f"| 10.000 | 2.500 ms | +0.250 [{low:+.3f}, {high:+.3f}] |"
    )
    assert table[5].endswith("| (reference) |")
    saved = json.loads((tmp_path / "merge_quality.json").read_text())
    assert saved["summary"]["hypernet"]["both_correct_difference_ci"] == [low, high]
    assert (tmp_path / "merge_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_single_pair_is_reported_without_intervals(tmp_path: Path) -> None:
    rows = _rows("direct", [0.5]) + _rows("ziplora", [0.0])
    summary = summarise(rows, ["direct", "ziplora"])
    assert summary["ziplora"]["both_correct_ci"] is None
    assert summary["ziplora"]["both_correct_difference_ci"] is None
    report = {"split": "test", "methods": ["direct", "ziplora"], "pairs": 1, "n_per_pair": 2, "scorer": "world"}
    write_report({**report, "summary": summary, "per_pair": rows}, {}, tmp_path)
    table = (tmp_path / "merge_quality.md").read_text().splitlines()
    assert table[4:] == [
        "| direct | 1.000 | 0.500 | 0.500 | 10.000 | 1.000 ms | (reference) |",
        "| ziplora | 1.000 | 0.000 | 0.000 | 10.000 | 1.000 ms | -0.500 |",
    ]
