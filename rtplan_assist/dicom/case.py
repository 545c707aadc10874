"""Linking: one patient, one frame of reference, one structure set, its plans, doses and CT."""

from __future__ import annotations

from pathlib import Path

from rtplan_assist.deidentify import patient_key  # one key scheme for messages
from rtplan_assist.dicom._common import malformed_as_input_error
from rtplan_assist.dicom._raw import NotClean
from rtplan_assist.dicom._index import (
    IMAGE_MODALITIES,
    RT_MODALITIES,
    Index,
    IndexedFile,
    index_files,
    input_paths,
)
from rtplan_assist.dicom.ct import ct_plane_spacing, ct_series_from_headers
from rtplan_assist.dicom.rtdose import has_dose_grid, read_dose, referenced_plan_uid
from rtplan_assist.dicom.rtplan import read_plan
from rtplan_assist.dicom.rtstruct import read_structures, referenced_series_uids
from rtplan_assist.errors import DicomInputError, RtplanAssistError
from rtplan_assist.model import Case, CTSeries, Dose, Plan

#: How many file names a warning lists before summarising.
MAX_NAMES = 5


def _names(index: Index, paths) -> str:
    names = [index.name(p) for p in paths]
    extra = len(names) - MAX_NAMES
    return ", ".join(names[:MAX_NAMES]) + (f" and {extra} more" if extra > 0 else "")


def _describe_patients(patients: dict[str, list[IndexedFile]]) -> str:
    parts = []
    for pid in sorted(patients, key=patient_key):
        modalities = ", ".join(sorted({f.modality for f in patients[pid]}))
        label = patient_key(pid) if pid else "(no PatientID)"
        parts.append(f"{label} ({len(patients[pid])} files: {modalities})")
    return "; ".join(parts)


#: Marks the warnings of files accepted by ``allow_patient_mismatch`` (the evaluation records
#: them in its provenance).
PATIENT_MISMATCH_MARK = "accepted by --allow-patient-mismatch"


def _merge_mismatched(patients: dict, warnings: list[str]):
    """The patient of the only structure set, with the RT files of other patients in the same
    frame of reference (each warned about). Refused unless exactly one patient holds an
    RTSTRUCT and every other patient's RTPLAN/RTDOSE shares its frame of reference."""
    with_struct = [pid for pid, files in patients.items()
                   if any(f.modality == "RTSTRUCT" for f in files)]
    if len(with_struct) != 1:
        raise DicomInputError(
            f"--allow-patient-mismatch needs exactly one patient with a structure set; the "
            f"input holds {_describe_patients(patients)} and {len(with_struct)} of them have "
            "one. Choose one with --patient.",
            path=None,
        )
    selected = with_struct[0]
    frames = {f.frame_of_reference_uid for f in patients[selected]
              if f.modality == "RTSTRUCT" and f.frame_of_reference_uid}
    merged = list(patients[selected])
    for pid, files in patients.items():
        if pid == selected:
            continue
        for f in files:
            if f.modality not in ("RTPLAN", "RTDOSE"):
                continue
            if f.frame_of_reference_uid and f.frame_of_reference_uid in frames:
                merged.append(f)
                warnings.append(
                    f"{Path(f.path).name}: {f.modality} of patient "
                    f"{patient_key(pid) if pid else '(no PatientID)'} while the structure set "
                    f"is of patient {patient_key(selected) if selected else '(no PatientID)'}; "
                    f"same frame of reference ({f.frame_of_reference_uid}): "
                    f"{PATIENT_MISMATCH_MARK}."
                )
            else:
                warnings.append(
                    f"{Path(f.path).name}: {f.modality} of patient "
                    f"{patient_key(pid) if pid else '(no PatientID)'} in another frame of "
                    f"reference ({f.frame_of_reference_uid or 'none'}) than the structure set "
                    f"({', '.join(sorted(frames)) or 'none'}); not loaded."
                )
    return selected, merged


def load_case(
    path, *, patient_id: str | None = None, allow_patient_mismatch: bool = False
) -> Case:
    """Load one patient's RT objects into a :class:`~rtplan_assist.model.Case`.

    Parameters
    ----------
    path : str, Path, or list/tuple of them
        A folder (scanned recursively) or explicit files (e.g. an RTSTRUCT and an RTDOSE).
        Files are only ever opened for reading.
    patient_id : str, optional
        Which patient to load when the files hold several.
    allow_patient_mismatch : bool
        Accept RTPLAN/RTDOSE files of another PatientID when the input holds exactly one
        structure set and they share its frame of reference (common after anonymisation):
        each such file is warned about, naming both patient keys (``--allow-patient-mismatch``).

    Returns
    -------
    Case
        The structure set (one), every RTPLAN and RTDOSE of its frame of reference, the CT
        series it was drawn on (geometry only; ``None`` with a warning when absent or unusable,
        e.g. oblique), and ``warnings`` for everything skipped or assumed. Warnings name files,
        never the patient.

    Raises
    ------
    DicomInputError
        No usable RT object; several patients and no ``patient_id``; several structure sets
        that the plans do not disambiguate; doses in several frames of reference without a
        structure set; a needed file (the structure set, a dose) damaged; dose conversion
        impossible (see :func:`rtplan_assist.dicom.rtdose.read_dose`).
    GeometryError
        Oblique dose grid, non-axial contour.

    Notes
    -----
    Plain files (see :mod:`rtplan_assist.dicom._raw`) are read without pydicom. When a file
    or a value is outside that subset, the whole case is read again through pydicom, so the
    result, the warnings and the errors are those of the pydicom path in every case.
    """
    root, paths = input_paths(path)
    try:
        return _load_case(root, paths, patient_id, allow_patient_mismatch, fast=True)
    except NotClean:
        return _load_case(root, paths, patient_id, allow_patient_mismatch, fast=False)


def _load_case(root, paths, patient_id, allow_patient_mismatch: bool, *, fast: bool) -> Case:
    index = index_files(paths, root, fast=fast)
    warnings: list[str] = []
    if index.not_dicom:
        warnings.append(
            f"skipped {len(index.not_dicom)} file(s) that are not DICOM: "
            f"{_names(index, index.not_dicom)}."
        )

    patients = index.patients()
    if not patients:
        raise DicomInputError(
            "no readable DICOM file found"
            + (f" ({len(index.not_dicom)} non-DICOM files skipped)" if index.not_dicom else "")
            + ". Point to the folder holding the RTSTRUCT/RTDOSE/RTPLAN files.",
            path=root,
        )
    if patient_id is not None:
        by_key = {patient_key(pid): pid for pid in patients}
        patient_id = by_key.get(patient_id, patient_id)
        if patient_id not in patients:
            raise DicomInputError(
                f"patient {patient_key(patient_id)} is not in the input; it holds "
                f"{_describe_patients(patients)}.",
                path=root,
            )
        selected = patient_id
    elif len(patients) > 1 and allow_patient_mismatch:
        selected, merged = _merge_mismatched(patients, warnings)
        taken = {id(f) for f in merged}
        patients = {pid: [f for f in files if id(f) not in taken] for pid, files in
                    patients.items()}
        patients[selected] = merged
    elif len(patients) > 1:
        raise DicomInputError(
            f"the input holds files of {len(patients)} patients: {_describe_patients(patients)}. "
            "Choose one with --patient KEY (or the PatientID) or put each patient in its own "
            "folder.",
            path=root,
        )
    else:
        selected = next(iter(patients))
    others = sum(len(v) for k, v in patients.items() if k != selected)
    if others:
        warnings.append(f"ignored {others} file(s) belonging to other patients.")

    files = patients[selected]
    for bad in index.unreadable:
        if bad.patient_id not in (None, selected):
            continue
        if bad.modality in ("RTSTRUCT", "RTDOSE"):
            continue  # decided below: these may be needed
        warnings.append(f"skipped unreadable DICOM file {index.name(bad.path)} ({bad.reason}).")
    damaged = {
        m: [b for b in index.unreadable if b.modality == m and b.patient_id in (None, selected)]
        for m in ("RTSTRUCT", "RTDOSE")
    }
    if damaged["RTDOSE"]:
        bad = damaged["RTDOSE"][0]
        raise DicomInputError(
            f"this RTDOSE cannot be read ({bad.reason}); the file is damaged. Re-export it or "
            "remove it from the folder.",
            path=bad.path,
        )

    by_modality: dict[str, list[IndexedFile]] = {}
    for f in files:
        by_modality.setdefault(f.modality, []).append(f)
    unused = {
        m: len(v) for m, v in by_modality.items() if m not in RT_MODALITIES + IMAGE_MODALITIES
    }
    if unused:
        listed = ", ".join(f"{n} {m or '(no Modality)'}" for m, n in sorted(unused.items()))
        warnings.append(f"ignored files of modalities not used here: {listed}.")

    struct_files = by_modality.get("RTSTRUCT", [])
    plan_files = by_modality.get("RTPLAN", [])
    dose_files = by_modality.get("RTDOSE", [])
    if not struct_files and damaged["RTSTRUCT"]:
        bad = damaged["RTSTRUCT"][0]
        raise DicomInputError(
            f"the only RTSTRUCT cannot be read ({bad.reason}); the file is damaged. Re-export "
            "the structure set.",
            path=bad.path,
        )
    for bad in damaged["RTSTRUCT"]:
        warnings.append(f"skipped unreadable RTSTRUCT {index.name(bad.path)} ({bad.reason}).")
    if not struct_files and not dose_files:
        found = ", ".join(f"{len(v)} {m}" for m, v in sorted(by_modality.items()))
        raise DicomInputError(
            f"no RTSTRUCT or RTDOSE found (found {found}); a case needs a structure set "
            "and/or a dose.",
            path=root,
        )

    # Plans are small: read them all to find which structure set they reference.
    plans_all: list[tuple[IndexedFile, Plan, list[str]]] = []
    for f in plan_files:
        plan_warnings: list[str] = []
        plans_all.append((f, read_plan(f.header, f.path, plan_warnings), plan_warnings))

    structure_file = _choose_structure_set(index, struct_files, [p for _, p, _ in plans_all])
    if structure_file is not None and len(struct_files) > 1:
        ignored = [f.path for f in struct_files if f is not structure_file]
        warnings.append(
            f"{len(struct_files)} structure sets found; using {index.name(structure_file.path)} "
            f"(referenced by the plans) and ignoring {_names(index, ignored)}."
        )
    if structure_file is None:
        warnings.append("no RTSTRUCT found: the case has no structures (dose only).")

    # Frame of reference of the case.
    if structure_file is not None and structure_file.frame_of_reference_uid:
        frame_uid = structure_file.frame_of_reference_uid
    else:
        dose_frames = {f.frame_of_reference_uid for f in dose_files if f.frame_of_reference_uid}
        if len(dose_frames) > 1:
            raise DicomInputError(
                f"the doses are in {len(dose_frames)} frames of reference and no structure set "
                "ties them together; load the doses of one frame of reference at a time.",
                path=root,
            )
        frame_uid = next(iter(dose_frames), "")

    def same_frame(f_uid: str) -> bool:
        return not f_uid or not frame_uid or f_uid == frame_uid

    # Doses of this frame of reference; pixels are read only for these.
    doses_used: list[IndexedFile] = []
    for f in dose_files:
        if not same_frame(f.frame_of_reference_uid):
            warnings.append(
                f"{index.name(f.path)}: RTDOSE is in another frame of reference "
                f"({f.frame_of_reference_uid}) than the structure set ({frame_uid}); not "
                "loaded. Export the dose on the structure set's CT (or register and resample "
                "it) so that both share one frame of reference."
            )
        elif not has_dose_grid(f.header):
            warnings.append(
                f"{index.name(f.path)}: RTDOSE has no dose grid (DVH only); not loaded."
            )
        else:
            if not f.frame_of_reference_uid:
                warnings.append(
                    f"{index.name(f.path)}: RTDOSE has no FrameOfReferenceUID; assumed to be in "
                    "the frame of reference of the structure set. Check that they belong "
                    "together (same patient position and coordinates)."
                )
            doses_used.append(f)
    referenced_plans = {uid for f in doses_used if (uid := _dose_plan_uid(f)) is not None}

    plans: list[Plan] = []
    for f, plan, plan_warnings in plans_all:
        if not (
            same_frame(plan.frame_of_reference_uid) or plan.sop_instance_uid in referenced_plans
        ):
            warnings.append(
                f"{index.name(f.path)}: RTPLAN is in another frame of reference "
                f"({plan.frame_of_reference_uid}) than the structure set ({frame_uid}); not "
                "loaded."
            )
            continue
        warnings.extend(plan_warnings)
        if (
            structure_file is not None
            and plan.referenced_structure_set_uid
            and plan.referenced_structure_set_uid != structure_file.sop_instance_uid
        ):
            warnings.append(
                f"{index.name(f.path)}: RTPLAN references a structure set that is not the one "
                f"loaded ({index.name(structure_file.path)}); check that they belong together."
            )
        plans.append(plan)
    plans_by_uid = {p.sop_instance_uid: p for p in plans}

    doses: list[Dose] = []
    for f in doses_used:
        plan_uid = _dose_plan_uid(f)
        plan = plans_by_uid.get(plan_uid) if plan_uid else None
        name = index.name(f.path)
        if plan_uid and plan is None:
            warnings.append(
                f"{name}: RTDOSE references an RTPLAN that is not in the input; fractions and "
                "prescription for this dose are unknown."
            )
        elif not plan_uid:
            warnings.append(f"{name}: RTDOSE references no RTPLAN.")
        dose = read_dose(f.path, f.header, prescription_gy=plan.prescription_gy if plan else None)
        with malformed_as_input_error(f.path, "RTDOSE DoseUnits"):
            units = str(f.header.get("DoseUnits", "")).strip().upper()
        if units == "RELATIVE":
            warnings.append(
                f"{name}: RELATIVE dose converted to Gy taking 1.0 as the prescription "
                f"({plan.prescription_gy:g} Gy of {index.name(plan.path)})."
            )
        if dose.summation_type == "FRACTION":
            warnings.append(
                f"{name}: DoseSummationType is FRACTION: the grid is one fraction's dose; "
                "totals are dose × number of fractions."
            )
        elif dose.summation_type == "BEAM":
            warnings.append(
                f"{name}: DoseSummationType is BEAM: the grid is one beam's dose, not the plan's."
            )
        elif not dose.summation_type:
            warnings.append(
                f"{name}: RTDOSE has no DoseSummationType; check that it is the plan dose."
            )
        doses.append(dose)
    if structure_file is not None and not doses:
        warnings.append("no RTDOSE in the input: structures only, no dose to evaluate.")

    ct = _choose_ct(index, by_modality.get("CT", []), structure_file, frame_uid, warnings)

    structures = []
    if structure_file is not None:
        thickness = ct_plane_spacing(ct) if ct is not None else None
        structures = read_structures(
            structure_file.header, structure_file.path, warnings, slice_thickness_mm=thickness
        )

    anchor = structure_file or (dose_files[0] if dose_files else files[0])
    return Case(
        folder=str(root) if root is not None else "",
        patient_id=selected,
        patient_name=anchor.patient_name,
        study_instance_uid=anchor.study_instance_uid,
        frame_of_reference_uid=frame_uid,
        structures=structures,
        doses=doses,
        plans=plans,
        structure_set_path=str(structure_file.path) if structure_file else None,
        structure_set_uid=structure_file.sop_instance_uid if structure_file else None,
        ct=ct,
        warnings=warnings,
    )


def _dose_plan_uid(f: IndexedFile) -> str | None:
    with malformed_as_input_error(f.path, "RTDOSE ReferencedRTPlanSequence"):
        return referenced_plan_uid(f.header)


def _choose_structure_set(
    index: Index, struct_files: list[IndexedFile], plans: list[Plan]
) -> IndexedFile | None:
    if len(struct_files) <= 1:
        return struct_files[0] if struct_files else None
    referenced = {p.referenced_structure_set_uid for p in plans if p.referenced_structure_set_uid}
    candidates = [f for f in struct_files if f.sop_instance_uid in referenced]
    if len(candidates) == 1:
        return candidates[0]
    why = (
        "the plans reference none of them"
        if not candidates
        else f"the plans reference {len(candidates)} of them"
    )
    raise DicomInputError(
        f"{len(struct_files)} structure sets found ({_names(index, [f.path for f in struct_files])}) "
        f"and {why}; load one explicitly by passing its file together with the doses, or "
        "remove the others from the folder.",
        path=index.root,
    )


def _choose_ct(
    index: Index,
    ct_files: list[IndexedFile],
    structure_file: IndexedFile | None,
    frame_uid: str,
    warnings: list[str],
) -> CTSeries | None:
    if not ct_files:
        return None
    series: dict[str, list[IndexedFile]] = {}
    for f in ct_files:
        series.setdefault(f.series_instance_uid, []).append(f)
    chosen: list[IndexedFile] | None = None
    if structure_file is not None:
        with malformed_as_input_error(structure_file.path, "RTSTRUCT referenced series"):
            referenced = referenced_series_uids(structure_file.header)
        for uid in referenced:
            if uid in series:
                chosen = series[uid]
                break
    if chosen is None:
        same_frame = [
            s for s in series.values() if frame_uid and s[0].frame_of_reference_uid == frame_uid
        ]
        if not same_frame:
            warnings.append(
                "CT files found, but none in the structure set's series or frame of reference; "
                "no CT loaded."
            )
            return None
        same_frame.sort(key=len, reverse=True)
        chosen = same_frame[0]
        if len(same_frame) > 1:
            warnings.append(
                f"{len(same_frame)} CT series share the frame of reference; using the largest "
                f"({len(chosen)} slices)."
            )
    try:
        return ct_series_from_headers([(str(f.path), f.header) for f in chosen])
    except RtplanAssistError as exc:
        warnings.append(f"CT series not usable, loaded without CT: {exc}")
        return None


def list_patients(folder) -> list[dict]:
    """Patients in a folder, for a data-root picker (headers only, light read).

    Returns
    -------
    list of dict
        One per PatientID, sorted by it: ``patient_id`` (``""`` when absent),
        ``patient_name``, ``n_files`` and ``modalities`` (sorted list of str).
    """
    root, paths = input_paths(folder)
    index = index_files(paths, root, light=True)
    out = []
    for pid, files in sorted(index.patients().items()):
        out.append(
            {
                "patient_id": pid,
                "patient_name": next((f.patient_name for f in files if f.patient_name), ""),
                "n_files": len(files),
                "modalities": sorted({f.modality for f in files}),
            }
        )
    return out


def find_patient_folders(root) -> list[Path]:
    """Folders under ``root`` that each hold the DICOM RT files of one patient.

    A folder is returned when the RT objects (RTSTRUCT, RTPLAN, RTDOSE) anywhere under it
    belong to exactly one patient and its parent's do not (or it is ``root``): the highest
    single-patient folder, so a patient's CT and RT sub-folders stay together. A folder that
    itself holds RT files of several patients cannot be split and is returned as well, so that
    loading it reports the problem instead of silently skipping those files.

    Returns
    -------
    list of Path
        Sorted.
    """
    root = Path(root)
    if not root.is_dir():
        raise DicomInputError("no such folder.", path=root)
    _, paths = input_paths(root)
    index = index_files(paths, root, light=True)
    direct: dict[Path, set[str]] = {}
    for f in index.files:
        if f.modality in RT_MODALITIES:
            direct.setdefault(f.path.parent, set()).add(f.patient_id)
    subtree: dict[Path, set[str]] = {}
    for folder, pids in direct.items():
        current = folder
        while True:
            subtree.setdefault(current, set()).update(pids)
            if current == root or root not in current.parents:
                break
            current = current.parent
    found = []
    for folder, pids in subtree.items():
        parent_pids = subtree.get(folder.parent, set()) if folder != root else set()
        top_single = len(pids) == 1 and (folder == root or len(parent_pids) > 1)
        mixed_here = len(pids) > 1 and len(direct.get(folder, set())) > 1
        if top_single or mixed_here:
            found.append(folder)
    return sorted(found)
