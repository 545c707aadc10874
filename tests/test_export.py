"""RTDOSE and RTSTRUCT export: read back with plain pydicom, checked against hand numbers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtplan_assist.cli import main
from rtplan_assist.demo import demo_case_folder
from rtplan_assist.dicom import load_case
from rtplan_assist.dicom.rtstruct import read_structures
from rtplan_assist.export import (
    UINT32_MAX,
    derived_structures,
    dose_grid_scaling,
    write_derived_rtstruct,
    write_eqd2_rtdose,
)
from rtplan_assist.geometry import polygon_volume_cc
from rtplan_assist.model import Grid


@pytest.fixture(scope="module")
def demo_folder() -> Path:
    return demo_case_folder()


@pytest.fixture(scope="module")
def demo(demo_folder):
    return load_case(demo_folder)


def _raw_dose_gy(path: Path) -> tuple[np.ndarray, pydicom.Dataset]:
    """Dose in Gy straight from the file (HFS demo: frames are z, rows y, columns x)."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling), ds


def _lq_eqd2(total_gy, n, ab):
    # EQD2 = D (D/n + a/b) / (2 + a/b)   (Withers; LQ without time factor)
    return total_gy * (total_gy / n + ab) / (2.0 + ab)


def _hash_tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


# --------------------------------------------------------------------------- RTDOSE


def test_scaling_fits_uint32_and_is_a_valid_ds():
    for peak in (1e-3, 0.7, 54.0, 123.456789, 4.0e3, 9.99e5):
        text, value = dose_grid_scaling(peak)
        assert len(text) <= 16 and float(text) == value
        assert round(peak / value) <= UINT32_MAX  # the peak voxel cannot wrap to 0
        assert value >= peak / UINT32_MAX and value < peak / UINT32_MAX * (1 + 1e-5)
    assert dose_grid_scaling(0.0) == ("1e-06", 1e-06)


def test_rtdose_reads_back_same_geometry_and_values(demo, tmp_path):
    dose = demo.doses[0]
    eqd2 = _lq_eqd2(dose.dose_gy.astype(np.float64), 3, 3.0)
    plans = [p.sop_instance_uid for p in demo.plans]
    out = tmp_path / "RD.eqd2.dcm"
    write_eqd2_rtdose(demo, dose.grid, eqd2, out, model_note="EQD2 voxel-wise LQ, a/b=3 Gy "
                      "all voxels", referenced_plans=plans)
    ds = pydicom.dcmread(out)
    scaling = float(ds.DoseGridScaling)
    back = ds.pixel_array.astype(np.float64) * scaling
    # geometry: origin, spacing [row=y, col=x], shape, orientation, relative offsets
    assert back.shape == dose.grid.shape
    assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(
        [dose.grid.origin[0], dose.grid.origin[1], dose.grid.z_mm[0]])
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(
        [dose.grid.spacing[1], dose.grid.spacing[0]])
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert np.allclose(np.asarray(ds.GridFrameOffsetVector, float),
                       dose.grid.z_mm - dose.grid.z_mm[0])
    assert ds.FrameIncrementPointer == 0x3004000C
    # values within half a quantisation step, the peak included
    assert np.max(np.abs(back - eqd2)) <= scaling / 2 * (1 + 1e-9)
    assert back.max() == pytest.approx(eqd2.max(), abs=scaling)
    # identity and references
    assert ds.Modality == "RTDOSE" and ds.SOPClassUID == pydicom.uid.RTDoseStorage
    assert ds.DoseType == "EFFECTIVE" and ds.DoseSummationType == "MULTI_PLAN"
    assert ds.DoseUnits == "GY" and "a/b=3" in ds.DoseComment
    assert ds.StudyInstanceUID == demo.study_instance_uid
    assert ds.FrameOfReferenceUID == demo.frame_of_reference_uid
    assert ds.PatientID == demo.patient_id
    assert ds.SOPInstanceUID not in {d.sop_instance_uid for d in demo.doses}
    source = pydicom.dcmread(dose.path, stop_before_pixels=True)
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in ds.ReferencedRTPlanSequence] == plans
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary left


def test_rtdose_peak_exactly_at_uint32_limit_does_not_overflow(demo, tmp_path):
    grid = Grid.uniform((0.0, 0.0, 0.0), (2.0, 2.0, 2.5), (3, 4, 5))
    eqd2 = np.zeros(grid.shape)
    eqd2[1, 2, 3] = 87.654321
    eqd2[0, 0, 0] = 1e-9
    write_eqd2_rtdose(demo, grid, eqd2, tmp_path / "rd.dcm", model_note="EQD2 test",
                      referenced_plans=["1.2.3"], summation_type="PLAN")
    ds = pydicom.dcmread(tmp_path / "rd.dcm")
    assert ds.pixel_array.dtype == np.uint32
    assert ds.pixel_array[1, 2, 3] > UINT32_MAX // 2  # the peak uses the range, not 0
    back = ds.pixel_array * float(ds.DoseGridScaling)
    assert back[1, 2, 3] == pytest.approx(87.654321, abs=float(ds.DoseGridScaling))
    assert ds.DoseSummationType == "PLAN"


def test_rtdose_non_uniform_planes_keep_offsets(demo, tmp_path):
    z = np.array([-10.0, -7.5, -5.0, 0.0])
    grid = Grid(np.array([5.0, -3.0, -10.0]), np.array([1.0, 2.0, 2.5]), (4, 2, 3), z)
    eqd2 = np.arange(24, dtype=float).reshape(4, 2, 3)
    write_eqd2_rtdose(demo, grid, eqd2, tmp_path / "rd.dcm", model_note="x",
                      referenced_plans=["1.2.3"])
    ds = pydicom.dcmread(tmp_path / "rd.dcm")
    assert list(map(float, ds.GridFrameOffsetVector)) == [0.0, 2.5, 5.0, 10.0]
    assert float(ds.ImagePositionPatient[2]) == -10.0
    back = ds.pixel_array * float(ds.DoseGridScaling)
    assert np.max(np.abs(back - eqd2)) <= float(ds.DoseGridScaling) / 2 * (1 + 1e-9)


@pytest.mark.parametrize("bad", [np.nan, -1.0])
def test_rtdose_refuses_nan_and_negative(demo, tmp_path, bad):
    grid = Grid.uniform((0, 0, 0), (1, 1, 1), (1, 1, 2))
    with pytest.raises(ValueError):
        write_eqd2_rtdose(demo, grid, np.array([[[1.0, bad]]]), tmp_path / "rd.dcm",
                          model_note="x", referenced_plans=["1.2"])
    assert not any(tmp_path.iterdir())


def test_cli_export_one_lesion_matches_hand_eqd2(demo_folder, tmp_path, capsys):
    before = _hash_tree(demo_folder)
    out = tmp_path / "RD.L1.eqd2.dcm"
    code = main(["export-dose", str(demo_folder), "--lesion", "L1", "--regimen", "50/5",
                 "--alpha-beta", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    physical, src = _raw_dose_gy(demo_folder / "RD.L1.dcm")
    # L1 is planned 54 Gy/3: rescaled to 50 Gy in 5 fractions, then LQ EQD2 at a/b 2 Gy
    expected = _lq_eqd2(physical * 50.0 / 54.0, 5, 2.0)
    ds = pydicom.dcmread(out)
    back = ds.pixel_array * float(ds.DoseGridScaling)
    # the case model holds dose as float32 (relative precision 6e-8, x2 through EQD2's D^2)
    tolerance = float(ds.DoseGridScaling) / 2 + 3e-7 * expected
    assert np.all(np.abs(back - expected) <= tolerance)
    assert ds.DoseSummationType == "PLAN" and ds.DoseType == "EFFECTIVE"
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == \
        src.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID
    assert "a/b=2" in ds.DoseComment and "L1 50 Gy/5" in ds.DoseComment
    assert _hash_tree(demo_folder) == before  # inputs untouched


def test_cli_export_composite_is_sum_of_lesion_eqd2(demo_folder, tmp_path, capsys):
    out = tmp_path / "RD.composite.dcm"
    code = main(["export-dose", str(demo_folder), "--basis", "planned", "--choose", "L2=50/5",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    planned = {"L1": (54.0, 3), "L2": (60.0, 8), "L3": (50.0, 5), "L4": (50.0, 5),
               "L5": (27.0, 3)}  # demo module docstring
    chosen = dict(planned, L2=(50.0, 5))
    expected = 0.0
    for lid, (dose, n) in chosen.items():
        physical, _ = _raw_dose_gy(demo_folder / f"RD.{lid}.dcm")
        expected = expected + _lq_eqd2(physical * dose / planned[lid][0], n, 3.0)
    ds = pydicom.dcmread(out)
    back = ds.pixel_array * float(ds.DoseGridScaling)
    assert back.shape == expected.shape
    tolerance = float(ds.DoseGridScaling) / 2 + 3e-7 * expected  # float32 dose in the model
    assert np.all(np.abs(back - expected) <= tolerance)
    assert ds.DoseSummationType == "MULTI_PLAN"
    assert len(ds.ReferencedRTPlanSequence) == 5
    assert "a/b=3" in ds.DoseComment


# --------------------------------------------------------------------------- RTSTRUCT


def test_rtstruct_box_volume_by_hand(demo, tmp_path):
    grid = demo.ct.grid  # 1.5 x 1.5 mm pixels, 3 mm planes
    box = np.zeros(grid.shape, dtype=bool)
    box[40:50, 100:120, 90:120] = True  # 10 planes x 20 rows x 30 columns
    ring = np.zeros(grid.shape, dtype=bool)
    ring[60:62, 80:120, 80:120] = True
    ring[60:62, 90:110, 90:110] = False  # a 20 x 20 voxel hole
    out = tmp_path / "RS.derived.dcm"
    write_derived_rtstruct(demo, out, {"Box": box, "Ring": ring, "Empty": np.zeros_like(box)})
    ds = pydicom.dcmread(out)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["Box", "Ring"]
    assert ds.StudyInstanceUID == demo.study_instance_uid
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == \
        demo.frame_of_reference_uid
    ct_uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in demo.ct.paths}
    refs = {c.ContourImageSequence[0].ReferencedSOPInstanceUID
            for rc in ds.ROIContourSequence for c in rc.ContourSequence}
    assert refs <= ct_uids
    structures = {s.name: s for s in read_structures(ds, out)}
    # contours on voxel edges, convex corners cut by a right triangle of legs 0.75 mm:
    # box plane area 45 x 30 mm - 4 x 0.28125 mm2; 10 planes of 3 mm
    box_area = 30 * 1.5 * 20 * 1.5 - 4 * 0.5 * 0.75 * 0.75
    assert polygon_volume_cc(structures["Box"]) == pytest.approx(box_area * 30 / 1000, rel=1e-6)
    # ring: 60 x 60 mm outer minus 30 x 30 mm hole (hole corners are concave for the ring:
    # the cut triangles add to the hole's area, i.e. are removed from the ring), 2 planes
    ring_area = 60 * 60 - 4 * 0.28125 - (30 * 30 - 4 * 0.28125)
    assert polygon_volume_cc(structures["Ring"]) == pytest.approx(ring_area * 6 / 1000, rel=1e-6)
    # a voxel-centre reader gets the mask back: centres of the box lie inside the outline
    plane = structures["Box"].polygons[0]
    assert len(plane) == 1 and plane[0][:, 0].min() == pytest.approx(grid.x_mm[90] - 0.75)


def test_derived_structures_on_demo(demo, tmp_path):
    masks, notes = derived_structures(demo)
    assert set(masks) == {"Lungs-GTVs", "SpinalCord_PRV05"} | {
        f"PTV_{i}_Ring2-20" for i in range(1, 6)}
    assert notes == []
    voxel_cc = demo.ct.grid.voxel_volume_cc
    lungs = polygon_volume_cc(demo.structure("Lungs"))
    gtv12 = sum(polygon_volume_cc(demo.structure(f"GTV_{i}")) for i in (1, 2))
    # Lungs-GTVs = lungs minus the two lung GTVs (4.2 cc each at seed 0), within voxelisation
    assert masks["Lungs-GTVs"].sum() * voxel_cc == pytest.approx(lungs - gtv12, rel=0.01)
    # cord r = 5 mm -> PRV r = 10 mm, a cylinder over the 300 mm of CT: pi 10^2 300 mm3
    assert masks["SpinalCord_PRV05"].sum() * voxel_cc == pytest.approx(
        np.pi * 10**2 * 300 / 1000, rel=0.05)
    # the ring excludes the PTV itself and everything within 2 mm of it
    ptv = derived_structures(demo, ring_mm=None, prv_margins_mm={"PTV_1": 0.0})[0]
    assert not (masks["PTV_1_Ring2-20"] & ptv["PTV_1_PRV00"]).any()
    out = tmp_path / "RS.derived.dcm"
    code = main(["export-structures", str(Path(demo.folder)), "--out", str(out)])
    assert code == 0
    ds = pydicom.dcmread(out)
    assert {r.ROIName for r in ds.StructureSetROISequence} == set(masks)
    back = {s.name: s for s in read_structures(ds, out)}
    assert polygon_volume_cc(back["Lungs-GTVs"]) == pytest.approx(lungs - gtv12, rel=0.01)
