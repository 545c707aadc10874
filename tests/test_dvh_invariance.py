"""DVH invariances (dvh-accuracy.md §8, G3): results change by at most 0.2 % when the same
geometry is encoded differently. The reference in each test is the same engine on the
un-modified encoding; the claim under test is the invariance itself."""

from __future__ import annotations

import numpy as np
import pytest

from analytic import circle, cube_grid, linear_dose, sphere_stack
from rtplan_assist.dicom import load_case
from rtplan_assist.dvh import compute_dvh
from rtplan_assist.model import Grid, Structure
from test_dicom_synthetic import write_dose, write_struct

METRICS = ("Min[Gy]", "Max[Gy]", "Mean[Gy]", "D98%[Gy]", "D95%[Gy]", "D50%[Gy]", "D2%[Gy]",
           "D0.03cc[Gy]", "D2cc[Gy]")
GRAD = (0.6, 0.7, 0.5)  # Gy/mm, oblique so every axis matters


def signature(dvh):
    return {"volume": dvh.dvh_volume_cc, **{m: dvh.metric(m).value for m in METRICS}}


def assert_same(a, b, rel=0.002):
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=rel, abs=1e-9), key


@pytest.fixture(scope="module")
def base():
    s, z, radii = sphere_stack(10.0, 2.5, phase=0.3)
    grid = cube_grid(18.0, 2.5)
    dose = linear_dose(grid, 40.0, *GRAD)
    return s, dose, signature(compute_dvh(s, dose))


def test_sub_voxel_translation(base):
    s, dose, ref = base
    shift = np.array([0.37, 0.81, 1.13])
    moved = Structure(s.roi_number, s.name, s.roi_type, s.plane_z_mm + shift[2],
                      [[p + shift[:2] for p in plane] for plane in s.polygons],
                      slice_thickness_mm=s.slice_thickness_mm)
    g = dose.grid
    grid = Grid.uniform(g.origin + shift, g.spacing, g.shape)
    assert_same(ref, signature(compute_dvh(moved, linear_dose(grid, 40.0, *GRAD,
                                                               centre=tuple(shift)))))


def test_winding_and_start_point(base):
    s, dose, ref = base
    flipped = [[np.roll(p[::-1], 137, axis=0) for p in plane] for plane in s.polygons]
    other = Structure(1, s.name, "ORGAN", s.plane_z_mm, flipped, slice_thickness_mm=2.5)
    assert_same(ref, signature(compute_dvh(other, dose)))


def test_contour_split_into_two_abutting_halves(base):
    """The 720-gon has vertices at 90° and 270°: cut along that chord into two polygons."""
    s, dose, ref = base
    halves = []
    for plane in s.polygons:
        p = plane[0]
        right = np.concatenate([p[540:], p[:181]])  # 270° .. 90° through 0°
        left = p[180:541]  # 90° .. 270°
        halves.append([right, left])
    split = Structure(1, s.name, "ORGAN", s.plane_z_mm, halves, slice_thickness_mm=2.5)
    assert_same(ref, signature(compute_dvh(split, dose)))


def test_reordered_planes_and_contours():
    """A ring (outline + hole) with planes given in reverse and the hole listed first."""
    z = np.arange(6) * 2.0
    polys = [[circle(0, 0, 15.0), circle(2, 1, 6.0)] for _ in z]
    ring = Structure(2, "Ring", "ORGAN", z, polys, slice_thickness_mm=2.0)
    shuffled = Structure(2, "Ring", "ORGAN", z[::-1].copy(),
                         [[p[1], p[0]] for p in polys[::-1]], slice_thickness_mm=2.0)
    dose = linear_dose(cube_grid(20.0, 2.5, offset=(0, 0, 5)), 45.0, *GRAD)
    assert_same(signature(compute_dvh(ring, dose)), signature(compute_dvh(shuffled, dose)),
                rel=1e-9)


def test_square_and_non_square_pixels_describe_the_same_field(base):
    s, dose, ref = base
    grid = Grid.uniform([-18.0, -18.0, -18.0], [2.0, 3.0, 2.5], (15, 13, 19))
    assert_same(ref, signature(compute_dvh(s, linear_dose(grid, 40.0, *GRAD))))


def test_hfs_and_ffs_encodings_of_one_dose_give_one_dvh(tmp_path):
    """The same dose written as HFS and as FFS (columns along −x, frames along −z; DICOM
    PS3.3 C.8.8.3.2) must give the same DVH once loaded."""
    nz, ny, nx, d = 12, 11, 13, 2.5
    x0, y0, z0 = -15.0, -12.5, -13.75
    zz, yy, xx = np.meshgrid(z0 + d * np.arange(nz), y0 + d * np.arange(ny),
                             x0 + d * np.arange(nx), indexing="ij")
    field = 30.0 + GRAD[0] * xx + GRAD[1] * yy + GRAD[2] * zz  # Gy, HFS order [z, y, x]
    counts = np.round(field / 0.001).astype(np.uint32)
    points = []
    s, z, radii = sphere_stack(8.0, 2.0)
    for zc, plane in zip(s.plane_z_mm, s.polygons):
        points.append(("CLOSED_PLANAR", np.c_[plane[0][::8], np.full(len(plane[0][::8]), zc)]))
    rs = write_struct(tmp_path / "rs.dcm", [(1, "Ball", "ORGAN", points)])
    hfs = write_dose(tmp_path / "hfs" / "rd.dcm", counts, ipp=(x0, y0, z0),
                     pixel_spacing=(d, d), offsets=d * np.arange(nz))
    ffs = write_dose(tmp_path / "ffs" / "rd.dcm", counts[::-1, :, ::-1],
                     iop=(-1, 0, 0, 0, 1, 0), ipp=(x0 + d * (nx - 1), y0, z0 + d * (nz - 1)),
                     pixel_spacing=(d, d), offsets=d * np.arange(nz))
    a = load_case([rs, hfs])
    b = load_case([rs, ffs])
    assert a.doses[0].grid.same_geometry(b.doses[0].grid)
    sig_a = signature(compute_dvh(a.structures[0], a.doses[0]))
    sig_b = signature(compute_dvh(b.structures[0], b.doses[0]))
    assert_same(sig_a, sig_b, rel=1e-9)


def test_loaded_doses_are_read_only_and_a_writable_array_is_never_memoised():
    # compute_dvh memoises a dose array's (max, min) for its bins only when the array is
    # read-only (rtplan_assist.dvh._value_range). The loader's arrays are; a writable array
    # changed in place must give the DVH of its new values. Expected: a uniform dose of c Gy
    # has Dmax = Dmin = c exactly (the trilinear field of a constant is that constant).
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case
    from rtplan_assist.dvh import compute_dvh

    folder = demo_case_folder()
    case = load_case([folder / "RS.dcm", folder / "RD.L1.dcm"])
    dose = case.doses[0]
    assert not dose.dose_gy.flags.writeable
    total, _ = case.total_dose(dose)
    assert not total.dose_gy.flags.writeable
    cord = next(s for s in case.structures if s.name == "Spinal Cord")
    values = np.full(dose.grid.shape, 2.0)
    first = compute_dvh(cord, dose, dose_array=values)
    values[...] = 5.0  # in place: same object, new values
    second = compute_dvh(cord, dose, dose_array=values)
    assert (first.dmax_gy, first.dmin_gy) == (2.0, 2.0)
    assert (second.dmax_gy, second.dmin_gy) == (5.0, 5.0)
