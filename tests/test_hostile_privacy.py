"""Hostile identifiers and text (issue 18): short PatientIDs, context escaping."""

from __future__ import annotations

from rtplan_assist.deidentify import Identifiers, patient_key
from rtplan_assist.escape import css_string, csv_cell, markdown_html, mathtext_literal


def test_short_patient_id_replaces_whole_identifiers_only():
    # On main a PatientID "5" turned "limit 22.5 Gy" into "limit 22.p-ef2d127d Gy".
    ids = Identifiers.of("5", "")
    key = patient_key("5")
    for text in ("limit 22.5 Gy", "D0.5cc[Gy] 5 Gy", "5 fx", "V5Gy[%] -5", "1,5 cm³"):
        assert ids.scrub(text) == text
    assert ids.scrub("patient 5 (ID 5)") == f"patient {key} (ID {key})"
    assert ids.scrub("P/5/RD.dcm") == f"P/{key}/RD.dcm"


def test_context_escapes():
    assert csv_cell("=HYPERLINK(\"http://x\")").startswith("'=")
    assert csv_cell("-1.5") == "-1.5" and csv_cell(-3) == -3 and csv_cell("+cmd") == "'+cmd"
    assert csv_cell("Heart") == "Heart"
    assert "\r" not in css_string("a\rb\fc\"d") and "\\00000d" in css_string("a\rb")
    md = markdown_html("x\n\n![i](http://evil/x.png) [l](http://e) <b>")
    assert "\n" not in md and "<" not in md and "&#10;&#10;" in md
    assert mathtext_literal("PTV $\\alpha$") == "PTV \\$\\alpha\\$"


def test_dvh_csv_neutralises_a_formula_roi_name(tmp_path, capsys):
    # On main an ROI named '=HYPERLINK(...)' reached the CSV cell as a live formula.
    from fuzz import harness

    from rtplan_assist.cli import main

    datasets = harness.base_datasets()
    datasets["struct"].StructureSetROISequence[0].ROIName = '=HYPERLINK("http://e","x")'
    harness.write_case(datasets, tmp_path / "case")
    assert main(["dvh", str(tmp_path / "case"), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [line.split(",")[1] for line in lines[1:]]
    assert any(c.startswith("\"'=HYPERLINK") for c in cells)
    assert not any(c.startswith(("=", '"=')) for c in cells)
