"""``rtplan-assist decide`` (record an MDT decision), ``records`` (list them) and
``verify-records`` (check the hash chain; re-evaluate one record).

Exit codes: ``decide`` 0 recorded, 2 not recorded (bad input, a choice that cannot be
evaluated, a database that cannot be written); ``records`` 0 or 2; ``verify-records`` 0 intact
(and, with ``--record``, the same files and verdicts), 1 a broken chain (naming the first broken
record) or a re-evaluation that differs, 2 the database cannot be read.
"""

from __future__ import annotations

import csv
import io
import json
import sys

from .cli_evaluate import add_case_options
from .errors import EvaluationError

__all__ = ["register"]

DB_HELP = ("database URL or SQLite file (default: $RTPLAN_ASSIST_DB, else records.sqlite in "
           "the user's data directory); PostgreSQL: postgresql://user@host/dbname")


def register(sub) -> None:
    d = sub.add_parser(
        "decide",
        help="record an MDT decision (append-only, hash-chained) with its evidence",
        description=(
            "Evaluate the MDT's choice (lesions not named take the recommendation) and append "
            "a decision record: per lesion the planned, recommended and chosen regimen with its "
            "verdict and binding constraint, the composite verdict, who, when, rationale, "
            "dissent, and the evidence (SHA-256 of every input file and constraint table, "
            "software version, models, α/β). Prints the record id and hash. A choice that "
            "cannot be evaluated is refused (exit 2)."
        ),
    )
    d.add_argument("path", nargs="?", help="patient folder (DICOM CT/RTSTRUCT/RTPLAN/RTDOSE)")
    d.add_argument("--demo", action="store_true", help="use the built-in synthetic patient")
    d.add_argument("--patient", metavar="KEY|ID", help="which patient when the folder holds "
                   "several")
    d.add_argument("--choose", action="append", default=[], metavar="L1=54/3",
                   help="the MDT's regimen for a lesion (repeatable)")
    d.add_argument("--by", required=True, metavar="NAME", help="who records the decision")
    d.add_argument("--role", default="clinician", choices=("clinician", "admin"),
                   help="role of who records it (default clinician)")
    d.add_argument("--rationale", required=True, metavar="TEXT", help="why this choice")
    d.add_argument("--dissent", default="", metavar="TEXT", help="dissenting opinions")
    d.add_argument("--attendee", action="append", default=[], metavar="NAME[:ROLE]",
                   help="an MDT attendee and their role (repeatable)")
    d.add_argument("--supersedes", metavar="RECORD_ID",
                   help="this record corrects that one (same patient)")
    add_case_options(d)  # as for evaluate
    d.add_argument("--deidentify", action="store_true",
                   help="store the patient key only: no PatientID, no folder, file names "
                   "scrubbed (re-evaluation then needs the folder)")
    d.add_argument("--db", metavar="URL", help=DB_HELP)
    d.add_argument("--format", choices=("text", "json"), default="text")
    d.set_defaults(handler=_cmd_decide)

    r = sub.add_parser("records", help="list recorded MDT decisions",
                       description="List decision records, oldest first.")
    r.add_argument("--db", metavar="URL", help=DB_HELP)
    r.add_argument("--patient", metavar="KEY|ID", help="only this patient (key p-… or PatientID)")
    r.add_argument("--format", choices=("text", "json", "csv", "fhir"), default="text",
                   help="text (default), json (everything, with the evidence), csv (one row "
                   "per record × lesion) or fhir (a FHIR R4 Bundle following CodeX Radiation "
                   "Therapy: a ServiceRequest per record with one dose-prescribed-to-volume "
                   "extension per lesion; checked with fhir.resources)")
    r.set_defaults(handler=_cmd_records)

    v = sub.add_parser(
        "verify-records",
        help="check the decision records' hash chain; re-evaluate one record",
        description=(
            "Recompute every record's hash and its link to the record before it. Exit 0 intact, "
            "1 naming the first broken record, 2 when the database cannot be read. With "
            "--record, also check that record's stored file hashes against the files and "
            "recompute its verdicts (exit 1 when anything differs)."
        ),
    )
    v.add_argument("--db", metavar="URL", help=DB_HELP)
    v.add_argument("--record", metavar="RECORD_ID", help="re-evaluate this record")
    v.add_argument("--path", metavar="DIR",
                   help="patient folder for --record (default: the folder stored in it)")
    v.add_argument("--tables-folder", metavar="DIR",
                   help="user tables folder for --record, when the record used one")
    v.set_defaults(handler=_cmd_verify)

    u = sub.add_parser(
        "users",
        help="manage the logins of a shared app (serve --users FILE|db)",
        description=(
            "Add, remove or list app logins in a users file (--file) or in the decision "
            "database (--db). Roles: viewer (read), clinician (also record decisions), admin. "
            "Passwords are asked twice on the terminal (or read from stdin with "
            "--password-stdin), hashed with scrypt, and never printed."
        ),
    )
    u.add_argument("action", choices=("add", "remove", "list"))
    u.add_argument("username", nargs="?")
    u.add_argument("--role", choices=("viewer", "clinician", "admin"), default="viewer")
    u.add_argument("--name", metavar="DISPLAY_NAME",
                   help="the name shown and recorded with decisions (default: the user name)")
    where = u.add_mutually_exclusive_group(required=True)
    where.add_argument("--file", metavar="CSV", help="users file")
    where.add_argument("--db", metavar="URL", nargs="?", const="",
                       help="the decision database (" + DB_HELP + ")")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    u.set_defaults(handler=_cmd_users)


# ------------------------------------------------------------------------------ decide


def _attendees(items: list[str]) -> list[dict]:
    out = []
    for item in items:
        name, _, role = item.partition(":")
        if not name.strip():
            raise EvaluationError(f"--attendee '{item}': expected NAME or NAME:ROLE")
        out.append({"name": name.strip(), "role": role.strip()})
    return out


def _cmd_decide(args) -> int:
    from pathlib import Path

    from .cli_evaluate import _parse_assignments, build_evaluator
    from .records import decision_content, open_store
    from .records.snapshot import check_author

    attendees = _attendees(args.attendee)
    check_author(args.by, args.role, args.rationale, attendees)
    choose = {}
    for lesion, regimens in _parse_assignments(args.choose, "--choose").items():
        if lesion == "*" or len(regimens) != 1:
            raise EvaluationError("--choose needs one L1=54/3 per lesion")
        choose[lesion] = regimens[0]
    # the database is opened (and created) first: a bad --db fails before the evaluation
    with open_store(args.db) as store:
        args.regimens, args.regimen = None, []
        evaluator = build_evaluator(args)
        unknown = sorted(set(choose) - {lesion.lesion_id for lesion in evaluator.lesions})
        if unknown:
            raise EvaluationError(
                f"--choose: no lesion {', '.join(unknown)} in this case; the lesions are "
                + ", ".join(lesion.lesion_id for lesion in evaluator.lesions))
        result = evaluator.evaluate(choose or None)
        source = "demo" if args.demo else str(Path(args.path).resolve())
        record, lesions = decision_content(
            evaluator, result, recorded_by=args.by, role=args.role, rationale=args.rationale,
            dissent=args.dissent, attendees=attendees, mdt_choice=choose,
            supersedes=args.supersedes, source=source, deidentify=args.deidentify,
            tables_folder=args.tables_folder, map_file=args.map_file,
            case_options={"targets": list(args.target),
                          "prescriptions": list(args.prescription),
                          "allow_patient_mismatch": bool(args.allow_patient_mismatch)},
        )
        stored = store.append(record, lesions)
    if args.format == "json":
        payload = {"record_id": stored.record_id, "seq": stored.seq,
                   "record_hash": stored.record_hash, "created_at": stored.created_at,
                   "verdict": record["verdict"]}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        chosen = ", ".join(f"{x['lesion_id']} {x['chosen']} ({x['verdict']})" for x in lesions)
        sys.stdout.write(
            f"record {stored.record_id}\nhash   {stored.record_hash}\n"
            f"#{stored.seq} {record['patient_key']} by {record['recorded_by']} "
            f"({record['role']}) at {stored.created_at}: {chosen}; verdict {record['verdict']}\n"
        )
    return 0


# ------------------------------------------------------------------------------ records

CSV_COLUMNS = ("seq", "record_id", "created_at", "patient_key", "patient_id", "recorded_by",
               "role", "supersedes", "superseded_by", "verdict", "composite_verdict",
               "lesion_id", "planned", "recommended", "chosen", "chosen_from", "lesion_verdict",
               "binding", "rationale", "dissent", "record_hash")


def format_record_text(rec: dict) -> str:
    """A record as a few terminal lines."""
    who = f"{rec['recorded_by']} ({rec['role']})"
    patient = rec["patient_key"] + (f" [{rec['patient_id']}]" if rec["patient_id"] else "")
    lines = [f"#{rec['seq']} {rec['record_id']}  {rec['created_at']}  {patient}  by {who}",
             (f"   verdict {rec['verdict']}, composite {rec['composite_verdict']}; "
              f"hash {rec['record_hash'][:16]}…")]
    if rec["supersedes"]:
        lines.append(f"   supersedes {rec['supersedes']}")
    if rec["superseded_by"]:
        lines.append(f"   SUPERSEDED by {', '.join(rec['superseded_by'])}")
    for lesion in rec["lesions"]:
        src = "MDT" if lesion["chosen_from"] == "mdt" else "as recommended"
        lines.append(
            f"   {lesion['lesion_id']}: planned {lesion['planned']}, recommended "
            f"{lesion['recommended']}, chosen {lesion['chosen']} ({src}): {lesion['verdict']}"
            + (f"; binding: {lesion['binding']}" if lesion["binding"] else "")
        )
    if rec["attendees"]:
        lines.append("   attendees: " + ", ".join(
            a["name"] + (f" ({a['role']})" if a["role"] else "") for a in rec["attendees"]))
    lines.append(f"   rationale: {rec['rationale']}")
    if rec["dissent"]:
        lines.append(f"   dissent: {rec['dissent']}")
    return "\n".join(lines) + "\n"


def _cmd_records(args) -> int:
    from .records import open_store

    with open_store(args.db, create=False) as store:
        records = store.records(args.patient)
    if args.format == "json":
        text = json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    elif args.format == "fhir":
        from .records.fhir import records_to_bundle, validate_bundle

        bundle = records_to_bundle(records)
        validate_bundle(bundle)
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for rec in records:
            for lesion in rec["lesions"]:
                row = {k: rec.get(k) for k in CSV_COLUMNS if k in rec}
                row.update({k: lesion[k] for k in ("lesion_id", "planned", "recommended",
                                                   "chosen", "chosen_from", "binding")})
                row["lesion_verdict"] = lesion["verdict"]
                row["superseded_by"] = " ".join(rec["superseded_by"])
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
        text = buffer.getvalue()
    else:
        text = "".join(format_record_text(r) for r in records) or "no decision recorded\n"
    sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------------------ verify


def _cmd_verify(args) -> int:
    from .records import open_store, reevaluate

    with open_store(args.db, create=False) as store:
        report = store.verify()
        record = store.record(args.record) if args.record and report.intact else None
    if not report.intact:
        where = f"#{report.broken_seq} " if report.broken_seq is not None else ""
        print(f"rtplan-assist: verify-records: BROKEN at record {where}{report.broken_record}: "
              f"it {report.problem}", file=sys.stderr)
        return 1
    print(f"{report.count} record(s), chain intact; head hash {report.head_hash}")
    if record is None:
        return 0
    outcome = reevaluate(record, args.path, args.tables_folder)
    print(outcome.software)
    for line in outcome.file_differences + outcome.verdict_differences:
        print(f"  DIFFERS: {line}")
    if outcome.same:
        print(f"record {record['record_id']}: same input files, tables and verdicts")
        return 0
    print(f"rtplan-assist: verify-records: record {record['record_id']} differs on "
          "re-evaluation", file=sys.stderr)
    return 1


# ------------------------------------------------------------------------------ users


def _cmd_users(args) -> int:
    from .records import RecordError
    from .records.users import open_users

    users = open_users(args.file) if args.file else open_users("db", args.db or None)
    if args.action == "list":
        for user in users.list():
            print(f"{user.username}\t{user.role}\t{user.display_name}")
        return 0
    if not args.username:
        raise RecordError(f"users {args.action}: give a user name")
    if args.action == "remove":
        users.remove(args.username)
        print(f"removed {args.username}")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            raise RecordError("the two passwords differ; nothing changed")
    users.add(args.username, args.name or args.username, args.role, password)
    print(f"{args.username} ({args.role}) saved")
    return 0
