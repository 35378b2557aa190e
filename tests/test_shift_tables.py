"""The shift tables against hand-computed values on a small scores table: mean over severities
and seeds, the mCE-style ratio to the default EMA, and non-i.i.d. minus i.i.d. paired over seeds."""

from __future__ import annotations

import pandas as pd
import pytest

from dmbn.shift_tables import corruption_table, relative_error, shown, stream_table


def scores() -> pd.DataFrame:
    """Two seeds, two corruptions, two severities: static-0.1, precise, and test-batch on two streams."""
    rows = []
    accuracy = {  # (row, stream, seed, corruption, severity) -> accuracy, written out
        ("static-0.1", "any"): {(1, "noise", 1): 0.8, (1, "noise", 5): 0.6, (1, "blur", 1): 0.9, (1, "blur", 5): 0.7,
                                (2, "noise", 1): 0.7, (2, "noise", 5): 0.5, (2, "blur", 1): 0.9, (2, "blur", 5): 0.5},
        ("precise", "any"): {(1, "noise", 1): 0.9, (1, "noise", 5): 0.7, (1, "blur", 1): 0.95, (1, "blur", 5): 0.85,
                             (2, "noise", 1): 0.8, (2, "noise", 5): 0.6, (2, "blur", 1): 0.9, (2, "blur", 5): 0.8},
        ("test-batch", "iid"): {(s, c, v): 0.8 for s in (1, 2) for c in ("noise", "blur") for v in (1, 5)},
        ("test-batch", "dirichlet"): {(s, c, v): 0.3 if s == 1 else 0.5 for s in (1, 2) for c in ("noise", "blur")
                                      for v in (1, 5)},
    }
    for (row, order), cells in accuracy.items():
        family = "test-time" if row == "test-batch" else "source"
        for (seed, corruption, severity), value in cells.items():
            rows.append(dict(dataset="fashion-mnist", regime="mini-b100", arch="mlp", seed=seed,
                             corruption=corruption, severity=severity, stream=order, family=family, row=row,
                             accuracy=value))
    return pd.DataFrame(rows)


def test_the_corruption_table_averages_severities_and_seeds():
    table = corruption_table(scores()).set_index("row")
    # static-0.1 under noise: seed 1 (0.8 + 0.6) / 2 = 0.7, seed 2 (0.7 + 0.5) / 2 = 0.6 -> 0.65
    assert table.loc["static-0.1", "noise"] == pytest.approx(0.65)
    assert table.loc["static-0.1", "blur"] == pytest.approx((0.8 + 0.7) / 2)
    assert table.loc["precise", "mean"] == pytest.approx((0.75 + (0.9 + 0.85) / 2) / 2)
    assert list(table.index) == ["static-0.1", "precise", "test-batch"]  # the tables' order
    assert table.loc["test-batch", "mean"] == pytest.approx(0.8)  # the i.i.d. stream only


def test_relative_error_is_the_mce_of_the_row_against_the_default_ema():
    table = relative_error(scores(), confidence=0.95).set_index("row")
    # precise, seed 1: noise (0.1 + 0.3) / (0.2 + 0.4) = 2/3, blur (0.05 + 0.15) / (0.1 + 0.3) = 1/2
    # seed 2: noise (0.2 + 0.4) / (0.3 + 0.5) = 3/4, blur (0.1 + 0.2) / (0.1 + 0.5) = 1/2
    seed1, seed2 = (2 / 3 + 1 / 2) / 2, (3 / 4 + 1 / 2) / 2
    assert table.loc["precise", "mean"] == pytest.approx((seed1 + seed2) / 2)
    assert table.loc["static-0.1", "mean"] == pytest.approx(1.0) and table.loc["precise", "seeds"] == 2
    # the t interval of two values a, b: mean ± t(0.975, 1) |a - b| / 2
    half = 12.706204736174707 * abs(seed1 - seed2) / 2
    assert table.loc["precise", "ci_low"] == pytest.approx((seed1 + seed2) / 2 - half)


def test_the_stream_table_pairs_each_order_with_iid_over_seeds():
    table = stream_table(scores(), confidence=0.95).set_index("row")
    assert table.loc["test-batch", "iid"] == pytest.approx(0.8)
    assert table.loc["test-batch", "dirichlet"] == pytest.approx(0.4)
    assert table.loc["test-batch", "dirichlet - iid"] == pytest.approx(-0.4)  # -0.5 and -0.3
    half = 12.706204736174707 * 0.1  # |(-0.5) - (-0.3)| / 2
    assert table.loc["test-batch", "dirichlet - iid ci_high"] == pytest.approx(-0.4 + half)
    assert "static-0.1" not in table.index  # order-free rows have no stream
    readable = shown(stream_table(scores(), 0.95), 3)
    assert readable["dirichlet - iid"].item() == f"-0.400 [{-0.4 - half:+.3f}, {-0.4 + half:+.3f}]"
    assert readable["Row"].item() == "Test batch (prediction-time BN)"
