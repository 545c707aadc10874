"""Issue 14: the MDT report's page 1 alone carries the decision (pdftotext of page 1), no text
below 7 pt (PDF word boxes, the style sheet, the figures), R/L/A/P letters from the image
orientation, and one basis: ``report``/``export-dose`` show the recommended regimens by
default (planned beside them), say which, and ``report`` exits like ``evaluate``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rtplan_assist.cli import main
from rtplan_assist.evaluation.reasons import composite_reason, lesion_reasons
from rtplan_assist.report import (
    _TEMPLATE,
    DVH_MM,
    MIN_FONT_PT,
    SCALE_BAR_MM,
    THUMB_MM,
    _dvh_fig,
    _isodose_fig,
    figure_min_font_pt,
    orientation_letters,
    write_report,
)

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdffonts") is None,
    reason="needs poppler-utils (pdftotext, pdffonts)",
)


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def report_pdf(demo_evaluation, tmp_path_factory) -> Path:
    evaluation, result = demo_evaluation  # the recommended regimens (evaluate's default)
    path = tmp_path_factory.mktemp("decision") / "report.pdf"
    write_report(result, evaluation, path)
    return path


@needs_poppler
def test_page_one_alone_carries_the_decision(report_pdf, demo_evaluation):
    _, result = demo_evaluation
    first = _words(subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(report_pdf), "-"],
                                  check=True, capture_output=True, text=True,
                                  timeout=120).stdout)
    assert f"composite verdict: {result.verdict()}" in first.lower()
    assert "Shown: the recommended regimens (planned:" in first
    # every lesion's shown regimen and every reason of the decision, in words, on page 1
    for lesion in result.lesions:
        assert result.choice[lesion.lesion_id].label in first
        for reason in lesion_reasons(result, lesion.lesion_id):
            assert _words(reason.text) in first, reason.text
    assert _words(composite_reason(result).text) in first
    assert result.recommendation.binding  # the demo de-escalates: "is rejected" is shown
    assert first.count("is rejected") == len(result.recommendation.binding)
    assert "instead of" not in first
    # page 1 holds it all: page 2 starts with the figures, nothing of page 1 spilled over
    second = _words(subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(report_pdf), "-"],
                                   check=True, capture_output=True, text=True,
                                   timeout=120).stdout)
    assert second.startswith("Axial images through each PTV centre"), second[:200]


@needs_poppler
def test_no_text_in_the_pdf_is_smaller_than_7_pt(report_pdf):
    fonts = subprocess.run(["pdffonts", str(report_pdf)], check=True, capture_output=True,
                           text=True, timeout=60).stdout
    names = [line.split()[0] for line in fonts.splitlines()[2:] if line.strip()]
    assert names and all(re.fullmatch(r"[A-Z]{6}\+DejaVu-Sans(-Bold)?", n) for n in names), names
    # a word's box in pdftotext -bbox is ascent + descent of its font: DejaVu Sans hhea
    # ascender 1901, descender -483, unitsPerEm 2048 → 1.1641 em (read from the font file)
    from fontTools.ttLib import TTFont

    font = TTFont("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    em = (font["hhea"].ascent - font["hhea"].descent) / font["head"].unitsPerEm
    boxes = subprocess.run(["pdftotext", "-bbox", str(report_pdf), "-"], check=True,
                           capture_output=True, text=True, timeout=120).stdout
    heights = [float(b) - float(a) for a, b in
               re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', boxes)]
    assert len(heights) > 500
    assert min(heights) / em >= MIN_FONT_PT - 0.01


def test_style_sheet_and_figures_stay_at_or_above_7_pt(demo_evaluation):
    sizes = [float(v) for v in re.findall(r"font-size:\s*([\d.]+)pt", _TEMPLATE.template)]
    assert sizes and min(sizes) >= MIN_FONT_PT
    assert not re.search(r"font-size:\s*[\d.]+(px|em|%)", _TEMPLATE.template)
    evaluation, result = demo_evaluation
    lesion = result.lesions[0]
    thumb = _isodose_fig(evaluation.case, lesion, result.choice[lesion.lesion_id], None)
    dvh = _dvh_fig(result, evaluation)
    # each figure is drawn at the size it is shown: matplotlib points are points on paper
    assert tuple(thumb.get_size_inches() * 25.4) == pytest.approx((THUMB_MM, THUMB_MM))
    assert tuple(dvh.get_size_inches() * 25.4) == pytest.approx(DVH_MM)
    assert figure_min_font_pt(thumb) >= MIN_FONT_PT
    assert figure_min_font_pt(dvh) >= MIN_FONT_PT
    texts = {t.get_text() for t in thumb.axes[0].texts}
    assert {"R", "L", "A", "P", f"{SCALE_BAR_MM / 10:g} cm"} <= texts
    # the scale bar spans SCALE_BAR_MM in patient millimetres (the axes' data units)
    spans = [abs(line.get_xdata()[1] - line.get_xdata()[0]) for line in thumb.axes[0].lines
             if len(line.get_xdata()) == 2]
    assert any(span == pytest.approx(SCALE_BAR_MM) for span in spans)
    import matplotlib.pyplot as plt

    plt.close(thumb)
    plt.close(dvh)


@pytest.mark.parametrize("row,column,expected", [
    # DICOM PS3.3 C.7.6.1.1.1: +x patient left, +y posterior; the letter names the edge
    ((1, 0, 0), (0, 1, 0), ("R", "L", "A", "P")),    # HFS
    ((-1, 0, 0), (0, 1, 0), ("L", "R", "A", "P")),   # FFS
    ((-1, 0, 0), (0, -1, 0), ("L", "R", "P", "A")),  # HFP
    ((1, 0, 0), (0, -1, 0), ("R", "L", "P", "A")),   # FFP
    ((0, 1, 0), (0, 0, -1), ("A", "P", "H", "F")),   # sagittal (rows posterior, columns down)
])
def test_orientation_letters(row, column, expected):
    assert orientation_letters(row, column) == expected


@pytest.fixture
def demo_copy(demo_evaluation, monkeypatch):
    """``report``/``export-dose --demo`` reuse the session's demo evaluation."""
    from rtplan_assist import workflow

    evaluation = demo_evaluation[0]
    monkeypatch.setattr(workflow, "evaluate_folder", lambda *a, **k: evaluation.copy())
    return evaluation


def test_report_shows_the_recommended_regimens_by_default_and_exits_like_evaluate(
        demo_copy, demo_evaluation, tmp_path, capsys, monkeypatch):
    from rtplan_assist import cli_evaluate

    monkeypatch.setattr(cli_evaluate, "build_evaluator", lambda args: demo_copy.copy())
    result = demo_evaluation[1]
    out = tmp_path / "r.html"
    code = main(["report", "--demo", "--out", str(out)])
    captured = capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    assert "Shown: the recommended regimens" in captured.err
    assert "Shown: the recommended regimens" in page
    for lid, regimen in result.recommendation.choice.items():
        assert f"<b>{regimen.label}</b>" in page, lid
    evaluate_code = main(["evaluate", "--demo", "--format", "csv"])
    capsys.readouterr()
    assert code == evaluate_code == {"pass": 0, "fail": 1}.get(result.verdict(), 2)

    # --basis planned: the planned regimens, the recommendation beside them; exit code as
    # evaluate --choose with every planned regimen (the demo's plan fails: L5's cord, L3's
    # airway; tests/test_report.py)
    planned = [f"--choose={x.lesion_id}={x.planned.total_dose_gy:g}/{x.planned.fractions}"
               for x in result.lesions]
    code = main(["report", "--demo", "--basis", "planned", "--out", str(out)])
    err = capsys.readouterr().err
    assert "Shown: the planned regimens, not the recommendation (recommended:" in err
    evaluate_code = main(["evaluate", "--demo", "--format", "csv", *planned])
    capsys.readouterr()
    assert code == evaluate_code == 1


def test_export_dose_says_its_basis(demo_copy, demo_evaluation, tmp_path, capsys):
    import pydicom

    result = demo_evaluation[1]
    out = tmp_path / "RD.eqd2.dcm"
    assert main(["export-dose", "--demo", "--out", str(out)]) == 0
    assert "Shown: the recommended regimens" in capsys.readouterr().err
    description = pydicom.dcmread(out, stop_before_pixels=True).SeriesDescription
    first = result.lesions[0].lesion_id
    assert description.startswith(
        f"EQD2 recommended {first} {result.recommendation.choice[first].label}")
