"""RTSTRUCT: ROIs as closed planar polygons grouped by axial plane.

Holes and islands are not interpreted here: every closed polygon of a plane is kept and the
even-odd rule is applied later, when the planes are rasterised.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtplan_assist.dicom._common import (
    MAX_ABS_COORDINATE_MM,
    as_floats,
    check_coordinates,
    display_name,
    ds_int,
    ds_items,
    ds_str,
    malformed_as_input_error,
)
from rtplan_assist.dicom._raw import RawDataset
from rtplan_assist.errors import DicomInputError, GeometryError
from rtplan_assist.model import Structure

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Contour points closer than this in z (mm) belong to the same plane.
PLANE_TOLERANCE_MM = 0.01

#: Most points one contour may have (a 2 m perimeter at 0.02 mm); a stated bound, checked on
#: the raw bytes before any value is converted.
MAX_CONTOUR_POINTS = 100_000

#: Most points a whole structure set may have (about 24 bytes each once parsed).
MAX_STRUCTURE_SET_POINTS = 10_000_000

CONTOUR_DATA_TAG = 0x30060050
GEOMETRIC_TYPE_TAG = 0x30060042  # ContourGeometricType (CS)
N_POINTS_TAG = 0x30060046  # NumberOfContourPoints (IS)

#: Most *folds* one contour may have: how many times, on average, a line along x (or y)
#: through the contour crosses it, halved (Σ|Δy| / 2·(y extent), and the same along x). A
#: convex contour has 1; the most convoluted contours of the shared test data and the demo
#: (3,009 contours, bodies and lungs included) have under 2. The DVH kernel's work per
#: sampling row grows with the crossings, so this is the stated complexity bound: with
#: ``rtplan_assist.dvh.MAX_DVH_SAMPLES`` it caps a structure's DVH work at 100 times that of a
#: simple contour of the same extent. A 99,000-point star (about 7,900 folds) took over 10
#: minutes in the kernel, where Ctrl+C is only seen when it returns; it is now refused.
MAX_CONTOUR_FOLDS = 100.0


def frame_of_reference_uid(ds: Dataset) -> str:
    """FrameOfReferenceUID of a structure set (first ReferencedFrameOfReferenceSequence item)."""
    for item in ds.get("ReferencedFrameOfReferenceSequence", None) or []:
        uid = item.get("FrameOfReferenceUID", None)
        if uid:
            return str(uid)
    return ds_str(ds, "FrameOfReferenceUID")


def referenced_series_uids(ds: Dataset) -> list[str]:
    """SeriesInstanceUIDs of the image series the structure set was drawn on."""
    uids: list[str] = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", None) or []:
        for study in frame.get("RTReferencedStudySequence", None) or []:
            for series in study.get("RTReferencedSeriesSequence", None) or []:
                uid = series.get("SeriesInstanceUID", None)
                if uid and str(uid) not in uids:
                    uids.append(str(uid))
    return uids


def _color(item: Dataset) -> tuple[int, int, int] | None:
    try:  # display only: a malformed colour is dropped, not an error
        value = item.get("ROIDisplayColor", None)
        if value is None or isinstance(value, (str, bytes)) or len(value) != 3:
            return None
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    except (TypeError, ValueError, OverflowError):
        return None


def _parse_ds_bytes(text: bytes, n_values: int) -> np.ndarray | None:
    """A backslash-separated DS value (stripped raw bytes) as float64, or ``None`` unless it
    parsed into exactly ``n_values`` numbers: the caller then parses it value by value and
    names the problem. Plain decimals go through the exact kernel of ``kernels/text.py``
    (~0.01 µs a value), the rest through ``np.fromstring`` in one C pass (~0.07 µs a value;
    it accepts more spellings). Values either accepts are parsed to the same float as
    Python's ``float`` (tests/test_dicom_contour_parse.py checks both against pydicom)."""
    from ..kernels.text import parse_decimals

    fast = parse_decimals(text, n_values)
    if fast is not None:
        return fast
    try:
        values = np.fromstring(text.decode("latin-1"), sep="\\")
    except (ValueError, DeprecationWarning):  # numpy >= 2.3 raises; older ones warn
        return None
    return values if values.size == n_values else None


def _contour_values(contour: Dataset, path, roi_name: str) -> np.ndarray | None:
    """ContourData as float64, parsed from the raw bytes when pydicom has not converted it
    yet: its DSfloat objects cost ~460 bytes per value, numpy 8. The point count is checked
    before anything is converted (:data:`MAX_CONTOUR_POINTS`)."""
    if CONTOUR_DATA_TAG not in contour:
        return None
    if isinstance(contour, RawDataset):  # the fast path: the value bytes, never converted
        raw = contour.raw(CONTOUR_DATA_TAG)
    else:
        from pydicom.dataelem import RawDataElement

        elem = contour.get_item(CONTOUR_DATA_TAG)
        raw = elem.value if isinstance(elem, RawDataElement) else None
    if isinstance(raw, bytes):
        n_values = raw.count(b"\\") + 1 if raw.strip(b" \x00") else 0
    else:
        value = contour.get("ContourData", None)
        n_values = 0 if value is None else len(value) if hasattr(value, "__len__") else 1
    if n_values > 3 * MAX_CONTOUR_POINTS:
        raise DicomInputError(
            f"ROI {roi_name!r}: a contour has about {n_values // 3} points, more than the "
            f"{MAX_CONTOUR_POINTS} accepted per contour; the structure set is damaged or "
            "oversampled. Re-export it with fewer points.",
            path=path,
        )
    if isinstance(raw, bytes):
        text = raw.strip(b" \x00")
        if not text:
            return np.zeros(0)
        values = _parse_ds_bytes(text, n_values)
        try:
            if values is None:  # not plain numbers: float() names what is wrong
                values = np.array(text.split(b"\\")).astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            raise DicomInputError(
                f"ROI {roi_name!r}: ContourData holds a value that is not a number; the "
                "structure set is damaged. Re-export it.",
                path=path,
            ) from None
        if not np.all(np.isfinite(values)):
            raise DicomInputError(
                f"ROI {roi_name!r}: ContourData holds NaN or infinite values.", path=path
            )
        return values
    return as_floats(contour.get("ContourData", None), "ContourData", path)


def _raw_ascii(ds: Dataset, tag: int, vr: str) -> str | None:
    """A one-valued text element read from its raw bytes, stripped of spaces, when it is
    plain printable ASCII of its dictionary VR ``vr`` (or of no stated VR: implicit VR);
    ``None`` otherwise (absent, already converted, another VR, several values, NUL or
    non-ASCII bytes): the caller then asks pydicom, whose checks and errors apply.

    Each contour has a ContourGeometricType and a NumberOfContourPoints: pydicom's
    conversion of these two took half of the structure set's reading time (the demo's
    1,244 contours), for values that are a word and a number."""
    if isinstance(ds, RawDataset):  # the fast path checked the VR against the dictionary's
        raw = ds.raw(tag)
        if raw is None:
            return None
    else:
        from pydicom.dataelem import RawDataElement

        elem = ds.get_item(tag, keep_deferred=True)  # never converts nor reads a deferred value
        if not isinstance(elem, RawDataElement) or not isinstance(elem.value, bytes):
            return None
        if elem.VR not in (None, vr):  # e.g. a binary US in a damaged file: pydicom decides
            return None
        raw = elem.value
    if not raw.isascii() or b"\\" in raw:
        return None
    text = raw.decode("ascii").strip(" ")
    return text if text and text.isprintable() else None


def _geometric_type(contour: Dataset) -> str:
    """ContourGeometricType, upper case ('' when absent); :func:`ds_str` when not plain."""
    text = _raw_ascii(contour, GEOMETRIC_TYPE_TAG, "CS")
    return (text if text is not None else ds_str(contour, "ContourGeometricType")).upper()


def _n_points(contour: Dataset, path) -> int | None:
    """NumberOfContourPoints; :func:`ds_int` (its checks and errors) when not plain digits."""
    text = _raw_ascii(contour, N_POINTS_TAG, "IS")
    if text is not None and text.isdigit():
        return int(text)
    return ds_int(contour, "NumberOfContourPoints", path=path)


def _contour_points(contour: Dataset, path, roi_name: str) -> np.ndarray:
    values = _contour_values(contour, path, roi_name)
    if values is None:
        return np.zeros((0, 3))
    check_coordinates(values, f"ROI {roi_name!r} ContourData", path)
    _check_point_count(values.size, _n_points(contour, path), roi_name, path)
    return values.reshape(-1, 3)


def _check_point_count(n_values: int, n_points: int | None, roi_name: str, path) -> None:
    if n_values % 3 or (n_points is not None and n_values != 3 * n_points):
        raise DicomInputError(
            f"ROI {roi_name!r}: ContourData has {n_values} values for NumberOfContourPoints "
            f"{n_points}; the structure set is truncated or damaged. Re-export it.",
            path=path,
        )


#: Values parsed per call when a structure set's ContourData is parsed together.
_PARSE_PIECE_VALUES = 1 << 20


def _plain_contours(items: list, path) -> dict[int, tuple]:
    """The fast path's contours, parsed together: ``{id(contour): (kind, values, n_points,
    closed, flat, simple)}`` for every contour of ``items`` (the ROIContourSequence items of
    the ROIs, in order; ``None`` for an ROI without one).

    All the plain ContourData of the structure set (numbers only, finite, within
    ``MAX_ABS_COORDINATE_MM``, point counts within the limits) is parsed in one call, and the
    checks that only pass or refuse are screened for all contours at once: ``closed`` is the
    per-contour closing-vertex test itself; ``flat`` means the contour's z range is within
    PLANE_TOLERANCE_MM, ``simple`` that it folds fewer than half MAX_CONTOUR_FOLDS times (both
    with all points, so they hold for the points kept). ``values`` is ``None`` when the
    structure set is not plain: every contour then goes through :func:`_contour_points` in
    the loop, which raises the error where the loop meets it, as on the pydicom path.
    """
    out: dict[int, tuple] = {}
    texts: list[bytes] = []
    owners: list = []
    counts: list[int] = []
    n_points: list = []
    for item in items:
        if item is None or "ContourSequence" not in item:
            continue
        for contour in ds_items(item, "ContourSequence", path=path):
            kind = _geometric_type(contour)
            out[id(contour)] = (kind, None, None, False, False, False)
            if kind != "CLOSED_PLANAR":
                continue
            raw = contour.raw(CONTOUR_DATA_TAG)
            text = raw.strip(b" \x00") if raw is not None else b""
            count = text.count(b"\\") + 1 if text else 0
            if count == 0 or count % 3 or count > 3 * MAX_CONTOUR_POINTS:
                continue  # the loop reads it one by one (and names what is wrong)
            texts.append(text)
            owners.append(contour)
            counts.append(count)
            n_points.append(_n_points(contour, path))
    total = sum(counts)
    if not texts or total > 3 * MAX_STRUCTURE_SET_POINTS:
        return out
    # parsed in pieces of about _PARSE_PIECE_VALUES into one array: the joined text and its
    # str stay small whatever the size of the structure set
    values = np.empty(total)
    done = first = 0
    while first < len(texts):
        last, piece = first, 0
        while last < len(texts) and (piece == 0 or piece + counts[last] <= _PARSE_PIECE_VALUES):
            piece += counts[last]
            last += 1
        parsed = _parse_ds_bytes(b"\\".join(texts[first:last]), piece)
        if parsed is None:
            return out
        values[done:done + piece] = parsed
        done += piece
        first = last
    if not np.all(np.isfinite(values)):
        return out
    if float(np.max(np.abs(values))) > MAX_ABS_COORDINATE_MM:
        return out
    points = values.reshape(-1, 3)
    sizes = np.asarray(counts, dtype=np.int64) // 3
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ends = starts + sizes
    closed = (sizes > 1) & (np.abs(points[starts] - points[ends - 1]).max(axis=1) <= 1e-9)
    z = points[:, 2]
    flat = np.maximum.reduceat(z, starts) - np.minimum.reduceat(z, starts) <= PLANE_TOLERANCE_MM
    folds = np.zeros(len(sizes))
    wide = np.ones(len(sizes), dtype=bool)
    for axis in (0, 1):
        column = points[:, axis]
        extent = np.maximum.reduceat(column, starts) - np.minimum.reduceat(column, starts)
        steps = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(column)))])
        travel = steps[ends - 1] - steps[starts] + np.abs(column[starts] - column[ends - 1])
        has_extent = extent > 0
        wide &= ~has_extent | (extent > 1e-6)  # below, removing a vertex could change it much
        ratio = np.divide(travel, 2 * extent, out=np.zeros_like(travel), where=has_extent)
        folds = np.maximum(folds, ratio)
    simple = wide & (folds <= MAX_CONTOUR_FOLDS / 2)
    for k, contour in enumerate(owners):
        out[id(contour)] = ("CLOSED_PLANAR", values[3 * starts[k]:3 * ends[k]], n_points[k],
                            bool(closed[k]), bool(flat[k]), bool(simple[k]))
    return out


def read_structures(
    ds: Dataset,
    path: str | Path,
    warnings: list[str] | None = None,
    *,
    slice_thickness_mm: float | None = None,
) -> list[Structure]:
    """Every ROI of a structure set, in StructureSetROISequence order.

    Parameters
    ----------
    ds : Dataset
        The RTSTRUCT (read without pixels; it has none).
    path : str or Path
        Its file, named in warnings and errors.
    warnings : list of str, optional
        Receives one message per ROI for skipped contours and empty ROIs.
    slice_thickness_mm : float, optional
        Plane spacing to record on every structure (the CT slice spacing when a CT series is
        present). When ``None``, each structure gets the modal spacing between its own
        consecutive contour planes; a structure with one plane gets the modal spacing over all
        ROIs of the set (``None`` if no ROI has two planes).

    Returns
    -------
    list of Structure
        Polygons as float64 ``(N, 2)`` arrays of (x, y) in mm, grouped into planes of equal z
        (tolerance 0.01 mm), planes ascending. A repeated closing vertex is dropped, and so is
        an exact repeat of a polygon on its plane (warned). ROIs with no usable contour are
        returned with no planes. ROIs sharing one name are renamed ``NAME [ROI n]`` (warned).

    Raises
    ------
    GeometryError
        A CLOSED_PLANAR contour whose points do not share one z (non-axial contour).
    DicomInputError
        No StructureSetROISequence, two ROIs with one ROINumber, two ROIContourSequence items
        for one ROI, a contour with more than :data:`MAX_CONTOUR_FOLDS` folds, ContourData
        inconsistent with NumberOfContourPoints, malformed elements, or more points than :data:`MAX_CONTOUR_POINTS` per contour or
        :data:`MAX_STRUCTURE_SET_POINTS` in all.
    """
    with malformed_as_input_error(path, "RTSTRUCT"):
        return _read_structures(
            ds, path, warnings if warnings is not None else [], slice_thickness_mm
        )


def _read_structures(
    ds: Dataset, path, warnings: list[str], slice_thickness_mm: float | None
) -> list[Structure]:
    name = display_name(path)
    if "StructureSetROISequence" not in ds:
        raise DicomInputError(
            "RTSTRUCT has no StructureSetROISequence (3006,0020); it lists no ROIs.", path=path
        )
    rois = ds_items(ds, "StructureSetROISequence", path=path)
    # A truncated file still parses: pydicom stops at the end of the data. Items that lost
    # their required ROI number are the tell-tale sign (it follows ContourSequence in an item).
    for seq_name, keyword in (
        ("StructureSetROISequence", "ROINumber"),
        ("ROIContourSequence", "ReferencedROINumber"),
        ("RTROIObservationsSequence", "ReferencedROINumber"),
    ):
        for n, item in enumerate(ds_items(ds, seq_name, path=path), start=1):
            if ds_int(item, keyword, path=path) is None:
                raise DicomInputError(
                    f"{seq_name} item {n} has no {keyword}; the structure set is truncated or "
                    "damaged. Re-export it from the planning system.",
                    path=path,
                )
    if "RTROIObservationsSequence" not in ds:
        warnings.append(
            f"{name}: RTSTRUCT has no RTROIObservationsSequence; ROI types are unknown."
        )
    roi_types: dict[int, str] = {}
    for obs in ds_items(ds, "RTROIObservationsSequence", path=path):
        roi_types[ds_int(obs, "ReferencedROINumber", path=path)] = ds_str(
            obs, "RTROIInterpretedType"
        ).upper()
    _refuse_duplicate_numbers(rois, path)
    contours_by_roi: dict[int, Dataset] = {}
    for item in ds_items(ds, "ROIContourSequence", path=path):
        number = ds_int(item, "ReferencedROINumber", path=path)
        if number in contours_by_roi:
            roi_name = next(
                (ds_str(r, "ROIName") for r in rois if ds_int(r, "ROINumber", path=path) == number),
                "",
            )
            raise DicomInputError(
                f"ROIContourSequence has two items for ROI number {number} ({roi_name!r}); "
                "which geometry is meant cannot be told. Re-export the structure set.",
                path=path,
            )
        contours_by_roi[number] = item

    batch = None
    if isinstance(ds, RawDataset):
        batch = _plain_contours(
            [contours_by_roi.get(ds_int(roi, "ROINumber", path=path)) for roi in rois], path
        )
    structures: list[Structure] = []
    total_points = 0
    for roi in rois:
        number = ds_int(roi, "ROINumber", path=path)
        roi_name = ds_str(roi, "ROIName")
        item = contours_by_roi.get(number)
        planes: dict[float, list[np.ndarray]] = {}
        skipped: Counter[str] = Counter()
        contour_seq = None
        if item is not None and "ContourSequence" in item:
            contour_seq = ds_items(item, "ContourSequence", path=path)
        for contour in contour_seq or []:
            plain = batch.get(id(contour)) if batch is not None else None
            kind = plain[0] if plain is not None else _geometric_type(contour)
            if kind != "CLOSED_PLANAR":
                skipped[kind or "no ContourGeometricType"] += 1
                continue
            if plain is not None and plain[1] is not None:
                _, points, n_points, closed, flat, simple = plain
                _check_point_count(points.size, n_points, roi_name, path)
                points = points.reshape(-1, 3)
            else:
                points = _contour_points(contour, path, roi_name)
                closed = len(points) > 1 and float(np.abs(points[0] - points[-1]).max()) <= 1e-9
                flat = simple = False
            total_points += len(points)
            if total_points > MAX_STRUCTURE_SET_POINTS:
                raise DicomInputError(
                    f"the structure set has more than {MAX_STRUCTURE_SET_POINTS} contour "
                    "points; it is damaged or oversampled. Re-export it with fewer points.",
                    path=path,
                )
            if closed:
                points = points[:-1]
            if len(points) < 3:
                skipped["fewer than 3 points"] += 1
                continue
            z = points[:, 2]
            if not flat and z.max() - z.min() > PLANE_TOLERANCE_MM:
                raise GeometryError(
                    f"ROI {roi_name!r}: a CLOSED_PLANAR contour spans z {z.min():g} to "
                    f"{z.max():g} mm; it is not on an axial plane. Non-axial contours cannot "
                    "be evaluated: recontour the ROI on axial slices.",
                    path=path,
                )
            folds = 0.0 if simple else contour_folds(points[:, :2])
            if folds > MAX_CONTOUR_FOLDS:
                raise DicomInputError(
                    f"ROI {roi_name!r}: a contour of {len(points)} points on z {z.mean():g} mm "
                    f"folds back on itself {folds:.0f} times (a line through it crosses it "
                    f"about {2 * folds:.0f} times; at most {2 * MAX_CONTOUR_FOLDS:.0f} are "
                    "accepted, clinical contours have under 4): the contour is damaged or "
                    "not a volume outline. Re-export or recontour the ROI.",
                    path=path,
                )
            planes.setdefault(float(z.mean()), []).append(
                np.ascontiguousarray(points[:, :2], dtype=np.float64)
            )
        plane_z, polygons = _merge_planes(planes)
        repeated = _drop_repeated_contours(plane_z, polygons)
        if repeated:
            shown = ", ".join(f"{z:g}" for z in repeated[:5]) + (" ..." if len(repeated) > 5 else "")
            warnings.append(
                f"{name}: ROI {roi_name!r} (ROI number {number}): a contour is repeated on "
                f"{len(repeated)} plane(s) (z = {shown} mm); the copies are dropped (kept, "
                "they would cancel out as a hole under the even-odd rule)."
            )
        for kind, count in sorted(skipped.items()):
            warnings.append(
                f"{name}: ROI {roi_name!r}: {count} {kind} contour(s) skipped (only closed "
                "planar polygons describe a volume)."
            )
        if not plane_z.size:
            if contour_seq is None:
                why = "has no contours (empty ROI)"
            else:
                why = "has no usable closed planar contour"
            warnings.append(f"{name}: ROI {roi_name!r} {why}; it has no volume.")
        structures.append(
            Structure(
                roi_number=number,
                name=roi_name,
                roi_type=roi_types.get(number, ""),
                plane_z_mm=plane_z,
                polygons=polygons,
                color=_color(item) if item is not None else None,
            )
        )
    for number in sorted(set(contours_by_roi) - {s.roi_number for s in structures}):
        warnings.append(
            f"{name}: ROIContourSequence has contours for ROI number {number}, which is not in "
            "StructureSetROISequence; they are ignored."
        )

    _disambiguate_names(structures, name, warnings)
    if slice_thickness_mm is not None:
        for structure in structures:
            structure.slice_thickness_mm = slice_thickness_mm
        return structures
    # No CT: each structure's slab is its own plane spacing (a PTV contoured every 1 mm must
    # not halve the slabs of a cord contoured every 2 mm); a one-plane structure takes the
    # set's modal spacing.
    common = modal_plane_spacing(structures)
    for structure in structures:
        own = modal_plane_spacing([structure])
        structure.slice_thickness_mm = own if own is not None else common
    return structures


def _refuse_duplicate_numbers(rois: list[Dataset], path) -> None:
    """Two StructureSetROISequence items with one ROINumber: the contours, type and colour
    of either could be the other's, so the structure set is refused."""
    seen: dict[int, str] = {}
    for roi in rois:
        number = ds_int(roi, "ROINumber", path=path)
        roi_name = ds_str(roi, "ROIName")
        if number in seen:
            raise DicomInputError(
                f"ROI number {number} is used by two ROIs, {seen[number]!r} and {roi_name!r}; "
                "their contours cannot be told apart. Re-export the structure set.",
                path=path,
            )
        seen[number] = roi_name


def _disambiguate_names(structures: list[Structure], name: str, warnings: list[str]) -> None:
    """Structures sharing one ROIName are renamed ``NAME [ROI n]`` (all of them): a lookup by
    name must never pick one of them silently, and under the new names neither matches a
    constraint until it is renamed or mapped (``--map 'NAME [ROI n]=TG263'``)."""
    groups: dict[str, list[Structure]] = {}
    for structure in structures:
        groups.setdefault(structure.name, []).append(structure)
    taken = {s.name for s in structures}
    for roi_name, group in groups.items():
        if len(group) < 2:
            continue
        renamed = []
        for structure in group:
            new_name = f"{roi_name} [ROI {structure.roi_number}]"
            while new_name in taken:
                new_name += "'"
            taken.add(new_name)
            structure.name = new_name
            renamed.append(new_name)
        numbers = " and ".join(str(s.roi_number) for s in group)
        warnings.append(
            f"{name}: ROI name {roi_name!r} is used by ROI numbers {numbers}; they are kept "
            f"apart as {', '.join(repr(n) for n in renamed)} and none of them is evaluated "
            "against a constraint until it is renamed in the planning system or mapped "
            "(--map 'NAME [ROI n]=TG263 name')."
        )


def _drop_repeated_contours(plane_z: np.ndarray, polygons: list[list[np.ndarray]]) -> list[float]:
    """Drop exact repeats of a polygon on its plane (same vertices to 1 µm, any start or
    direction); returns the z of every plane that had one."""
    repeated: list[float] = []
    for z, plane in zip(plane_z, polygons):
        if len(plane) < 2:
            continue
        seen: set[bytes] = set()
        kept = []
        sizes = Counter(len(polygon) for polygon in plane)
        for polygon in plane:
            if sizes[len(polygon)] < 2:  # a repeat has as many vertices: none on this plane
                kept.append(polygon)
                continue
            rounded = np.round(polygon, 3)
            key = rounded[np.lexsort(rounded.T[::-1])].tobytes()
            if key in seen:
                continue
            seen.add(key)
            kept.append(polygon)
        if len(kept) < len(plane):
            plane[:] = kept
            repeated.append(float(z))
    return repeated


def contour_folds(points_xy: np.ndarray) -> float:
    """Folds of a closed polygon ``(N, 2)`` in mm: the larger over x and y of Σ|Δ| along the
    closed outline divided by twice the extent (1 for a convex polygon; see
    :data:`MAX_CONTOUR_FOLDS`)."""
    folds = 0.0
    for axis in (0, 1):
        values = points_xy[:, axis]
        extent = float(values.max() - values.min())
        if extent > 0:
            travel = float(np.abs(np.diff(values)).sum() + abs(values[0] - values[-1]))
            folds = max(folds, travel / (2 * extent))
    return folds


def _merge_planes(planes: dict[float, list[np.ndarray]]) -> tuple[np.ndarray, list]:
    """Merge plane keys closer than PLANE_TOLERANCE_MM; planes ascending."""
    plane_z: list[float] = []
    polygons: list[list[np.ndarray]] = []
    for z in sorted(planes):
        if plane_z and z - plane_z[-1] <= PLANE_TOLERANCE_MM:
            polygons[-1].extend(planes[z])
        else:
            plane_z.append(z)
            polygons.append(list(planes[z]))
    return np.asarray(plane_z, dtype=np.float64), polygons


def modal_plane_spacing(structures: list[Structure]) -> float | None:
    """Most common spacing (mm, to 0.01 mm) between consecutive planes over all structures.

    Returns ``None`` when no structure has two planes.
    """
    steps: Counter[float] = Counter()
    for structure in structures:
        for step in np.diff(structure.plane_z_mm):
            steps[round(float(step), 2)] += 1
    if not steps:
        return None
    best = max(steps.values())
    # Ties go to the smallest spacing: the finer sampling is the one the contours were drawn on.
    return min(step for step, count in steps.items() if count == best)
