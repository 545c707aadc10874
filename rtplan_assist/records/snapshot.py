"""What a decision record holds: the decision and its evidence, from an evaluation.

:func:`decision_content` turns an evaluator and its :class:`EvaluationResult` (for the MDT's
choice) into the record's columns and lesion rows; :func:`evidence_of` is the evidence
snapshot: SHA-256 of every input file and of every constraint table and data file used, the
software version, the models and the α/β values of the chosen rows, and what the evaluation
needs to be repeated (tables, structure mapping, outside policy, regimens considered).
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

from ..constraints import DATA_FILES, shipped_folder
from ..errors import RtplanAssistError

__all__ = ["ROLES", "RecordError", "case_files", "check_author", "decision_content", "evidence_of",
           "file_sha256"]

#: Roles of the people who record decisions and of the app's logins.
ROLES = ("viewer", "clinician", "admin")


class RecordError(RtplanAssistError):
    """A decision cannot be recorded or read (bad choice, bad database, broken record)."""

    exit_code = 2


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def case_files(case) -> list[Path]:
    """Every file the evaluation of ``case`` read: CT slices, RTSTRUCT, RTPLANs, RTDOSEs, and
    the folder's structure-mapping file when there is one."""
    from ..names import folder_mapping

    paths = []
    if case.ct is not None:
        paths += list(case.ct.paths)
    if case.structure_set_path:
        paths.append(case.structure_set_path)
    paths += [p.path for p in case.plans] + [d.path for d in case.doses]
    map_file = folder_mapping(case)[1]
    if map_file:
        paths.append(map_file)
    return [Path(p) for p in dict.fromkeys(str(p) for p in paths)]


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return path.name


def table_files(tables_folder: str | None, names: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(origin, path) of every constraint table (``names``: file stems) and data file an
    evaluation used; origin is ``"shipped"`` or ``"user"`` (``--tables-folder``)."""
    shipped = shipped_folder()
    base = Path(tables_folder) if tables_folder else shipped

    def where(name: str) -> tuple[str, Path]:
        if base != shipped and (base / name).is_file():
            return "user", base / name
        return "shipped", shipped / name

    out = [("shipped", shipped / "sources.yaml")]
    if base != shipped and (base / "sources.yaml").is_file():
        out.append(("user", base / "sources.yaml"))
    out += [where(name) for name in DATA_FILES]
    out += [("user" if base != shipped else "shipped", base / f"{name}.csv") for name in names]
    return out


def evidence_of(evaluator, result, *, tables_folder: str | None = None,
                scrub=None, map_file: str | None = None,
                case_options: dict | None = None) -> dict:
    """The evidence snapshot of ``result`` (a JSON-safe dict of str/int/list/dict).

    Parameters
    ----------
    evaluator : Evaluation
        The evaluator that produced ``result`` (its case, tables, mapping, regimens).
    result : EvaluationResult
    tables_folder : str or None
        The ``--tables-folder`` the tables were loaded from (None: shipped).
    scrub : callable or None
        Applied to input file names when the record is de-identified.
    map_file : str or None
        A structure-mapping file given on the command line (``--map-file``): hashed too.
    case_options : dict or None
        ``targets``, ``prescriptions`` (the ``--target``/``--prescription`` texts) and
        ``allow_patient_mismatch``, kept for re-evaluation.
    """
    from .. import __version__
    from ..regimens import TUMOUR_MODEL

    case = evaluator.case
    folder = Path(case.folder)
    scrub = scrub or (lambda text: text)
    inputs = sorted(
        ({"file": scrub(_relative(p, folder)), "sha256": file_sha256(p)} for p in case_files(case)),
        key=lambda item: item["file"],
    )
    tables = [
        {"origin": origin, "file": path.name, "sha256": file_sha256(path)}
        for origin, path in table_files(
            tables_folder, tuple(Path(name).stem for name in evaluator.tables.files))
    ]
    alpha_beta: dict[str, str] = {}
    for row in result.chosen_rows() + list(result.composite_rows):
        if row.alpha_beta_gy is not None and row.role != "target":
            alpha_beta.setdefault(row.organ or row.structure, f"{row.alpha_beta_gy:g}")
    regimens = {
        lesion.lesion_id: [r.label for r in evaluator.regimens_for(lesion.lesion_id)]
        for lesion in result.lesions
    }
    return {
        "software": {
            "rtplan_assist": __version__,
            "python": platform.python_version(),
        },
        "inputs": inputs,
        "tables": tables,
        "tables_used": sorted(Path(name).stem for name in evaluator.tables.files),
        "tables_folder": "user" if tables_folder else "shipped",
        "models": {
            "tumour": TUMOUR_MODEL.describe(),
            "oar": "LQ, organ α/β from alpha_beta.csv (per-row α/β where a table states one)",
            "composite": "voxel-wise EQD2 sum over lesions (LQ, organ α/β)",
        },
        "alpha_beta_gy": dict(sorted(alpha_beta.items())),
        "structure_mapping": {scrub(k): v for k, v in sorted(evaluator.name_match.matched.items())},
        "map_file_sha256": file_sha256(map_file) if map_file else None,
        "outside": evaluator.outside,
        "regimens_considered": regimens,
        "case_options": {"targets": [], "prescriptions": [], "allow_patient_mismatch": False,
                         **(case_options or {})},
    }


def check_author(recorded_by: str, role: str, rationale: str,
                 attendees: list[dict] | None = None) -> None:
    """Refuse an empty name or rationale, a role that cannot record, a nameless attendee
    (:class:`RecordError`); cheap, so callers check before evaluating."""
    if not recorded_by.strip():
        raise RecordError("a decision needs the name of who records it (--by)")
    if role not in ROLES or role == "viewer":
        raise RecordError(f"role '{role}' cannot record a decision (clinician or admin)")
    if not rationale.strip():
        raise RecordError("a decision needs a rationale (--rationale)")
    for person in attendees or []:
        if not str(person.get("name", "")).strip():
            raise RecordError("an attendee without a name")


def decision_content(evaluator, result, *, recorded_by: str, role: str, rationale: str,
                     dissent: str = "", attendees: list[dict] | None = None,
                     mdt_choice: dict | None = None, supersedes: str | None = None,
                     source: str | None = None, deidentify: bool = False,
                     tables_folder: str | None = None, map_file: str | None = None,
                     case_options: dict | None = None) -> tuple[dict, list[dict]]:
    """The record (without chain fields) and its lesion rows for ``result``.

    Parameters
    ----------
    evaluator, result
        The evaluation of the MDT's choice (``result.choice``).
    recorded_by, role : str
        Who records it; role one of :data:`ROLES` other than viewer.
    rationale, dissent : str
    attendees : list of {"name", "role"} or None
    mdt_choice : dict or None
        Lesion id → regimen the MDT chose explicitly; the other lesions took the
        recommendation (``chosen_from`` says which).
    supersedes : str or None
        ``record_id`` this record corrects.
    source : str or None
        The patient folder (or ``"demo"``) for re-evaluation; withheld when de-identified.
    deidentify : bool
        Store the patient key only (no PatientID, no folder, file names scrubbed).

    Raises
    ------
    RecordError
        A chosen regimen that cannot be evaluated, an empty name or rationale, a bad role.
    """
    from ..deidentify import Identifiers, patient_key
    from ..evaluation import rows_verdict

    check_author(recorded_by, role, rationale, attendees)
    overall = result.verdict()
    if overall == "not evaluable":
        raise RecordError(
            "the chosen plan cannot be evaluated (a mandatory constraint of a structure in the "
            "case has no value): nothing recorded"
        )
    case = evaluator.case
    ids = Identifiers.of_case(case, source if source not in (None, "demo") else None)
    scrub = ids.scrub if deidentify else None
    mdt_choice = mdt_choice or {}
    chosen_rows = result.chosen_rows()
    lesions = []
    for lesion in result.lesions:
        lid = lesion.lesion_id
        rows = [r for r in chosen_rows if r.lesion_id == lid]
        verdict = rows_verdict(rows) if rows else "not evaluable"
        if verdict == "not evaluable":
            raise RecordError(
                f"{lid} at {result.choice[lid].label} cannot be evaluated: nothing recorded"
            )
        failures = [r.describe() for r in rows if r.priority == "mandatory" and r.status == "fail"]
        rec = result.recommendation
        lesions.append({
            "lesion_id": lid,
            "label": scrub(lesion.label) if scrub else lesion.label,
            "site": lesion.site,
            "planned": lesion.planned.label,
            "recommended": rec.choice[lid].label,
            "chosen": result.choice[lid].label,
            "chosen_from": "mdt" if lid in mdt_choice else "recommendation",
            "verdict": verdict,
            "binding": rec.binding.get(lid, ""),
            "failures": failures,
        })
    record = {
        "patient_key": patient_key(case.patient_id),
        "patient_id": None if deidentify else case.patient_id,
        "source": None if deidentify else source,
        "recorded_by": recorded_by.strip(),
        "role": role,
        "attendees": [
            {"name": str(p["name"]).strip(), "role": str(p.get("role", "")).strip()}
            for p in (attendees or [])
        ],
        "rationale": rationale.strip(),
        "dissent": (dissent or "").strip(),
        "supersedes": supersedes or None,
        "verdict": overall,
        "composite_verdict": rows_verdict(result.composite_rows) if result.composite_rows
        else "not evaluable",
        "evidence": evidence_of(evaluator, result, tables_folder=tables_folder, scrub=scrub,
                                map_file=map_file, case_options=case_options),
    }
    return record, lesions
