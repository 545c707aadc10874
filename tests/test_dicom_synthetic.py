"""DICOM loading on synthetic files written with pydicom into tmp_path.

These cover what the real test files do not: HFP/FFP orientations, absolute and non-uniform
GridFrameOffsetVector, missing DoseGridScaling, cGy, RELATIVE with a plan, non-axial contours,
RTDOSE mixed among CT slices, several patients / structure sets, damaged files. Expected
values come from the DICOM formula for a voxel's patient position (PS3.3 C.7.6.2.1.1 and
C.8.8.3.2) evaluated by hand here, never from the loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rtplan_assist.dicom import find_patient_folders, list_patients, load_case, load_ct_pixels
from rtplan_assist.dicom.case import patient_key
from rtplan_assist.dicom.rtdose import read_dose
from rtplan_assist.errors import DicomInputError, GeometryError

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
DOSE_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"
STRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
PLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"

HFS = [1, 0, 0, 0, 1, 0]
FFS = [-1, 0, 0, 0, 1, 0]
HFP = [-1, 0, 0, 0, -1, 0]
FFP = [1, 0, 0, 0, -1, 0]


# --------------------------------------------------------------------------- writers
def _base(modality: str, sop_class: str, patient_id: str, for_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = f"Test^{patient_id}"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SeriesInstanceUID = generate_uid()
    if for_uid:
        ds.FrameOfReferenceUID = for_uid
    return ds


def _save(ds: Dataset, path: Path, *, file_meta: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_meta:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta = meta
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def write_dose(
    path: Path,
    frames: np.ndarray,
    *,
    iop=HFS,
    ipp=(-10.0, -20.0, 30.0),
    pixel_spacing=(3.0, 2.0),
    offsets=None,
    scaling: float | None = 0.001,
    units: str = "GY",
    summation: str = "PLAN",
    patient_id: str = "P1",
    for_uid: str = "1.2.9.1",
    plan_uid: str | None = None,
    file_meta: bool = True,
) -> Path:
    """RTDOSE with ``frames`` (frames, rows, cols) stored as uint32."""
    ds = _base("RTDOSE", DOSE_CLASS, patient_id, for_uid)
    n, rows, cols = frames.shape
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n
    ds.GridFrameOffsetVector = [float(v) for v in (offsets if offsets is not None else range(n))]
    ds.FrameIncrementPointer = 0x3004000C
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = units, "PHYSICAL", summation
    if scaling is not None:
        ds.DoseGridScaling = scaling
    if plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = PLAN_CLASS
        ref.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = [ref]
    ds.PixelData = np.ascontiguousarray(frames, dtype="<u4").tobytes()
    return _save(ds, path, file_meta=file_meta)


def write_ct(
    folder: Path,
    z_positions,
    *,
    iop=HFS,
    xy=(-10.0, -20.0),
    pixel_spacing=(3.0, 2.0),
    rows: int = 4,
    cols: int = 5,
    patient_id: str = "P1",
    for_uid: str = "1.2.9.1",
    series_uid: str = "1.2.9.2",
    slope: float = 2.0,
    intercept: float = -1024.0,
) -> list[Path]:
    """CT slices; stored value of (row i, col j) on slice s is 100*s + 10*i + j."""
    paths = []
    for s, z in enumerate(z_positions):
        ds = _base("CT", CT_CLASS, patient_id, for_uid)
        ds.SeriesInstanceUID = series_uid
        ds.ImagePositionPatient = [xy[0], xy[1], float(z)]
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = 3.0
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        i, j = np.mgrid[0:rows, 0:cols]
        ds.PixelData = (100 * s + 10 * i + j).astype("<u2").tobytes()
        paths.append(_save(ds, folder / f"ct_{s:03d}.dcm"))
    return paths


def square(z: float, half: float = 5.0, cx: float = 0.0, cy: float = 0.0, close=False):
    pts = [
        (cx - half, cy - half),
        (cx + half, cy - half),
        (cx + half, cy + half),
        (cx - half, cy + half),
    ]
    if close:
        pts.append(pts[0])
    return np.array([(x, y, z) for x, y in pts], dtype=float)


def write_struct(
    path: Path,
    rois,
    *,
    patient_id: str = "P1",
    for_uid: str = "1.2.9.1",
    series_uid: str = "1.2.9.2",
    sop_uid: str | None = None,
) -> Path:
    """RTSTRUCT; ``rois`` = [(number, name, type, [(geometric type, (N, 3) points), ...] or
    None for an ROI without ContourSequence)]."""
    ds = _base("RTSTRUCT", STRUCT_CLASS, patient_id, None)
    if sop_uid:
        ds.SOPInstanceUID = sop_uid
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    study, series = Dataset(), Dataset()
    series.SeriesInstanceUID = series_uid
    study.RTReferencedSeriesSequence = [series]
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    for number, name, kind, contours in rois:
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, for_uid
        ds.StructureSetROISequence.append(roi)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType = (
            number,
            number,
            kind,
        )
        ds.RTROIObservationsSequence.append(obs)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [255, 0, number]
        if contours is not None:
            item.ContourSequence = []
            for geometric, points in contours:
                c = Dataset()
                c.ContourGeometricType = geometric
                c.NumberOfContourPoints = len(points)
                c.ContourData = [f"{v:.4f}" for v in np.asarray(points).ravel()]
                item.ContourSequence.append(c)
        ds.ROIContourSequence.append(item)
    return _save(ds, path)


def write_plan(
    path: Path,
    *,
    fractions: int | None = 5,
    rx_gy: float | None = 20.0,
    structure_set_uid: str | None = None,
    patient_id: str = "P1",
    for_uid: str = "1.2.9.1",
    sop_uid: str | None = None,
) -> Path:
    ds = _base("RTPLAN", PLAN_CLASS, patient_id, for_uid)
    if sop_uid:
        ds.SOPInstanceUID = sop_uid
    ds.RTPlanLabel = "Lesion1"
    group = Dataset()
    group.FractionGroupNumber = 1
    if fractions is not None:
        group.NumberOfFractionsPlanned = fractions
    ds.FractionGroupSequence = [group]
    if rx_gy is not None:
        ref = Dataset()
        ref.DoseReferenceNumber, ref.DoseReferenceType = 1, "TARGET"
        ref.TargetPrescriptionDose = rx_gy
        ref.ReferencedROINumber = 1
        ds.DoseReferenceSequence = [ref]
    if structure_set_uid:
        ss = Dataset()
        ss.ReferencedSOPClassUID = STRUCT_CLASS
        ss.ReferencedSOPInstanceUID = structure_set_uid
        ds.ReferencedStructureSetSequence = [ss]
    return _save(ds, path)


def coded_frames(n: int, rows: int, cols: int) -> np.ndarray:
    """Stored value encodes the stored index: 10000*k + 100*i + j."""
    k, i, j = np.mgrid[0:n, 0:rows, 0:cols]
    return (10000 * k + 100 * i + j).astype(np.uint32)


# --------------------------------------------------------------------------- RTDOSE geometry
def _patient_positions(iop, ipp, pixel_spacing, offsets, shape, absolute=False):
    """DICOM position of every stored voxel: IPP + j*dx*row + i*dy*col + offset*normal."""
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    dy, dx = pixel_spacing  # PixelSpacing = [between rows, between columns]
    n, rows, cols = shape
    k, i, j = np.mgrid[0:n, 0:rows, 0:cols]
    off = np.asarray(offsets, float)[k]
    pos = np.asarray(ipp, float) + j[..., None] * dx * row + i[..., None] * dy * col
    if absolute:
        pos[..., 2] = off
    else:
        pos = pos + off[..., None] * normal
    return pos


@pytest.mark.parametrize(
    "iop, offsets, absolute",
    [
        (HFS, [0, 2, 4], False),
        (FFS, [0, 2, 4], False),
        (HFP, [0, 2, 4], False),
        (FFP, [0, 2, 4], False),
        (HFS, [0, -2, -4], False),  # negative step
        (HFS, [30, 32, 34], True),  # absolute: first offset = IPP z
        (HFS, [0, 2, 7], False),  # non-uniform planes
        (FFP, [0, 2.5, 4], False),
    ],
)
def test_dose_voxel_lands_at_its_dicom_position(tmp_path, iop, offsets, absolute):
    shape = (3, 4, 5)
    ipp, spacing = (-10.0, -20.0, 30.0), (3.0, 2.0)  # non-square: dy = 3, dx = 2
    frames = coded_frames(*shape)
    path = write_dose(
        tmp_path / "d.dcm",
        frames,
        iop=iop,
        ipp=ipp,
        pixel_spacing=spacing,
        offsets=offsets,
        scaling=1.0,
    )
    dose = read_dose(path)
    grid = dose.grid
    assert grid.shape == shape
    np.testing.assert_allclose(grid.spacing[:2], [2.0, 3.0])  # (dx, dy)
    assert np.all(np.diff(grid.z_mm) > 0)
    positions = _patient_positions(iop, ipp, spacing, offsets, shape, absolute)
    for k, i, j in np.ndindex(*shape):
        x, y, z = positions[k, i, j]
        ix = int(np.argmin(np.abs(grid.x_mm - x)))
        iy = int(np.argmin(np.abs(grid.y_mm - y)))
        iz = int(np.argmin(np.abs(grid.z_mm - z)))
        assert (grid.x_mm[ix], grid.y_mm[iy], grid.z_mm[iz]) == pytest.approx((x, y, z))
        assert dose.dose_gy[iz, iy, ix] == frames[k, i, j]


def test_ffs_relative_offsets_run_along_minus_z(tmp_path):
    # FFS normal = (-1,0,0) x (0,1,0) = (0,0,-1): offsets 0, 2, 4 from z=30 -> 30, 28, 26
    path = write_dose(tmp_path / "d.dcm", coded_frames(3, 2, 2), iop=FFS, offsets=[0, 2, 4])
    np.testing.assert_allclose(read_dose(path).grid.z_mm, [26.0, 28.0, 30.0])


def test_non_uniform_offsets_keep_true_z(tmp_path):
    path = write_dose(tmp_path / "d.dcm", coded_frames(3, 2, 2), offsets=[0, 2, 7])
    np.testing.assert_allclose(read_dose(path).grid.z_mm, [30.0, 32.0, 37.0])


def test_offsets_neither_relative_nor_absolute_are_refused(tmp_path):
    path = write_dose(tmp_path / "d.dcm", coded_frames(3, 2, 2), offsets=[5, 7, 9])
    with pytest.raises(DicomInputError, match="GridFrameOffsetVector"):
        read_dose(path)


def test_oblique_dose_is_a_geometry_error_naming_the_file(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    path = write_dose(tmp_path / "oblique_dose.dcm", coded_frames(2, 2, 2), iop=[c, s, 0, -s, c, 0])
    with pytest.raises(GeometryError, match="oblique_dose.dcm"):
        read_dose(path)


def test_missing_dose_grid_scaling(tmp_path):
    path = write_dose(tmp_path / "noscale.dcm", coded_frames(2, 2, 2), scaling=None)
    with pytest.raises(DicomInputError, match="DoseGridScaling") as err:
        read_dose(path)
    assert "noscale.dcm" in str(err.value)


def test_cgy_is_converted_to_gy(tmp_path):
    frames = np.full((2, 2, 2), 5000, dtype=np.uint32)
    path = write_dose(tmp_path / "d.dcm", frames, units="CGY", scaling=0.01)
    # 5000 * 0.01 cGy = 50 cGy = 0.5 Gy
    np.testing.assert_allclose(read_dose(path).dose_gy, 0.5)


def test_relative_dose_uses_the_linked_plan_prescription(tmp_path):
    plan = write_plan(tmp_path / "plan.dcm", rx_gy=20.0, sop_uid="1.2.9.77")
    frames = np.full((2, 2, 2), 1100, dtype=np.uint32)
    write_dose(tmp_path / "dose.dcm", frames, units="RELATIVE", scaling=0.001, plan_uid="1.2.9.77")
    case = load_case(tmp_path)
    assert plan.exists()
    # 1100 * 0.001 = 1.1 of the prescription = 22 Gy
    np.testing.assert_allclose(case.doses[0].dose_gy, 22.0, rtol=1e-6)
    assert any("RELATIVE" in w for w in case.warnings)


def test_relative_dose_without_plan_is_refused(tmp_path):
    write_dose(tmp_path / "dose.dcm", coded_frames(2, 2, 2), units="RELATIVE")
    with pytest.raises(DicomInputError, match="RELATIVE"):
        load_case(tmp_path)


def test_dose_without_file_meta(tmp_path):
    frames = coded_frames(2, 3, 4)
    path = write_dose(tmp_path / "nometa.dcm", frames, file_meta=False, scaling=0.5)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_allclose(read_dose(path).dose_gy, frames * 0.5)


@pytest.mark.parametrize("summation, phrase", [("FRACTION", "fraction"), ("BEAM", "beam")])
def test_fraction_and_beam_doses_are_flagged(tmp_path, summation, phrase):
    write_dose(tmp_path / "d.dcm", coded_frames(2, 2, 2), summation=summation)
    case = load_case(tmp_path)
    assert case.doses[0].summation_type == summation
    assert any(summation in w and phrase in w for w in case.warnings)


# --------------------------------------------------------------------------- RTSTRUCT
def test_contour_rules(tmp_path):
    hole = square(10.0, half=2.0)
    rois = [
        (
            1,
            "PTV",
            "PTV",
            [
                ("CLOSED_PLANAR", square(10.0, close=True)),  # duplicated closing vertex
                ("CLOSED_PLANAR", hole),  # second polygon, same plane: kept (hole by even-odd)
                ("CLOSED_PLANAR", square(10.004, cx=30)),  # within 0.01 mm -> same plane
                ("CLOSED_PLANAR", square(12.5)),
                ("CLOSED_PLANAR", square(15.0)[:2]),  # 2 points: skipped
                ("OPEN_PLANAR", square(15.0)),  # skipped
            ],
        ),
        (2, "Empty", "ORGAN", None),
        (3, "Marker", "MARKER", [("POINT", np.array([[1.0, 2.0, 10.0]]))]),
    ]
    write_struct(tmp_path / "rs.dcm", rois)
    case = load_case(tmp_path)
    ptv = case.structure("PTV")
    np.testing.assert_allclose(ptv.plane_z_mm, [10.0, 12.5], atol=0.01)
    assert len(ptv.polygons[0]) == 3 and len(ptv.polygons[1]) == 1
    assert ptv.polygons[0][0].shape == (4, 2) and ptv.polygons[0][0].dtype == np.float64
    np.testing.assert_allclose(ptv.polygons[0][1], hole[:, :2])
    assert ptv.roi_type == "PTV" and ptv.color == (255, 0, 1)
    assert case.structure("Empty").is_empty and case.structure("Marker").is_empty
    text = "\n".join(case.warnings)
    assert "'PTV'" in text and "OPEN_PLANAR" in text and "fewer than 3 points" in text
    assert "'Empty'" in text and "'Marker'" in text and "POINT" in text
    # No CT: slab thickness = modal spacing between consecutive planes (12.5 - 10)
    assert ptv.slice_thickness_mm == pytest.approx(2.5)


def test_slice_thickness_comes_from_ct_when_present(tmp_path):
    write_ct(tmp_path, [9.0, 12.0, 15.0])
    write_struct(
        tmp_path / "rs.dcm",
        [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(z)) for z in (10.0, 12.5)])],
    )
    case = load_case(tmp_path)
    assert case.ct is not None
    assert case.structure("GTV").slice_thickness_mm == pytest.approx(3.0)


def test_non_axial_contour_is_a_geometry_error(tmp_path):
    tilted = square(10.0)
    tilted[:, 2] = [10.0, 10.0, 11.0, 11.0]
    write_struct(tmp_path / "tilted_rs.dcm", [(1, "Spine", "ORGAN", [("CLOSED_PLANAR", tilted)])])
    with pytest.raises(GeometryError) as err:
        load_case(tmp_path)
    assert "tilted_rs.dcm" in str(err.value) and "'Spine'" in str(err.value)


# --------------------------------------------------------------------------- linking
def _lesion_plan_and_dose(folder: Path, ss_uid: str, n: int, for_uid="1.2.9.1", pid="P1"):
    plan_uid = f"1.2.9.100.{n}"
    write_plan(
        folder / f"plan{n}.dcm",
        structure_set_uid=ss_uid,
        sop_uid=plan_uid,
        fractions=3 + n,
        rx_gy=10.0 * n,
        for_uid=for_uid,
        patient_id=pid,
    )
    write_dose(
        folder / f"dose{n}.dcm",
        coded_frames(2, 4, 5),
        plan_uid=plan_uid,
        for_uid=for_uid,
        patient_id=pid,
    )


def test_rtdose_mixed_among_ct_slices_and_several_plans(tmp_path):
    write_ct(tmp_path, [30.0, 33.0, 36.0])
    write_struct(
        tmp_path / "rs.dcm",
        [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(33.0))])],
        sop_uid="1.2.9.50",
    )
    _lesion_plan_and_dose(tmp_path, "1.2.9.50", 1)
    _lesion_plan_and_dose(tmp_path, "1.2.9.50", 2)
    case = load_case(tmp_path)
    assert case.ct is not None and case.ct.grid.shape == (3, 4, 5)  # dose not taken as a slice
    assert len(case.doses) == 2 and len(case.plans) == 2
    for dose in case.doses:
        plan = case.plan_for_dose(dose)
        assert plan is not None
        assert Path(plan.path).name == Path(dose.path).name.replace("dose", "plan")
    assert {p.fractions for p in case.plans} == {4, 5}
    assert case.structure_set_uid == "1.2.9.50"


def test_ct_pixels_are_hu_on_ascending_axes(tmp_path):
    # FFS slices written out of order: x runs opposite to the column index
    write_ct(tmp_path, [36.0, 30.0, 33.0], iop=FFS, xy=(10.0, -20.0))
    write_struct(tmp_path / "rs.dcm", [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(33.0))])])
    case = load_case(tmp_path)
    hu = load_ct_pixels(case.ct)
    assert hu.shape == (3, 4, 5) and hu.dtype == np.float32
    np.testing.assert_allclose(case.ct.grid.z_mm, [30.0, 33.0, 36.0])
    # z = 30 was written as slice s=1; x = 10 - 2*j is the largest x at j=0 -> last index
    # stored value 100*s + 10*i + j, HU = 2*value - 1024
    assert hu[0, 0, 4] == pytest.approx(2 * (100 * 1 + 0 + 0) - 1024)
    assert hu[2, 3, 0] == pytest.approx(2 * (100 * 0 + 30 + 4) - 1024)
    np.testing.assert_allclose(case.ct.grid.x_mm, [2.0, 4.0, 6.0, 8.0, 10.0])


def test_two_patients_in_one_folder(tmp_path):
    write_struct(
        tmp_path / "a" / "rs.dcm",
        [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])],
        patient_id="ALPHA",
    )
    write_struct(
        tmp_path / "b" / "rs.dcm",
        [(1, "CTV", "CTV", [("CLOSED_PLANAR", square(0.0))])],
        patient_id="BETA",
    )
    with pytest.raises(DicomInputError) as err:
        load_case(tmp_path)
    # patients are named by a short hash of their ID, never by the ID (issue 6)
    assert "ALPHA" not in str(err.value) and "BETA" not in str(err.value)
    assert patient_key("ALPHA") in str(err.value) and patient_key("BETA") in str(err.value)
    assert load_case(tmp_path, patient_id=patient_key("BETA")).patient_id == "BETA"
    case = load_case(tmp_path, patient_id="BETA")
    assert case.patient_id == "BETA" and case.structures[0].name == "CTV"
    assert not any("ALPHA" in w for w in case.warnings)
    patients = list_patients(tmp_path)
    assert [(p["patient_id"], p["n_files"], p["modalities"]) for p in patients] == [
        ("ALPHA", 1, ["RTSTRUCT"]),
        ("BETA", 1, ["RTSTRUCT"]),
    ]


def test_several_structure_sets(tmp_path):
    roi = [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])]
    write_struct(tmp_path / "rs_old.dcm", roi, sop_uid="1.2.9.60")
    write_struct(tmp_path / "rs_new.dcm", roi, sop_uid="1.2.9.61")
    with pytest.raises(DicomInputError, match="structure sets"):
        load_case(tmp_path)
    write_plan(tmp_path / "plan.dcm", structure_set_uid="1.2.9.61")
    case = load_case(tmp_path)
    assert case.structure_set_uid == "1.2.9.61"
    assert any("rs_old.dcm" in w for w in case.warnings)


def test_zero_fractions_stay_unknown(tmp_path):
    write_struct(tmp_path / "rs.dcm", [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])])
    write_plan(tmp_path / "plan.dcm", fractions=0, rx_gy=None)
    case = load_case(tmp_path)
    assert case.plans[0].fractions is None and case.plans[0].prescription_gy is None
    assert any("fractions" in w for w in case.warnings)


def test_damaged_and_foreign_files_among_good_ones(tmp_path):
    write_struct(tmp_path / "rs.dcm", [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])])
    write_dose(tmp_path / "dose.dcm", coded_frames(2, 4, 5))
    (tmp_path / "notes.txt").write_text("not dicom\n")
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    case = load_case(tmp_path)
    assert len(case.doses) == 1 and len(case.structures) == 1
    text = "\n".join(case.warnings)
    assert "notes.txt" in text and "broken.dcm" in text


def test_damaged_dose_is_an_error(tmp_path):
    write_struct(tmp_path / "rs.dcm", [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])])
    good = write_dose(tmp_path / "full.dcm", coded_frames(4, 10, 10))
    data = good.read_bytes()
    good.unlink()
    (tmp_path / "cut_dose.dcm").write_bytes(data[: len(data) - 500])
    with pytest.raises(DicomInputError, match="cut_dose.dcm"):
        load_case(tmp_path)


def test_oblique_ct_does_not_block_dose_and_structures(tmp_path):
    c, s = np.cos(0.2), np.sin(0.2)
    write_ct(tmp_path, [0.0, 3.0], iop=[c, s, 0, -s, c, 0])
    write_struct(tmp_path / "rs.dcm", [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])])
    write_dose(tmp_path / "dose.dcm", coded_frames(2, 4, 5))
    case = load_case(tmp_path)
    assert case.ct is None and len(case.doses) == 1
    assert any("CT" in w and "ImageOrientationPatient" in w for w in case.warnings)


def test_list_of_files(tmp_path):
    rs = write_struct(tmp_path / "rs.dcm", [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])])
    dose = write_dose(tmp_path / "dose.dcm", coded_frames(2, 4, 5))
    write_dose(tmp_path / "other_dose.dcm", coded_frames(2, 4, 5))
    case = load_case([rs, dose])
    assert [Path(d.path).name for d in case.doses] == ["dose.dcm"]


def test_find_patient_folders(tmp_path):
    roi = [(1, "GTV", "GTV", [("CLOSED_PLANAR", square(0.0))])]
    write_ct(tmp_path / "A" / "CT", [0.0, 3.0], patient_id="A")
    write_struct(tmp_path / "A" / "RT" / "rs.dcm", roi, patient_id="A")
    write_dose(tmp_path / "A" / "RT" / "dose.dcm", coded_frames(2, 4, 5), patient_id="A")
    write_struct(tmp_path / "group" / "B" / "rs.dcm", roi, patient_id="B")
    write_struct(tmp_path / "group" / "C" / "rs.dcm", roi, patient_id="C")
    write_struct(tmp_path / "mixed" / "rs1.dcm", roi, patient_id="D")
    write_struct(tmp_path / "mixed" / "rs2.dcm", roi, patient_id="E")
    write_ct(tmp_path / "ct_only", [0.0], patient_id="F")
    found = find_patient_folders(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "A",
        "group/B",
        "group/C",
        "mixed",
    ]


def test_no_rt_objects(tmp_path):
    write_ct(tmp_path, [0.0, 3.0])
    with pytest.raises(DicomInputError, match="no RTSTRUCT or RTDOSE"):
        load_case(tmp_path)
