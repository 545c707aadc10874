"""ContourData parsed from the raw element bytes in one C pass (rtstruct._parse_ds_bytes)
gives exactly pydicom's own DS parse, value for value; anything it does not read as plain
numbers goes to the value-by-value parse, which names the problem.

Expected values come from pydicom 3's DS conversion of the same elements (``float`` of each
DSfloat), the reference reader of the format, not from this code."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rtplan_assist.demo import demo_case_folder
from rtplan_assist.dicom.rtstruct import _contour_values, _parse_ds_bytes
from rtplan_assist.errors import DicomInputError

CONTOUR_DATA = (0x3006, 0x0050)


def _contours(path):
    """(parsed by us from raw bytes, pydicom's DS values) for every contour of an RTSTRUCT."""
    ours = pydicom.dcmread(str(path), force=True)  # elements stay raw until accessed
    ref = pydicom.dcmread(str(path), force=True)
    pairs = []
    for item_o, item_r in zip(ours.ROIContourSequence, ref.ROIContourSequence):
        for c_o, c_r in zip(item_o.get("ContourSequence", []), item_r.get("ContourSequence", [])):
            assert isinstance(c_o.get_item(CONTOUR_DATA).value, bytes)  # the fast path runs
            pairs.append((_contour_values(c_o, path, "x"),
                          np.array([float(v) for v in c_r.ContourData])))
    return pairs


@pytest.mark.parametrize("which", ["demo", "dicompyler", "nelms"])
def test_raw_parse_equals_pydicom(which, request):
    if which == "demo":
        path = demo_case_folder() / "RS.dcm"
    else:
        data = request.getfixturevalue("shared_data")
        path = (data / "dicompyler-core-example" / "rtss.dcm" if which == "dicompyler"
                else data / "nelms-dvh" / "structures" / "Sphere_10_X05Z05.dcm")
    pairs = _contours(path)
    assert pairs
    for ours, ref in pairs:
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, ref)  # bit-identical, not approximately


def test_padding_and_signs_as_pydicom():
    # DS may carry leading/trailing spaces per value (PS3.5 6.2) and signs/exponents
    text = b" 1.5 \\-2e-3\\+10\\0.1 \\-148.50"
    elem = pydicom.DataElement(CONTOUR_DATA, "DS", text.decode())
    ref = [float(v) for v in elem.value]
    np.testing.assert_array_equal(_parse_ds_bytes(text.strip(), 5), ref)


@pytest.mark.parametrize("text", [b"1\\2\\abc", b"1,5\\2\\3", b"1.5 2.5\\3\\4", b"1\\\\2\\3",
                                  b"1\\2\\", b"0x10\\1\\2", b"1e\\2\\3"])
def test_not_plain_numbers_fall_back_and_fail(text):
    n = text.count(b"\\") + 1
    assert _parse_ds_bytes(text, n) is None
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.ContourSequence = Sequence()
    raw = pydicom.dataelem.RawDataElement(pydicom.tag.Tag(CONTOUR_DATA), "DS", len(text),
                                          text, 0, False, True)
    contour[CONTOUR_DATA] = raw
    with pytest.raises(DicomInputError, match="not a number"):
        _contour_values(contour, "RS.dcm", "ROI")


def test_non_finite_refused():
    contour = Dataset()
    raw = pydicom.dataelem.RawDataElement(pydicom.tag.Tag(CONTOUR_DATA), "DS", 11,
                                          b"1\\nan\\inf ", 0, False, True)
    contour[CONTOUR_DATA] = raw
    with pytest.raises(DicomInputError, match="NaN or infinite"):
        _contour_values(contour, "RS.dcm", "ROI")


# ContourGeometricType (CS) and NumberOfContourPoints (IS) read from their raw bytes
# (rtstruct._geometric_type, rtstruct._n_points) give what pydicom's conversion gives
# (ds_str / ds_int over pydicom's value), and anything else goes through pydicom.
GEOMETRIC_TYPE = (0x3006, 0x0042)
N_POINTS = (0x3006, 0x0046)


def _raw_contour(geometric: bytes, n_points: bytes, vrs=("CS", "IS")) -> Dataset:
    contour = Dataset()
    for tag, vr, value in ((GEOMETRIC_TYPE, vrs[0], geometric), (N_POINTS, vrs[1], n_points)):
        contour[tag] = pydicom.dataelem.RawDataElement(pydicom.tag.Tag(tag), vr, len(value),
                                                       value, 0, False, True)
    return contour


@pytest.mark.parametrize("geometric, n_points, vrs", [
    (b"CLOSED_PLANAR ", b"4 ", ("CS", "IS")), (b"POINT ", b"1 ", ("CS", "IS")),
    (b"OPEN_PLANAR", b"0012", ("CS", "IS")), (b" closed_planar", b" 7", ("CS", "IS")),
    (b"CLOSED_PLANAR\x00", b"4.0 ", ("CS", "IS")), (b"CLOSED_PLANAR", b"+4", ("CS", "IS")),
    (b"", b"", ("CS", "IS")), (b"A\\B", b"4", ("CS", "IS")),
    (b"CLOSED_PLANAR", b"12", ("CS", "US")),  # a wrong VR: pydicom reads 12849 (binary)
    (b"CLOSED_PLANAR ", b"4 ", (None, None)),  # implicit VR: the dictionary's
])
def test_type_and_point_count_as_pydicom(geometric, n_points, vrs):
    from rtplan_assist.dicom._common import ds_int, ds_str
    from rtplan_assist.dicom.rtstruct import _geometric_type, _n_points

    ours = _raw_contour(geometric, n_points, vrs)
    ref = _raw_contour(geometric, n_points, vrs)
    assert _geometric_type(ours) == ds_str(ref, "ContourGeometricType").upper()
    assert _n_points(ours, "RS.dcm") == ds_int(ref, "NumberOfContourPoints", path="RS.dcm")


def test_point_count_not_a_number_is_refused_by_name():
    from rtplan_assist.dicom.rtstruct import _n_points

    with pytest.raises(DicomInputError, match="NumberOfContourPoints"):
        _n_points(_raw_contour(b"CLOSED_PLANAR", b"four"), "RS.dcm")


def test_demo_contours_take_the_raw_path():
    from rtplan_assist.dicom.rtstruct import GEOMETRIC_TYPE_TAG, N_POINTS_TAG, _raw_ascii

    ds = pydicom.dcmread(str(demo_case_folder() / "RS.dcm"), force=True)
    contours = [c for item in ds.ROIContourSequence for c in item.get("ContourSequence", [])]
    assert contours
    for c in contours:
        assert _raw_ascii(c, GEOMETRIC_TYPE_TAG, "CS") == "CLOSED_PLANAR"
        assert _raw_ascii(c, N_POINTS_TAG, "IS").isdigit()
