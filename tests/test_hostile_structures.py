"""Hostile structure sets (issue 18): duplicate names, numbers, items and contours, and the
slab thickness of each structure when there is no CT. Expected values are closed-form areas
and spacings of the squares written here, never the loader's own output."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from test_dicom_synthetic import square, write_struct

from rtplan_assist.dicom import load_case
from rtplan_assist.errors import DicomInputError
from rtplan_assist.geometry import polygon_volume_cc
from rtplan_assist.names import match_structures


def _planes(zs, half=5.0, cx=0.0):
    return [("CLOSED_PLANAR", square(z, half=half, cx=cx)) for z in zs]


def test_duplicate_roi_names_are_kept_apart_and_not_matched(tmp_path):
    # Two ROIs called SpinalCord: on main the last one silently won every lookup by name.
    write_struct(
        tmp_path / "rs.dcm",
        [
            (1, "PTV", "PTV", _planes([0.0, 2.0, 4.0])),
            (3, "SpinalCord", "ORGAN", _planes([0.0, 2.0], cx=20.0)),
            (7, "SpinalCord", "ORGAN", _planes([0.0, 2.0], cx=300.0)),
        ],
    )
    case = load_case(tmp_path)
    names = [s.name for s in case.structures]
    assert names == ["PTV", "SpinalCord [ROI 3]", "SpinalCord [ROI 7]"]
    text = "\n".join(case.warnings)
    assert "'SpinalCord'" in text and "3 and 7" in text
    match = match_structures(names, ["SpinalCord"], {})
    assert "SpinalCord" in match.missing  # neither copy is used for a verdict by name


def test_duplicate_roi_number_is_refused_naming_both(tmp_path):
    path = write_struct(
        tmp_path / "rs.dcm",
        [(1, "PTV", "PTV", _planes([0.0, 2.0])), (2, "Cord", "ORGAN", _planes([0.0, 2.0]))],
    )
    ds = pydicom.dcmread(path)
    ds.StructureSetROISequence[1].ROINumber = 1
    ds.save_as(path)
    with pytest.raises(DicomInputError, match=r"ROI number 1 .*'PTV' and 'Cord'"):
        load_case(tmp_path)


def test_second_contour_item_for_one_roi_is_refused(tmp_path):
    path = write_struct(
        tmp_path / "rs.dcm",
        [(1, "PTV", "PTV", _planes([0.0, 2.0])), (2, "Cord", "ORGAN", _planes([0.0, 2.0]))],
    )
    ds = pydicom.dcmread(path)
    ds.ROIContourSequence[1].ReferencedROINumber = 1
    ds.RTROIObservationsSequence[1].ReferencedROINumber = 2
    ds.save_as(path)
    with pytest.raises(DicomInputError, match=r"two items for ROI number 1 \('PTV'\)"):
        load_case(tmp_path)


def test_contour_exported_twice_does_not_cancel_out(tmp_path):
    # Every plane twice: on main even-odd made the PTV empty ("no volume inside the grid").
    zs = [0.0, 2.0, 4.0]
    doubled = [c for z in zs for c in _planes([z, z])]
    write_struct(tmp_path / "rs.dcm", [(1, "PTV", "PTV", doubled)])
    case = load_case(tmp_path)
    ptv = case.structure("PTV")
    assert [len(p) for p in ptv.polygons] == [1, 1, 1]
    # 10 mm x 10 mm square, 3 planes x 2 mm slab (end caps half a spacing each side) = 0.6 cm3
    assert polygon_volume_cc(ptv) == pytest.approx(10 * 10 * 3 * 2 / 1000)
    assert any("repeated on 3 plane(s)" in w and "'PTV'" in w for w in case.warnings)


def test_each_structure_keeps_its_own_plane_spacing_without_ct(tmp_path):
    # PTV every 1 mm, cord every 2 mm: on main the cord's slabs became 1 mm (half volume).
    write_struct(
        tmp_path / "rs.dcm",
        [
            (1, "PTV", "PTV", _planes(np.arange(0.0, 10.0, 1.0))),
            (2, "SpinalCord", "ORGAN", _planes([0.0, 2.0, 4.0], cx=40.0)),
            (3, "Marker", "ORGAN", _planes([0.0], cx=80.0)),
        ],
    )
    case = load_case(tmp_path)
    assert case.structure("PTV").slice_thickness_mm == pytest.approx(1.0)
    cord = case.structure("SpinalCord")
    assert cord.slice_thickness_mm == pytest.approx(2.0)
    # 3 planes x 2 mm slabs x 100 mm2 = 0.6 cm3
    assert polygon_volume_cc(cord) == pytest.approx(0.6)
    # one plane: the set's modal spacing (PTV's 9 steps of 1 mm against the cord's 2 of 2 mm)
    assert case.structure("Marker").slice_thickness_mm == pytest.approx(1.0)


def _star(n_points: int, z: float, r_out: float = 40.0, r_in: float = 20.0) -> np.ndarray:
    k = np.arange(n_points)
    r = np.where(k % 2 == 0, r_out, r_in)
    t = 2 * np.pi * k / n_points
    return np.c_[r * np.cos(t), r * np.sin(t), np.full(n_points, z)]


def test_star_contour_is_refused_at_load_not_after_minutes(tmp_path):
    # On main a 99,000-point star (under the 100,000-point cap) loaded, then the DVH kernel
    # ran past 10 minutes without seeing Ctrl+C.
    write_struct(tmp_path / "rs.dcm", [(1, "Star", "ORGAN", [("CLOSED_PLANAR", _star(99_000, 0.0))])])
    with pytest.raises(DicomInputError, match=r"'Star'.*folds back on itself"):
        load_case(tmp_path)


def test_fold_count_of_simple_and_star_contours():
    from rtplan_assist.dicom.rtstruct import MAX_CONTOUR_FOLDS, contour_folds

    assert contour_folds(square(0.0)[:, :2]) == pytest.approx(1.0)  # convex: 1
    # n points alternating between radii 40 and 20 mm: each edge travels ~(2/pi) x 20 mm
    # in y over an extent of 80 mm, so about n x 12.7 / 160 = n / 12.6 folds
    assert contour_folds(_star(2000, 0.0)[:, :2]) == pytest.approx(2000 / 12.6, rel=0.05)
    assert contour_folds(_star(64, 0.0)[:, :2]) < MAX_CONTOUR_FOLDS


def test_zero_volume_bow_tie_is_not_an_untyped_crash(tmp_path):
    # Found by the issue-18 fuzz corpus: a self-intersecting (bow-tie) contour on one plane has
    # zero contour-stack volume, and the DVH kernel's dose-adaptive refinement divided by it
    # (ZeroDivisionError out of compute_dvhs).
    from fuzz import harness

    names = ["d_units", "s_degenerate_polygon", "s_single_plane"]
    harness.write_case(harness.mutated_case(names, 0), tmp_path)
    outcome = harness.run_pipeline(tmp_path)
    assert outcome.kind in ("ok", "typed")
