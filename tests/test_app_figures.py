"""The app's figure builders (issue 14): constraint markers on both dose axes and for every
regimen, the legend grouped by structure, distinguishable colours, orientation labels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_app_unit import Row, _dvh

from rtplan_assist.app.figures import (
    ISODOSE_COLOURS,
    constraint_markers,
    delta_e,
    distinct_colours,
    dvh_figure,
    lab,
)
from rtplan_assist.radiobiology import Model, eqd2_transform


def _eqd2(total_gy: float, fractions: int, alpha_beta: float) -> float:
    # LQ: EQD2 = D (d + α/β) / (2 + α/β), d = D / n (Fowler, BJR 1989; reference §6.1)
    return total_gy * (total_gy / fractions + alpha_beta) / (2.0 + alpha_beta)


def test_markers_on_the_eqd2_axis_for_every_regimen():
    rows = [Row("Esophagus", "D0.03cc[Gy]", 34.5, "fail", limit=32.0, regimen="50 Gy/5"),
            Row("Esophagus", "V20Gy[%]", 50.0, "pass", limit=60.0, unit="%",
                regimen="50 Gy/5"),
            Row("Esophagus", "D0.03cc[Gy]", 30.0, "pass", limit=40.0, regimen="60 Gy/8",
                constraint_fractions=8, converted_from_fractions=5)]
    eq5 = eqd2_transform(5, Model("LQ", 3.0))
    eq8 = eqd2_transform(8, Model("LQ", 3.0))
    curves = [("Esophagus", "50 Gy/5", _dvh(dmax=60.0).mapped(eq5, "EQD2", "LQ, α/β = 3 Gy")),
              ("Esophagus", "60 Gy/8", _dvh(dmax=60.0).mapped(eq8, "EQD2", "LQ, α/β = 3 Gy"))]
    transforms = {("Esophagus", "50 Gy/5"): eq5, ("Esophagus", "60 Gy/8"): eq8}
    markers = constraint_markers(curves, rows, transforms)
    by = {(p["regimen"], p["rows"][0].metric): p for p in markers}
    assert len(markers) == 3 and [p["number"] for p in markers] == [1, 2, 3]
    # D0.03cc <= 32 Gy physical in 5 fx sits at EQD2(32 Gy, 5 fx, α/β 3) = 60.16 Gy
    assert by[("50 Gy/5", "D0.03cc[Gy]")]["dose_gy"] == pytest.approx(_eqd2(32.0, 5, 3.0))
    assert _eqd2(32.0, 5, 3.0) == pytest.approx(60.16)
    # V20Gy <= 60 %: the 20 Gy threshold maps, the volume does not
    v20 = by[("50 Gy/5", "V20Gy[%]")]
    assert v20["dose_gy"] == pytest.approx(_eqd2(20.0, 5, 3.0)) and v20["volume_pct"] == 60.0
    assert by[("60 Gy/8", "D0.03cc[Gy]")]["dose_gy"] == pytest.approx(_eqd2(40.0, 8, 3.0))
    # the hover names the limit, unit, source, fraction number and conversion
    text = by[("60 Gy/8", "D0.03cc[Gy]")]["texts"][0]
    assert "<= 40 Gy" in text and "tg101_2010" in text
    assert "limit of 5 fx converted to 8 fx, LQ, α/β = 3 Gy" in text
    fig = dvh_figure(curves, kind="EQD2", model="LQ", rows=rows, transforms=transforms)
    marker_traces = [t for t in fig.data if t.name.startswith("limits at")]
    assert [t.name for t in marker_traces] == ["limits at 50 Gy/5", "limits at 60 Gy/8"]
    assert list(marker_traces[0].text) == ["1", "2"]


def test_an_eqd2_limit_is_placed_at_its_physical_dose_on_the_physical_axis():
    limit = _eqd2(32.0, 5, 3.0)  # an EQD2 limit (α/β 3 Gy) equal to 32 Gy physical in 5 fx
    row = Row("Esophagus", "Max[Gy]", 20.0, "pass", limit=limit, kind="EQD2")
    [p] = constraint_markers([("Esophagus", "50 Gy/5", _dvh(dmax=40.0))], [row])
    assert p["dose_gy"] == pytest.approx(32.0)
    # Max sits on the curve: the linear test DVH has 1 - 32/40 = 20 % above 32 Gy
    assert p["volume_pct"] == pytest.approx(20.0, abs=0.5)


def test_merged_markers_keep_every_source():
    rows = [Row("Heart", "Mean[Gy]", 3.0, "pass", limit=16.0, source="quantec_2010"),
            Row("Heart", "Mean[Gy]", 3.0, "pass", limit=16.0, source="ro2018")]
    [p] = constraint_markers([("Heart", "50 Gy/5", _dvh("Heart"))], rows)
    assert len(p["texts"]) == 2 and "ro2018" in p["texts"][1]


# The demo's ROIDisplayColor values (rtplan_assist/demo.py) that the issue found
# indistinguishable or invisible: Lungs vs LUNGS-ITV's, GTV vs GreatVes vs Heart, the pale rib.
DEMO_COLOURS = {"PTV_2": (64, 0, 255), "GTV_2": (255, 64, 0), "Lungs": (0, 128, 255),
                "LUNGS-ITV's": (64, 160, 200), "Heart": (255, 0, 128),
                "Esophagus": (160, 96, 32), "Spinal Cord": (255, 255, 0),
                "Trachea": (128, 255, 255), "AirWay_Prox": (0, 255, 255),
                "GreatVes": (255, 64, 64), "Chestwall": (200, 128, 255),
                "Rib": (240, 240, 200), "BrachialPlex_R": (255, 160, 0)}


def test_structure_colours_are_distinguishable_and_avoid_the_isodoses():
    assert delta_e(DEMO_COLOURS["Lungs"], DEMO_COLOURS["LUNGS-ITV's"]) < 20  # the complaint
    assert delta_e(DEMO_COLOURS["GreatVes"], DEMO_COLOURS["GTV_2"]) < 20
    names = list(DEMO_COLOURS)
    isodoses = ISODOSE_COLOURS[:4]
    colours = distinct_colours([(n, DEMO_COLOURS[n]) for n in names], reserved=isodoses)
    for a, b in itertools.combinations(names, 2):
        assert delta_e(colours[a], colours[b]) >= 20.0, (a, b)
    for name, iso in itertools.product(names, isodoses):
        assert delta_e(colours[name], iso) >= 20.0, (name, iso)
    assert all(30.0 <= lab(c)[0] <= 80.0 for c in colours.values())  # no pale rib on white
    # a colour that is fine is kept: the first structure's own colour when readable
    assert colours["GTV_2"] == "#ff4000"


@pytest.mark.parametrize("colour", ["#ff0000", "rgb(255, 0, 0)", (255, 0, 0)])
def test_lab_of_red(colour):
    # sRGB red in CIE L*a*b* (D65): 53.24, 80.09, 67.20 (Lindbloom's calculator)
    assert np.allclose(lab(colour), [53.24, 80.09, 67.20], atol=0.05)
    assert not math.isnan(lab(colour)[0])


def test_ciede2000_of_published_pairs(monkeypatch):
    # Sharma, Wu and Dalal 2005, Table 1, pairs 1 and 7: ΔE00 2.0425 and 0 (a* sign only)
    import rtplan_assist.app.figures as figures

    pairs = {"p1": (50.0, 2.6772, -79.7751), "q1": (50.0, 0.0, -82.7485),
             "p7": (50.0, 0.0, 0.0), "q7": (50.0, -1.0, 2.0)}
    monkeypatch.setattr(figures, "lab", lambda key: np.array(pairs[key]))
    assert figures.delta_e("p1", "q1") == pytest.approx(2.0425, abs=1e-4)
    assert figures.delta_e("p7", "q7") == pytest.approx(2.3669, abs=1e-4)


# -- dose view: orientation and colours -------------------------------------------------------
@pytest.mark.parametrize("iop, axial, sagittal", [
    # DICOM PS3.3 C.7.6.2.1.1: row/column direction cosines in LPS; a letter names the
    # patient direction the image edge points to (ImageOrientationPatient of each position)
    ((1, 0, 0, 0, 1, 0), ("R", "L", "A", "P"), ("A", "P", "S", "I")),     # HFS
    ((-1, 0, 0, 0, 1, 0), ("L", "R", "A", "P"), ("A", "P", "S", "I")),    # FFS
    ((-1, 0, 0, 0, -1, 0), ("L", "R", "P", "A"), ("P", "A", "S", "I")),   # HFP
    ((1, 0, 0, 0, -1, 0), ("R", "L", "P", "A"), ("P", "A", "S", "I")),    # FFP
])
def test_orientation_letters_follow_image_orientation_patient(iop, axial, sagittal):
    from rtplan_assist.app.figures import orientation_labels

    for plane, expected in (("axial", axial), ("sagittal", sagittal)):
        got = orientation_labels(plane, iop)
        assert (got["left"], got["right"], got["top"], got["bottom"]) == expected
    coronal = orientation_labels("coronal", iop)
    assert (coronal["left"], coronal["right"]) == axial[:2] and coronal["top"] == "S"


def _prone_ct_slice(path):
    """One synthetic CT slice header, head-first prone (IOP -1\\0\\0\\0\\-1\\0)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
    ds.ImagePositionPatient = [20.0, 20.0, 0.0]
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_prone_series_is_shown_as_acquired_with_its_letters(tmp_path):
    from types import SimpleNamespace

    from rtplan_assist.app.callbacks.dose import image_orientation
    from rtplan_assist.app.figures import dose_slice_figure
    from rtplan_assist.model import Grid

    ct = SimpleNamespace(paths=[str(_prone_ct_slice(tmp_path / "CT1.dcm"))])
    iop = image_orientation(SimpleNamespace(ct=ct, doses=[]))
    assert iop == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
    grid = Grid.uniform((-20.0, -20.0, 0.0), (2.0, 2.0, 2.0), (3, 21, 21))
    dose = np.zeros(grid.shape, np.float32)
    fig = dose_slice_figure(plane="axial", position_mm=2.0, dose_grid=grid, dose=dose,
                            dose_label="Dose (Gy, physical)", wash_threshold=5.0,
                            isodose_levels=[], orientation=iop)
    letters = {a.name: a.text for a in fig.layout.annotations}
    assert letters == {"orientation-left": "<b>L</b>", "orientation-right": "<b>R</b>",
                       "orientation-top": "<b>P</b>", "orientation-bottom": "<b>A</b>"}
    # as acquired: x runs right to left (patient left on the image's left), y bottom to top
    assert fig.layout.xaxis.autorange == "reversed" and fig.layout.yaxis.autorange is True
    assert "HFP" in fig.layout.title.text


def test_isodoses_are_dashed_and_structures_keep_clear_of_their_colours():
    from rtplan_assist.app.figures import dose_slice_figure
    from rtplan_assist.model import Grid
    from test_app_unit import _square

    grid = Grid.uniform((-20.0, -20.0, 0.0), (2.0, 2.0, 2.0), (3, 21, 21))
    dose = np.zeros(grid.shape, np.float32)
    dose[:, 8:13, 8:13] = 50.0
    levels = [(50.0, "100%"), (40.0, "80%")]
    colours = distinct_colours([("Box", (255, 0, 255))], reserved=ISODOSE_COLOURS[:2])
    assert delta_e(colours["Box"], ISODOSE_COLOURS[0]) >= 20.0  # magenta box recoloured
    fig = dose_slice_figure(plane="axial", position_mm=2.0, dose_grid=grid, dose=dose,
                            dose_label="Dose (Gy, physical)", wash_threshold=5.0,
                            isodose_levels=levels,
                            structures=[(_square([2.0]), colours["Box"])])
    lines = {t.name: t.line for t in fig.data if t.name in ("100%", "80%", "Box")}
    assert lines["100%"].dash == "dash" and lines["Box"].dash is None
    assert lines["100%"].color == ISODOSE_COLOURS[0] and lines["Box"].color != lines["100%"].color


def test_a_feet_first_copy_of_the_demo_loads_to_the_same_volume_and_shows_its_letters(
        leakcheck_patient, tmp_path):
    """A synthetic feet-first-supine variant of the demo: every CT slice rewritten with
    ImageOrientationPatient -1\\0\\0\\0\\1\\0, its first column moved to the other side (same
    voxel centres) and its pixel rows mirrored. The loader puts it on the same ascending
    grid with the same HU; the dose view shows it as acquired: patient left on the image's
    left."""
    import shutil

    import pydicom

    from rtplan_assist.app.callbacks.dose import image_orientation
    from rtplan_assist.app.figures import dose_slice_figure
    from rtplan_assist.dicom import load_case, load_ct_pixels

    folder = tmp_path / "ffs"
    shutil.copytree(leakcheck_patient, folder)
    for path in folder.glob("CT*.dcm"):
        ds = pydicom.dcmread(path)
        cols, dx = int(ds.Columns), float(ds.PixelSpacing[1])
        x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
        ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [x0 + (cols - 1) * dx, y0, z0]
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, ::-1]).tobytes()
        ds.save_as(path)
    original, ffs = load_case(leakcheck_patient), load_case(folder)
    assert np.allclose(ffs.ct.grid.origin, original.ct.grid.origin)
    assert np.array_equal(load_ct_pixels(ffs.ct), load_ct_pixels(original.ct))
    iop = image_orientation(ffs)
    assert iop == (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0) and image_orientation(original)[0] == 1.0
    dose = original.doses[0]
    fig = dose_slice_figure(plane="axial", position_mm=0.0, dose_grid=dose.grid,
                            dose=dose.dose_gy, dose_label="Dose (Gy, physical)",
                            wash_threshold=1.0, isodose_levels=[], orientation=iop)
    letters = [a.text for a in fig.layout.annotations]
    assert letters == ["<b>L</b>", "<b>R</b>", "<b>A</b>", "<b>P</b>"]
    assert fig.layout.xaxis.autorange == "reversed" and "FFS" in fig.layout.title.text


def test_an_oar_keeps_its_colour_in_every_view():
    from rtplan_assist.app.figures import RESERVED_ISODOSES, view_colours

    oars = [(n, DEMO_COLOURS[n]) for n in ("LUNGS-ITV's", "Heart", "Esophagus", "GreatVes")]
    lesion = view_colours(oars, [("PTV_2", (64, 0, 255)), ("GTV_2", (255, 64, 0))])
    composite = view_colours(oars, [("PTV_1", (0, 0, 255)), ("PTV_2", (64, 0, 255))])
    assert all(lesion[n] == composite[n] for n, _ in oars)
    for name, iso in itertools.product(lesion, ISODOSE_COLOURS[:RESERVED_ISODOSES]):
        assert delta_e(lesion[name], iso) >= 20.0, (name, iso)


# -- composite / MDT page ----------------------------------------------------------------------
def test_headroom_of_upper_and_lower_limits_and_the_tightest_first():
    from rtplan_assist.app.mdt import headroom_key, headroom_text

    upper = Row("Esophagus", "D0.03cc[Gy]", 30.0, "pass", limit=32.0)     # 30/32 = 93.75 %
    over = Row("Heart", "D0.03cc[Gy]", 40.0, "fail", limit=32.0)          # 8 Gy over
    lower = Row("Lungs", "CV12.5Gy[cc]", 1500.0, "pass", limit=1000.0, comparator=">=",
                unit="cc")                                                 # 1000/1500 = 67 %
    missing = Row("Cord", "Max[Gy]", float("nan"), "not evaluable", limit=20.0)
    assert headroom_text(upper) == ("94 % of limit", "margin 2.00 Gy")
    assert headroom_text(over) == ("125 % of limit", "over by 8.00 Gy")
    assert headroom_text(lower) == ("67 % of limit", "margin 500.00 cc")
    assert headroom_text(missing) == ("n/e", "")
    ordered = sorted([lower, missing, upper, over], key=headroom_key)
    assert [r.structure for r in ordered] == ["Heart", "Esophagus", "Lungs", "Cord"]
