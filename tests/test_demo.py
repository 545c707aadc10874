"""The synthetic demo patient, read back with plain pydicom (no project loader).

Expected numbers come from the analytic geometry documented in ``rtplan_assist/demo.py``.
"""

from __future__ import annotations

import filecmp
import math
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtplan_assist import demo
from rtplan_assist.demo import DEMO_LESIONS, demo_case_folder, demo_file_names, write_demo_patient

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, float]:
    start = time.perf_counter()
    folder = write_demo_patient(tmp_path_factory.mktemp("demo"), seed=0)
    return folder, time.perf_counter() - start


@pytest.fixture(scope="module")
def folder(written) -> Path:
    return written[0]


@pytest.fixture(scope="module")
def files(folder) -> dict[str, pydicom.Dataset]:
    return {path.name: pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))}


@pytest.fixture(scope="module")
def rtstruct(files) -> pydicom.Dataset:
    return files["RS.dcm"]


def _contours(rtstruct: pydicom.Dataset, name: str) -> list[np.ndarray]:
    """(N, 3) vertex arrays of every contour of ROI ``name``."""
    number = next(r.ROINumber for r in rtstruct.StructureSetROISequence if r.ROIName == name)
    roi = next(c for c in rtstruct.ROIContourSequence if c.ReferencedROINumber == number)
    return [np.asarray(c.ContourData, dtype=float).reshape(-1, 3) for c in roi.ContourSequence]


def _by_plane(contours: list[np.ndarray]) -> dict[float, list[np.ndarray]]:
    planes: dict[float, list[np.ndarray]] = {}
    for c in contours:
        planes.setdefault(round(float(c[0, 2]), 2), []).append(c)
    return planes


def _shoelace_mm2(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _sphere_from_contours(contours: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Centre and radius (mm) of a sphere from its largest section (a circle)."""
    largest = max(contours, key=_shoelace_mm2)
    centre = largest.mean(axis=0)
    radius = float(np.mean(np.linalg.norm(largest[:, :2] - centre[:2], axis=1)))
    return centre, radius


def _dose_gy(ds: pydicom.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dose [z, y, x] in Gy and the x, y, z voxel-centre coordinates (mm)."""
    dose = ds.pixel_array.astype(float) * float(ds.DoseGridScaling)
    x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    x = x0 + dx * np.arange(ds.Columns)
    y = y0 + dy * np.arange(ds.Rows)
    z = z0 + np.asarray(ds.GridFrameOffsetVector, dtype=float)
    return dose, x, y, z


def _dose_at(ds: pydicom.Dataset, point: np.ndarray) -> float:
    dose, x, y, z = _dose_gy(ds)
    i, j, k = (int(np.argmin(abs(axis - p))) for axis, p in zip((z, y, x), point[::-1]))
    return float(dose[i, j, k])


# --- files, size, speed --------------------------------------------------------------------------


def test_writes_the_expected_files_within_budget(written):
    folder, seconds = written
    assert folder.name == "RTPA-DEMO-0000"
    assert sorted(p.name for p in folder.iterdir()) == sorted(demo_file_names())
    assert len(demo_file_names()) == 100 + 1 + 5 + 5 + 1  # + the structure map
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 30 * MB, f"{total / MB:.1f} MB"
    # budget is 5 s on an idle machine; the CI box is shared by several jobs
    assert seconds < 15.0, f"{seconds:.1f} s"


def test_every_file_has_file_meta_and_the_same_patient(files):
    studies, frames = set(), set()
    for name, ds in files.items():
        assert ds.preamble is not None, name
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.PatientID == "RTPA-DEMO-0000"
        assert str(ds.PatientName) == "Demo^Patient"
        studies.add(ds.StudyInstanceUID)
        frames.add(ds.FrameOfReferenceUID)
    assert len(studies) == 1 and len(frames) == 1
    uids = [ds.SOPInstanceUID for ds in files.values()]
    assert len(set(uids)) == len(uids)


# --- CT --------------------------------------------------------------------------------------------


def test_ct_series_geometry_and_hounsfield_units(files):
    cts = sorted((ds for ds in files.values() if ds.Modality == "CT"),
                 key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert len(cts) == 100
    assert {ds.SOPClassUID for ds in cts} == {CT_IMAGE}
    assert len({ds.SeriesInstanceUID for ds in cts}) == 1
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in cts])
    np.testing.assert_allclose(np.diff(z), 3.0)
    assert z[0] == pytest.approx(-148.5) and z[-1] == pytest.approx(148.5)
    assert sorted(ds.InstanceNumber for ds in cts) == list(range(1, 101))
    ct = cts[int(np.argmin(abs(z - 49.5)))]  # z 49.5: widest lungs
    assert [float(v) for v in ct.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert ct.PatientPosition == "HFS"
    hu = ct.pixel_array.astype(float) * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    x0, y0 = float(ct.ImagePositionPatient[0]), float(ct.ImagePositionPatient[1])
    spacing = float(ct.PixelSpacing[0])

    def hu_at(x: float, y: float) -> float:
        return float(hu[round((y - y0) / spacing), round((x - x0) / spacing)])

    assert hu_at(0, -150) == pytest.approx(-1000, abs=1)  # air in front of the body (108 mm)
    assert hu_at(-80, 8) == pytest.approx(-820, abs=40)  # centre of the right lung
    assert hu_at(72, 8) == pytest.approx(-820, abs=40)
    assert hu_at(0, 58) == pytest.approx(700, abs=40)  # vertebral body
    assert hu_at(-8, -30) == pytest.approx(45, abs=40)  # ascending aorta
    assert hu_at(0, 8) == pytest.approx(-1000, abs=40)  # tracheal lumen


# --- RTSTRUCT -------------------------------------------------------------------------------------

EXPECTED_ROIS = {
    "External": "EXTERNAL", "Lungs": "ORGAN", "Lung_L": "ORGAN", "Lung_R": "ORGAN",
    "LUNGS-ITV's": "AVOIDANCE", "Heart": "ORGAN", "Esophagus": "ORGAN", "Spinal Cord": "ORGAN",
    "Trachea": "ORGAN", "AirWay_Prox": "ORGAN", "GreatVes": "ORGAN", "Chestwall": "ORGAN",
    "Rib": "ORGAN", "BrachialPlex_R": "ORGAN", "Liver": "ORGAN", "Stomach": "ORGAN",
    "Kidney_L": "ORGAN", "Kidney_R": "ORGAN",
    **{f"GTV_{i}": "GTV" for i in range(1, 6)}, **{f"PTV_{i}": "PTV" for i in range(1, 6)},
}


def test_roi_names_types_and_colours(rtstruct):
    names = {r.ROINumber: r.ROIName for r in rtstruct.StructureSetROISequence}
    types = {o.ReferencedROINumber: o.RTROIInterpretedType
             for o in rtstruct.RTROIObservationsSequence}
    assert {names[n]: types[n] for n in names} == EXPECTED_ROIS
    assert "SpinalCord" not in names.values()  # the cord is exported as "Spinal Cord" on purpose
    for roi in rtstruct.ROIContourSequence:
        assert len(roi.ROIDisplayColor) == 3
        assert all(c.ContourGeometricType == "CLOSED_PLANAR" for c in roi.ContourSequence)
        assert all(c.NumberOfContourPoints * 3 == len(c.ContourData) for c in roi.ContourSequence)


def test_rtstruct_references_resolve_to_the_ct(files, rtstruct):
    cts = {ds.SOPInstanceUID: ds for ds in files.values() if ds.Modality == "CT"}
    ct = next(iter(cts.values()))
    assert rtstruct.SOPClassUID == RT_STRUCT
    (frame,) = rtstruct.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == ct.FrameOfReferenceUID
    (study,) = frame.RTReferencedStudySequence
    assert study.ReferencedSOPInstanceUID == ct.StudyInstanceUID
    (series,) = study.RTReferencedSeriesSequence
    assert series.SeriesInstanceUID == ct.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == set(cts)
    for roi in rtstruct.StructureSetROISequence:
        assert roi.ReferencedFrameOfReferenceUID == ct.FrameOfReferenceUID
    for roi in rtstruct.ROIContourSequence:
        for contour in roi.ContourSequence:
            (image,) = contour.ContourImageSequence
            plane_z = float(cts[image.ReferencedSOPInstanceUID].ImagePositionPatient[2])
            assert float(contour.ContourData[2]) == pytest.approx(plane_z, abs=1e-6)


def test_contour_areas_match_the_ellipse_formula(rtstruct):
    # area of an ellipse: pi a b; inscribed polygons with >= 24 vertices are within 1 %
    external = _contours(rtstruct, "External")
    assert len(external) == 100
    for c in external:
        assert _shoelace_mm2(c) == pytest.approx(math.pi * 155 * 108, rel=0.01)
    for c in _contours(rtstruct, "Spinal Cord"):
        assert _shoelace_mm2(c) == pytest.approx(math.pi * 5**2, rel=0.01)
    # right lung ellipsoid (-80, 8, 50), semi-axes (52, 60, 95): section at z 49.5
    (lung,) = _by_plane(_contours(rtstruct, "Lung_R"))[49.5]
    s2 = 1 - (0.5 / 95) ** 2
    assert _shoelace_mm2(lung) == pytest.approx(math.pi * 52 * 60 * s2, rel=0.01)


def test_vertex_spacing_grows_with_size(rtstruct):
    def spacing(c: np.ndarray) -> float:
        return float(np.mean(np.linalg.norm(np.diff(c[:, :2], axis=0), axis=1)))

    gtv = max(_contours(rtstruct, "GTV_1"), key=_shoelace_mm2)
    body = _contours(rtstruct, "External")[50]
    assert 0.5 <= spacing(gtv) <= 1.0
    assert 1.0 < spacing(body) <= 2.0
    assert len(body) > len(gtv)


def test_multiple_contours_and_holes(rtstruct):
    # Lungs: one contour per lung on every plane through both lungs
    lungs = _by_plane(_contours(rtstruct, "Lungs"))
    assert max(len(v) for v in lungs.values()) == 2
    assert len(lungs[49.5]) == 2
    # Rib: left and right arcs on rib planes
    assert {len(v) for v in _by_plane(_contours(rtstruct, "Rib")).values()} == {2}
    # Chestwall: annulus = outer (152 x 105) and inner (140 x 93) ellipse on the same plane
    for plane in _by_plane(_contours(rtstruct, "Chestwall")).values():
        areas = sorted(_shoelace_mm2(c) for c in plane)
        assert areas == pytest.approx([math.pi * 140 * 93, math.pi * 152 * 105], rel=0.01)
    # LUNGS-ITV's: at GTV_1's central plane, both lungs plus GTV_1 as a hole inside Lung_R
    centre, radius = _sphere_from_contours(_contours(rtstruct, "GTV_1"))
    plane = _by_plane(_contours(rtstruct, "LUNGS-ITV's"))[round(float(centre[2]), 2)]
    assert len(plane) == 3
    hole = min(plane, key=_shoelace_mm2)
    assert _shoelace_mm2(hole) == pytest.approx(math.pi * radius**2, rel=0.01)
    assert np.all(np.linalg.norm(hole[:, :2] - centre[:2], axis=1) < radius + 0.01)


def test_gtv_and_ptv_sizes(rtstruct):
    for i in range(1, 6):
        _, r_gtv = _sphere_from_contours(_contours(rtstruct, f"GTV_{i}"))
        _, r_ptv = _sphere_from_contours(_contours(rtstruct, f"PTV_{i}"))
        assert r_ptv - r_gtv == pytest.approx(5.0, abs=0.3)  # PTV = GTV + 5 mm
        assert 1.0 <= 4 / 3 * math.pi * r_gtv**3 / 1000 <= 15.0  # GTV 1-15 cc


def _min_distance_mm(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    pa, pb = np.vstack(a), np.vstack(b)
    return float(min(np.min(np.linalg.norm(pb - p, axis=1)) for p in pa))


def test_spinal_cord_is_3_to_6_mm_from_ptv5(rtstruct):
    cord = _contours(rtstruct, "Spinal Cord")
    ptv5 = _contours(rtstruct, "PTV_5")
    near_cord = [c for c in cord if abs(c[0, 2] - ptv5[0][0, 2]) < 40]
    assert 3.0 <= _min_distance_mm(near_cord, ptv5) <= 6.0  # designed: 3.5 mm


def test_ptv2_abuts_the_airway_and_the_oesophagus(rtstruct):
    ptv2 = _contours(rtstruct, "PTV_2")
    for oar in ("AirWay_Prox", "Esophagus"):
        near = [c for c in _contours(rtstruct, oar) if abs(c[0, 2] - 7.5) < 30]
        assert 3.0 <= _min_distance_mm(near, ptv2) <= 5.5, oar  # designed: 4 mm


# --- RTPLAN and RTDOSE ----------------------------------------------------------------------------


def test_plans_reference_the_structure_set_and_their_ptv(files, rtstruct):
    names = {r.ROINumber: r.ROIName for r in rtstruct.StructureSetROISequence}
    plans = [ds for ds in files.values() if ds.Modality == "RTPLAN"]
    assert len(plans) == 5
    for lesion in DEMO_LESIONS:
        plan = files[f"RP.{lesion.lesion_id}.dcm"]
        assert plan.SOPClassUID == RT_PLAN
        assert plan.RTPlanLabel == lesion.label
        assert plan.RTPlanGeometry == "PATIENT"
        (ref,) = plan.ReferencedStructureSetSequence
        assert ref.ReferencedSOPInstanceUID == rtstruct.SOPInstanceUID
        (group,) = plan.FractionGroupSequence
        assert group.NumberOfFractionsPlanned == lesion.fractions
        (dose_ref,) = plan.DoseReferenceSequence
        assert dose_ref.DoseReferenceStructureType == "VOLUME"
        assert dose_ref.DoseReferenceType == "TARGET"
        assert names[dose_ref.ReferencedROINumber] == lesion.ptv
        assert float(dose_ref.TargetPrescriptionDose) == lesion.dose_gy
    regimens = {lesion.lesion_id: (lesion.dose_gy, lesion.fractions) for lesion in DEMO_LESIONS}
    assert regimens == {"L1": (54, 3), "L2": (60, 8), "L3": (50, 5), "L4": (50, 5),
                        "L5": (27, 3)}


def test_doses_reference_their_plan_and_cover_the_external(files):
    doses = [ds for ds in files.values() if ds.Modality == "RTDOSE"]
    assert len(doses) == 5
    for lesion in DEMO_LESIONS:
        ds = files[f"RD.{lesion.lesion_id}.dcm"]
        assert ds.SOPClassUID == RT_DOSE
        assert (ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == ("GY", "PHYSICAL", "PLAN")
        (ref,) = ds.ReferencedRTPlanSequence
        assert ref.ReferencedSOPInstanceUID == files[f"RP.{lesion.lesion_id}.dcm"].SOPInstanceUID
        offsets = np.asarray(ds.GridFrameOffsetVector, dtype=float)
        assert offsets[0] == 0 and np.allclose(np.diff(offsets), 2.5)
        assert [float(v) for v in ds.PixelSpacing] == [2.5, 2.5]
        dose, x, y, z = _dose_gy(ds)
        # voxel edges enclose the External (155 x 108 mm) and every CT slab (z +-150 mm)
        assert x[0] - 1.25 <= -155 and x[-1] + 1.25 >= 155
        assert y[0] - 1.25 <= -108 and y[-1] + 1.25 >= 108
        assert z[0] - 1.25 <= -150 and z[-1] + 1.25 >= 150
        assert dose.min() >= 0


def test_dose_is_the_prescription_in_the_ptv_and_low_far_away(files, rtstruct):
    for lesion in DEMO_LESIONS:
        ds = files[f"RD.{lesion.lesion_id}.dcm"]
        centre, radius = _sphere_from_contours(_contours(rtstruct, lesion.ptv))
        rx = lesion.dose_gy
        assert _dose_at(ds, centre) == pytest.approx(1.2 * rx, rel=0.02)  # hot centre, 1.2 Rx
        assert _dose_at(ds, centre) == pytest.approx(rx, rel=0.25)
        far = centre + np.array([0.0, 0.0, 100.0 if centre[2] < 0 else -100.0])
        assert _dose_at(ds, far) < 0.10 * rx  # model: 4 % at 100 mm
        # D95% over voxel centres inside the PTV sphere: 1.007 Rx for the model
        dose, x, y, z = _dose_gy(ds)
        zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
        inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (zz - centre[2]) ** 2 <= radius**2
        assert np.percentile(dose[inside], 5) == pytest.approx(rx, rel=0.03)
        # 50 % of Rx about 9 mm from the surface
        r50 = centre + np.array([radius + 9.0, 0.0, 0.0])
        assert _dose_at(ds, r50) == pytest.approx(0.5 * rx, abs=0.08 * rx)


# --- determinism and seeds ------------------------------------------------------------------------


def test_same_seed_is_byte_identical_other_seed_differs(folder, tmp_path):
    again = write_demo_patient(tmp_path / "again", seed=0)
    names = demo_file_names()
    _, mismatch, errors = filecmp.cmpfiles(folder, again, names, shallow=False)
    assert mismatch == [] and errors == []
    other = write_demo_patient(tmp_path / "other", seed=1)
    assert other.name == "RTPA-DEMO-0001"
    assert (other / "RS.dcm").read_bytes() != (folder / "RS.dcm").read_bytes()
    rs0, rs1 = pydicom.dcmread(folder / "RS.dcm"), pydicom.dcmread(other / "RS.dcm")
    assert [r.ROIName for r in rs0.StructureSetROISequence] == [
        r.ROIName for r in rs1.StructureSetROISequence]
    assert rs0.StudyInstanceUID != rs1.StudyInstanceUID
    custom = write_demo_patient(tmp_path / "custom", seed=0, patient_id="CUSTOM-1")
    assert pydicom.dcmread(custom / "RS.dcm").PatientID == "CUSTOM-1"
    assert pydicom.dcmread(custom / "RS.dcm").SOPInstanceUID != rs0.SOPInstanceUID


@pytest.mark.parametrize("seed", range(30))
def test_every_seed_keeps_the_design(seed):
    # geometry only (no files): lesions inside organs, holes valid, gaps as designed
    lesions = demo._lesion_geometry(seed)
    structures = {s.name: s for s in demo._anatomy(lesions)}
    for z in demo._ct_planes_mm():
        for name in ("LUNGS-ITV's", "Chestwall"):
            parts, holes = structures[name].sections(float(z))
            demo._check_holes(structures[name], float(z), parts, holes)
    for lesion, organ in ((lesions[0], "Lung_R"), (lesions[1], "Lung_L"), (lesions[3], "Liver")):
        gtv = lesion.gtv()
        for z in demo._ct_planes_mm():
            section = gtv.section(float(z))
            if section is not None:
                outline = section.outline()
                assert structures[organ].contains(float(z), outline[:, 0], outline[:, 1]).all()
    cord_gap = (demo._CORD_CENTRE_MM[1] - demo._CORD_RADIUS_MM) - (
        lesions[4].centre[1] + lesions[4].ptv_radius_mm)
    assert 3.0 <= cord_gap <= 4.0
    l2 = np.array(lesions[1].centre)
    gap_e = math.hypot(l2[0] - demo._ESOPHAGUS_CENTRE_MM[0], l2[1] - demo._ESOPHAGUS_CENTRE_MM[1])
    gap_e -= lesions[1].ptv_radius_mm + demo._ESOPHAGUS_RADIUS_MM
    assert 3.5 - 1e-6 <= gap_e <= 4.5 + 1e-6
    for a in range(5):
        for b in range(a + 1, 5):
            distance = np.linalg.norm(np.subtract(lesions[a].centre, lesions[b].centre))
            assert distance > lesions[a].ptv_radius_mm + lesions[b].ptv_radius_mm


def test_bad_seed_is_refused(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        write_demo_patient(tmp_path, seed=-1)


# --- cache ----------------------------------------------------------------------------------------


def test_demo_case_folder_is_written_once_and_repaired(tmp_path, folder):
    cached = demo_case_folder(cache_dir=tmp_path)
    assert cached == tmp_path / f"demo-{demo.DEMO_VERSION}"
    assert sorted(p.name for p in cached.iterdir()) == sorted(demo_file_names())
    assert (cached / "RS.dcm").read_bytes() == (folder / "RS.dcm").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no staging folder left
    stamp = (cached / "CT.1.dcm").stat().st_mtime_ns
    assert demo_case_folder(cache_dir=tmp_path) == cached
    assert (cached / "CT.1.dcm").stat().st_mtime_ns == stamp  # reused, not rewritten
    (cached / "RD.L3.dcm").unlink()  # an incomplete cache is rebuilt
    assert demo_case_folder(cache_dir=tmp_path) == cached
    assert (cached / "RD.L3.dcm").is_file()


def test_demo_lesions_table_is_consistent():
    assert [lesion.lesion_id for lesion in DEMO_LESIONS] == ["L1", "L2", "L3", "L4", "L5"]
    organs = {lesion.organ for lesion in DEMO_LESIONS}
    assert {"Lung_R", "Lung_L", "Liver"} <= organs  # lung, liver and bone + node: 3 organs
    for lesion in DEMO_LESIONS:
        assert len(lesion.label) <= 16  # RTPlanLabel is SH
        assert set(lesion.nearby_oars) <= set(EXPECTED_ROIS)
        assert lesion.dose_per_fraction_gy == pytest.approx(lesion.dose_gy / lesion.fractions)


def test_structure_map_says_the_lung_itvs_are_the_gtvs(folder):
    """The demo's lung ITVs equal its GTVs (no motion), so LUNGS-ITV's is lungs minus GTVs;
    the folder says so in the mapping file the evaluator applies and reports."""
    from rtplan_assist.names import FOLDER_MAP_FILE, load_mapping_file

    assert load_mapping_file(folder / FOLDER_MAP_FILE) == {"LUNGS-ITV's": "Lungs-GTV"}
