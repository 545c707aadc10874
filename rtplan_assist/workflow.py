"""One way to build an evaluation: :func:`evaluate_folder`.

The CLI (``evaluate``, ``report``, ``export-dose``), the batch and the app's preparation all
build their :class:`~rtplan_assist.evaluation.Evaluation` here, so that the tables, the
regimen lists, the structure mapping and the DVH policy have one set of defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .errors import EvaluationError

if TYPE_CHECKING:  # pragma: no cover
    from .constraints import ConstraintSet
    from .evaluation import Evaluation
    from .model import Case
    from .regimens import Regimen

__all__ = ["evaluate_folder"]


def evaluate_folder(
    path: str | os.PathLike | Case | None = None,
    *,
    demo: bool = False,
    patient: str | None = None,
    tables: ConstraintSet | Sequence[str] | None = None,
    tables_folder: str | os.PathLike | None = None,
    map_file: str | os.PathLike | None = None,
    overrides: Mapping[str, str] | None = None,
    regimens: Mapping[str, list[Regimen]] | str | None = None,
    regimens_file: str | os.PathLike | None = None,
    extra_regimens: Mapping[str, list[Regimen]] | None = None,
    outside: str = "exclude",
    targets: Mapping[str, list[str]] | None = None,
    prescriptions: Mapping[str, Regimen] | None = None,
    allow_patient_mismatch: bool = False,
    end_caps: str = "half",
) -> Evaluation:
    """Load a patient folder and build its evaluation (computed on demand, cached).

    Parameters
    ----------
    path : path, Case or None
        The patient folder (DICOM CT/RTSTRUCT/RTPLAN/RTDOSE) or an already loaded case.
    demo : bool
        Use the built-in synthetic patient instead of ``path``.
    patient : str, optional
        Which patient when the folder holds several (``p-…`` key or PatientID).
    tables : ConstraintSet or sequence of str, optional
        The constraint tables, or the names (file stems) of the tables to load; default every
        table of ``tables_folder`` (default: the shipped tables).
    tables_folder : path, optional
        A folder of user tables (:func:`rtplan_assist.constraints.load_tables`).
    map_file : path, optional
        CSV ``structure,tg263`` of structure mappings.
    overrides : mapping of str to str, optional
        Case structure name → TG-263 name; they take precedence over ``map_file``, which takes
        precedence over a mapping file in the case folder.
    regimens : mapping of str to list of Regimen, or "planned", optional
        Lesion id or ``"*"`` → regimens; ``"planned"``: each lesion's planned regimen only;
        default the regimens of ``regimens_file``, else the built-in catalogue. The planned
        regimen of each lesion is always added.
    regimens_file : path, optional
        CSV ``lesion,total_dose_gy,fractions`` (:func:`rtplan_assist.regimens.load_regimen_file`).
    extra_regimens : mapping of str to list of Regimen, optional
        Lesion id or ``"*"`` → regimens added to the lesion's list (the file's, else the
        catalogue).
    outside : {"exclude", "zero"}
        DVH policy for structure volume outside a dose grid.
    end_caps : {"half", "none"}
        How the first and last contour planes are closed (:data:`rtplan_assist.geometry.END_CAPS`);
        used by every DVH of the evaluation and stated in its provenance.
    targets : mapping of str to list of str, optional
        Plan (RTPlanLabel, RTPlanName or file name) → target structure names (``--target``);
        several targets of one plan are several lesions sharing its dose and regimen.
    prescriptions : mapping of str to Regimen, optional
        Plan → prescription (``--prescription``) for plans that give none.
    allow_patient_mismatch : bool
        Accept RTPLAN/RTDOSE of another PatientID in the structure set's frame of reference
        (warned; recorded in the provenance; :func:`rtplan_assist.dicom.load_case`).

    Returns
    -------
    Evaluation

    Raises
    ------
    RtplanAssistError
        A typed error naming the file and the problem: unreadable DICOM, bad tables, bad
        regimen or mapping file, no lesion to evaluate, regimens for an unknown lesion.
    """
    from .evaluation import Evaluation
    from .model import Case

    if demo == (path is not None):
        raise EvaluationError("give a patient folder PATH or --demo (not both)")
    if isinstance(path, Case):
        case = path
    else:
        from .dicom import load_case

        if demo:
            from .demo import demo_case_folder

            path = demo_case_folder()
        case = load_case(path, patient_id=patient, allow_patient_mismatch=allow_patient_mismatch)
    if tables is None or not hasattr(tables, "constraints"):
        from .constraints import load_tables

        tables = load_tables(list(tables) if tables is not None else None, folder=tables_folder)
    merged: dict[str, str] = {}
    if map_file is not None:
        from .names import check_mapping_file, load_mapping_file

        # an entry the case cannot use is refused as file:line (not as '--map ...')
        lines: dict[str, int] = {}
        from_file = load_mapping_file(map_file, lines=lines)
        check_mapping_file(map_file, from_file, lines, [s.name for s in case.structures], tables)
        merged.update(from_file)
        from .evaluation.lesions import mapping_file_plan_options

        file_targets, file_rx = mapping_file_plan_options(map_file)
        targets = {**file_targets, **dict(targets or {})}
        prescriptions = {**file_rx, **dict(prescriptions or {})}
    merged.update(overrides or {})
    if regimens is None and regimens_file is not None:
        from .regimens import load_regimen_file

        regimens = load_regimen_file(regimens_file)
    late: dict[str, list] = {}
    if extra_regimens:
        if isinstance(regimens, str):
            raise EvaluationError("extra_regimens need regimen lists, not regimens='planned'")
        regimens = dict(regimens or {})
        for lesion, extra in extra_regimens.items():
            base = regimens.get(lesion) or regimens.get("*")
            if base is None:
                late[lesion] = list(extra)  # added to the lesion's site defaults below
            else:
                regimens[lesion] = list(dict.fromkeys(list(base) + list(extra)))
    evaluation = Evaluation(
        case,
        tables=tables,
        overrides=merged,
        regimens=regimens,
        outside=outside,
        end_caps=end_caps,
        targets=dict(targets or {}),
        prescriptions=dict(prescriptions or {}),
    )
    for key, extra in late.items():
        ids = [x.lesion_id for x in evaluation.lesions] if key == "*" else [key]
        for lid in ids:
            for regimen in extra:
                evaluation.add_regimen(lid, regimen)
    return evaluation
