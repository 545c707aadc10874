"""``evaluate --quality``: the plan quality indices in JSON, CSV, text and HTML, report-only
(the rows, the verdict and the exit code are those of the run without ``--quality``)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from rtplan_assist import cli_evaluate
from rtplan_assist.cli import main
from rtplan_assist.quality import INDEX_DEFINITIONS


@pytest.fixture(scope="module")
def evaluation(demo_evaluation):
    """One copy of the demo session for this module: its quality indices are computed once."""
    return demo_evaluation[0].copy()


@pytest.fixture
def reuse(evaluation, monkeypatch):
    monkeypatch.setattr(cli_evaluate, "build_evaluator", lambda args: evaluation)
    return evaluation


def _csv(capsys, *extra):
    code = main(["evaluate", "--demo", "--format", "csv", *extra])
    return code, list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_quality_is_report_only_in_csv(reuse, capsys):
    code0, plain = _csv(capsys)
    code1, rows = _csv(capsys, "--quality")
    assert code1 == code0
    quality = [r for r in rows if r["role"] == "quality"]
    assert [r for r in rows if r["role"] != "quality"] == plain
    assert len(quality) == len(INDEX_DEFINITIONS) * len(reuse.lesions)
    assert {r["status"] for r in quality} == {"info"}
    assert {r["priority"] for r in quality} == {"report"}
    assert all(r["unit"] and r["source"] for r in quality)


def test_quality_in_json_text_html(reuse, capsys, tmp_path):
    out = tmp_path / "q.json"
    assert main(["evaluate", "--demo", "--quality", "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [q["lesion_id"] for q in data["quality"]] == [les.lesion_id for les in reuse.lesions]
    for q, les in zip(data["quality"], reuse.lesions):
        v = {i["index"]: i["value"] for i in q["indices"]}
        # TV is the engine's PTV volume; Paddick CI <= TV_PIV/TV <= 1 and
        # Paddick CI <= TV_PIV/PIV <= 1 by its definition TV_PIV² / (TV · PIV)
        assert v["TV[cc]"] == pytest.approx(
            reuse.lesion_dvhs(les.lesion_id, les.planned)[les.target.name].dvh_volume_cc, rel=1e-9)
        assert 0 < v["CI_Paddick"] <= min(v["TV_PIV[cc]"] / v["TV[cc]"], 1.0)
        assert v["CI_Paddick"] <= v["TV_PIV[cc]"] / v["PIV[cc]"] <= 1.0 + 1e-3
        assert v["D2cm[Gy]"] < les.planned.total_dose_gy
    assert "report-only" in data["quality_note"]
    assert main(["evaluate", "--demo", "--quality", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "Plan quality indices (report-only)" in text and "Paddick CI" in text
    page = tmp_path / "q.html"
    assert main(["evaluate", "--demo", "--quality", "--format", "html", "--out", str(page)]) == 0
    assert "Plan quality indices" in page.read_text()


def test_quality_section_of_the_report(evaluation, demo_evaluation):
    # the MDT report's section (report --quality): one row per lesion, the target names of
    # the result it is given (a de-identified result's), the report-only note
    from dataclasses import replace

    from rtplan_assist.quality import quality_html

    result = demo_evaluation[1]
    renamed = replace(result, lesions=[replace(les, target=replace(les.target, name=f"T{k}"))
                                       for k, les in enumerate(result.lesions)])
    page = quality_html(evaluation, renamed)
    assert page.count("<tr><td><b>L") == len(result.lesions)
    assert "<td>T0</td>" in page and "report-only" in page and "Paddick" in page


def test_batch_record_with_quality(evaluation, monkeypatch):
    # batch --quality: one patient's record (batch.evaluate_patient) gains the quality rows
    # (de-identified patient key, status info) and the JSON key, its verdict and other rows
    # unchanged. The session is the module's demo evaluation (its indices computed once).
    from rtplan_assist import workflow
    from rtplan_assist.batch import evaluate_patient
    from rtplan_assist.demo import demo_case_folder

    monkeypatch.setattr(workflow, "evaluate_folder", lambda *a, **k: evaluation)
    task = {"folder": str(demo_case_folder()), "rel": "demo", "tables": None,
            "regimens_file": None, "report_path": None, "report_format": None,
            "deidentify": True}
    plain = evaluate_patient(dict(task))
    record = evaluate_patient(dict(task, quality=True))
    assert record["status"] == plain["status"] == "evaluated"
    assert record["summary"] == plain["summary"]
    quality = [r for r in record["rows"] if r["role"] == "quality"]
    assert [r for r in record["rows"] if r["role"] != "quality"] == plain["rows"]
    assert len(quality) == len(INDEX_DEFINITIONS) * len(evaluation.lesions)
    assert {r["patient_id"] for r in quality} == {plain["summary"]["patient_id"]}
    assert plain["summary"]["patient_id"].startswith("p-")
    assert {r["status"] for r in quality} == {"info"}
    assert len(record["result"]["quality"]) == len(evaluation.lesions)
    assert "quality" not in plain["result"]


def test_rtog_grades_of_the_demo(reuse, capsys):
    # demo L1 (lung, 54 Gy/3, PTV 14.0 cc) is graded against RTOG 0813/0915 Table 1, L3 (node)
    # is not and says why; the CSV row of a graded index carries the interpolated bounds
    # (goal = per-protocol bound, limit = minor bound), status info (report-only)
    from rtplan_assist.quality import lesion_quality

    by_id = {q.lesion_id: q.to_dict()["rtog_0813_0915"] for q in lesion_quality(reuse)}
    assert [g["label"] for g in by_id["L1"]] == ["R100%", "R50%", "D2cm"]
    assert all(g["level"] != "not graded" and g["source"] == "RTOG 0813/0915 protocol Table 1"
               for g in by_id["L1"])
    assert all(g["level"] == "not graded" and "node" in g["reason"] for g in by_id["L3"])
    _, rows = _csv(capsys, "--quality")
    r50 = next(r for r in rows if r["role"] == "quality" and r["lesion_id"] == "L1"
               and r["metric"] == "R50%")
    assert r50["status"] == "info" and r50["comparator"] == "<"
    # PTV between the 13.2 and 22.0 cc rows: per-protocol bound between 4.7 and 4.5
    assert 4.5 < float(r50["goal"]) < 4.7 and 5.5 < float(r50["limit"]) < 5.8
    assert "RTOG 0813/0915 protocol Table 1" in r50["reason"]
