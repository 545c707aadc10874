"""RTPLAN: fractions, prescription and target, and the structure set the plan is on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rtplan_assist.dicom._common import (
    display_name,
    ds_float,
    ds_int,
    ds_items,
    ds_str,
    malformed_as_input_error,
)
from rtplan_assist.errors import DicomInputError
from rtplan_assist.model import Plan

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: A TargetPrescriptionDose above this (Gy, total) is not a prescription: cGy written as Gy,
#: or a damaged value (issue 6 fuzzing: 1e300 Gy overflowed the EQD2 of the regimens).
MAX_PRESCRIPTION_GY = 1000.0


def read_plan(ds: Dataset, path: str | Path, warnings: list[str] | None = None) -> Plan:
    """The parts of an RTPLAN the evaluation needs.

    Parameters
    ----------
    ds : Dataset
        RTPLAN header (an RTPLAN has no pixel data).
    path : str or Path
        Its file, kept on the Plan and named in warnings.
    warnings : list of str, optional
        Receives a message for each value that is missing or ambiguous.

    Returns
    -------
    Plan
        ``fractions`` from FractionGroupSequence[0].NumberOfFractionsPlanned (``None`` when
        missing or zero: never guessed); ``prescription_gy`` the TargetPrescriptionDose (Gy,
        total over all fractions) of the first DoseReferenceSequence item whose
        DoseReferenceType is TARGET, and its ReferencedROINumber as ``target_roi_number``.
        A prescription that is not positive is treated as unknown (with a warning).

    Raises
    ------
    DicomInputError
        An element the plan needs is malformed (text where a number belongs, NaN, a
        sequence that is not one).
    """
    with malformed_as_input_error(path, "RTPLAN"):
        return _read_plan(ds, path, warnings if warnings is not None else [])


def _read_plan(ds: Dataset, path: str | Path, warnings: list[str]) -> Plan:
    name = display_name(path)

    fractions: int | None = None
    groups = ds_items(ds, "FractionGroupSequence", path=path)
    if groups:
        fractions = ds_int(groups[0], "NumberOfFractionsPlanned", path=path)
        if len(groups) > 1:
            warnings.append(
                f"{name}: RTPLAN has {len(groups)} fraction groups; only the first is used."
            )
    if not fractions or fractions <= 0:
        fractions = None
        warnings.append(
            f"{name}: RTPLAN has no NumberOfFractionsPlanned (or it is 0); the number of "
            "fractions is unknown and must be entered before BED/EQD2 can be computed."
        )

    prescription_gy: float | None = None
    target_roi: int | None = None
    targets = []
    for item in ds_items(ds, "DoseReferenceSequence", path=path):
        if ds_str(item, "DoseReferenceType").upper() != "TARGET":
            continue
        dose = ds_float(item, "TargetPrescriptionDose", path=path)
        if dose is None:
            continue
        if dose > MAX_PRESCRIPTION_GY:
            raise DicomInputError(
                f"TargetPrescriptionDose {dose:g} Gy is above {MAX_PRESCRIPTION_GY:g} Gy: not a "
                "total prescription in Gy (cGy exported as Gy?). Correct the plan.",
                path=path,
            )
        if dose <= 0:
            warnings.append(
                f"{name}: RTPLAN TargetPrescriptionDose {dose:g} Gy is not positive; ignored."
            )
            continue
        targets.append((dose, ds_int(item, "ReferencedROINumber", path=path)))
    if targets:
        prescription_gy, target_roi = targets[0]
        others = sorted({round(d, 4) for d, _ in targets[1:]} - {round(prescription_gy, 4)})
        if others:
            listed = ", ".join(f"{d:g}" for d in others)
            warnings.append(
                f"{name}: RTPLAN has several TARGET dose references; the first "
                f"({prescription_gy:g} Gy) is taken as the prescription, not {listed} Gy."
            )
    else:
        warnings.append(
            f"{name}: RTPLAN has no TARGET TargetPrescriptionDose in DoseReferenceSequence; "
            "the prescription is unknown."
        )

    structure_set_uid = None
    refs = ds_items(ds, "ReferencedStructureSetSequence", path=path)
    if refs:
        uid = refs[0].get("ReferencedSOPInstanceUID", None)
        structure_set_uid = str(uid) if uid else None

    return Plan(
        path=str(path),
        sop_instance_uid=ds_str(ds, "SOPInstanceUID"),
        label=ds_str(ds, "RTPlanLabel"),
        name=ds_str(ds, "RTPlanName"),
        fractions=fractions,
        prescription_gy=prescription_gy,
        target_roi_number=target_roi,
        target_roi_numbers=tuple(
            dict.fromkeys(
                roi for d, roi in targets
                if roi is not None and round(d, 4) == round(prescription_gy or 0.0, 4)
            )
        ),
        referenced_structure_set_uid=structure_set_uid,
        frame_of_reference_uid=ds_str(ds, "FrameOfReferenceUID"),
    )
