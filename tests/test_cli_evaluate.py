"""``rtplan-assist evaluate`` and ``bed``: formats, exit codes, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from cli_runs import evaluate_keeping_evaluator

from rtplan_assist import cli_evaluate
from rtplan_assist.cli import main
from rtplan_assist.evaluation import TIDY_COLUMNS


def test_bed_calculator(capsys):
    assert main(["bed", "54", "3", "--alpha-beta", "10", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bed_gy"] == pytest.approx(151.2)  # 54 (1 + 18/10)
    assert data["eqd2_gy"] == pytest.approx(126.0)  # 151.2 / 1.2
    assert main(["bed", "60", "8", "--alpha-beta", "3"]) == 0
    assert "EQD2 = 126.00 Gy" in capsys.readouterr().out  # reference §6.1


def test_bed_errors_are_one_line_exit_2(capsys):
    assert main(["bed", "50", "0", "--alpha-beta", "10"]) == 2
    assert main(["bed", "50", "5", "--alpha-beta", "10", "--model", "lql"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("rtplan-assist: error:") for line in err)


def test_bed_lql_with_transition(capsys):
    # LQ-L, d_T = 6 Gy, 34 Gy/1, α/β 10: 6 (1.6) + 2.2 (28) = 71.2 Gy (reference §6.4 table)
    args = ["bed", "34", "1", "--alpha-beta", "10", "--model", "lql", "--transition-dose", "6"]
    assert main([*args, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["bed_gy"] == pytest.approx(71.2)


def test_evaluate_needs_a_folder_or_demo(capsys, tmp_path):
    assert main(["evaluate"]) == 2
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert main(["evaluate", "--demo", "--choose", "L1"]) == 2


@pytest.fixture(scope="module")
def demo_json(tmp_path_factory):
    """One real run of ``evaluate --demo`` (json to a file) and its evaluator for reuse."""
    out = tmp_path_factory.mktemp("cli") / "result.json"
    code, evaluator = evaluate_keeping_evaluator(
        ["evaluate", "--demo", "--format", "json", "--out", str(out)])
    return code, json.loads(out.read_text()), evaluator


def test_evaluate_demo_json_exit_0(demo_json):
    code, data, _ = demo_json
    assert code == 0 and data["verdict"] == "pass"
    assert data["patient_id"] == "RTPA-DEMO-0000"
    assert data["recommendation"]["binding"]  # de-escalated lesions name their constraint
    # nothing silently dropped (instead of a row count): every listed lesion × regimen has its
    # target rows and a row for every organ the tables constrain (a "not evaluable" one when
    # the case lacks it), and the composite has a row for every one of those organs
    organs = set(demo_json[2].tables.organs())
    for lid, regimens in data["regimens"].items():
        for regimen in regimens:
            rows = [r for r in data["rows"]
                    if r["lesion_id"] == lid and r["regimen"] == regimen["regimen"]]
            assert {r["organ"] for r in rows if r["role"] == "oar"} == organs
            assert {"Rx[Gy]", "D95%[Gy]", "D98%[Gy]", "V100%[%]", "Mean[Gy]"} <= {
                r["metric"] for r in rows if r["role"] == "target"}
    assert {r["organ"] for r in data["composite_rows"]} == organs


@pytest.fixture
def reuse(demo_json, monkeypatch):
    """Later runs reuse the warm evaluator (its caches make them fast)."""
    evaluator = demo_json[2]
    monkeypatch.setattr(cli_evaluate, "build_evaluator", lambda args: evaluator)
    return evaluator


def test_evaluate_csv_is_tidy(reuse, capsys):
    assert main(["evaluate", "--demo", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == list(TIDY_COLUMNS) + ["planned", "recommended", "chosen"]
    assert {r["patient_id"] for r in rows} == {"RTPA-DEMO-0000"}
    assert {"L1", "L5", "composite"} <= {r["lesion_id"] for r in rows}


def test_evaluate_text_and_html(reuse, tmp_path, capsys):
    assert main(["evaluate", "--demo", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "Recommendation" in text and "Composite" in text and "binding" in text
    out = tmp_path / "r.html"
    assert main(["evaluate", "--demo", "--format", "html", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_evaluate_failing_choice_exit_1(reuse, capsys):
    # 54 Gy/3 next to the cord fails the TG-101/HyTEC cord limits
    assert main(["evaluate", "--demo", "--choose", "L5=54/3", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "fail" and data["choice"]["L5"] == "54 Gy/3"
