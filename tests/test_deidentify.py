"""``--deidentify`` (issue 6, part 5) on ``evaluate``, ``report``, ``batch``, ``export-dose`` and
``export-structures``, and the one key scheme behind it.

The patient is the demo patient with the distinctive PatientID ``LEAKCHECK-12345``, renamed
``Quokka^Zebediah``, in a folder ``FOLDER-QX7734``; the ID is also in OtherPatientIDs, the
structure set label and a file name (``RD.LEAKCHECK-12345.L1.dcm``), the name in the study
description. With ``--deidentify`` none of ID, name or folder may appear in stdout, stderr, log
records, output file names or output contents (DICOM: every text element, sequences
included). Without the flag, the same checks find the ID where the user's output needs it,
so they can fail.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import pydicom
import pytest
from cli_runs import evaluate_keeping_evaluator
from fuzz import harness

from rtplan_assist import cli_evaluate
from rtplan_assist.cli import main
from rtplan_assist.deidentify import (
    FOLDER_PLACEHOLDER,
    WITHHELD,
    Identifiers,
    deidentify_dataset,
    deidentify_result,
    folder_key,
    patient_key,
    short_hash,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PATIENT_ID = "LEAKCHECK-12345"
PATIENT_NAME = "Quokka^Zebediah"
FOLDER = "FOLDER-QX7734"
# a second patient for the batch: no RTSTRUCT, so an error row
OTHER_ID = "LEAKCHECK-67890"
OTHER_NAME = "Wombat^Xanthippe"
OTHER_FOLDER = "FOLDER-WX5521"
# (not the IDs' digits alone: random UIDs and long floats may contain "12345")
FORBIDDEN = ("LEAKCHECK", "Quokka", "Zebediah", "Wombat", "Xanthippe", "QX7734", "WX5521")
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
            "UI", "UR", "UT"}


def leaks(text: str) -> list[str]:
    """The forbidden words found in ``text`` (any case)."""
    low = text.lower()
    return [word for word in FORBIDDEN if word.lower() in low]


def dicom_texts(path: Path) -> list[str]:
    """Every text value of a DICOM file, file meta and nested sequences included."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    out = []

    def walk(dataset):
        for element in dataset:
            if element.VR == "SQ":
                for item in element.value:
                    walk(item)
            elif element.VR in TEXT_VRS and element.value is not None:
                values = element.value if element.VM > 1 else [element.value]
                out.extend(f"{element.keyword}={v}" for v in values)

    walk(ds.file_meta)
    walk(ds)
    return out


def tree_leaks(folder: Path) -> dict[str, list[str]]:
    """Forbidden words in the names and contents of every file under ``folder``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if path.suffix == ".dcm":
            text = "\n".join(dicom_texts(path))
        else:
            assert path.suffix != ".pdf", "use html reports: PDF streams are compressed"
            text = path.read_text(encoding="utf-8", errors="replace")
        hits = leaks(rel) + leaks(text)
        if hits:
            found[rel] = hits
    return found


def _rename_patient(folder: Path, name: str) -> None:
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName = name
        ds.OtherPatientIDs = f"{ds.PatientID}-OLD"
        ds.StudyDescription = f"{name.replace('^', ' ')} planning"
        if ds.Modality == "RTSTRUCT":
            ds.StructureSetLabel = ds.PatientID
        ds.save_as(path)


@pytest.fixture(scope="module")
def patient(leakcheck_patient, tmp_path_factory) -> Path:
    """``root/FOLDER-QX7734``: the identifying patient (see the module docstring)."""
    folder = tmp_path_factory.mktemp("deid") / "root" / FOLDER
    shutil.copytree(leakcheck_patient, folder)
    _rename_patient(folder, PATIENT_NAME)
    (folder / "RD.L1.dcm").rename(folder / f"RD.{PATIENT_ID}.L1.dcm")
    return folder


@pytest.fixture(scope="module")
def identified(patient, tmp_path_factory):
    """One real ``evaluate`` without the flag: its JSON and the warm evaluator for reuse."""
    out = tmp_path_factory.mktemp("ev") / "identified.json"
    code, evaluator = evaluate_keeping_evaluator(
        ["evaluate", str(patient), "--format", "json", "--out", str(out)])
    assert code in (0, 1)
    return json.loads(out.read_text(encoding="utf-8")), evaluator


def _run(argv, capsys, caplog) -> tuple[int, str, str]:
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    return code, captured.out, captured.err + "\n" + logs


# =============================================================================================
# One key scheme
# =============================================================================================


def test_one_short_hash_for_every_key():
    digest = hashlib.sha256(PATIENT_ID.encode("utf-8")).hexdigest()
    assert patient_key(PATIENT_ID) == "p-" + digest[:8] == short_hash(PATIENT_ID)
    assert folder_key("2024/SMITH_J") == "f-" + hashlib.sha256(b"2024/SMITH_J").hexdigest()[:12]
    from rtplan_assist.dicom.case import patient_key as loader_key

    assert loader_key is patient_key  # the several-patients error uses the same key


def test_scrub_ids_names_and_folders():
    ids = Identifiers.of("12345678", "Smith^Anna^Maria", "/data/SMITH_A")
    key = patient_key("12345678")
    assert ids.scrub("RD12345678.dcm") == f"RD{key}.dcm"  # long IDs: inside file names too
    assert ids.scrub("/data/SMITH_A/RS.dcm: bad") == f"{FOLDER_PLACEHOLDER}/RS.dcm: bad"
    assert ids.scrub("see SMITH_A") == f"see {WITHHELD}"  # folder name alone
    assert ids.scrub("ANNA smith, maria") == f"{WITHHELD} {WITHHELD}, {WITHHELD}"  # any case
    assert ids.scrub("Smithers Annals") == "Smithers Annals"  # parts only as whole words
    short = Identifiers.of("12", "")
    assert short.scrub("V12Gy[%] of 12") == f"V12Gy[%] of {patient_key('12')}"  # short: words
    assert Identifiers.of("", "").scrub("no identifiers") == "no identifiers"


def test_deidentify_dataset_walks_sequences():
    ds = pydicom.Dataset()
    ds.PatientID, ds.PatientName, ds.OtherPatientIDs = PATIENT_ID, PATIENT_NAME, "X1"
    ds.PatientBirthDate, ds.PatientAge = "19580312", "066Y"
    item = pydicom.Dataset()
    item.ROIName = f"PTV {PATIENT_ID}"
    item.ROIDescription = "zebediah's boost"
    ds.StructureSetROISequence = pydicom.Sequence([item])
    deidentify_dataset(ds, Identifiers.of(PATIENT_ID, PATIENT_NAME))
    assert ds.PatientID == patient_key(PATIENT_ID) and ds.PatientName == ""
    assert ds.PatientBirthDate == "" and "PatientAge" not in ds and "OtherPatientIDs" not in ds
    assert ds.PatientIdentityRemoved == "YES" and len(ds.DeidentificationMethod) <= 64
    assert ds.StructureSetROISequence[0].ROIName == f"PTV {patient_key(PATIENT_ID)}"
    assert ds.StructureSetROISequence[0].ROIDescription == f"{WITHHELD}'s boost"


# =============================================================================================
# evaluate
# =============================================================================================


def test_evaluate_without_flag_carries_the_id(identified, patient):
    data, _ = identified
    assert data["patient_id"] == PATIENT_ID  # the user's output needs it
    assert FOLDER in data["folder"]
    assert any(PATIENT_ID in lesion["dose_file"] for lesion in data["lesions"])
    assert leaks(json.dumps(data))  # the check below can fail


@pytest.mark.parametrize("fmt", ["json", "csv", "html", "text"])
def test_evaluate_deidentified(fmt, identified, patient, tmp_path, monkeypatch, capsys, caplog):
    evaluator = identified[1]
    monkeypatch.setattr(cli_evaluate, "build_evaluator", lambda args: evaluator)
    code, out, err = _run(["evaluate", patient, "--format", fmt, "--deidentify"], capsys,
                          caplog)
    assert code == (0 if identified[0]["verdict"] == "pass" else 1)
    assert not leaks(out), leaks(out)
    assert not leaks(err), err
    key = patient_key(PATIENT_ID)
    if fmt == "json":
        data = json.loads(out)
        assert data["patient_id"] == key and data["folder"] == WITHHELD
        assert {r["patient_id"] for r in data["rows"] + data["composite_rows"]} == {key}
        assert f"RD.{key}.L1.dcm" in {lesion["dose_file"] for lesion in data["lesions"]}
        # the numbers are the identified run's
        assert data["verdict"] == identified[0]["verdict"]
        assert [r["value"] for r in data["rows"]] == [r["value"] for r in identified[0]["rows"]]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and {r["patient_id"] for r in rows} == {key}
    else:
        assert key in out


def test_deidentified_result_is_a_copy(identified):
    evaluator = identified[1]
    result = evaluator.evaluate()
    ids = Identifiers.of_case(evaluator.case)
    once = deidentify_result(result, ids)
    assert result.patient_id == PATIENT_ID and FOLDER in result.folder  # untouched
    assert deidentify_result(once, ids) == once  # idempotent
    assert once.verdict() == result.verdict()


def test_errors_name_no_folder_with_flag(patient, capsys, caplog):
    missing = patient.parent / f"{FOLDER}-missing"
    code, _, err = _run(["evaluate", missing, "--deidentify"], capsys, caplog)
    assert code == 2 and FOLDER_PLACEHOLDER in err and not leaks(err), err
    code, _, err = _run(["evaluate", missing], capsys, caplog)
    assert code == 2 and FOLDER in err  # without the flag the path is the user's own


# =============================================================================================
# report
# =============================================================================================


def test_report_deidentified(patient, tmp_path, capsys, caplog):
    out = tmp_path / "report.html"
    code, stdout, err = _run(["report", patient, "--out", out, "--deidentify"], capsys, caplog)
    # report exits like evaluate (issue 14): 0 pass, 1 fail, 2 not evaluable
    assert code == {"pass": 0, "fail": 1}.get(stdout.rsplit("verdict ", 1)[-1].rstrip(")\n"), 2)
    assert not leaks(stdout) and not leaks(err), (stdout, err)
    assert tree_leaks(tmp_path) == {}
    html = out.read_text(encoding="utf-8")
    assert f"Patient ID {patient_key(PATIENT_ID)}" in html and f"folder {WITHHELD}" in html


def test_report_without_flag_names_the_patient(identified):
    from rtplan_assist.report import render_report_html

    evaluator = identified[1]
    html = render_report_html(evaluator.evaluate(), evaluator)
    assert PATIENT_ID in html and "Quokka Zebediah" in html and FOLDER in html


# =============================================================================================
# exports
# =============================================================================================


def test_export_dose_deidentified(patient, tmp_path, capsys, caplog):
    out = tmp_path / "out" / "RD.eqd2.dcm"
    out.parent.mkdir()  # --out's folder must exist (it is never created)
    code, stdout, err = _run(["export-dose", patient, "--lesion", "L1", "--out", out,
                              "--deidentify"], capsys, caplog)
    assert code == 0 and not leaks(stdout) and not leaks(err), (stdout, err)
    assert tree_leaks(out.parent) == {}
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    assert ds.PatientID == patient_key(PATIENT_ID) and ds.PatientName == ""
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod
    assert "OtherPatientIDs" not in ds and "StudyDescription" not in ds
    source = pydicom.dcmread(patient / "RS.dcm", stop_before_pixels=True)
    assert ds.StudyInstanceUID == source.StudyInstanceUID  # still on the planning CT
    assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID

    plain = tmp_path / "plain" / "RD.eqd2.dcm"
    plain.parent.mkdir()
    assert main(["export-dose", str(patient), "--lesion", "L1", "--out", str(plain)]) == 0
    ds = pydicom.dcmread(plain, stop_before_pixels=True)
    assert ds.PatientID == PATIENT_ID and str(ds.PatientName) == PATIENT_NAME  # for the TPS
    assert tree_leaks(plain.parent)


def test_export_structures_deidentified(patient, tmp_path, capsys, caplog):
    pytest.importorskip("rt_utils")
    out = tmp_path / "out" / "RS.derived.dcm"
    out.parent.mkdir()
    code, stdout, err = _run(["export-structures", patient, "--out", out, "--deidentify"],
                             capsys, caplog)
    assert code == 0 and not leaks(stdout) and not leaks(err), (stdout, err)
    assert tree_leaks(out.parent) == {}
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    assert ds.PatientID == patient_key(PATIENT_ID) and ds.PatientIdentityRemoved == "YES"
    assert len(ds.StructureSetROISequence) >= 3  # Lungs-GTVs, rings, cord PRV: still there


# =============================================================================================
# batch
# =============================================================================================


@pytest.fixture(scope="module")
def batch_root(patient, tmp_path_factory) -> Path:
    """``FOLDER-QX7734`` (evaluated) and ``FOLDER-WX5521`` (no RTSTRUCT: an error row)."""
    root = tmp_path_factory.mktemp("batch") / "root"
    shutil.copytree(patient, root / FOLDER, copy_function=shutil.copy2)
    datasets = harness.base_datasets(OTHER_ID)
    del datasets["struct"]
    for ds in datasets.values():
        ds.PatientName = OTHER_NAME
    harness.write_case(datasets, root / OTHER_FOLDER)
    return root


def test_batch_deidentified_and_resume_never_mixes(batch_root, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    argv = ["batch", batch_root, "--out", out, "--workers", "0", "--report-format", "html",
            "--deidentify"]
    code, stdout, err = _run(argv, capsys, caplog)  # with the progress bar
    assert code == 2  # one patient could not be evaluated
    assert not leaks(stdout) and not leaks(err), (stdout, err)
    assert tree_leaks(out) == {}
    with (out / "summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["folder"]: r for r in csv.DictReader(fh)}
    good, bad = rows[folder_key(FOLDER)], rows[folder_key(OTHER_FOLDER)]
    assert good["patient_id"] == patient_key(PATIENT_ID) and good["status"] == "evaluated"
    assert (out / good["report"]).is_file()
    assert bad["status"] == "error" and bad["patient_id"] == patient_key(OTHER_ID)
    assert "no RTSTRUCT" in bad["error"] and FOLDER_PLACEHOLDER in bad["error"]
    assert json.loads((out / "identity.json").read_text())["deidentified"] is True

    # resume: the evaluated patient is reused, nothing identifying appears
    code, stdout, err = _run(argv, capsys, caplog)
    assert code == 2 and "1 unchanged and reused" in err
    assert not leaks(stdout) and not leaks(err) and tree_leaks(out) == {}
    # the same folder without --deidentify is refused: no identified row joins them
    code, _, err = _run(argv[:-1], capsys, caplog)
    assert code == 2 and "--deidentify" in err
    assert tree_leaks(out) == {}


def test_batch_without_flag_carries_ids(batch_root, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    code, _, _ = _run(["batch", batch_root, "--out", out, "--workers", "0", "--report-format",
                       "none", "--no-progress"], capsys, caplog)
    assert code == 2
    with (out / "summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["folder"]: r for r in csv.DictReader(fh)}
    assert rows[FOLDER]["patient_id"] == PATIENT_ID
    assert rows[OTHER_FOLDER]["patient_id"] == OTHER_ID
    assert json.loads((out / "identity.json").read_text())["deidentified"] is False
    assert tree_leaks(out)  # the check of the de-identified batch can fail
    # and a de-identified run into this identified folder is refused
    code, _, err = _run(["batch", batch_root, "--out", out, "--workers", "0", "--deidentify",
                         "--no-progress"], capsys, caplog)
    assert code == 2 and "--deidentify" in err and not leaks(err)


# -- the app: serve --deidentify ----------------------------------------------------------------
def _app_answers(root: Path, cache_dir: str, *, deidentify: bool) -> dict[str, str]:
    """Every screen's answer (as a browser would ask for it, tests/app_http.py) for the patient
    under ``root``, plus the CSV and PDF exports, as JSON text; and the picker's label."""
    import base64

    from app_http import post_callback, screen_payloads, serve
    from rtplan_assist.app import create_app

    app = create_app(root, cache_dir=cache_dir, deidentify=deidentify)
    state = app.rtplan_state
    key, session = state.entries[0].key, "deid-" + str(deidentify)
    state.prepare(state.entries[0])
    choices = {key: {"choice": {"L2": "49 Gy/7"}, "added": {"L2": ["49 Gy/7"]}}}
    requests = screen_payloads(app, key=key, session=session, choices=choices)
    texts = {"picker": json.dumps(state.picker_options(session))}
    with serve(app) as (url, log):
        for what, payload in requests.items():
            status, answer, _ = post_callback(url, payload)
            assert status == 200, (what, str(answer)[:500])
            texts[what] = json.dumps(answer, ensure_ascii=False)
            if what == "PDF":
                pdf = answer["response"]["download-pdf"]["data"]
                texts["PDF file name"] = pdf["filename"]
                assert base64.b64decode(pdf["content"]).startswith(b"%PDF")
    state.close()
    return texts


def test_app_deidentified_screens_and_exports(patient, app_cache):
    """``serve --deidentify``: no screen, picker label, CSV or PDF file name carries the ID,
    the name or the folder; the key stands for the patient. (The PDF's own text comes from
    ``render_report_html(deidentify=True)``, checked by ``test_report_deidentified``.)"""
    texts = _app_answers(patient.parent, app_cache, deidentify=True)
    found = {what: leaks(text) for what, text in texts.items()}
    assert not any(found.values()), found
    key = patient_key(PATIENT_ID)
    assert key in texts["overview"] and key in texts["CSV"] and key in texts["PDF file name"]
    assert "f-" in texts["picker"]  # the folder by its key


def test_app_without_flag_shows_the_patient(patient, app_cache):
    texts = _app_answers(patient.parent, app_cache, deidentify=False)
    assert PATIENT_ID in texts["overview"] and "Quokka" in texts["overview"]
    assert PATIENT_ID in texts["CSV"] and PATIENT_ID in texts["PDF file name"]
    assert "Patient folder f-" not in texts["picker"]  # the folder by its name
