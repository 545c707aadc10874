"""The app's figure builders (issue 14): constraint markers on both dose axes and for every
regimen, the legend grouped by structure, distinguishable colours, orientation labels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_app_unit import Row, _dvh

from rtplan_assist.app.figures import (
    ISODOSE_COLOURS,
    constraint_markers,
    delta_e,
    distinct_colours,
    dvh_figure,
    lab,
)
from rtplan_assist.radiobiology import Model, eqd2_transform


def _eqd2(total_gy: float, fractions: int, alpha_beta: float) -> float:
    # LQ: EQD2 = D (d + α/β) / (2 + α/β), d = D / n (Fowler, BJR 1989; reference §6.1)
    return total_gy * (total_gy / fractions + alpha_beta) / (2.0 + alpha_beta)


def test_markers_on_the_eqd2_axis_for_every_regimen():
    rows = [Row("Esophagus", "D0.03cc[Gy]", 34.5, "fail", limit=32.0, regimen="50 Gy/5"),
            Row("Esophagus", "V20Gy[%]", 50.0, "pass", limit=60.0, unit="%",
                regimen="50 Gy/5"),
            Row("Esophagus", "D0.03cc[Gy]", 30.0, "pass", limit=40.0, regimen="60 Gy/8",
                constraint_fractions=8, converted_from_fractions=5)]
    eq5 = eqd2_transform(5, Model("LQ", 3.0))
    eq8 = eqd2_transform(8, Model("LQ", 3.0))
    curves = [("Esophagus", "50 Gy/5", _dvh(dmax=60.0).mapped(eq5, "EQD2", "LQ, α/β = 3 Gy")),
              ("Esophagus", "60 Gy/8", _dvh(dmax=60.0).mapped(eq8, "EQD2", "LQ, α/β = 3 Gy"))]
    transforms = {("Esophagus", "50 Gy/5"): eq5, ("Esophagus", "60 Gy/8"): eq8}
    markers = constraint_markers(curves, rows, transforms)
    by = {(p["regimen"], p["rows"][0].metric): p for p in markers}
    assert len(markers) == 3 and [p["number"] for p in markers] == [1, 2, 3]
    # D0.03cc <= 32 Gy physical in 5 fx sits at EQD2(32 Gy, 5 fx, α/β 3) = 60.16 Gy
    assert by[("50 Gy/5", "D0.03cc[Gy]")]["dose_gy"] == pytest.approx(_eqd2(32.0, 5, 3.0))
    assert _eqd2(32.0, 5, 3.0) == pytest.approx(60.16)
    # V20Gy <= 60 %: the 20 Gy threshold maps, the volume does not
    v20 = by[("50 Gy/5", "V20Gy[%]")]
    assert v20["dose_gy"] == pytest.approx(_eqd2(20.0, 5, 3.0)) and v20["volume_pct"] == 60.0
    assert by[("60 Gy/8", "D0.03cc[Gy]")]["dose_gy"] == pytest.approx(_eqd2(40.0, 8, 3.0))
    # the hover names the limit, unit, source, fraction number and conversion
    text = by[("60 Gy/8", "D0.03cc[Gy]")]["texts"][0]
    assert "<= 40 Gy" in text and "tg101_2010" in text
    assert "limit of 5 fx converted to 8 fx, LQ, α/β = 3 Gy" in text
    fig = dvh_figure(curves, kind="EQD2", model="LQ", rows=rows, transforms=transforms)
    marker_traces = [t for t in fig.data if t.name.startswith("limits at")]
    assert [t.name for t in marker_traces] == ["limits at 50 Gy/5", "limits at 60 Gy/8"]
    assert list(marker_traces[0].text) == ["1", "2"]


def test_an_eqd2_limit_is_placed_at_its_physical_dose_on_the_physical_axis():
    limit = _eqd2(32.0, 5, 3.0)  # an EQD2 limit (α/β 3 Gy) equal to 32 Gy physical in 5 fx
    row = Row("Esophagus", "Max[Gy]", 20.0, "pass", limit=limit, kind="EQD2")
    [p] = constraint_markers([("Esophagus", "50 Gy/5", _dvh(dmax=40.0))], [row])
    assert p["dose_gy"] == pytest.approx(32.0)
    # Max sits on the curve: the linear test DVH has 1 - 32/40 = 20 % above 32 Gy
    assert p["volume_pct"] == pytest.approx(20.0, abs=0.5)


def test_merged_markers_keep_every_source():
    rows = [Row("Heart", "Mean[Gy]", 3.0, "pass", limit=16.0, source="quantec_2010"),
            Row("Heart", "Mean[Gy]", 3.0, "pass", limit=16.0, source="ro2018")]
    [p] = constraint_markers([("Heart", "50 Gy/5", _dvh("Heart"))], rows)
    assert len(p["texts"]) == 2 and "ro2018" in p["texts"][1]


# The demo's ROIDisplayColor values (rtplan_assist/demo.py) that the issue found
# indistinguishable or invisible: Lungs vs LUNGS-ITV's, GTV vs GreatVes vs Heart, the pale rib.
DEMO_COLOURS = {"PTV_2": (64, 0, 255), "GTV_2": (255, 64, 0), "Lungs": (0, 128, 255),
                "LUNGS-ITV's": (64, 160, 200), "Heart": (255, 0, 128),
                "Esophagus": (160, 96, 32), "Spinal Cord": (255, 255, 0),
                "Trachea": (128, 255, 255), "AirWay_Prox": (0, 255, 255),
                "GreatVes": (255, 64, 64), "Chestwall": (200, 128, 255),
                "Rib": (240, 240, 200), "BrachialPlex_R": (255, 160, 0)}


def test_structure_colours_are_distinguishable_and_avoid_the_isodoses():
    assert delta_e(DEMO_COLOURS["Lungs"], DEMO_COLOURS["LUNGS-ITV's"]) < 20  # the complaint
    assert delta_e(DEMO_COLOURS["GreatVes"], DEMO_COLOURS["GTV_2"]) < 20
    names = list(DEMO_COLOURS)
    isodoses = ISODOSE_COLOURS[:4]
    colours = distinct_colours([(n, DEMO_COLOURS[n]) for n in names], reserved=isodoses)
    for a, b in itertools.combinations(names, 2):
        assert delta_e(colours[a], colours[b]) >= 20.0, (a, b)
    for name, iso in itertools.product(names, isodoses):
        assert delta_e(colours[name], iso) >= 20.0, (name, iso)
    assert all(30.0 <= lab(c)[0] <= 80.0 for c in colours.values())  # no pale rib on white
    # a colour that is fine is kept: the first structure's own colour when readable
    assert colours["GTV_2"] == "#ff4000"


@pytest.mark.parametrize("colour", ["#ff0000", "rgb(255, 0, 0)", (255, 0, 0)])
def test_lab_of_red(colour):
    # sRGB red in CIE L*a*b* (D65): 53.24, 80.09, 67.20 (Lindbloom's calculator)
    assert np.allclose(lab(colour), [53.24, 80.09, 67.20], atol=0.05)
    assert not math.isnan(lab(colour)[0])


def test_ciede2000_of_published_pairs(monkeypatch):
    # Sharma, Wu and Dalal 2005, Table 1, pairs 1 and 7: ΔE00 2.0425 and 0 (a* sign only)
    import rtplan_assist.app.figures as figures

    pairs = {"p1": (50.0, 2.6772, -79.7751), "q1": (50.0, 0.0, -82.7485),
             "p7": (50.0, 0.0, 0.0), "q7": (50.0, -1.0, 2.0)}
    monkeypatch.setattr(figures, "lab", lambda key: np.array(pairs[key]))
    assert figures.delta_e("p1", "q1") == pytest.approx(2.0425, abs=1e-4)
    assert figures.delta_e("p7", "q7") == pytest.approx(2.3669, abs=1e-4)
