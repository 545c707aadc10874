"""No leaks (issue 6, part 5): warnings, errors and log output never carry the patient's
name or ID.

The demo patient here has the distinctive PatientID ``LEAKCHECK-12345`` (PatientName
``Demo^Patient``). It is copied into a folder with a neutral name, so that a path echoed in
a message cannot be mistaken for a leak of the DICOM content. Every logger is captured at
DEBUG. Output files (JSON, CSV, HTML) may carry the ID where the user's output needs it;
``--deidentify`` removes it from every output: ``tests/test_deidentify.py``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from fuzz import harness

from rtplan_assist.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PATIENT_ID = "LEAKCHECK-12345"
PATIENT_NAMES = ("Demo^Patient", "Demo Patient")


def assert_clean(text: str) -> None:
    assert PATIENT_ID not in text, text
    assert "LEAKCHECK" not in text.upper(), text
    assert not any(name in text for name in PATIENT_NAMES), text


@pytest.fixture(scope="module")
def neutral_copy(leakcheck_patient, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("noleak") / "case"
    shutil.copytree(leakcheck_patient, folder)
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["dvh", "{case}", "--dose", "RD.L1.dcm", "--metric", "D0.03cc[Gy]", "--metric",
         "V200Gy[%]"],  # V200Gy of a small PTV: a "not evaluable" warning
        ["dvh", "{case}"],  # several doses and no --dose: an error
        ["evaluate", "{case}", "--format", "text"],
        ["evaluate", "{case}", "--choose", "L1=60/3", "--format", "csv"],
    ],
    ids=["dvh-warnings", "dvh-error", "evaluate", "evaluate-choose"],
)
def test_stderr_and_logs_carry_no_patient_identity(argv, neutral_copy, tmp_path, capsys, caplog):
    argv = [a.format(case=neutral_copy) for a in argv] + ["--out", str(tmp_path / "out.txt")]
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    assert err.strip() or code == 0
    assert_clean(err)
    assert_clean("\n".join(r.getMessage() for r in caplog.records))


def test_damaged_files_name_the_file_not_the_patient(tmp_path, capsys, caplog):
    """Errors and warnings for damaged input: the file name, never the PatientID."""
    caplog.set_level(logging.DEBUG)
    for names, seed in [(["p_fractions"], 1), (["d_huge_header"], 2), (["s_contour_values"], 3),
                        (["x_conflicts"], 4), (["s_non_axial"], 5)]:
        folder = tmp_path / f"case{seed}"
        harness.write_case(harness.mutated_case(names, seed, patient_id=PATIENT_ID), folder)
        main(["evaluate", str(folder), "--out", str(tmp_path / f"out{seed}.json")])
        err = capsys.readouterr().err
        assert_clean(err)
    assert_clean("\n".join(r.getMessage() for r in caplog.records))


def test_several_patients_error_carries_no_patient_id(tmp_path, capsys):
    for pid in (PATIENT_ID, "LEAKCHECK-67890"):
        harness.write_case(harness.base_datasets(pid), tmp_path / pid.lower())
    assert main(["dvh", str(tmp_path)]) == 2
    err = capsys.readouterr().err.replace(str(tmp_path), "<root>")
    assert "LEAKCHECK" not in err.upper(), err
