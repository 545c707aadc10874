"""Hostile text in the MDT report (issue 18): CSS strings, matplotlib mathtext, unwritable
output."""

from __future__ import annotations

import dataclasses
import errno
import os
import re

import pytest

from rtplan_assist.demo import demo_case_folder
from rtplan_assist.dicom import load_case
from rtplan_assist.errors import RtplanAssistError
from rtplan_assist.evaluation import CaseEvaluator, find_lesions
from rtplan_assist.report import dvh_figure, render_report_html


@pytest.fixture(scope="module")
def odd_names():
    """The demo with L1's GTV named with a '$...$' pair (mathtext that does not parse)."""
    case = load_case(demo_case_folder())
    keep = {"GTV_1", "PTV_1", "Spinal Cord", "Esophagus", "Lungs", "External", "LUNGS-ITV's"}
    case.structures = [s for s in case.structures if s.name in keep]
    case.doses = [d for d in case.doses if "1" in os.path.basename(d.path)][:1]
    for s in case.structures:
        if s.name == "GTV_1":
            s.name = "GTV_1 $\\frac{a$ $b^$"
    lesions = find_lesions(case, [])
    regimens = {lesion.lesion_id: [lesion.planned] for lesion in lesions}
    evaluator = CaseEvaluator(case, regimens=regimens)
    result = evaluator.evaluate(choice={k: v[0] for k, v in regimens.items()})
    return evaluator, result


def test_mathtext_in_a_structure_name_is_drawn_literally(odd_names):
    # On main: ValueError from matplotlib's mathtext parser -> exit 70 for `report`.
    evaluator, result = odd_names
    assert any("$" in (lesion.gtv.name if lesion.gtv else "") for lesion in result.lesions)
    assert dvh_figure(result, evaluator).startswith("data:image/png;base64,")


def test_carriage_return_in_patient_id_stays_inside_the_css_string(odd_names):
    # On main "\r" ended the CSS string: the rest of the style sheet (verdict box, status
    # colours) was lost in the PDF.
    evaluator, result = odd_names
    hostile = dataclasses.replace(result, patient_id='X\r}body{display:none}\f"')
    page = render_report_html(hostile, evaluator)
    style = page[page.index("<style"):page.index("</style>")]
    footer = re.search(r'content:\s*"((?:[^"\\\r\n\f]|\\.)*)"', style[style.index("@bottom-left"):])
    assert footer and "rtplan-assist" in footer.group(1)
    assert "\r" not in style and "\f" not in style


def test_full_disk_is_one_typed_error(tmp_path, monkeypatch):
    # On main a full disk surfaced as a raw OSError: exit 70 "internal error" in the CLI.
    from rtplan_assist.outputs import atomic_write_text

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(RtplanAssistError, match="No space left"):
        atomic_write_text(tmp_path / "r.html", "<html></html>")
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")  # a file where the output folder should be
    with pytest.raises(RtplanAssistError, match="r.html"):
        atomic_write_text(tmp_path / "file" / "r.html", "x")
