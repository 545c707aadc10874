"""load_case, list_patients and find_patient_folders on the real shared data."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pydicom
import pytest

from rtplan_assist.dicom import list_patients, load_case, load_ct_pixels
from rtplan_assist.dicom.ct import ct_series_from_headers
from rtplan_assist.errors import DicomInputError, GeometryError


def _hashes(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_dicompyler_case_links_everything(shared_data):
    folder = shared_data / "dicompyler-core-example"
    case = load_case(folder)
    rtss = pydicom.dcmread(folder / "rtss.dcm", stop_before_pixels=True)
    assert case.patient_id == rtss.PatientID and case.patient_name == str(rtss.PatientName)
    assert case.structure_set_uid == rtss.SOPInstanceUID
    frame = rtss.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    assert case.frame_of_reference_uid == frame
    assert len(case.structures) == 10 and len(case.doses) == 1 and len(case.plans) == 1
    plan = case.plan_for_dose(case.doses[0])
    assert plan is not None and plan.fractions == 7 and plan.prescription_gy == pytest.approx(14)
    assert case.ct is not None and case.ct.grid.shape == (1, 512, 512)
    # patient name/ID never appear in warnings
    assert not any(case.patient_id in w or str(rtss.PatientName) in w for w in case.warnings)


def test_load_case_leaves_files_byte_identical(shared_data):
    folder = shared_data / "dicompyler-core-example"
    before = _hashes(folder)
    case = load_case(folder)
    load_ct_pixels(case.ct)
    assert _hashes(folder) == before


def test_ct_pixels_in_hu(shared_data):
    path = shared_data / "dicompyler-core-example" / "ct.0.dcm"
    case = load_case(shared_data / "dicompyler-core-example")
    hu = load_ct_pixels(case.ct)
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array
    assert hu.shape == (1,) + raw.shape and hu.dtype == np.float32
    i, j = 300, 200  # HFS: row i -> y index i, column j -> x index j
    expected = raw[i, j] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert hu[0, i, j] == pytest.approx(expected)


def test_oblique_ct_series_is_a_geometry_error(shared_data):
    folder = shared_data / "rt-utils-mock" / "oriented_data"
    headers = [
        (str(p), pydicom.dcmread(p, stop_before_pixels=True)) for p in sorted(folder.glob("*.dcm"))
    ]
    with pytest.raises(GeometryError, match=r"oriented_data/\d\.dcm"):
        ct_series_from_headers(headers)


def test_oblique_ct_does_not_block_rtstruct(shared_data, tmp_path):
    # copies of the oblique slices given the mock RTSTRUCT's patient and series: the structures
    # still load, the CT is dropped with a warning
    rs = pydicom.dcmread(shared_data / "rt-utils-mock" / "mock_data" / "rt.dcm")
    ref = rs.ReferencedFrameOfReferenceSequence[0]
    series = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
    shutil.copy(shared_data / "rt-utils-mock" / "mock_data" / "rt.dcm", tmp_path / "rt.dcm")
    for p in (shared_data / "rt-utils-mock" / "oriented_data").glob("*.dcm"):
        ds = pydicom.dcmread(p)
        ds.PatientID, ds.SeriesInstanceUID = rs.PatientID, series
        ds.FrameOfReferenceUID = ref.FrameOfReferenceUID
        ds.save_as(tmp_path / p.name)
    case = load_case(tmp_path)
    assert case.ct is None and [s.name for s in case.structures] == ["ROI-1"]
    assert any("ImageOrientationPatient" in w for w in case.warnings)


@pytest.mark.parametrize("kept", [0.1, 0.5, 0.99])
def test_damaged_only_structure_set_is_an_error(shared_data, tmp_path, kept):
    data = (shared_data / "dicompyler-core-example" / "rtss.dcm").read_bytes()
    (tmp_path / "cut_rtss.dcm").write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(DicomInputError, match="cut_rtss.dcm"):
        load_case(tmp_path)


def test_pydicom_files_belong_to_different_patients():
    from pydicom.data import get_testdata_file

    files = [get_testdata_file(n) for n in ("rtstruct.dcm", "rtdose.dcm")]
    with pytest.raises(DicomInputError, match="2 patients"):
        load_case(files)
    case = load_case([files[0]])  # RTSTRUCT without File Meta
    assert len(case.structures) == 3


def test_list_patients_on_the_data_root(shared_data):
    patients = {p["patient_id"]: p for p in list_patients(shared_data / "dicompyler-core-example")}
    assert list(patients) == ["123456"]
    assert patients["123456"]["n_files"] == 4
    assert patients["123456"]["modalities"] == ["CT", "RTDOSE", "RTPLAN", "RTSTRUCT"]


def test_the_plane_spacing_median_is_numpys():
    # dicom._common.median replaces np.median (whose NaN check imports numpy.ma) for the dose
    # and CT plane spacing; expected values: np.median itself, odd and even lengths, NaN
    import random

    import numpy as np

    from rtplan_assist.dicom._common import median

    rng = random.Random(7)
    for n in range(1, 40):
        for _ in range(20):
            steps = np.array([rng.choice([2.5, 3.0, 2.0000001, 1e-3]) * rng.uniform(0.5, 2.0)
                              for _ in range(n)])
            assert median(steps) == float(np.median(steps))
    assert np.isnan(median(np.array([2.5, np.nan, 3.0])))
