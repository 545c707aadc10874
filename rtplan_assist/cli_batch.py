"""``rtplan-assist batch | report | export-dose | export-structures``.

* ``batch ROOT --out DIR``: every patient folder, resumable, on a process pool or Dask;
* ``report PATH --out report.pdf|report.html``: the MDT report of one patient;
* ``export-dose PATH --out RD.eqd2.dcm``: the voxel-wise EQD2 composite (or one lesion's
  converted dose) as an RTDOSE for the TPS;
* ``export-structures PATH --out RS.derived.dcm``: derived structures as an RTSTRUCT.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path

from .cli_evaluate import END_CAPS_HELP
from .errors import EvaluationError, RtplanAssistError

BATCH_EPILOG = """\
outputs (in --out, each written atomically):
  metrics.csv    one row per patient, lesion, regimen, structure and metric (tidy);
                 a patient that could not be evaluated has one row, status 'error', reason
  summary.csv    one row per patient folder: status, verdict, failing mandatory constraints
  results.json   full results; manifest.json: input fingerprints; patients/: one record per
                 patient (what a re-run reuses); reports/: one MDT report per patient
resuming:
  a patient whose files (relative path, size, mtime) and batch options are unchanged is not
  recomputed; an interrupted batch continues where it stopped.
--deidentify:
  the folder column, record and report file names and the progress bar give the folder key
  f-… (12 hex digits of the SHA-256 of the folder's path under ROOT), patient_id the patient
  key p-… (8 hex of the SHA-256 of the PatientID); names, folders and ROOT are withheld, error
  reasons name files inside <patient folder>, reports are de-identified. Kept: lesions,
  structures, regimens, metrics, study dates and UIDs (pseudonymisation: whoever has the
  IDs or folder names can recompute the keys). An output folder holds one kind of batch:
  re-running with the other setting into it is refused (identity.json says which).
exit codes:
  0  every patient evaluated, no mandatory constraint failed (goals may be missed)
  1  every patient evaluated, at least one mandatory constraint failed
  2  at least one patient could not be evaluated (error row, or verdict 'not evaluable':
     a mandatory constraint of a present structure had no value); wins over 1;
     also bad usage/input
  70 internal error; 130 interrupted (finished patients are kept: re-run to resume)
"""


def register(subparsers) -> None:
    """Add the four sub-commands to the ``rtplan-assist`` parser."""
    p = subparsers.add_parser(
        "batch", help="evaluate every patient folder under ROOT (resumable, parallel)",
        description="Evaluate every patient folder under ROOT at its planned regimens (plus "
        "the options of --regimens) and write tidy metrics, a summary, JSON results and one "
        "MDT report per patient.",
        epilog=BATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="folder of patient folders (read only)")
    p.add_argument("--out", type=Path, required=True, help="output folder (outside ROOT)")
    p.add_argument("--tables", type=Path, help="constraint table folder (default: shipped)")
    p.add_argument("--regimens", type=Path, metavar="FILE",
                   help="CSV lesion,total_dose_gy,fractions of options to evaluate too")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (default: CPU count; 0 = serial in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on Dask: 'local' (LocalCluster on 127.0.0.1) or tcp://host:8786 "
                   "(needs rtplan-assist[dask]; workers must see the same paths)")
    p.add_argument("--report-format", choices=("pdf", "html", "none"), default="pdf",
                   help="per-patient report format (default pdf)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--deidentify", action="store_true",
                   help="folder keys f-… and patient keys p-… instead of folder names and "
                   "PatientIDs in every output, de-identified reports (see below)")
    p.add_argument("--quality", action="store_true",
                   help="add the per-lesion plan quality indices to metrics.csv (role "
                   "quality), results.json and the reports (report-only; about 1 s a lesion)")
    p.add_argument("--end-caps", choices=("half", "none"), default="half",
                   help=END_CAPS_HELP)
    p.add_argument("--drop-not-evaluable", action="store_true",
                   help="metrics.csv leaves out rows of status 'not evaluable' (verdicts, "
                   "summary.csv, results.json and the exit code still count them)")
    p.set_defaults(handler=_batch)

    p = subparsers.add_parser(
        "report", help="MDT report (PDF or HTML) of one patient",
        description="Write the MDT report of one patient: lesions with their regimen, BED10/"
        "EQD2, constraint tables, composite OARs, isodose images, DVHs, model statement and "
        "provenance, for the recommended regimens (default, the planned ones beside them) or "
        "the planned ones (--basis planned); page 1 says which. The format follows the --out "
        "suffix (.pdf or .html). Exit code as "
        "evaluate: 0 pass, 1 a mandatory constraint fails, 2 not evaluable (the report is "
        "written in every case) or bad input.",
    )
    _case_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="report.pdf or report.html")
    p.add_argument("--deidentify", action="store_true",
                   help="patient ID replaced by its key p-… (8 hex digits of its SHA-256; "
                   "whoever has the ID can recompute it), patient name and folder withheld, "
                   "every text scrubbed of them; study date and UIDs kept")
    p.add_argument("--quality", action="store_true",
                   help="add the per-lesion plan quality indices (Paddick/RTOG CI, GI, R50%%, "
                   "D2cm, HI; report-only, never part of a verdict; about 1 s per lesion)")
    p.add_argument("--db", metavar="URL",
                   help="decision database whose record of the shown choice the report cites "
                   "(default RTPLAN_ASSIST_DB or the user's file; read only, never created)")
    from .cli_evaluate import add_prior_options

    add_prior_options(p)  # a prior-course section (rtplan_assist.prior)
    p.set_defaults(handler=_report)

    p = subparsers.add_parser(
        "export-dose", help="EQD2 composite (or one lesion's EQD2) as an RTDOSE",
        description="Write the voxel-wise EQD2 composite of the shown regimens (--basis: the "
        "recommended ones by default, or the planned ones; --choose per lesion) as an RTDOSE in the patient's study and frame of reference (DoseType "
        "EFFECTIVE, DoseSummationType MULTI_PLAN), or with --lesion one lesion's dose at a "
        "regimen converted to EQD2 (DoseSummationType PLAN). One α/β for every voxel.",
    )
    _case_arguments(p)
    p.add_argument("--out", type=Path, required=True,
                   help="output RTDOSE file in an existing folder (a directory or a missing "
                   "folder is refused, exit 2)")
    p.add_argument("--alpha-beta", type=float, default=3.0, metavar="GY",
                   help="α/β used for every voxel (default 3 Gy, late-responding tissue)")
    p.add_argument("--lesion", help="export only this lesion (e.g. L1)")
    p.add_argument("--regimen", help="regimen of --lesion, e.g. 50/5 (default: its --basis "
                   "regimen, recommended or planned)")
    p.add_argument("--deidentify", action="store_true",
                   help="PatientID replaced by its key p-… (8 hex digits of its SHA-256), "
                   "name, birth date, sex and other demographics removed, "
                   "PatientIdentityRemoved=YES; UIDs kept. The exported object then no longer "
                   "matches the patient in a TPS (for research or sharing, not for planning)")
    p.set_defaults(handler=_export_dose)

    p = subparsers.add_parser(
        "export-structures", help="derived structures (Lungs-GTVs, rings, PRVs) as RTSTRUCT",
        description="Write derived structures on the planning CT as a new RTSTRUCT: "
        "Lungs-GTVs, a ring around each PTV, and PRVs (default: spinal cord + 5 mm).",
    )
    p.add_argument("path", type=Path, nargs="?", help="patient folder or files")
    p.add_argument("--demo", action="store_true", help="use the built-in demo patient")
    p.add_argument("--out", type=Path, required=True, help="output RTSTRUCT file")
    p.add_argument("--ring", default="2,20", metavar="INNER,OUTER",
                   help="PTV ring from INNER to OUTER mm outside the PTV (default 2,20; "
                   "'none' for no ring)")
    p.add_argument("--prv", action="append", default=None, metavar="NAME=MM",
                   help="PRV of a structure (repeatable); default 'Spinal Cord'=5 when a cord "
                   "exists; --prv none for no PRV")
    p.add_argument("--deidentify", action="store_true",
                   help="PatientID replaced by its key p-… (8 hex digits of its SHA-256), "
                   "name, birth date, sex and other demographics removed, "
                   "PatientIdentityRemoved=YES; UIDs kept. The exported object then no longer "
                   "matches the patient in a TPS (for research or sharing, not for planning)")
    p.set_defaults(handler=_export_structures)


def _case_arguments(p) -> None:
    p.add_argument("path", type=Path, nargs="?", help="patient folder or files")
    p.add_argument("--demo", action="store_true", help="use the built-in demo patient")
    p.add_argument("--tables", type=Path, help="constraint table folder (default: shipped)")
    p.add_argument("--basis", choices=("recommended", "planned"), default="recommended",
                   help="which regimens to show: the recommended ones (default; the planned "
                   "ones beside them) or the planned ones (the recommendation beside them); "
                   "--choose overrides single lesions. The output says which")
    p.add_argument("--choose", action="append", default=[], metavar="L1=50/5",
                   help="regimen of a lesion (repeatable); the other lesions follow --basis")
    p.add_argument("--end-caps", choices=("half", "none"), default="half",
                   help=END_CAPS_HELP)


# ----------------------------------------------------------------------------- helpers


def _case_path(args) -> Path:
    if args.demo:
        if args.path:
            raise RtplanAssistError("give a PATH or --demo, not both")
        from .demo import demo_case_folder

        return demo_case_folder()
    if not args.path:
        raise RtplanAssistError("give a patient folder (PATH) or --demo")
    return args.path


def _check_out_file(out: Path, example: str) -> None:
    """``--out`` of report/export-dose/export-structures names a FILE in an existing folder:
    a directory is refused (write ``DIR/name.dcm``), a missing folder is not created. Checked
    before any work, one line, exit 2."""
    if out.is_dir():
        raise RtplanAssistError(
            f"--out {out}: is a directory; give a file name inside it, e.g. {out / example}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise RtplanAssistError(
            f"--out {out}: folder {parent} does not exist (it is not created); create it first")


def _parse_choices(items: list[str]) -> dict:
    from .regimens import parse_regimen

    out = {}
    for item in items:
        lesion, sep, regimen = item.partition("=")
        if not sep or not lesion.strip():
            raise EvaluationError(f"--choose {item!r}: write LESION=DOSE/FRACTIONS, e.g. L2=50/5")
        out[lesion.strip()] = parse_regimen(regimen)
    return out


def _evaluate(args):
    """(case, evaluation, result): every regimen of the catalogue evaluated (as ``evaluate``)
    so that the recommendation exists; shown: the recommended (``--basis recommended``, the
    default) or the planned regimens, overridden per lesion by --choose."""
    from .workflow import evaluate_folder

    chosen = _parse_choices(args.choose)
    evaluation = evaluate_folder(_case_path(args), tables_folder=args.tables,
                                 end_caps=args.end_caps)
    lesions = [lesion.lesion_id for lesion in evaluation.lesions]
    for lid in chosen:
        if lid not in lesions:
            raise EvaluationError(
                f"--choose {lid}: no such lesion; the lesions are {', '.join(lesions)}")
    recommendation = evaluation.recommend()
    base = (evaluation.planned_choice() if getattr(args, "basis", "recommended") == "planned"
            else dict(recommendation.choice))
    return evaluation.case, evaluation, evaluation.result(dict(base, **chosen),
                                                           recommendation=recommendation)


# ----------------------------------------------------------------------------- handlers


def _batch(args) -> int:
    from .batch import run_batch

    fmt = None if args.report_format == "none" else args.report_format
    if args.workers is not None and args.workers < 0:
        raise RtplanAssistError("--workers must be >= 0")
    previous = _terminate_as_interrupt()
    try:
        summary = run_batch(
            args.root, args.out, tables=args.tables, regimens_file=args.regimens,
            workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress,
            report_format=fmt, deidentify=args.deidentify, quality=args.quality,
            end_caps=args.end_caps, drop_not_evaluable=args.drop_not_evaluable,
        )
    except RtplanAssistError as exc:
        if not args.deidentify:
            raise
        raise _batch_error(args, exc) from None
    except OSError as exc:  # unwritable --out, disk full: a user situation, exit 2
        raise _batch_error(args, exc) from None
    except Exception as exc:
        if not args.deidentify:
            raise
        # still an internal error (exit 70), but its text must not name a patient folder
        raise RuntimeError(f"{type(exc).__name__}: {_batch_error(args, exc)}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for record in summary.records:
        if record["status"] == "error":
            print(f"error: {record['folder']}: {record['error']}", file=sys.stderr)
    print(summary.line(), file=sys.stderr)
    print(str(summary.out_dir))
    return summary.exit_code


def _terminate_as_interrupt():
    """SIGTERM ends a batch like Ctrl+C: workers are terminated, finished records kept, exit
    130. Returns the previous handler (``None`` off the main thread, where it cannot be set)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return None


def _batch_error(args, exc: BaseException) -> RtplanAssistError:
    """A batch-level failure as one line. An OSError (unwritable --out, disk full) is a user
    situation (exit 2). With --deidentify every path under ROOT is reduced to ``<batch
    root>/(withheld)``: the folders below ROOT are named after patients."""
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        text = f"cannot read or write{where}: {exc.strerror or exc}."
    else:
        text = str(exc)
    if args.deidentify:
        from .deidentify import WITHHELD

        for root in dict.fromkeys([str(args.root), str(Path(args.root).resolve()),
                                   str(Path(args.root).absolute())]):
            text = re.sub(re.escape(root.rstrip("/")) + r"(/[^\s'\",;:)]*)?",
                          f"<batch root>/{WITHHELD}", text)
    return RtplanAssistError(" ".join(text.split()))


def _report(args) -> int:
    from .report import write_report

    _check_out_file(args.out, "report.pdf")
    suffix = args.out.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise RtplanAssistError(f"--out {args.out}: the report is .pdf or .html")
    from .cli_evaluate import load_prior, prior_result
    from .prior import combined_verdict
    from .records.store import cli_attribution

    _, evaluator, result = _evaluate(args)
    prior = prior_result(args, evaluator, result.choice, load_prior(args, evaluator))
    attribution = cli_attribution(
        result.patient_id, {lid: r.label for lid, r in result.choice.items()},
        "PDF" if suffix == ".pdf" else "HTML report", db=args.db)
    write_report(result, evaluator, args.out, fmt="pdf" if suffix == ".pdf" else "html",
                 deidentify=args.deidentify, quality=args.quality, attribution=attribution,
                 prior=prior)
    from .evaluation.reasons import basis_line

    verdict = result.verdict() if prior is None else combined_verdict(result.verdict(),
                                                                       prior.verdict())
    print(basis_line(result), file=sys.stderr)
    print(f"{args.out}  (verdict {verdict})")
    # the exit code of `evaluate`: 0 pass, 1 fail, 2 not evaluable (the report is written)
    return {"pass": 0, "fail": 1}.get(verdict, 2)


def _export_dose(args) -> int:
    from .export import write_eqd2_rtdose
    from .radiobiology import Model, eqd2_grid

    _check_out_file(args.out, "RD.eqd2.dcm")
    if args.alpha_beta <= 0:
        raise RtplanAssistError("--alpha-beta must be > 0 Gy")
    if args.regimen and not args.lesion:
        raise RtplanAssistError("--regimen needs --lesion (use --choose for the composite)")
    ab = float(args.alpha_beta)
    if args.lesion:
        from .regimens import parse_regimen

        if args.choose:
            raise RtplanAssistError("--lesion exports one lesion: use --regimen, not --choose")
        from .dicom import load_case
        from .evaluation import find_lesions

        if args.regimen or args.basis == "planned":
            case = load_case(_case_path(args))
            lesions = {lesion.lesion_id: lesion for lesion in find_lesions(case, [])}
            recommended = None
        else:  # the lesion's recommended regimen needs the whole evaluation
            case, evaluation, result = _evaluate(args)
            lesions = {lesion.lesion_id: lesion for lesion in evaluation.lesions}
            recommended = result.recommendation.choice
        if args.lesion not in lesions:
            raise EvaluationError(
                f"--lesion {args.lesion}: no such lesion; the lesions are {', '.join(lesions)}")
        lesion = lesions[args.lesion]
        if args.regimen:
            regimen, basis = parse_regimen(args.regimen), "chosen by the user"
        elif recommended is not None:
            regimen, basis = recommended[args.lesion], "recommended"
        else:
            regimen, basis = lesion.planned, "planned"
        print(f"Shown: {args.lesion} at {regimen.label}, the {basis} regimen (planned "
              f"{lesion.planned.label})", file=sys.stderr)
        physical = lesion.dose.dose_gy * regimen.scale_from(lesion.planned)
        eqd2 = eqd2_grid(physical, regimen.fractions, Model("LQ", ab))
        note = f"EQD2 LQ a/b={ab:g}Gy all voxels, {lesion.lesion_id} {regimen.label}"
        write_eqd2_rtdose(case, lesion.dose.grid, eqd2, args.out, model_note=note[:64],
                          referenced_plans=[lesion.plan.sop_instance_uid],
                          summation_type="PLAN", deidentify=args.deidentify)
        print(f"{args.out}  ({note}; max {eqd2.max():.2f} Gy)")
        return 0
    from .evaluation.reasons import basis_line, shown_basis

    case, evaluator, result = _evaluate(args)
    print(basis_line(result), file=sys.stderr)
    grid, eqd2 = evaluator.composite_eqd2(result.choice, alpha_beta_gy=ab)
    n = len(result.lesions)
    note = f"EQD2 sum {n} plans, voxel-wise LQ, a/b={ab:g}Gy all voxels"
    write_eqd2_rtdose(case, grid, eqd2, args.out, model_note=note[:64],
                      referenced_plans=[lesion.plan.sop_instance_uid for lesion in
                                        result.lesions],
                      summation_type="MULTI_PLAN" if n > 1 else "PLAN",
                      series_description=(f"EQD2 {shown_basis(result)} " + ", ".join(
                          f"{lid} {r.label}" for lid, r in result.choice.items()))[:64],
                      deidentify=args.deidentify)
    print(f"{args.out}  ({note}; max {eqd2.max():.2f} Gy)")
    return 0


def _export_structures(args) -> int:
    from .dicom import load_case
    from .export import derived_structures, write_derived_rtstruct

    _check_out_file(args.out, "RS.derived.dcm")
    case = load_case(_case_path(args))
    ring = None
    if args.ring.strip().lower() != "none":
        try:
            inner, outer = (float(v) for v in args.ring.split(","))
        except ValueError:
            raise RtplanAssistError(f"--ring {args.ring!r}: write INNER,OUTER in mm, e.g. 2,20")
        ring = (inner, outer)
    prv = None
    if args.prv is not None:
        prv = {}
        for item in args.prv:
            if item.strip().lower() == "none":
                continue
            name, sep, mm = item.rpartition("=")
            try:
                prv[name] = float(mm)
            except ValueError:
                sep = ""
            if not sep or not name:
                raise RtplanAssistError(f"--prv {item!r}: write NAME=MM, e.g. 'Spinal Cord=5'")
    masks, notes = derived_structures(case, ring_mm=ring, prv_margins_mm=prv)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not masks:
        raise EvaluationError("no derived structure to write", path=case.folder)
    write_derived_rtstruct(case, args.out, masks, deidentify=args.deidentify)
    print(f"{args.out}  ({', '.join(masks)})")
    return 0
