"""RTSTRUCT loading on real files; expected values read here with pydicom or from the README."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from rtplan_assist.dicom.rtstruct import read_structures


def _read(path):
    ds = pydicom.dcmread(path, force=True)
    warnings: list[str] = []
    return ds, read_structures(ds, path, warnings), warnings


def test_dicompyler_structure_set(shared_data):
    path = shared_data / "dicompyler-core-example" / "rtss.dcm"
    ds, structures, warnings = _read(path)
    assert len(structures) == 10  # README: 10 ROIs, one of them empty
    assert [s.name for s in structures] == [r.ROIName for r in ds.StructureSetROISequence]
    empty = [s.name for s in structures if s.is_empty]
    assert len(empty) == 1 and any(repr(empty[0]) in w for w in warnings)
    assert not any(empty[0] in w for w in warnings if "rtss.dcm" not in w)

    # Lt Lung has several contours on some planes: count them per z straight from the file
    number = next(int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == "Lt Lung")
    item = next(c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number)
    per_plane: dict[float, int] = {}
    for c in item.ContourSequence:
        z = round(float(c.ContourData[2]), 2)
        per_plane[z] = per_plane.get(z, 0) + 1
    lung = next(s for s in structures if s.name == "Lt Lung")
    assert max(per_plane.values()) > 1
    np.testing.assert_allclose(lung.plane_z_mm, sorted(per_plane), atol=0.01)
    assert [len(p) for p in lung.polygons] == [per_plane[z] for z in sorted(per_plane)]
    for plane in lung.polygons:
        for polygon in plane:
            assert polygon.dtype == np.float64 and polygon.ndim == 2 and polygon.shape[1] == 2
    observed = {
        int(o.ReferencedROINumber): o.RTROIInterpretedType for o in ds.RTROIObservationsSequence
    }
    assert lung.roi_type == observed[number]
    assert lung.color == tuple(int(v) for v in item.ROIDisplayColor)
    # no CT given: modal contour plane spacing; the dose grid and CT of this case are 3 mm
    assert lung.slice_thickness_mm == pytest.approx(3.0)


def test_polygon_vertices_match_contour_data(shared_data):
    path = shared_data / "dicompyler-core-example" / "rtss.dcm"
    ds, structures, _ = _read(path)
    heart = next(s for s in structures if s.name == "Heart")
    number = heart.roi_number
    item = next(c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number)
    contour = item.ContourSequence[0]
    pts = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
    p = int(np.argmin(abs(heart.plane_z_mm - pts[0, 2])))
    match = [poly for poly in heart.polygons[p] if len(poly) in (len(pts), len(pts) - 1)]
    assert any(np.allclose(poly, pts[: len(poly), :2]) for poly in match)


def test_pydicom_point_rois():
    path = get_testdata_file("rtstruct.dcm")
    ds, structures, warnings = _read(path)
    kinds = {
        int(c.ReferencedROINumber): {x.ContourGeometricType for x in c.ContourSequence}
        for c in ds.ROIContourSequence
    }
    for s in structures:
        if kinds[s.roi_number] == {"POINT"}:
            assert s.is_empty
            assert any(repr(s.name) in w and "POINT" in w for w in warnings)
        else:
            assert not s.is_empty


def test_rt_utils_files(shared_data):
    _, structures, _ = _read(shared_data / "rt-utils-mock" / "mock_data" / "rt.dcm")
    assert [s.name for s in structures] == ["ROI-1"] and not structures[0].is_empty
    ds, structures, _ = _read(shared_data / "rt-utils-mock" / "empty" / "dummy_rt.dcm")
    assert [s.name for s in structures] == [r.ROIName for r in ds.StructureSetROISequence]


def test_nelms_sphere_planes(shared_data):
    path = shared_data / "nelms-dvh" / "structures" / "Sphere_10_0.dcm"
    _, structures, _ = _read(path)
    sphere = next(s for s in structures if s.name == "Sphere_10_0")
    # README: _10 = 1 mm contour spacing
    np.testing.assert_allclose(np.diff(sphere.plane_z_mm), 1.0, atol=0.01)
    assert sphere.slice_thickness_mm == pytest.approx(1.0)
