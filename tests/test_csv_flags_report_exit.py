"""Issue 14: the evaluate CSV says which regimen is planned, recommended and chosen, rounds its
numbers, can drop not-evaluable rows; ``report`` exits like ``evaluate``.

Expected values by hand: the demo's planned regimens are written in rtplan_assist/demo.py
(DEMO_LESIONS: L1 54/3, L2 60/8, L3 50/5, L4 50/5, L5 27/3); 149.60000000000002 to 6
significant digits is 149.6."""

from __future__ import annotations

import csv
import io

import pytest

from rtplan_assist import cli_evaluate
from rtplan_assist.cli import main
from rtplan_assist.evaluation import TIDY_COLUMNS, result_to_csv
from rtplan_assist.evaluation.output import _csv_number

PLANNED = {"L1": "54 Gy/3", "L2": "60 Gy/8", "L3": "50 Gy/5", "L4": "50 Gy/5", "L5": "27 Gy/3"}


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_flags_planned_recommended_chosen(demo_evaluation):
    evaluation, result = demo_evaluation
    rows = _rows(result_to_csv(result))
    assert list(rows[0]) == list(TIDY_COLUMNS) + ["planned", "recommended", "chosen"]
    lesion_rows = [r for r in rows if r["regimen"] != "composite"]
    for lid, label in PLANNED.items():
        mine = [r for r in lesion_rows if r["lesion_id"] == lid]
        assert {r["regimen"] for r in mine if r["planned"] == "true"} == {label}
        assert {r["regimen"] for r in mine if r["recommended"] == "true"} == {
            result.recommendation.choice[lid].label}
        assert {r["regimen"] for r in mine if r["chosen"] == "true"} == {
            result.choice[lid].label}
        assert all(r[k] in ("true", "false") for r in mine
                   for k in ("planned", "recommended", "chosen"))
    composite = [r for r in rows if r["regimen"] == "composite"]
    assert composite and all(r["chosen"] == "true" for r in composite)


def test_csv_flags_follow_a_choice(demo_evaluation):
    evaluation, _ = demo_evaluation
    result = evaluation.copy().result("planned")  # the planned regimens as the choice
    assert {lid: r.label for lid, r in result.choice.items()} == PLANNED
    rows = _rows(result_to_csv(result))
    for r in rows:
        if r["regimen"] == "composite":
            assert r["planned"] == "true" and r["chosen"] == "true"
        else:
            assert r["chosen"] == r["planned"]


def test_csv_numbers_rounded_to_6_significant_digits(demo_evaluation):
    assert _csv_number(149.60000000000002) == 149.6
    assert _csv_number(0.0123456789) == 0.0123457
    assert _csv_number(7) == 7 and _csv_number("x") == "x"
    rows = _rows(result_to_csv(demo_evaluation[1]))
    for r in rows:
        for key in ("value", "limit", "goal", "alpha_beta_gy"):
            if r[key]:
                digits = r[key].lstrip("-").replace(".", "").lstrip("0").split("e")[0]
                assert len(digits) <= 6, (key, r[key])


def test_csv_can_drop_not_evaluable_rows(demo_evaluation):
    result = demo_evaluation[1]
    every = _rows(result_to_csv(result))
    kept = _rows(result_to_csv(result, drop_not_evaluable=True))
    n_ne = sum(r["status"] == "not evaluable" for r in every)
    assert n_ne > 0  # the demo lacks some constrained organs (issue 14: 49 % of rows)
    assert len(kept) == len(every) - n_ne
    assert all(r["status"] != "not evaluable" for r in kept)


def test_evaluate_cli_drop_option(demo_evaluation, monkeypatch, capsys):
    evaluation = demo_evaluation[0]
    monkeypatch.setattr(cli_evaluate, "build_evaluator", lambda args: evaluation)
    code = main(["evaluate", "--demo", "--format", "csv", "--drop-not-evaluable"])
    rows = _rows(capsys.readouterr().out)
    assert code in (0, 1, 2) and rows and all(r["status"] != "not evaluable" for r in rows)
    code = main(["evaluate", "--demo", "--format", "json", "--drop-not-evaluable"])
    err = capsys.readouterr().err
    assert code == 2 and "--format csv" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def planned_from_demo(demo_evaluation, monkeypatch):
    import rtplan_assist.workflow as workflow

    evaluation = demo_evaluation[0]
    monkeypatch.setattr(workflow, "evaluate_folder", lambda *a, **k: evaluation.copy())
    return evaluation


def test_report_exit_code_matches_evaluate(planned_from_demo, tmp_path, capsys):
    # 54 Gy/3 on L5 next to the cord fails the TG-101/HyTEC cord limits (tests/
    # test_cli_evaluate.py, evaluate exits 1): the report must exit 1 too, and still be written
    out = tmp_path / "r.html"
    code = main(["report", "--demo", "--choose", "L5=54/3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1 and "verdict fail" in printed and out.read_text().startswith("<!DOCTYPE")
