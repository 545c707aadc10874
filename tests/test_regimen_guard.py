"""Issue 14: custom regimens (evaluate --regimen/--choose, the app's add-regimen) get specific
messages per kind of bad input and a plausibility guard: warned above 30 Gy per fraction or
BED10 200 Gy, refused above 40 Gy per fraction or BED10 300 Gy.

BED10 by hand (LQ, BED = D (1 + d/10)): 34 Gy/1 → 34 × 4.4 = 149.6; 60 Gy/3 → 60 × 3 = 180;
35 Gy/1 → 35 × 4.5 = 157.5; 75 Gy/3 → 75 × 3.5 = 262.5; 100 Gy/4 → 100 × 3.5 = 350;
500 Gy/3 → 166.7 Gy per fraction."""

from __future__ import annotations

import pytest

from rtplan_assist.cli import main
from rtplan_assist.cli_evaluate import _parse_assignments
from rtplan_assist.errors import EvaluationError
from rtplan_assist.regimens import Regimen, check_custom_regimen, parse_regimen


@pytest.mark.parametrize("total,n", [(60, 3), (54, 3), (30, 1), (48, 4)])
def test_published_schedules_pass_silently(total, n):
    assert check_custom_regimen(Regimen(n, total)) == []


@pytest.mark.parametrize("total", [34, 35])
def test_high_dose_per_fraction_is_warned(total):
    (warning,) = check_custom_regimen(Regimen(1, total))  # BED10 149.6 / 157.5: below 200
    assert f"{total} Gy per fraction" in warning and "30 Gy" in warning


def test_high_bed10_is_warned():
    (warning,) = check_custom_regimen(Regimen(3, 75))
    assert "BED10 262.5 Gy" in warning and "200 Gy" in warning


@pytest.mark.parametrize("total,n,needle", [(500, 3, "166.7 Gy per fraction"),
                                            (45, 1, "45 Gy per fraction"),
                                            (100, 4, "BED10 350.0 Gy")])
def test_implausible_regimens_are_refused(total, n, needle):
    with pytest.raises(EvaluationError, match=needle):
        check_custom_regimen(Regimen(n, total))


@pytest.mark.parametrize("text,needle", [
    ("", "empty regimen"),
    ("50", "one '/'"),
    ("abc/5", "'abc' is not a number of Gy"),
    ("0/5", "total dose > 0 Gy"),
    ("50/2.5", "whole number >= 1, got 2.5"),
    ("50/0", "fractions >= 1, got 0"),
    ("50/x", "'x' is not a number"),
])
def test_parse_regimen_says_what_is_wrong(text, needle):
    with pytest.raises(EvaluationError) as info:
        parse_regimen(text)
    assert needle in str(info.value)


def test_cli_regimen_refused_in_one_line_before_work(capsys):
    assert main(["evaluate", "--demo", "--regimen", "500/3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not added" in err and "40 Gy" in err


def test_cli_regimen_warned(capsys):
    out = _parse_assignments(["L1=35/1"], "--regimen")
    assert out == {"L1": [Regimen(1, 35.0)]}
    err = capsys.readouterr().err
    assert "warning: --regimen L1=35/1" in err and "35 Gy per fraction" in err


@pytest.mark.parametrize("n,dose,needle", [
    (None, None, "number of fractions and the total dose"),
    (None, 50, "give the number of fractions"),
    (5, None, "give the total dose"),
    (2.5, 50, "whole number >= 1, got 2.5"),
    (0, 50, "whole number >= 1, got 0"),
    (5, -1, "total dose must be > 0 Gy, got -1"),
])
def test_app_add_regimen_messages(n, dose, needle):
    from app.callbacks.lesion import custom_regimen

    with pytest.raises(EvaluationError, match=needle):
        custom_regimen(n, dose)
    assert custom_regimen(5, 50) == Regimen(5, 50.0)
