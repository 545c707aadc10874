"""Fuzz harness: a small evaluable case built in memory, mutations, and a guarded pipeline.

The contract under test (issue 6, part 1): whatever the input, ``load_case`` →
``compute_dvhs`` → ``CaseEvaluator(...).evaluate()`` either returns a sane result or raises a
:class:`~rtplan_assist.errors.RtplanAssistError` subclass; never another exception, never a
hang, never an allocation the input does not back.

* :func:`base_datasets` — RTSTRUCT (PTV, spinal cord, oesophagus), RTDOSE (8 × 10 × 12,
  2 mm, uint32 × 0.001 Gy) and RTPLAN (5 fractions, 40 Gy to the PTV) of one patient: small
  enough that a whole pipeline run takes well under a second once Numba is warm.
* :data:`STRUCTURED` — named mutations of those datasets (missing elements, wrong VRs and
  types, NaN/inf/absurd values, 10¹² voxel headers, huge or far-away contours, duplicated or
  conflicting UIDs, zero fractions, ...). Each takes the datasets and a ``random.Random``.
* :data:`BYTE_MUTATIONS` — truncation, flipped bytes, zeroed or repeated ranges of a file.
* :func:`run_pipeline` — the pipeline under a wall-clock guard (``SIGALRM``, and
  ``faulthandler`` as the last resort for a loop that never returns to Python) and a memory
  guard (growth of the resident high-water mark).
"""

from __future__ import annotations

import copy
import faulthandler
import math
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from rtplan_assist.errors import RtplanAssistError

#: Wall-clock bound of one pipeline run (s). Generous: CI shares two loaded cores.
CASE_TIME_LIMIT_S = 30.0
#: Bound on the resident memory one run may add (bytes); the base case needs a few MiB.
CASE_MEMORY_LIMIT_BYTES = 512 * 2**20

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
DOSE_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"
STRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
PLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"

FOR_UID = "1.2.826.0.1.3680043.10.1.1"
STUDY_UID = "1.2.826.0.1.3680043.10.1.2"
STRUCT_UID = "1.2.826.0.1.3680043.10.1.3"
PLAN_UID = "1.2.826.0.1.3680043.10.1.4"
DOSE_UID = "1.2.826.0.1.3680043.10.1.5"
CT_SERIES_UID = "1.2.826.0.1.3680043.10.1.6"

#: Dose grid of the base case: (frames, rows, cols), IPP, PixelSpacing (row, col) in mm.
DOSE_SHAPE = (8, 10, 12)
DOSE_IPP = (-12.0, -10.0, 30.0)
DOSE_SPACING = (2.0, 2.0)
PLANE_Z = (34.0, 36.0, 38.0, 40.0)


# =============================================================================================
# Guards
# =============================================================================================


class FuzzTimeout(BaseException):
    """A pipeline run exceeded its wall-clock bound (BaseException: no handler swallows it)."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`FuzzTimeout` in the main thread after ``seconds``.

    ``SIGALRM`` interrupts Python code; a compiled loop that never returns to the
    interpreter is caught by ``faulthandler``, which dumps every thread's stack and ends
    the process after twice the bound (a hang must fail loudly, not stall CI).
    """
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")
    if not main:
        yield
        return

    def on_alarm(signum, frame):
        raise FuzzTimeout(f"pipeline run exceeded {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:  # the real stderr: pytest's capture has no file descriptor
        faulthandler.dump_traceback_later(2 * seconds + 5, exit=True, file=sys.__stderr__)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


@dataclass
class Outcome:
    """How one pipeline run ended: ``ok`` (a sane result) or ``typed`` (RtplanAssistError)."""

    kind: str
    error: str = ""
    seconds: float = 0.0
    peak_bytes: int = 0
    stage: str = ""


_TABLES = None


def _tables():
    global _TABLES
    if _TABLES is None:
        from rtplan_assist.constraints import load_tables

        _TABLES = load_tables()
    return _TABLES


def check_dvh(dvh) -> None:
    """Invariants of a computed DVH (a 'correct result' must at least be self-consistent)."""
    assert dvh.volume_cc >= 0 and math.isfinite(dvh.volume_cc), dvh
    assert dvh.outside_cc >= 0 and math.isfinite(dvh.outside_cc), dvh
    if dvh.dvh_volume_cc > 0:
        assert all(math.isfinite(v) for v in (dvh.dmin_gy, dvh.dmean_gy, dvh.dmax_gy)), dvh
        tol = 1e-6 * max(1.0, abs(dvh.dmax_gy))
        assert dvh.dmin_gy - tol <= dvh.dmean_gy <= dvh.dmax_gy + tol, dvh
        v = dvh.volume_cc_at_dose
        assert np.all(np.isfinite(v)) and np.all(np.diff(v) <= 1e-9 * max(1.0, v[0])), dvh
    assert all(isinstance(w, str) for w in dvh.warnings)


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> int | None:
    """Reset the process's resident high-water mark (Linux ``clear_refs`` 5); current RSS (KiB).

    ``None`` where that is not possible (not Linux): the memory bound is then not checked.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return None
    return _rss_kib("VmRSS")


def run_pipeline(
    paths,
    *,
    evaluate: bool = True,
    seconds: float = CASE_TIME_LIMIT_S,
    memory_bytes: int = CASE_MEMORY_LIMIT_BYTES,
) -> Outcome:
    """``load_case`` → ``compute_dvhs`` per dose → ``CaseEvaluator.evaluate`` under guards.

    Returns an :class:`Outcome`; any exception that is not an ``RtplanAssistError``
    propagates (that is the bug the fuzzing looks for), as do :class:`FuzzTimeout` and an
    ``AssertionError`` for a result that breaks the DVH invariants or the memory bound.

    Memory is the growth of the resident high-water mark during the run (Linux
    ``/proc/self/status`` VmHWM after a reset): what the run really touched. A header that
    makes the code *reserve* a huge block it never fills is caught where it matters: the
    allocation fails (``MemoryError``, an untyped exception) once it exceeds what the
    machine can commit.
    """
    from rtplan_assist.dicom import load_case
    from rtplan_assist.dvh import compute_dvhs
    from rtplan_assist.evaluation import CaseEvaluator

    stage = "load_case"
    start = time.perf_counter()
    rss0 = reset_peak_rss()
    outcome = Outcome("ok")
    try:
        with time_limit(seconds):
            try:
                case = load_case(paths)
                assert all(isinstance(w, str) for w in case.warnings)
                stage = "compute_dvhs"
                for dose in case.doses:
                    for dvh in compute_dvhs(case.structures, dose, workers=1).values():
                        check_dvh(dvh)
                if evaluate:
                    stage = "evaluate"
                    result = CaseEvaluator(case, tables=_tables()).evaluate()
                    assert isinstance(result.verdict(), str)
            except RtplanAssistError as exc:
                outcome = Outcome("typed", f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        peak = _rss_kib("VmHWM")
        if rss0 is not None and peak is not None:
            outcome.peak_bytes = max(peak - rss0, 0) * 1024
        outcome.seconds = time.perf_counter() - start
    outcome.stage = stage
    assert outcome.peak_bytes <= memory_bytes, (
        f"resident memory grew by {outcome.peak_bytes / 2**20:.0f} MiB "
        f"(bound {memory_bytes / 2**20:.0f} MiB) by the end of {stage}"
    )
    return outcome


# =============================================================================================
# The base case, in memory
# =============================================================================================


def _base(modality: str, sop_class: str, sop_uid: str, patient_id: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = f"Fuzz^{patient_id}"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = f"{sop_uid}.1"
    ds.FrameOfReferenceUID = FOR_UID
    return ds


def _square(z: float, half: float, cx: float = 0.0, cy: float = 0.0) -> list[float]:
    pts = [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
           (cx - half, cy + half)]
    return [v for x, y in pts for v in (x, y, z)]


def base_struct(patient_id: str = "FUZZ1") -> Dataset:
    """RTSTRUCT: 1 PTV (PTV, 8 mm square), 2 SpinalCord, 3 Esophagus, on four planes."""
    ds = _base("RTSTRUCT", STRUCT_CLASS, STRUCT_UID, patient_id)
    del ds.FrameOfReferenceUID
    frame = Dataset()
    frame.FrameOfReferenceUID = FOR_UID
    study, series = Dataset(), Dataset()
    series.SeriesInstanceUID = CT_SERIES_UID
    study.RTReferencedSeriesSequence = [series]
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    for number, name, kind, half, cx, cy in (
        (1, "PTV", "PTV", 4.0, 0.0, 0.0),
        (2, "SpinalCord", "ORGAN", 2.0, 0.0, 6.0),
        (3, "Esophagus", "ORGAN", 2.0, 6.0, -4.0),
    ):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, FOR_UID
        ds.StructureSetROISequence.append(roi)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        obs.RTROIInterpretedType = kind
        ds.RTROIObservationsSequence.append(obs)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [255, 0, number]
        item.ContourSequence = []
        for z in PLANE_Z:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = 4
            c.ContourData = _square(z, half, cx, cy)
            item.ContourSequence.append(c)
        ds.ROIContourSequence.append(item)
    return ds


def base_dose(patient_id: str = "FUZZ1") -> Dataset:
    """RTDOSE: 8 × 10 × 12 uint32, 2 mm, dose falling off from 44 Gy at the grid centre."""
    ds = _base("RTDOSE", DOSE_CLASS, DOSE_UID, patient_id)
    n, rows, cols = DOSE_SHAPE
    ds.ImagePositionPatient = list(DOSE_IPP)
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = list(DOSE_SPACING)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n
    ds.GridFrameOffsetVector = [2.0 * k for k in range(n)]
    ds.FrameIncrementPointer = 0x3004000C
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    ds.DoseGridScaling = 0.001
    ref = Dataset()
    ref.ReferencedSOPClassUID = PLAN_CLASS
    ref.ReferencedSOPInstanceUID = PLAN_UID
    ds.ReferencedRTPlanSequence = [ref]
    k, i, j = np.mgrid[0:n, 0:rows, 0:cols]
    r2 = (j - cols / 2) ** 2 + (i - rows / 2) ** 2 + (k - n / 2) ** 2
    values = np.round(44000.0 * np.exp(-r2 / 40.0)).astype("<u4")
    ds.PixelData = values.tobytes()
    ds["PixelData"].VR = "OW"  # explicit, so that deleting BitsAllocated still saves
    return ds


def base_plan(patient_id: str = "FUZZ1") -> Dataset:
    """RTPLAN: 5 fractions, 40 Gy TARGET prescription to ROI 1, on the base structure set."""
    ds = _base("RTPLAN", PLAN_CLASS, PLAN_UID, patient_id)
    ds.RTPlanLabel = "Lesion1"
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = 5
    ds.FractionGroupSequence = [group]
    ref = Dataset()
    ref.DoseReferenceNumber, ref.DoseReferenceType = 1, "TARGET"
    ref.TargetPrescriptionDose = 40.0
    ref.ReferencedROINumber = 1
    ds.DoseReferenceSequence = [ref]
    ss = Dataset()
    ss.ReferencedSOPClassUID = STRUCT_CLASS
    ss.ReferencedSOPInstanceUID = STRUCT_UID
    ds.ReferencedStructureSetSequence = [ss]
    return ds


def base_datasets(patient_id: str = "FUZZ1") -> dict[str, Dataset]:
    """The three files of the base case by role: ``struct``, ``dose``, ``plan``."""
    return {
        "struct": base_struct(patient_id),
        "dose": base_dose(patient_id),
        "plan": base_plan(patient_id),
    }


def save(ds: Dataset, path: Path, *, file_meta: bool = True) -> Path:
    """Write ``ds`` (explicit VR little endian with a File Meta header, or bare implicit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = copy.copy(ds)
    if file_meta:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = str(ds.get("SOPClassUID", DOSE_CLASS) or DOSE_CLASS)
        meta.MediaStorageSOPInstanceUID = str(ds.get("SOPInstanceUID", "1.2.3") or "1.2.3")
        ds.file_meta = meta
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


class Unwritable(Exception):
    """pydicom cannot write this mutated dataset (the case is skipped, not a finding)."""


def write_case(datasets: dict[str, Dataset], folder: Path) -> list[Path]:
    """Save every dataset of a (mutated) case as ``<role>.dcm`` into ``folder``.

    Raises :class:`Unwritable` when pydicom refuses to encode a mutation.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for role, ds in datasets.items():
            if ds is None:
                continue
            if isinstance(ds, bytes):  # a file given as its bytes (x_junk)
                path = folder / f"{role}.dcm"
                path.write_bytes(ds)
                out.append(path)
                continue
            try:
                path = save(ds, folder / f"{role}.dcm", file_meta=role != "plan_implicit")
            except Exception as exc:
                raise Unwritable(f"{role}: {type(exc).__name__}: {exc}") from exc
            out.append(path)
    return out


# =============================================================================================
# Structured mutations
# =============================================================================================


def set_raw(ds: Dataset, keyword: str, value: bytes | str, vr: str | None = None) -> None:
    """Store ``value`` as the element's raw bytes, bypassing pydicom's value validation."""
    tag = Tag(tag_for_keyword(keyword))
    vr = vr or dictionary_VR(tag)
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if len(raw) % 2:
        raw += b"\x00" if vr in ("UI", "OB", "OW", "OF", "OD", "OL", "UN") else b" "
    ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)


def _contours(ds: Dataset) -> list[Dataset]:
    out = []
    for item in ds.get("ROIContourSequence", None) or []:
        out.extend(item.get("ContourSequence", None) or [])
    return out


def _pick(rng: random.Random, items):
    items = list(items)
    return items[rng.randrange(len(items))] if items else None


def _delete(ds: Dataset, keyword: str) -> None:
    if keyword in ds:
        delattr(ds, keyword)


BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e308", "1e-320", "abc", "", "1e999", "-0"]


def s_delete_contour_data(c: dict, rng: random.Random) -> None:
    contours = _contours(c["struct"])
    targets = contours if rng.random() < 0.3 else [_pick(rng, contours)]
    for contour in targets:
        if contour is not None:
            _delete(contour, "ContourData")


def s_delete_sequence(c: dict, rng: random.Random) -> None:
    ds = c["struct"]
    keyword = _pick(rng, ["StructureSetROISequence", "ROIContourSequence",
                          "RTROIObservationsSequence", "ReferencedFrameOfReferenceSequence"])
    if rng.random() < 0.5:
        _delete(ds, keyword)
    else:
        setattr(ds, keyword, [])


def s_delete_item_element(c: dict, rng: random.Random) -> None:
    ds = c["struct"]
    seq_kw, kw = _pick(rng, [
        ("StructureSetROISequence", "ROINumber"), ("StructureSetROISequence", "ROIName"),
        ("ROIContourSequence", "ReferencedROINumber"), ("ROIContourSequence", "ContourSequence"),
        ("RTROIObservationsSequence", "ReferencedROINumber"),
        ("RTROIObservationsSequence", "RTROIInterpretedType"),
        ("ROIContourSequence", "ROIDisplayColor"),
    ])
    item = _pick(rng, ds.get(seq_kw, None) or [])
    if item is not None:
        _delete(item, kw)


def s_contour_values(c: dict, rng: random.Random) -> None:
    contour = _pick(rng, _contours(c["struct"]))
    if contour is None:
        return
    values = [str(v) for v in contour.ContourData]
    choice = rng.randrange(6)
    if choice == 0:  # one bad number
        values[rng.randrange(len(values))] = _pick(rng, BAD_NUMBERS)
    elif choice == 1:  # not a multiple of 3
        values = values[: rng.choice([1, 2, 4, 5, len(values) - 1])]
    elif choice == 2:  # absurd magnitude (a TPS bug or a byte flip in the exponent)
        values[3 * rng.randrange(len(values) // 3)] = rng.choice(["1e12", "-1e30", "1e300"])
    elif choice == 3:  # empty
        values = []
    elif choice == 4:  # all NaN
        values = ["nan"] * len(values)
    else:  # non-numeric text
        values = ["x"] * len(values)
    set_raw(contour, "ContourData", "\\".join(values))


def s_number_of_points(c: dict, rng: random.Random) -> None:
    contour = _pick(rng, _contours(c["struct"]))
    if contour is not None:
        set_raw(contour, "NumberOfContourPoints", _pick(rng, ["0", "-4", "3", "5", "abc",
                                                            "99999999999", "4.5", ""]))


def s_large_contour(c: dict, rng: random.Random) -> None:
    """A finely sampled circle (30 000 points): legitimate, must be computed."""
    contour = _pick(rng, _contours(c["struct"]))
    if contour is None:
        return
    z = float(contour.ContourData[2])
    t = np.linspace(0, 2 * np.pi, 30_000, endpoint=False)
    pts = np.column_stack([4 * np.cos(t), 4 * np.sin(t), np.full_like(t, z)])
    set_raw(contour, "ContourData", "\\".join(f"{v:.3f}" for v in pts.ravel()))
    contour.NumberOfContourPoints = len(t)


def s_shift_outside(c: dict, rng: random.Random) -> None:
    """Move an ROI (or one plane) far outside the dose grid, or to an absurd distance."""
    item = _pick(rng, c["struct"].get("ROIContourSequence", None) or [])
    if item is None:
        return
    shift = rng.choice([200.0, -5000.0, 1e5, 1e9])
    axis = rng.randrange(3)
    contours = item.get("ContourSequence", None) or []
    if rng.random() < 0.5 and contours:
        contours = [_pick(rng, contours)]
    for contour in contours:
        if "ContourData" not in contour:
            continue
        pts = np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)
        pts[:, axis] += shift
        set_raw(contour, "ContourData", "\\".join(f"{v:.6g}" for v in pts.ravel()))


def s_non_axial(c: dict, rng: random.Random) -> None:
    contour = _pick(rng, _contours(c["struct"]))
    if contour is not None and "ContourData" in contour:
        values = [float(v) for v in contour.ContourData]
        values[2] += rng.choice([0.5, 5.0, 1e6])
        contour.ContourData = values


def s_duplicate_roi(c: dict, rng: random.Random) -> None:
    """Two ROIs share a number or a name; a second ROIContourSequence item for one ROI; a
    contour repeated on its own plane, or every contour of an ROI exported twice."""
    ds = c["struct"]
    choice = rng.randrange(5)
    rois = ds.get("StructureSetROISequence", None) or []
    items = ds.get("ROIContourSequence", None) or []
    if choice == 0 and len(rois) > 1:
        rois[1].ROINumber = rois[0].ROINumber
    elif choice == 1 and len(rois) > 1:
        rois[1].ROIName = rois[0].ROIName
    elif choice == 2 and items:
        extra = copy.deepcopy(_pick(rng, items))
        for contour in extra.get("ContourSequence", None) or []:
            values = [float(v) for v in contour.ContourData]
            contour.ContourData = [v + (50.0 if i % 3 == 0 else 0.0)
                                   for i, v in enumerate(values)]
        items.append(extra)
    elif choice == 3 and items:
        item = _pick(rng, items)
        seq = item.get("ContourSequence", None)
        if seq:
            for contour in list(seq):
                seq.append(copy.deepcopy(contour))
    else:
        item = _pick(rng, ds.get("ROIContourSequence", None) or [])
        seq = item.get("ContourSequence", None) if item is not None else None
        if seq:
            seq.append(copy.deepcopy(seq[0]))


def s_star_contour(c: dict, rng: random.Random) -> None:
    """A contour replaced by a star of 200 to 90,000 points alternating between two radii
    (the contour complexity bound: a couple of hundred points pass, thousands do not)."""
    contour = _pick(rng, _contours(c["struct"]))
    if contour is None:
        return
    values = [float(v) for v in contour.ContourData]
    z = values[2]
    n = rng.choice([200, 5_000, 90_000])
    k = np.arange(n)
    r = np.where(k % 2 == 0, 12.0, rng.choice([3.0, 9.0]))
    t = 2 * np.pi * k / n
    points = np.c_[r * np.cos(t), r * np.sin(t), np.full(n, z)]
    contour.NumberOfContourPoints = n
    set_raw(contour, "ContourData", "\\".join(f"{v:.3f}" for v in points.ravel()), "DS")


def s_wrong_vr(c: dict, rng: random.Random) -> None:
    ds = c["struct"]
    choice = rng.randrange(6)
    rois = ds.get("StructureSetROISequence", None) or []
    items = ds.get("ROIContourSequence", None) or []
    if choice == 0 and rois:
        set_raw(_pick(rng, rois), "ROINumber", _pick(rng, ["abc", "1.5", "", "-1", "1e9"]))
    elif choice == 1 and items:
        set_raw(_pick(rng, items), "ROIDisplayColor", _pick(rng, ["x\\y\\z", "1\\2", "-5\\0\\0"]))
    elif choice == 2 and rois:
        set_raw(_pick(rng, rois), "ROIName", b"\xff\xfe\x00bad")
    elif choice == 3:
        contour = _pick(rng, _contours(ds))
        if contour is not None:
            set_raw(contour, "ContourGeometricType", _pick(rng, ["POINT", "OPEN_PLANAR", "",
                                                                 "closed_planar", "\x00\x01"]))
    elif choice == 4 and items:
        # ContourSequence replaced by a non-sequence value
        set_raw(_pick(rng, items), "ContourSequence", b"\x01\x02\x03\x04", vr="OB")
    else:
        contour = _pick(rng, _contours(ds))
        if contour is not None:
            set_raw(contour, "ContourData", b"\x00\x01\x02\x03\x04\x05", vr="OB")


def s_single_plane(c: dict, rng: random.Random) -> None:
    """Keep one contour per ROI: no plane spacing anywhere in the structure set."""
    for item in c["struct"].get("ROIContourSequence", None) or []:
        seq = item.get("ContourSequence", None)
        if seq:
            item.ContourSequence = [seq[0]]


def s_degenerate_polygon(c: dict, rng: random.Random) -> None:
    """Collinear, zero-area, repeated or self-intersecting polygons."""
    contour = _pick(rng, _contours(c["struct"]))
    if contour is None or "ContourData" not in contour:
        return
    z = float(contour.ContourData[2])
    shapes = [
        [(0, 0), (1, 1), (2, 2), (3, 3)],
        [(0, 0), (0, 0), (0, 0)],
        [(-4, -4), (4, 4), (4, -4), (-4, 4)],  # bow tie
        [(0, 0), (1e-9, 0), (0, 1e-9)],
    ]
    pts = _pick(rng, shapes)
    contour.ContourData = [v for x, y in pts for v in (float(x), float(y), z)]
    contour.NumberOfContourPoints = len(pts)


DOSE_ELEMENTS = ["PixelData", "DoseGridScaling", "GridFrameOffsetVector", "PixelSpacing",
                 "ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns",
                 "NumberOfFrames", "BitsAllocated", "BitsStored", "HighBit", "DoseUnits",
                 "SamplesPerPixel", "PixelRepresentation", "PhotometricInterpretation",
                 "FrameOfReferenceUID", "ReferencedRTPlanSequence", "SOPInstanceUID",
                 "DoseSummationType"]


def d_delete(c: dict, rng: random.Random) -> None:
    _delete(c["dose"], _pick(rng, DOSE_ELEMENTS))


def d_spacing(c: dict, rng: random.Random) -> None:
    set_raw(c["dose"], "PixelSpacing", _pick(rng, [
        "0\\2", "-2\\2", "nan\\2", "2\\inf", "1e-300\\2", "1e300\\1e300", "2", "a\\b", "",
        "2\\2\\2", "0.0001\\0.0001",
    ]))


def d_huge_header(c: dict, rng: random.Random) -> None:
    """A header that claims far more voxels than the file holds (up to 10¹² and beyond)."""
    ds = c["dose"]
    choice = rng.randrange(4)
    if choice == 0:
        ds.Rows, ds.Columns = 65535, 65535
    elif choice == 1:
        set_raw(ds, "NumberOfFrames", _pick(rng, ["1000000", "1000000000000", "2147483648"]))
    elif choice == 2:
        ds.Rows, ds.Columns = 10000, 10000
        set_raw(ds, "NumberOfFrames", "10000")
        _delete(ds, "GridFrameOffsetVector")
    else:
        # a consistent header: 100 000 frames with a matching offset vector, little data
        n = 100_000
        set_raw(ds, "NumberOfFrames", str(n))
        set_raw(ds, "GridFrameOffsetVector", "\\".join(str(2 * k) for k in range(n)))


def d_frames(c: dict, rng: random.Random) -> None:
    set_raw(c["dose"], "NumberOfFrames", _pick(rng, ["0", "-3", "abc", "", "7", "9", "1.5"]))


def d_scaling(c: dict, rng: random.Random) -> None:
    set_raw(c["dose"], "DoseGridScaling", _pick(rng, BAD_NUMBERS + ["1e300", "1e-300"]))


def d_offsets(c: dict, rng: random.Random) -> None:
    n = DOSE_SHAPE[0]
    set_raw(c["dose"], "GridFrameOffsetVector", _pick(rng, [
        "\\".join(["0"] * n),
        "\\".join(str(-2 * k) for k in range(n)),
        "\\".join(str(2 * k) for k in range(n - 1)),
        "\\".join(["nan"] * n),
        "0\\" + "\\".join(["inf"] * (n - 1)),
        "\\".join(str(k * 1e300) for k in range(n)),
        "\\".join(str(2 * k) for k in reversed(range(n))),
        "\\".join(str(2 * k + 1e-6 * k) for k in range(n)),
        "abc",
        "30\\" + "\\".join(str(30 + 2 * k) for k in range(1, n)),
        "\\".join(str(2.0**k) for k in range(n)),
    ]))


def d_position(c: dict, rng: random.Random) -> None:
    ds = c["dose"]
    if rng.random() < 0.5:
        set_raw(ds, "ImagePositionPatient", _pick(rng, [
            "nan\\0\\0", "0\\inf\\0", "1e300\\1e300\\1e300", "0\\0", "a\\b\\c", "-1e9\\0\\30",
        ]))
    else:
        set_raw(ds, "ImageOrientationPatient", _pick(rng, [
            "0\\0\\0\\0\\0\\0", "nan\\0\\0\\0\\1\\0", "1\\0\\0\\0\\1", "0\\1\\0\\1\\0\\0",
            "1\\0\\0\\0\\0\\-1", "0.9\\0.1\\0\\0\\1\\0", "a\\b\\c\\d\\e\\f", "-1\\0\\0\\0\\-1\\0",
            "inf\\0\\0\\0\\1\\0",
        ]))


def d_pixel_format(c: dict, rng: random.Random) -> None:
    ds = c["dose"]
    choice = rng.randrange(6)
    if choice == 0:
        ds.BitsAllocated = rng.choice([0, 1, 8, 12, 16, 64])
    elif choice == 1:
        ds.PixelRepresentation = 1
    elif choice == 2:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
    elif choice == 3:
        ds.BitsStored = rng.choice([0, 40, 1])
    elif choice == 4:
        ds.PhotometricInterpretation = rng.choice(["PALETTE COLOR", "YBR_FULL", ""])
    else:
        ds.HighBit = rng.choice([0, 40])


def d_pixel_data(c: dict, rng: random.Random) -> None:
    ds = c["dose"]
    data = bytes(ds.PixelData)
    choice = rng.randrange(4)
    if choice == 0:
        data = data[: rng.randrange(len(data))]
    elif choice == 1:
        data = data + data[: rng.randrange(1, len(data))]
    elif choice == 2:
        data = b""
    else:
        data = b"\xff" * len(data)  # 4.29e9 × scaling: a huge but finite dose
    ds.PixelData = data[: len(data) // 2 * 2]


def d_units(c: dict, rng: random.Random) -> None:
    ds = c["dose"]
    keyword, values = _pick(rng, [
        ("DoseUnits", ["RELATIVE", "CGY", "MGY", "", "gy"]),
        ("DoseSummationType", ["BEAM", "FRACTION", "MULTI_PLAN", "BRACHY", ""]),
        ("DoseType", ["ERROR", "EFFECTIVE", "", "X"]),
    ])
    set_raw(ds, keyword, _pick(rng, values))


def d_single_frame(c: dict, rng: random.Random) -> None:
    """One plane only, with a missing or bad SliceThickness."""
    ds = c["dose"]
    _, rows, cols = DOSE_SHAPE
    ds.NumberOfFrames = 1
    ds.GridFrameOffsetVector = [0.0]
    ds.PixelData = bytes(ds.PixelData)[: rows * cols * 4]
    value = _pick(rng, [None, "0", "-2", "nan", "2", "inf"])
    if value is not None:
        set_raw(ds, "SliceThickness", value)


def p_fractions(c: dict, rng: random.Random) -> None:
    group = (c["plan"].get("FractionGroupSequence", None) or [None])[0]
    if group is not None:
        set_raw(group, "NumberOfFractionsPlanned",
                _pick(rng, ["0", "-5", "abc", "999999999", "", "2.5", "1e3", "99999999999999"]))


def p_prescription(c: dict, rng: random.Random) -> None:
    ref = (c["plan"].get("DoseReferenceSequence", None) or [None])[0]
    if ref is not None:
        set_raw(ref, "TargetPrescriptionDose", _pick(rng, BAD_NUMBERS + ["1e300", "1e-300"]))


def p_delete(c: dict, rng: random.Random) -> None:
    ds = c["plan"]
    choice = rng.randrange(5)
    if choice == 0:
        _delete(ds, "FractionGroupSequence")
    elif choice == 1:
        _delete(ds, "DoseReferenceSequence")
    elif choice == 2:
        _delete(ds, "ReferencedStructureSetSequence")
    else:
        ref = (ds.get("DoseReferenceSequence", None) or [None])[0]
        if ref is not None:
            _delete(ref, "DoseReferenceType" if choice == 3 else "ReferencedROINumber")


def p_target(c: dict, rng: random.Random) -> None:
    ref = (c["plan"].get("DoseReferenceSequence", None) or [None])[0]
    if ref is not None:
        set_raw(ref, "ReferencedROINumber", _pick(rng, ["999", "abc", "-1", "2", "3", ""]))


def p_groups(c: dict, rng: random.Random) -> None:
    ds = c["plan"]
    if rng.random() < 0.5:
        ds.FractionGroupSequence = list(ds.FractionGroupSequence) * 2
    else:
        extra = copy.deepcopy(ds.DoseReferenceSequence[0])
        extra.TargetPrescriptionDose = 60.0
        ds.DoseReferenceSequence.append(extra)


def x_duplicate_uids(c: dict, rng: random.Random) -> None:
    """SOPInstanceUIDs shared between files, or a second copy of a file in the folder."""
    choice = rng.randrange(5)
    if choice == 0:
        c["plan"].SOPInstanceUID = c["dose"].SOPInstanceUID
        c["dose"].ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = DOSE_UID
    elif choice == 1:
        c["struct"].SOPInstanceUID = PLAN_UID
    elif choice == 2:
        c["dose_copy"] = copy.deepcopy(c["dose"])
    elif choice == 3:
        c["struct_copy"] = copy.deepcopy(c["struct"])
    else:
        c["plan_copy"] = copy.deepcopy(c["plan"])
        c["plan_copy"].FractionGroupSequence[0].NumberOfFractionsPlanned = 3


def x_conflicts(c: dict, rng: random.Random) -> None:
    """Conflicting frames of reference, patients, or a second structure set."""
    choice = rng.randrange(5)
    if choice == 0:
        c["dose"].FrameOfReferenceUID = "1.2.3.999"
    elif choice == 1:
        c["struct"].ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3.998"
    elif choice == 2:
        c["plan"].PatientID = "OTHER"
    elif choice == 3:
        other = copy.deepcopy(c["struct"])
        other.SOPInstanceUID = "1.2.3.997"
        c["struct_other"] = other
    else:
        c["dose"].PatientID = ""


def x_drop_file(c: dict, rng: random.Random) -> None:
    c[_pick(rng, ["struct", "dose", "plan"])] = None


def x_implicit(c: dict, rng: random.Random) -> None:
    """The plan written without a File Meta header (implicit VR, read with force=True)."""
    c["plan_implicit"] = c.pop("plan")


def x_junk(c: dict, rng: random.Random) -> None:
    """A file that must cost no parsing: zeros (pydicom parsed them as empty elements, ~0.8 s
    per MB), or a DICM prefix followed by zeros. (The deflate bomb is tested on its own in
    ``tests/test_hostile_files.py``: inflating past the 1 GiB bound costs ~1 s per run.)"""
    if rng.randrange(2):
        c["junk"] = bytes(rng.choice([1, 4]) << 20)
    else:
        c["junk"] = b"\0" * 128 + b"DICM" + bytes(2 << 20)


STRUCTURED: dict[str, Callable[[dict, random.Random], None]] = {
    f.__name__: f
    for f in (
        s_delete_contour_data, s_delete_sequence, s_delete_item_element, s_contour_values,
        s_number_of_points, s_large_contour, s_shift_outside, s_non_axial, s_duplicate_roi,
        s_star_contour, s_wrong_vr, s_single_plane, s_degenerate_polygon,
        d_delete, d_spacing, d_huge_header, d_frames, d_scaling, d_offsets, d_position,
        d_pixel_format, d_pixel_data, d_units, d_single_frame,
        p_fractions, p_prescription, p_delete, p_target, p_groups,
        x_duplicate_uids, x_conflicts, x_drop_file, x_implicit, x_junk,
    )
}


def mutated_case(names: list[str], seed: int, patient_id: str = "FUZZ1") -> dict:
    """The base case with the named mutations applied in order (``seed`` draws their details)."""
    rng = random.Random(seed)
    datasets: dict = base_datasets(patient_id)
    for name in names:
        fn = STRUCTURED[name]
        role = {"s": "struct", "d": "dose", "p": "plan"}.get(name[0])
        if role and datasets.get(role) is None:
            continue
        try:
            fn(datasets, rng)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            continue  # an earlier mutation removed what this one edits
    return datasets


# =============================================================================================
# Byte-level mutations
# =============================================================================================


def b_truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def b_flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 16, 64])):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def b_set_bytes(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a few bytes with boundary values (0x00, 0xFF, 0x7F, 0x80)."""
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 8])):
        i = rng.randrange(len(out))
        n = rng.choice([1, 2, 4])
        out[i : i + n] = bytes([rng.choice([0x00, 0xFF, 0x7F, 0x80])]) * n
    return bytes(out[: len(data)])


def b_header_flip(data: bytes, rng: random.Random) -> bytes:
    """Flip bits in the first 2 KiB, where tags, VRs and lengths of the header live."""
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 4])):
        i = rng.randrange(min(len(out), 2048))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def b_zero_range(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    n = rng.randrange(1, 256)
    return data[:i] + b"\x00" * min(n, len(data) - i) + data[i + n :]


def b_repeat_range(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    n = rng.randrange(1, 512)
    return data[: i + n] + data[i : i + n] + data[i + n :]


def b_drop_range(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randrange(1, 64) :]


BYTE_MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    f.__name__: f
    for f in (b_truncate, b_flip, b_set_bytes, b_header_flip, b_zero_range, b_repeat_range,
              b_drop_range)
}


def mutate_bytes(data: bytes, name: str, seed: int) -> bytes:
    return BYTE_MUTATIONS[name](data, random.Random(seed))


def base_case_bytes(tmp: Path) -> dict[str, bytes]:
    """The base case's files as bytes by role (for byte-level mutation)."""
    paths = write_case(base_datasets(), tmp)
    return {p.stem: p.read_bytes() for p in paths}
