"""Uncertainty of the verdicts (issue 13): α/β over each organ's cited range, the borderline
band, the tumour model; properties of the α/β band."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtplan_assist.evaluation.objective import target_check
from rtplan_assist.evaluation.records import ResultRow
from rtplan_assist.evaluation.robustness import assess_row, converted_limit, eqd2_band
from rtplan_assist.regimens import Regimen

fractions = st.integers(min_value=1, max_value=40)
alpha_betas = st.floats(min_value=0.5, max_value=20.0)


@settings(max_examples=60, deadline=None)
@given(n=fractions, low=alpha_betas, high=alpha_betas)
def test_a_2_gy_per_fraction_regimen_has_zero_alpha_beta_band(n, low, high):
    """EQD2 of n × 2 Gy is 2n Gy at every α/β (reference §6.1: EQD2 = D (d + α/β)/(2 + α/β))."""
    a, b = eqd2_band(2.0 * n, n, low, high)
    assert a == pytest.approx(2.0 * n, rel=1e-12) and b == pytest.approx(2.0 * n, rel=1e-12)


@settings(max_examples=80, deadline=None)
@given(limit0=st.floats(min_value=5.0, max_value=80.0), n0=fractions, n=fractions)
def test_converted_limits_move_monotonically_with_alpha_beta(limit0, n0, n):
    """A limit converted from n0 to n fractions at equal EQD2 moves monotonically with α/β
    (its direction fixed by which side of the source's dose per fraction it lies on; with the
    same fraction number, or 2 Gy fractions on both sides, it does not move). By hand: from L0²/n0 + L0·x = D²/n + D·x (equal
    EQD2 at α/β x), dD/dx = (L0 - D) / (2D/n + x): its sign is that of L0 - D, which does not
    change with x as long as D stays on the same side of L0 (the doses per fraction then stay
    on their side of each other). Checked on a grid of α/β 0.5-20 Gy."""
    grid = [0.5 + 0.25 * k for k in range(79)]
    values = [converted_limit(limit0, n0, n, x) for x in grid]
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert all(s >= -1e-9 for s in steps) or all(s <= 1e-9 for s in steps)
    if n == n0:
        assert max(values) - min(values) == pytest.approx(0.0, abs=1e-9)
    # a limit of 2 Gy fractions converted to 2 Gy fractions keeps its EQD2 at every α/β
    assert converted_limit(2.0 * n0, n0, n0, 3.0) == pytest.approx(2.0 * n0)


def _row(value, limit, *, n0=5, n=15, ab=2.0, organ="SpinalCord", metric="Max[Gy]"):
    return ResultRow("P", "L5", "45 Gy/15", "Spinal Cord", organ, "oar", metric, value, "Gy",
                     "physical", "LQ", ab, "<=", limit, None,
                     "pass" if value <= limit else "fail", "", "hytec", n, n0, "mandatory")


def test_cord_row_flips_inside_the_cited_alpha_beta_range_by_hand():
    """HyTEC cord Dmax 25.3 Gy/5 converted to 15 fx: 38.89 Gy at α/β 2 (HyTEC) and 41.36 Gy at
    α/β 0.87 (QUANTEC), the cord's cited range (alpha_beta.csv). A cord Dmax of 40 Gy fails
    at 2 and passes at 0.87: fragile. It flips where L0²/n0 + L0·x = D²/n + D·x, i.e.
    x = (40²/15 - 25.3²/5) / (25.3 - 40) = (106.667 - 128.018) / (-14.7) = 1.4525 Gy."""
    limit = converted_limit(25.3, 5, 15, 2.0)
    assert limit == pytest.approx(38.89, abs=0.01)
    assert converted_limit(25.3, 5, 15, 0.87) == pytest.approx(41.36, abs=0.01)
    row = assess_row(_row(40.0, limit), (0.87, 2.0), "QUANTEC 0.87, HyTEC 2")
    assert row.robustness == "fragile"
    flip = (40.0**2 / 15 - 25.3**2 / 5) / (25.3 - 40.0)
    assert flip == pytest.approx(1.4525, abs=1e-4)
    assert f"α/β {flip:.2f} Gy" in row.robustness_note
    # far from the limit at both ends: robust
    assert assess_row(_row(30.0, limit), (0.87, 2.0), "").robustness == "pass-robust"
    assert assess_row(_row(45.0, limit), (0.87, 2.0), "").robustness == "fail-robust"
    # no cited range: the default only, said so; 1 % under the limit: borderline, fragile
    near = assess_row(_row(0.99 * limit, limit), None, "")
    assert near.robustness == "fragile" and "borderline" in near.robustness_note
    assert "no cited range" in near.robustness_note
    # a tabulated (not converted) limit does not depend on α/β
    plain = assess_row(_row(20.0, 25.3, n0=None, n=5), (0.87, 2.0), "")
    assert plain.robustness == "pass-robust" and "flips" not in plain.robustness_note


def test_tumour_target_under_lq_l_and_usc():
    """34 Gy/1: LQ BED10 149.6 Gy but LQ-L (d_T 6 Gy) 71.2 Gy and USC 78.1 Gy (reference §6.4
    table): the lung target (100 Gy) is model-fragile. 54 Gy/3: LQ-L 108.0/121.2, USC
    117.8 Gy: robust. 60 Gy/8 (7.5 Gy/fx) is inside LQ's range: LQ only."""
    fragile = target_check(Regimen(1, 34.0), "lung")
    assert fragile.tier == 1 and "USC (78.1 Gy)" in fragile.flips and "71.2" in fragile.text
    robust = target_check(Regimen(3, 54.0), "lung")
    assert robust.tier == 0 and "117.8" in robust.text and "108.0" in robust.text
    assert target_check(Regimen(8, 60.0), "central lung").tier == 0
    assert target_check(Regimen(10, 50.0), "lung").tier == 2
    assert not target_check(Regimen(1, 34.0), "node").cited


def test_demo_rows_and_recommendation_carry_robustness(demo_evaluation):
    import csv
    import io
    import json

    from rtplan_assist.evaluation import TIDY_COLUMNS, result_rows_tidy, result_to_dict

    _, result = demo_evaluation
    rec = result.recommendation
    assert set(rec.robustness) == {"L1", "L2", "L3", "L4", "L5"}
    assert all(t.startswith(("robust", "NOT robust", "partly judged"))
               for t in rec.robustness.values())
    assert any("robustness:" in line for line in rec.explanation)
    limited = [r for r in result.rows if r.limit is not None and r.status != "info"
               and not math.isnan(r.value)]
    assert limited and all(r.robustness in ("pass-robust", "fail-robust", "fragile",
                                            "not assessed") for r in limited)
    # composite rows too: the cord (cited α/β range 0.87-2 Gy) re-evaluated at both ends
    cord = [r for r in result.composite_rows if r.organ == "SpinalCord" and r.kind == "EQD2"
            and r.limit is not None and not math.isnan(r.value)]
    assert cord and all("at α/β 2 Gy" in r.robustness_note for r in cord)
    assert all(r.robustness for r in result.composite_rows
               if r.limit is not None and not math.isnan(r.value))
    assert "robustness" in TIDY_COLUMNS
    data = json.loads(json.dumps(result_to_dict(result)))
    assert data["recommendation"]["robustness"] == rec.robustness
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(TIDY_COLUMNS))
    writer.writeheader()
    writer.writerows(result_rows_tidy(result)[:5])
    assert "robustness_note" in buffer.getvalue().splitlines()[0]
