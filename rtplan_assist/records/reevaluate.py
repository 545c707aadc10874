"""Re-evaluation from a record: check the stored hashes against the files, evaluate the recorded
choice again with the recorded tables, mapping and regimens, and compare the verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .snapshot import RecordError, case_files, file_sha256, table_files

__all__ = ["Reevaluation", "evaluator_for", "reevaluate"]


@dataclass
class Reevaluation:
    """Outcome of :func:`reevaluate`.

    Attributes
    ----------
    record_id : str
    file_differences : list of str
        Input files and tables whose SHA-256 differs from the record, or that are missing or
        new.
    verdict_differences : list of str
        Verdicts, recommendations or binding constraints that came out differently.
    software : str
        The version that recorded it and the version that re-evaluated it.
    """

    record_id: str
    file_differences: list[str] = field(default_factory=list)
    verdict_differences: list[str] = field(default_factory=list)
    software: str = ""

    @property
    def same(self) -> bool:
        return not self.file_differences and not self.verdict_differences


def evaluator_for(record: dict, path: str | None = None, tables_folder: str | None = None):
    """An :class:`~rtplan_assist.evaluation.Evaluation` set up as when ``record`` was made
    (its folder or ``path``; :func:`rtplan_assist.workflow.evaluate_folder`)."""
    from ..dicom import load_case
    from ..regimens import parse_regimen
    from ..workflow import evaluate_folder

    evidence = record["evidence"]
    source = path or record.get("source")
    if not source:
        raise RecordError(
            f"record {record['record_id']} is de-identified (no folder stored): give the "
            "patient folder"
        )
    if source == "demo":
        from ..demo import demo_case_folder

        source = demo_case_folder()
    if evidence.get("tables_folder") == "user" and not tables_folder:
        raise RecordError(
            f"record {record['record_id']} used a user tables folder: give --tables-folder"
        )
    options = evidence.get("case_options") or {}
    case = load_case(source, patient_id=record.get("patient_id") or None,
                     allow_patient_mismatch=bool(options.get("allow_patient_mismatch")))
    from ..deidentify import patient_key

    if patient_key(case.patient_id) != record["patient_key"]:
        raise RecordError(
            f"{source}: holds patient {patient_key(case.patient_id)}, the record is of "
            f"{record['patient_key']}"
        )
    regimens = {lid: [parse_regimen(label) for label in labels]
                for lid, labels in evidence["regimens_considered"].items()}
    from ..cli_evaluate import parse_prescriptions, parse_targets

    return evaluate_folder(case, tables=evidence["tables_used"], tables_folder=tables_folder,
                           overrides=dict(evidence["structure_mapping"]), regimens=regimens,
                           outside=evidence["outside"],
                           targets=parse_targets(options.get("targets") or []),
                           prescriptions=parse_prescriptions(options.get("prescriptions") or []))


def reevaluate(record: dict, path: str | None = None,
               tables_folder: str | None = None) -> Reevaluation:
    """Check a record against the files and the current software.

    Parameters
    ----------
    record : dict
        From :meth:`RecordStore.record`.
    path : str or None
        The patient folder (default: the folder stored in the record).
    tables_folder : str or None
        The user tables folder, when the record used one.

    Returns
    -------
    Reevaluation
        Every input file and table whose hash differs, and every verdict, recommended regimen
        or binding constraint that changed.
    """
    from .. import __version__
    from ..evaluation import rows_verdict
    from ..regimens import parse_regimen

    evidence = record["evidence"]
    evaluator = evaluator_for(record, path, tables_folder)
    out = Reevaluation(
        record["record_id"],
        software=f"recorded with rtplan-assist {evidence['software']['rtplan_assist']}, "
        f"re-evaluated with {__version__}",
    )
    folder = Path(evaluator.case.folder)
    now = {}
    for p in case_files(evaluator.case):
        try:
            rel = p.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            rel = p.name
        now[rel] = file_sha256(p)
    then = {item["file"]: item["sha256"] for item in evidence["inputs"]}
    for name in sorted(set(then) | set(now)):
        if name not in now:
            out.file_differences.append(f"input {name}: missing now")
        elif name not in then:
            out.file_differences.append(f"input {name}: not in the record")
        elif then[name] != now[name]:
            out.file_differences.append(f"input {name}: SHA-256 differs")
    tables_then = {(t["origin"], t["file"]): t["sha256"] for t in evidence["tables"]}
    for origin, p in table_files(tables_folder, tuple(evidence["tables_used"])):
        old = tables_then.get((origin, p.name))
        if old is None:
            out.file_differences.append(f"table {p.name} ({origin}): not in the record")
        elif not p.is_file():
            out.file_differences.append(f"table {p.name} ({origin}): missing now")
        elif file_sha256(p) != old:
            out.file_differences.append(f"table {p.name} ({origin}): SHA-256 differs")

    choice = {lesion["lesion_id"]: parse_regimen(lesion["chosen"]) for lesion in record["lesions"]}
    result = evaluator.evaluate(choice)
    rows = result.chosen_rows()
    for lesion in record["lesions"]:
        lid = lesion["lesion_id"]
        mine = [r for r in rows if r.lesion_id == lid]
        checks = (
            ("verdict", lesion["verdict"], rows_verdict(mine) if mine else "not evaluable"),
            ("recommended", lesion["recommended"], result.recommendation.choice[lid].label),
            ("binding", lesion["binding"], result.recommendation.binding.get(lid, "")),
        )
        for what, old, new in checks:
            if old != new:
                out.verdict_differences.append(f"{lid} {what}: recorded {old!r}, now {new!r}")
    composite = rows_verdict(result.composite_rows) if result.composite_rows else "not evaluable"
    for what, old, new in (("composite verdict", record["composite_verdict"], composite),
                           ("verdict", record["verdict"], result.verdict())):
        if old != new:
            out.verdict_differences.append(f"{what}: recorded {old!r}, now {new!r}")
    return out
