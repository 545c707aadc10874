"""MDT report: the PDF renders (pdftoppm), its text names every lesion and the verdict, the
HTML is self-contained."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from rtplan_assist.cli import main
from rtplan_assist.deidentify import patient_key
from rtplan_assist.demo import DEMO_LESIONS, demo_case_folder
from rtplan_assist.dicom import load_case
from rtplan_assist.evaluation import CaseEvaluator, find_lesions
from rtplan_assist.report import render_report_html, write_report

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="needs poppler-utils (pdftoppm, pdftotext)",
)


@pytest.fixture(scope="module")
def evaluated():
    case = load_case(demo_case_folder())
    regimens = {lesion.lesion_id: [lesion.planned] for lesion in find_lesions(case, [])}
    evaluator = CaseEvaluator(case, regimens=regimens)
    result = evaluator.evaluate(choice={k: v[0] for k, v in regimens.items()})
    return evaluator, result


@pytest.fixture(scope="module")
def pdf(evaluated, tmp_path_factory):
    evaluator, result = evaluated
    path = tmp_path_factory.mktemp("report") / "report.pdf"
    write_report(result, evaluator, path)
    return path


def test_pdf_renders_first_page(pdf, tmp_path):
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=120)
    pages = list(tmp_path.glob("page*.png"))
    assert len(pages) == 1
    png = pages[0].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    assert width > height  # A4 landscape at 60 dpi: 701 x 496
    assert width == pytest.approx(297 / 25.4 * 60, abs=2)


def test_pdf_text_has_every_lesion_and_the_verdict(pdf, evaluated):
    _, result = evaluated
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True, timeout=120).stdout
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf), "-"],
                           check=True, capture_output=True, text=True, timeout=120).stdout
    for lesion in DEMO_LESIONS:
        assert re.search(rf"\b{lesion.lesion_id}\b", first), lesion.lesion_id
        assert lesion.label in first
    verdict = result.verdict()
    # the demo's planned regimens fail mandatory limits (L2/L3 oesophagus, L5 cord, composite)
    assert verdict == "fail"
    assert "Composite verdict: FAIL" in first
    assert "RTPA-DEMO-0000" in first
    assert "not a treatment planning system" in text
    assert "EQD2" in text and "α/β" in text
    for status in ("pass", "FAIL"):
        assert status in first  # status as text, not colour only


def test_html_is_self_contained(evaluated):
    evaluator, result = evaluated
    html = render_report_html(result, evaluator, deidentify=True)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may spell http
    assert "http" not in text.lower() and "//" not in text and "url(" not in text
    sources = re.findall(r"""src=["']([^"']+)""", html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "Demo Patient" not in html and "Demo^Patient" not in html  # de-identified
    # the ID replaced by its key, the one scheme of rtplan_assist.deidentify
    assert "RTPA-DEMO-0000" not in html and patient_key("RTPA-DEMO-0000") in html
    assert "demo-v" not in html  # nor the folder (the demo cache folder demo-v<N>)


def test_cli_report_html(tmp_path, capsys, demo_evaluation, monkeypatch):
    from rtplan_assist import workflow

    # report evaluates every regimen (the recommendation is its default basis): reuse the
    # session's demo evaluation
    monkeypatch.setattr(workflow, "evaluate_folder",
                        lambda *a, **k: demo_evaluation[0].copy())
    out = tmp_path / "r.html"
    code = main(["report", "--demo", "--choose", "L2=50/5", "--out", str(out)])
    # exit code as evaluate's, from the verdict the command prints (0 pass, 1 fail, 2 n.e.)
    verdict = capsys.readouterr().out.rsplit("(verdict ", 1)[1].split(")")[0]
    assert code == {"pass": 0, "fail": 1}.get(verdict, 2)
    html = out.read_text(encoding="utf-8")
    # the shown regimen, who chose it, the planned and recommended ones beside it
    assert "<b>50 Gy/5</b><br><span class=small>chosen by the user</span>" in html
    recommended = demo_evaluation[1].recommendation.choice["L2"].label
    assert f"planned 60 Gy/8; recommended {recommended}" in html
    assert "Shown: regimens chosen by the user: L2 50 Gy/5" in html
    assert "Demo Patient" in html
    assert main(["report", "--demo", "--out", str(tmp_path / "r.txt")]) == 2
    assert "pdf or .html" in capsys.readouterr().err


def test_report_rows_mark_fragile_verdicts():
    """Issue 13: the PDF's row table marks a verdict that flips within the organ's α/β range
    or the borderline band ("fragile"), next to its status."""
    from types import SimpleNamespace

    from rtplan_assist.report import _row_cells

    row = SimpleNamespace(structure="Spinal Cord", organ="SpinalCord", metric="Max[Gy]",
                          kind="physical", value=40.0, limit=38.89, goal=None, comparator="<=",
                          unit="Gy", alpha_beta_gy=2.0, model="LQ", status="fail",
                          priority="mandatory", source="hytec", converted_from_fractions=5,
                          constraint_fractions=15, robustness="fragile", reason="")
    assert "<b>fragile</b>" in _row_cells(row)
    row.robustness = "fail-robust"
    assert "fragile" not in _row_cells(row)
