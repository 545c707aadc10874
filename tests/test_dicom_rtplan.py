"""RTPLAN reading: expected values from the data README and the headers read with pydicom."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from rtplan_assist.dicom.rtplan import read_plan


def test_dicompyler_plan(shared_data):
    path = shared_data / "dicompyler-core-example" / "rtplan.dcm"
    ds = pydicom.dcmread(path)
    warnings: list[str] = []
    plan = read_plan(ds, path, warnings)
    assert plan.fractions == 7  # README: 7 fractions
    assert plan.prescription_gy == pytest.approx(14.0)  # README: 14 Gy to Breast
    assert plan.label == ds.RTPlanLabel
    assert plan.referenced_structure_set_uid == (
        ds.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
    )
    assert plan.sop_instance_uid == ds.SOPInstanceUID
    # the file has a second TARGET reference (11.31 Gy): said, not silently dropped
    assert any("TARGET" in w and "rtplan.dcm" in w for w in warnings)


def test_pydicom_plan():
    path = get_testdata_file("rtplan.dcm")
    ds = pydicom.dcmread(path)
    plan = read_plan(ds, path, [])
    assert plan.fractions == int(ds.FractionGroupSequence[0].NumberOfFractionsPlanned)
    target = next(d for d in ds.DoseReferenceSequence if d.DoseReferenceType == "TARGET")
    assert plan.prescription_gy == pytest.approx(float(target.TargetPrescriptionDose))
