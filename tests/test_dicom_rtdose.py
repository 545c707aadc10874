"""RTDOSE loading on real files: expected values from the headers read here with pydicom.

Patient position of stored voxel (frame k, row i, column j), DICOM PS3.3 C.7.6.2.1.1 and
C.8.8.3.2 (relative offsets along row × column):
    x = IPPx + j*dx*row_x,  y = IPPy + i*dy*col_y,  z = IPPz + offset_k * (row_x * col_y)
with PixelSpacing = [dy (between rows), dx (between columns)].
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from rtplan_assist.dicom import load_case
from rtplan_assist.dicom._common import read_full
from rtplan_assist.dicom.rtdose import read_dose
from rtplan_assist.errors import DicomInputError


def _raw(path):
    """Header and stored pixels read directly with pydicom (independent of the loader)."""
    ds = read_full(path)  # only adds a Transfer Syntax for files without File Meta
    return ds, ds.pixel_array.reshape(int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns)


def _check_voxel(dose, ds, raw, k, i, j):
    iop = [float(v) for v in ds.ImageOrientationPatient]
    ipp = [float(v) for v in ds.ImagePositionPatient]
    dy, dx = (float(v) for v in ds.PixelSpacing)
    offset = float(ds.GridFrameOffsetVector[k])
    x = ipp[0] + j * dx * iop[0]
    y = ipp[1] + i * dy * iop[4]
    z = ipp[2] + offset * iop[0] * iop[4]
    g = dose.grid
    ix = int(np.argmin(abs(g.x_mm - x)))
    iy = int(np.argmin(abs(g.y_mm - y)))
    iz = int(np.argmin(abs(g.z_mm - z)))
    assert (g.x_mm[ix], g.y_mm[iy], g.z_mm[iz]) == pytest.approx((x, y, z), abs=1e-6)
    expected = float(raw[k, i, j]) * float(ds.DoseGridScaling)
    assert dose.dose_gy[iz, iy, ix] == pytest.approx(expected, rel=1e-6)
    return iz, iy, ix


def test_feet_first_supine_grid(shared_data):
    path = shared_data / "pymedphys-orientation" / "RD.TBB_feet_in_supine.dcm"
    ds, raw = _raw(path)
    assert [float(v) for v in ds.ImageOrientationPatient] == [-1, 0, 0, 0, 1, 0]
    dose = read_dose(path)
    g = dose.grid
    assert g.shape == (81, 101, 101) and dose.dose_gy.shape == g.shape
    for axis in (g.x_mm, g.y_mm, g.z_mm):
        assert np.all(np.diff(axis) > 0)
    # FFS: x = 99.904 - 2 j, so x runs from 99.904 - 200 up to 99.904;
    # normal (0, 0, -1): z = 100 - 2.5 k, from -100 to 100 (the phantom is centred).
    ipp_x = float(ds.ImagePositionPatient[0])
    assert g.x_mm[0] == pytest.approx(ipp_x - 200.0) and g.x_mm[-1] == pytest.approx(ipp_x)
    assert g.z_mm[0] == pytest.approx(-100.0) and g.z_mm[-1] == pytest.approx(100.0)
    for k, i, j in [(0, 0, 0), (10, 20, 30), (40, 50, 50), (80, 100, 3), (33, 71, 88)]:
        iz, iy, ix = _check_voxel(dose, ds, raw, k, i, j)
        assert (iz, iy, ix) == (80 - k, i, 100 - j)
    assert dose.summation_type == "PLAN" and dose.dose_type == "PHYSICAL"


def test_non_square_pixels_negative_offsets_no_file_meta(shared_data):
    path = shared_data / "pymedphys-orientation" / "rtdose_non_square_pixels.dcm"
    with open(path, "rb") as fh:
        assert fh.read(132)[128:132] != b"DICM"  # no preamble / File Meta
    ds, raw = _raw(path)
    assert "DoseType" not in ds and int(ds.BitsAllocated) == 16
    dose = read_dose(path)
    g = dose.grid
    rows, cols = int(ds.Rows), int(ds.Columns)
    assert g.shape == (int(ds.NumberOfFrames), rows, cols)
    # PixelSpacing [1.03125, 1.00789...] = [dy, dx]
    assert g.spacing[0] == pytest.approx(float(ds.PixelSpacing[1]))
    assert g.spacing[1] == pytest.approx(float(ds.PixelSpacing[0]))
    assert g.spacing[2] == pytest.approx(abs(float(ds.GridFrameOffsetVector[1])))
    assert np.all(np.diff(g.z_mm) > 0)
    assert g.z_mm[-1] == pytest.approx(float(ds.ImagePositionPatient[2]))  # frame 0 is the top
    n = g.shape[0]
    for k, i, j in [(0, 0, 0), (10, 40, 70), (n - 1, rows - 1, cols - 1), (30, 5, 60)]:
        iz, iy, ix = _check_voxel(dose, ds, raw, k, i, j)
        assert (iz, iy, ix) == (n - 1 - k, i, j)
    assert dose.dose_type == ""


def test_dicompyler_plan_dose(shared_data):
    path = shared_data / "dicompyler-core-example" / "rtdose.dcm"
    ds, raw = _raw(path)
    dose = read_dose(path)
    assert dose.grid.shape == (98, 129, 194)  # README: 194 x 129 x 98
    np.testing.assert_allclose(dose.grid.spacing, [2.5, 2.5, 3.0])
    assert dose.summation_type == "PLAN" and ds.DoseUnits == "GY"
    assert dose.dose_gy.dtype == np.float32
    assert dose.dose_gy.max() == pytest.approx(raw.max() * float(ds.DoseGridScaling), rel=1e-6)
    _check_voxel(dose, ds, raw, 50, 60, 100)
    assert dose.referenced_plan_uid == ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID


def test_nelms_fraction_dose(shared_data):
    folder = shared_data / "nelms-dvh"
    case = load_case(
        [
            folder / "structures" / "Sphere_10_0.dcm",
            folder / "dose" / "Linear_SupInf_2mm_Aligned.dcm",
        ]
    )
    assert case.doses[0].summation_type == "FRACTION"
    assert any("FRACTION" in w and "fractions" in w for w in case.warnings)
    ds, raw = _raw(folder / "dose" / "Linear_SupInf_2mm_Aligned.dcm")
    _check_voxel(case.doses[0], ds, raw, 12, 3, 20)


def test_pydicom_relative_dose_needs_a_prescription():
    path = get_testdata_file("rtdose.dcm")
    assert pydicom.dcmread(path, stop_before_pixels=True).DoseUnits == "RELATIVE"
    with pytest.raises(DicomInputError, match="RELATIVE") as err:
        read_dose(path)
    assert "rtdose.dcm" in str(err.value)
    # with a prescription: Gy = stored * DoseGridScaling * prescription
    ds, raw = _raw(path)
    dose = read_dose(path, prescription_gy=30.0)
    assert dose.dose_gy.max() == pytest.approx(raw.max() * float(ds.DoseGridScaling) * 30.0)
    assert dose.summation_type == "BEAM"
