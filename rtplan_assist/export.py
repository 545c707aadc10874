"""DICOM export: an EQD2 dose as RTDOSE, derived structures as RTSTRUCT.

Both files are new instances in the patient's existing study and frame of reference, so a
treatment planning system (TPS) can import them next to the planning CT. They are written
atomically (:mod:`rtplan_assist.outputs`); input files are only read.

RTDOSE (:func:`write_eqd2_rtdose`)
    DoseType ``EFFECTIVE`` (radiobiologically weighted dose; DICOM CP-2379), DoseUnits ``GY``,
    DoseSummationType ``MULTI_PLAN`` for a composite of several plans or ``PLAN`` for one
    lesion's converted dose, ReferencedRTPlanSequence listing the source plans, DoseComment
    stating model and α/β. Pixels are uint32 with ``DoseGridScaling`` chosen so that the
    maximum fits: the scaling is formatted to a DICOM DS string first and the value actually
    written is the one used for quantisation, and pixel values are clipped before casting, so
    the peak voxel can never wrap to 0. Every voxel reads back within ``DoseGridScaling / 2``.

RTSTRUCT (:func:`write_derived_rtstruct`)
    The dataset skeleton (patient and study modules copied from the CT, referenced frame of
    reference with every CT slice) comes from rt-utils ``RTStructBuilder.create_new``, run on
    a folder holding links to the CT slices only (rt-utils otherwise takes any file with
    pixel data, RTDOSE included, for a slice: rt-utils #51). The contours are ours: marching
    squares at occupancy 0.5 on each CT plane (contourpy, shipped with matplotlib), which puts
    them on the voxel *edges* (corners cut by half a voxel diagonal). A voxel-centre reader
    therefore gets the mask back; rt-utils 1.2.7's own ``add_roi`` traces the boundary voxel
    centres instead, which shrinks every ROI by half a voxel (-15 % on a 2 cm GTV at 1.5 mm
    pixels).

De-identified export (``deidentify=True``, ``export-dose|export-structures --deidentify``)
    :func:`rtplan_assist.deidentify.deidentify_dataset`: PatientID replaced by the patient key
    (``p-`` + 8 hex of its SHA-256), name, birth date, sex and other demographics emptied or
    removed, PatientIdentityRemoved ``YES``, DeidentificationMethod set, every other text
    element scrubbed. UIDs (study, frame of reference, referenced plans and CT slices) are
    kept, so the object still lines up with the planning CT; but it no longer matches the
    patient in a TPS (a different PatientID), which will refuse it or file it as another
    patient.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RTDoseStorage, RTPlanStorage, generate_uid

from . import __version__
from .deidentify import Identifiers, deidentify_dataset
from .errors import EvaluationError, GeometryError
from .model import Case, Grid
from .names import normalise_name
from .outputs import atomic_write_bytes
from .structures import occupancy

__all__ = [
    "UINT32_MAX",
    "derived_structures",
    "dose_grid_scaling",
    "write_derived_rtstruct",
    "write_eqd2_rtdose",
]

UINT32_MAX = 2**32 - 1
_LO_MAX = 64  # DICOM LO value length (DoseComment, SeriesDescription, ROIName)
_PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "OtherPatientIDs", "PatientIdentityRemoved", "DeidentificationMethod",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription", "SpecificCharacterSet",
)


# =============================================================================================
# RTDOSE
# =============================================================================================


def dose_grid_scaling(max_gy: float) -> tuple[str, float]:
    """DoseGridScaling for uint32 pixels holding doses up to ``max_gy``.

    Returns
    -------
    (text, value)
        The DS string to write (at most 16 characters) and its value as read back; the value
        is at least ``max_gy / (2**32 - 1)``, so ``round(max_gy / value)`` fits in uint32.
        For an all-zero dose the scaling is 1e-6 Gy.
    """
    if not math.isfinite(max_gy) or max_gy < 0:
        raise ValueError(f"maximum dose must be finite and non-negative, got {max_gy!r}")
    if max_gy == 0:
        return "1e-06", 1e-06
    target = max_gy / UINT32_MAX
    # 7 significant digits fit DS's 16 characters ("1.234567e-08"); round the mantissa up
    exponent = math.floor(math.log10(target))
    mantissa = math.ceil(target / 10.0**exponent * 1e6) / 1e6
    text = f"{mantissa:.6f}e{exponent:+03d}".replace("e+", "e").rstrip()
    value = float(text)
    while max_gy / value > UINT32_MAX:  # float round-off in the formatting: one more ulp
        mantissa += 1e-6
        text = f"{mantissa:.6f}e{exponent:+03d}".replace("e+", "e")
        value = float(text)
    if len(text) > 16:
        raise AssertionError(f"DS {text!r} longer than 16 characters")
    return text, value


def _source_header(case: Case) -> Dataset:
    """Header (no pixels) of a file of the case carrying the patient and study modules."""
    candidates = [case.structure_set_path] + [d.path for d in case.doses] + [
        p.path for p in case.plans
    ]
    if case.ct is not None:
        candidates += case.ct.paths[:1]
    for path in candidates:
        if path and os.path.isfile(path):
            return pydicom.dcmread(path, stop_before_pixels=True)
    raise EvaluationError(
        "no source DICOM file of the case is readable to copy the patient and study from.",
        path=case.folder,
    )


def _copy_patient_study(src: Dataset, ds: Dataset, case: Case) -> None:
    for keyword in _PATIENT_STUDY_KEYWORDS:
        if keyword in src:
            setattr(ds, keyword, src[keyword].value)
    ds.PatientName = src.get("PatientName", case.patient_name)
    ds.PatientID = src.get("PatientID", case.patient_id)
    ds.StudyInstanceUID = case.study_instance_uid or src.get("StudyInstanceUID")
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                    "AccessionNumber", "ReferringPhysicianName"):
        if keyword not in ds:  # type 2 in the RT Dose IOD: present, possibly empty
            setattr(ds, keyword, "")


def _check_lo(what: str, text: str) -> str:
    if len(text) > _LO_MAX:
        raise ValueError(f"{what} is {len(text)} characters; DICOM LO allows {_LO_MAX}: {text!r}")
    if not text.isascii():
        raise ValueError(f"{what} must be ASCII (write a/b for alpha/beta): {text!r}")
    return text


def _to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_eqd2_rtdose(
    case: Case,
    grid: Grid,
    eqd2_gy: np.ndarray,
    path: str | os.PathLike,
    *,
    model_note: str,
    referenced_plans: Iterable[str],
    summation_type: str = "MULTI_PLAN",
    series_description: str | None = None,
    deidentify: bool = False,
) -> Dataset:
    """Write an EQD2 (or BED) dose distribution as a TPS-importable RTDOSE.

    Parameters
    ----------
    case : Case
        The patient; its study, frame of reference and patient module are reused.
    grid : Grid
        Geometry of ``eqd2_gy`` (ascending axes, as every grid in the case model). Written as
        HFS-oriented axial frames (ImageOrientationPatient ``1\\0\\0\\0\\1\\0``) whose
        ImagePositionPatient is ``grid.origin``; the patient coordinates of every voxel are
        the grid's whatever the patient position of the CT. Non-uniform plane spacing is kept
        through the relative GridFrameOffsetVector.
    eqd2_gy : (nz, ny, nx) float array
        Dose in Gy (EQD2), finite and non-negative (values above -1e-6 Gy are clipped to 0).
    path : output file, written atomically.
    model_note : str
        DoseComment (DICOM LO: at most 64 ASCII characters), e.g.
        ``"EQD2 voxel-wise LQ, a/b=3 Gy for all voxels"``: say which α/β every voxel used.
    referenced_plans : iterable of str
        SOPInstanceUIDs of the RTPLANs whose doses were converted (ReferencedRTPlanSequence).
    summation_type : {"MULTI_PLAN", "PLAN"}
        ``MULTI_PLAN`` for a composite of several plans, ``PLAN`` for one converted plan.
    series_description : str, optional
        SeriesDescription (LO); defaults to ``model_note``.
    deidentify : bool
        Replace the PatientID by its key and remove the name and demographics (module
        docstring); the file then no longer matches the patient in a TPS.

    Returns
    -------
    Dataset
        The dataset written (pixel data included).

    Raises
    ------
    ValueError
        Shape mismatch, non-finite or negative dose, a note that is not valid LO, no plan.
    """
    eqd2 = np.asarray(eqd2_gy, dtype=np.float64)
    if eqd2.shape != tuple(grid.shape):
        raise ValueError(f"dose shape {eqd2.shape} does not match the grid {grid.shape}")
    if not np.all(np.isfinite(eqd2)):
        raise ValueError(
            f"{int(np.sum(~np.isfinite(eqd2)))} voxels are not finite (NaN where a lesion dose "
            "grid does not cover?); a TPS dose cannot say 'unknown': restrict to covered voxels"
        )
    if eqd2.size and eqd2.min() < -1e-6:
        raise ValueError(f"negative dose {eqd2.min():g} Gy")
    plans = list(dict.fromkeys(referenced_plans))
    if not plans:
        raise ValueError("an EFFECTIVE MULTI_PLAN/PLAN dose must reference its RT plans")
    if summation_type not in ("MULTI_PLAN", "PLAN"):
        raise ValueError(f"summation type {summation_type!r}: use MULTI_PLAN or PLAN")
    model_note = _check_lo("DoseComment", model_note)
    series_description = _check_lo("SeriesDescription", series_description or model_note)
    nz, ny, nx = grid.shape

    scaling_text, scaling = dose_grid_scaling(float(eqd2.max()) if eqd2.size else 0.0)
    pixels = np.clip(np.rint(np.clip(eqd2, 0.0, None) / scaling), 0, UINT32_MAX).astype("<u4")

    src = _source_header(case)
    now = _dt.datetime.now()
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTDoseStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = f"RTPA_{__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    _copy_patient_study(src, ds, case)
    ds.SOPClassUID = RTDoseStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 9001
    ds.InstanceNumber = 1
    ds.SeriesDescription = series_description
    ds.FrameOfReferenceUID = case.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "rtplan-assist"
    ds.ManufacturerModelName = "rtplan-assist"
    ds.SoftwareVersions = __version__
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    # image plane and pixels (ascending axes written as HFS rows/columns)
    ds.ImagePositionPatient = [_ds(v) for v in (grid.origin[0], grid.origin[1], grid.z_mm[0])]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [_ds(grid.spacing[1]), _ds(grid.spacing[0])]  # [row (y), column (x)]
    ds.SliceThickness = _ds(grid.spacing[2])
    ds.GridFrameOffsetVector = [_ds(z - grid.z_mm[0]) for z in grid.z_mm]
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x3004, 0x000C)
    ds.NumberOfFrames = nz
    ds.Rows, ds.Columns = ny, nx
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    # RT dose module
    ds.DoseUnits = "GY"
    ds.DoseType = "EFFECTIVE"
    ds.DoseSummationType = summation_type
    ds.DoseComment = model_note
    ds.DoseGridScaling = scaling_text
    ds.TissueHeterogeneityCorrection = ["IMAGE"]
    refs = Sequence()
    for uid in plans:
        item = Dataset()
        item.ReferencedSOPClassUID = RTPlanStorage
        item.ReferencedSOPInstanceUID = uid
        refs.append(item)
    ds.ReferencedRTPlanSequence = refs
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    if deidentify:
        deidentify_dataset(ds, Identifiers.of_case(case))

    atomic_write_bytes(path, _to_bytes(ds))
    return ds


def _ds(value: float) -> str:
    """DS text (max 16 characters) for a coordinate or spacing in mm."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if len(text) > 16:
        text = f"{float(value):.9e}"[:16]
    return text


# =============================================================================================
# Derived structures
# =============================================================================================


def _is_gtv(structure) -> bool:
    name = normalise_name(structure.name)
    return structure.roi_type.upper() == "GTV" or name.startswith(("gtv", "igtv", "itv"))


def _find(case: Case, *normalised: str):
    for s in case.structures:
        if normalise_name(s.name) in normalised and not s.is_empty:
            return s
    return None


def _mask_on(structure, grid: Grid) -> np.ndarray:
    return occupancy(structure, grid).full() >= 0.5


def _expand(mask: np.ndarray, margin_mm: float, spacing_zyx: tuple[float, float, float]):
    """Voxels whose centre lies within ``margin_mm`` of the *edge* of ``mask``.

    The mask's surface runs along voxel edges, so the distance is taken from each voxel
    centre to the box of its nearest mask voxel (Euclidean, per-axis gap = centre distance
    minus half a voxel), not to that voxel's centre, which would shrink every expansion by
    about half a voxel (-10 % in volume for a 5 mm cord PRV on 1.5 mm pixels).
    """
    from scipy import ndimage

    if margin_mm <= 0 or not mask.any():
        return mask.copy()
    pad = [math.ceil(margin_mm / s) + 1 for s in spacing_zyx]
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = mask[box]
    _, nearest = ndimage.distance_transform_edt(~sub, sampling=spacing_zyx,
                                                return_distances=True, return_indices=True)
    gap_sq = np.zeros(sub.shape)
    for axis, step in enumerate(spacing_zyx):
        here = np.arange(sub.shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
        gap = np.maximum(np.abs(nearest[axis] - here) * step - step / 2, 0.0)
        gap_sq += gap * gap
    out = np.zeros_like(mask)
    out[box] = sub | (gap_sq <= (margin_mm + 1e-6) ** 2)
    return out


def derived_structures(
    case: Case,
    *,
    grid: Grid | None = None,
    ring_mm: tuple[float, float] | None = (2.0, 20.0),
    prv_margins_mm: Mapping[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Derived structures on the CT grid, as boolean masks (occupancy >= 0.5 per voxel).

    * ``Lungs-GTVs``: the lungs (``Lungs``, else ``Lung_L`` ∪ ``Lung_R``) minus every GTV
      (interpreted type GTV or a name starting GTV/ITV/IGTV);
    * ``<PTV>_Ring``: per target PTV, the shell from ``ring_mm[0]`` to ``ring_mm[1]`` mm
      outside it (dose fall-off control), cut to the External when there is one;
    * ``<OAR>_PRV<mm>``: each OAR of ``prv_margins_mm`` (ROI name → margin in mm) expanded
      isotropically; default: the spinal cord (any ROI named ``SpinalCord``/``Spinal Cord``/
      ``Cord``) by 5 mm, TG-263 style ``SpinalCord_PRV05``.

    Expansions are Euclidean distances from voxel centres to the mask's voxel-edge surface on
    the CT grid (scipy ``distance_transform_edt`` with the voxel spacing and feature indices).

    Returns
    -------
    (masks, notes)
        ``masks`` maps ROI name to a (nz, ny, nx) bool array on ``grid`` (default: the CT
        grid); ``notes`` says what was skipped and why.
    """
    if grid is None:
        if case.ct is None:
            raise EvaluationError(
                "derived structures are drawn on the planning CT, and this case has no "
                "usable CT series.", path=case.folder,
            )
        grid = case.ct.grid
    spacing_zyx = (float(grid.spacing[2]), float(grid.spacing[1]), float(grid.spacing[0]))
    masks: dict[str, np.ndarray] = {}
    notes: list[str] = []
    gtvs = [s for s in case.structures if _is_gtv(s) and not s.is_empty]
    gtv_union = np.zeros(grid.shape, dtype=bool)
    for s in gtvs:
        gtv_union |= _mask_on(s, grid)

    lungs = _find(case, "lungs", "lungtotal", "lungsall")
    if lungs is not None:
        lung_mask = _mask_on(lungs, grid)
    else:
        parts = [s for s in (_find(case, "lungl", "llung"), _find(case, "lungr", "rlung")) if s]
        lung_mask = np.zeros(grid.shape, dtype=bool)
        for s in parts:
            lung_mask |= _mask_on(s, grid)
        if not parts:
            lung_mask = None
            notes.append("Lungs-GTVs not written: no Lungs (or Lung_L/Lung_R) structure.")
    if lung_mask is not None:
        masks["Lungs-GTVs"] = lung_mask & ~gtv_union
        if not gtvs:
            notes.append("Lungs-GTVs equals the lungs: no GTV in the structure set.")

    external = _find(case, "external", "body", "skin")
    body = _mask_on(external, grid) if external is not None else None
    if ring_mm is not None:
        inner, outer = ring_mm
        if not 0 <= inner < outer:
            raise ValueError(f"ring from {inner} to {outer} mm: need 0 <= inner < outer")
        targets = [s for s in case.structures
                   if not s.is_empty and (s.roi_type.upper() == "PTV"
                                          or normalise_name(s.name).startswith("ptv"))]
        for s in targets:
            ptv = _mask_on(s, grid)
            ring = _expand(ptv, outer, spacing_zyx) & ~_expand(ptv, inner, spacing_zyx)
            if body is not None:
                ring &= body
            masks[f"{s.name}_Ring{inner:g}-{outer:g}"[:_LO_MAX]] = ring

    if prv_margins_mm is None:
        cord = _find(case, "spinalcord", "cord")
        prv_margins_mm = {cord.name: 5.0} if cord is not None else {}
    for name, margin in prv_margins_mm.items():
        try:
            oar = case.structure(name)
        except KeyError:
            raise EvaluationError(
                f"no structure {name!r} for a PRV; structures: "
                + ", ".join(s.name for s in case.structures), path=case.folder,
            ) from None
        label = "SpinalCord" if normalise_name(name) in ("spinalcord", "cord") else (
            "".join(ch for ch in name if ch.isalnum() or ch in "_-"))
        masks[f"{label}_PRV{margin:02g}"[:_LO_MAX]] = _expand(
            _mask_on(oar, grid), float(margin), spacing_zyx)
    return masks, notes


# =============================================================================================
# RTSTRUCT
# =============================================================================================

_DERIVED_COLORS = ((0, 200, 255), (255, 128, 0), (255, 0, 255), (0, 220, 120), (255, 220, 0),
                   (160, 96, 255), (255, 64, 64), (64, 160, 255))


def _plane_polygons(mask2d: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray) -> list[np.ndarray]:
    """Closed outlines (x, y in mm) of a boolean plane at the voxel edges (marching squares).

    The iso-line 0.5 of the 0/1 image runs through the midpoints between inside and outside
    voxel centres, i.e. along the voxel edges, cutting each convex corner by a quarter-voxel
    triangle. Outer outlines and holes are separate closed loops (even-odd rule).
    """
    import contourpy

    padded = np.pad(mask2d.astype(np.float64), 1)
    dx = x_mm[1] - x_mm[0] if len(x_mm) > 1 else 1.0
    dy = y_mm[1] - y_mm[0] if len(y_mm) > 1 else 1.0
    x = np.concatenate([[x_mm[0] - dx], x_mm, [x_mm[-1] + dx]])
    y = np.concatenate([[y_mm[0] - dy], y_mm, [y_mm[-1] + dy]])
    gen = contourpy.contour_generator(x, y, padded, line_type=contourpy.LineType.Separate,
                                      name="serial")
    loops = []
    for line in gen.lines(0.5):
        if len(line) >= 2 and np.allclose(line[0], line[-1]):
            line = line[:-1]
        if len(line) >= 3:
            loops.append(np.asarray(line, dtype=np.float64))
    return loops


def _ct_headers_folder(case: Case, workdir: Path) -> Path:
    """A folder of links (or copies) to the CT slices only, for rt-utils."""
    folder = workdir / "ct"
    folder.mkdir()
    for i, src in enumerate(case.ct.paths):
        dst = folder / f"{i:05d}.dcm"
        try:
            os.symlink(os.path.abspath(src), dst)
        except OSError:
            import shutil

            shutil.copyfile(src, dst)
    return folder


def write_derived_rtstruct(
    case: Case,
    out_path: str | os.PathLike,
    derived: Mapping[str, np.ndarray],
    *,
    roi_types: Mapping[str, str] | None = None,
    label: str = "DERIVED",
    deidentify: bool = False,
) -> Dataset:
    """Write masks on the CT grid as a new RTSTRUCT referencing the planning CT.

    Parameters
    ----------
    case : Case
        Must have a CT series (``case.ct``) with square pixels and uniform slice spacing
        (rt-utils builds its affine from PixelSpacing[0] and the mean slice step).
    out_path : output file, written atomically.
    derived : mapping of ROI name → (nz, ny, nx) array on ``case.ct.grid``
        Boolean, or fractional occupancy (voxels >= 0.5 are inside). Empty masks are skipped.
    roi_types : mapping of ROI name → RTROIInterpretedType, optional
        Default ``ORGAN`` for names containing ``-`` (e.g. ``Lungs-GTVs``), ``AVOIDANCE``
        for PRVs and ``CONTROL`` otherwise.
    label : StructureSetLabel (SH, 16 characters).
    deidentify : bool
        Replace the PatientID by its key and remove the name and demographics (module
        docstring); the file then no longer matches the patient in a TPS.

    Returns
    -------
    Dataset
        The structure set written. Contours run along the voxel edges (see module docstring),
        one CLOSED_PLANAR contour per outline, each referencing its CT slice.

    Raises
    ------
    EvaluationError
        No CT, non-square pixels, non-uniform slices, or a mask of the wrong shape.
    """
    try:
        from rt_utils import RTStructBuilder
    except ImportError as exc:  # optional extra: it pulls in OpenCV
        raise EvaluationError(
            "writing a derived RTSTRUCT needs rt-utils: pip install 'rtplan-assist[rtutils]'"
        ) from exc

    if case.ct is None:
        raise EvaluationError("a derived RTSTRUCT needs the planning CT series; none loaded.",
                              path=case.folder)
    grid = case.ct.grid
    if abs(grid.spacing[0] - grid.spacing[1]) > 1e-4:
        raise GeometryError(
            f"CT pixels are {grid.spacing[1]:g} x {grid.spacing[0]:g} mm; rt-utils 1.2.7 swaps "
            "row and column spacing (rt-utils #92), so only square pixels are exported.",
            path=case.ct.paths[0],
        )
    if len(grid.z_mm) > 1 and np.ptp(np.diff(grid.z_mm)) > 1e-3:
        raise GeometryError("CT slices are not uniformly spaced; not exported.",
                            path=case.ct.paths[0])
    for name, mask in derived.items():
        if np.shape(mask) != tuple(grid.shape):
            raise EvaluationError(f"mask {name!r} has shape {np.shape(mask)}, the CT grid "
                                  f"{grid.shape}.")

    with tempfile.TemporaryDirectory(prefix="rtpa-ct-") as work:
        rtstruct = RTStructBuilder.create_new(dicom_series_path=str(_ct_headers_folder(
            case, Path(work))))
    ds = rtstruct.ds
    slices = {round(float(s.ImagePositionPatient[2]), 3): s for s in rtstruct.series_data}

    now = _dt.datetime.now()
    ds.Manufacturer = "rtplan-assist"
    ds.ManufacturerModelName = "rtplan-assist"
    ds.InstitutionName = ""
    ds.SoftwareVersions = __version__
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = "rtplan-assist derived"
    ds.SeriesDescription = "rtplan-assist derived structures"
    ds.SeriesNumber = 9002
    ds.InstanceNumber = 1
    ds.StructureSetDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID

    x_mm, y_mm = grid.x_mm, grid.y_mm
    number = 0
    for name, mask in derived.items():
        inside = np.asarray(mask) >= 0.5 if np.asarray(mask).dtype != bool else np.asarray(mask)
        if not inside.any():
            continue
        number += 1
        contours = Sequence()
        for k in np.flatnonzero(inside.any(axis=(1, 2))):
            z = float(grid.z_mm[k])
            ct_slice = slices.get(round(z, 3))
            for loop in _plane_polygons(inside[k], x_mm, y_mm):
                item = Dataset()
                if ct_slice is not None:
                    ref = Dataset()
                    ref.ReferencedSOPClassUID = ct_slice.SOPClassUID
                    ref.ReferencedSOPInstanceUID = ct_slice.SOPInstanceUID
                    item.ContourImageSequence = Sequence([ref])
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(loop)
                xyz = np.column_stack([loop, np.full(len(loop), z)])
                item.ContourData = [f"{v:.3f}" for v in xyz.ravel()]
                contours.append(item)
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = case.frame_of_reference_uid
        roi.ROIName = _check_lo("ROIName", name)
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi.ROIGenerationDescription = "rtplan-assist derived (voxel-edge contours)"
        ds.StructureSetROISequence.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = list(_DERIVED_COLORS[(number - 1) % len(_DERIVED_COLORS)])
        roi_contour.ContourSequence = contours
        ds.ROIContourSequence.append(roi_contour)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        default_type = ("AVOIDANCE" if "_PRV" in name else
                        "ORGAN" if "-" in name and "_Ring" not in name else "CONTROL")
        obs.RTROIInterpretedType = (roi_types or {}).get(name, default_type)
        obs.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(obs)
    if deidentify:
        deidentify_dataset(ds, Identifiers.of_case(case))

    atomic_write_bytes(out_path, _to_bytes(ds))
    return ds
