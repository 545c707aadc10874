"""Regimens: parsing, catalogue BED10 by hand, regimen files, and dose scaling."""

from __future__ import annotations

import pytest

from rtplan_assist.errors import ConstraintTableError, EvaluationError
from rtplan_assist.regimens import (
    DEFAULT_CATALOGUE,
    Regimen,
    load_regimen_file,
    parse_regimen,
)

# BED10 = D (1 + d / 10), by hand (reference §6.1 table)
CATALOGUE_BED10 = {
    "34 Gy/1": 34 * (1 + 34 / 10),  # 149.6
    "54 Gy/3": 54 * (1 + 18 / 10),  # 151.2
    "48 Gy/4": 48 * (1 + 12 / 10),  # 105.6
    "50 Gy/5": 50 * (1 + 10 / 10),  # 100.0
    "55 Gy/5": 55 * (1 + 11 / 10),  # 115.5
    "60 Gy/8": 60 * (1 + 7.5 / 10),  # 105.0
    "50 Gy/10": 50 * (1 + 5 / 10),  # 75.0
    "45 Gy/15": 45 * (1 + 3 / 10),  # 58.5
    "60 Gy/15": 60 * (1 + 4 / 10),  # 84.0
    "60 Gy/30": 60 * (1 + 2 / 10),  # 72.0
    # issue 13
    "60 Gy/12": 60 * (1 + 5 / 10),  # 90.0
    "45 Gy/3": 45 * (1 + 15 / 10),  # 112.5
    "35 Gy/5": 35 * (1 + 7 / 10),  # 59.5
    "30 Gy/3": 30 * (1 + 10 / 10),  # 60.0
    "24 Gy/2": 24 * (1 + 12 / 10),  # 52.8
    "20 Gy/1": 20 * (1 + 20 / 10),  # 60.0
    "18 Gy/1": 18 * (1 + 18 / 10),  # 50.4
    "16 Gy/1": 16 * (1 + 16 / 10),  # 41.6
    "30 Gy/5": 30 * (1 + 6 / 10),  # 48.0
    "55 Gy/20": 55 * (1 + 2.75 / 10),  # 70.125
    "30 Gy/10": 30 * (1 + 3 / 10),  # 39.0
}


def test_catalogue_sites_citations_and_targets():
    """Every regimen names where it is used (a citation or "no citation found"); the site
    defaults hold the regimens SABR-COMET Table 1 lists per site (reference §4); only lung has
    a cited control target (reference §6.1); the others say so (None)."""
    from rtplan_assist.regimens import (
        CATALOGUE,
        control_target,
        is_standard,
        site_regimens,
    )

    assert all(entry.citations for entry in CATALOGUE)
    assert is_standard(Regimen(3, 54), "lung") and is_standard(Regimen(5, 55), "lung")
    assert is_standard(Regimen(8, 60), "central lung") and is_standard(Regimen(12, 60), "central lung")
    assert is_standard(Regimen(8, 60), "adrenal") and is_standard(Regimen(5, 35), "bone")
    for r in (Regimen(1, 16), Regimen(1, 20), Regimen(3, 30), Regimen(2, 24)):
        assert is_standard(r, "vertebra") and r in site_regimens("vertebra")
    assert not is_standard(Regimen(1, 34), "bone") and not is_standard(Regimen(5, 30), "lung")
    assert control_target("lung").bed10_gy == 100 and "PMC4206062" in control_target("lung").source
    assert control_target("central lung").bed10_gy == 100
    for site in ("node", "liver", "bone", "vertebra", "adrenal", "unknown"):
        assert control_target(site) is None


def test_catalogue_is_the_issue_list_with_hand_bed10():
    assert {r.label for r in DEFAULT_CATALOGUE} == set(CATALOGUE_BED10)
    for regimen in DEFAULT_CATALOGUE:
        assert regimen.bed10_gy() == pytest.approx(CATALOGUE_BED10[regimen.label], abs=1e-9)
    assert Regimen(3, 54).bed10_gy() == pytest.approx(151.2)
    # EQD2 at α/β 10 = BED / 1.2: 50 Gy/5 -> 83.33 Gy (reference §6.1)
    assert Regimen(5, 50).eqd2_10_gy() == pytest.approx(100 / 1.2)


@pytest.mark.parametrize(
    "text", ["50/5", "50Gy/5", "50 Gy/5", " 50 gy / 5 ", "50 Gy in 5 fx", "50.0/5"]
)
def test_parse_regimen_forms(text):
    assert parse_regimen(text) == Regimen(5, 50.0)


@pytest.mark.parametrize("text", ["50", "50/0", "/5", "fifty/5", "50/5.5", "-50/5"])
def test_parse_regimen_refuses(text):
    with pytest.raises(EvaluationError):
        parse_regimen(text)


def test_regimen_properties_and_order():
    r = Regimen(8, 60)
    assert r.dose_per_fraction_gy == 7.5
    assert r.label == "60 Gy/8"
    assert str(Regimen(5, 27.5)) == "27.5 Gy/5"
    assert sorted([Regimen(5, 55), Regimen(3, 54), Regimen(5, 50)]) == [
        Regimen(3, 54),
        Regimen(5, 50),
        Regimen(5, 55),
    ]
    assert Regimen(5, 50).scale_from(Regimen(5, 10)) == 5.0
    with pytest.raises(EvaluationError):
        Regimen(0, 50)
    with pytest.raises(EvaluationError):
        Regimen(5, 0)


def test_regimen_file(tmp_path):
    path = tmp_path / "regimens.csv"
    path.write_text(
        "# comment line\nlesion,total_dose_gy,fractions\n*,50,5\n*,60,8\nL2,60,15\nL2,60,15\n\n"
    )
    assert load_regimen_file(path) == {
        "*": [Regimen(5, 50), Regimen(8, 60)],
        "L2": [Regimen(15, 60)],
    }


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("lesion,dose,fractions\n", "x.csv:1"),
        ("lesion,total_dose_gy,fractions\nL1,abc,5\n", "x.csv:2"),
        ("lesion,total_dose_gy,fractions\nL1,50,5\nL1,50,2.5\n", "x.csv:3"),
        ("lesion,total_dose_gy,fractions\n,50,5\n", "x.csv:2"),
        ("lesion,total_dose_gy,fractions\nL1,-5,5\n", "x.csv:2"),
        ("lesion,total_dose_gy,fractions\nL1,50\n", "x.csv:2"),
        ("", "x.csv:1"),
    ],
)
def test_regimen_file_errors_name_file_and_line(tmp_path, content, where):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(ConstraintTableError, match=where):
        load_regimen_file(path)
