"""``rtplan-assist evaluate`` (every lesion × regimen, composite, recommendation) and
``rtplan-assist bed`` (a BED/EQD2 calculator).

Exit codes of ``evaluate``:

* 0: evaluated, and the chosen plan (the recommendation, or ``--choose``) passes every
  mandatory constraint, per lesion and in the composite;
* 1: evaluated, and a mandatory constraint fails for the chosen plan;
* 2: could not evaluate (bad input, no lesion, or a mandatory row of a structure in the case
  that cannot be evaluated); the error or the verdict says why.
"""

from __future__ import annotations

import json
import sys

from .errors import EvaluationError, RadiobiologyError

FORMATS = ("json", "csv", "html", "text")
MODELS = ("lq", "lql", "usc")

END_CAPS_HELP = (
    "how the first and last contour planes are closed: 'half' (default) adds half a plane "
    "spacing beyond each, as the contour stack implies; 'none' stops at the plane, as some "
    "TPSs (e.g. Eclipse) do. Stated in every DVH and in the provenance"
)


def add_case_options(p) -> None:
    """The options that say how a case is read and evaluated (tables, structure mapping,
    targets, prescriptions, patient mismatch, outside policy), shared by ``evaluate`` and
    ``decide``."""
    p.add_argument(
        "--tables",
        nargs="+",
        metavar="NAME",
        help="constraint tables to use (file stems, e.g. tg101_2010_3fx); default: all shipped",
    )
    p.add_argument(
        "--tables-folder", metavar="DIR", help="folder of user constraint tables (same format)"
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="NAME=TG263",
        help="map a case structure to a TG-263 name (repeatable)",
    )
    p.add_argument("--map-file", metavar="FILE", help="CSV 'structure,tg263' of mappings")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="PLAN=ROI[,ROI...]",
        help="the target structure(s) of a plan (PLAN: its RTPlanLabel, RTPlanName or file "
        "name), for plans without a ReferencedROINumber; several targets of one plan are "
        "several lesions sharing its dose and regimen (repeatable)",
    )
    p.add_argument(
        "--prescription",
        action="append",
        default=[],
        metavar="PLAN=DOSE/FRACTIONS",
        help="the prescription of a plan that gives none (or overrides its own), e.g. "
        "'Plan1=54/3' (repeatable)",
    )
    p.add_argument(
        "--allow-patient-mismatch",
        action="store_true",
        help="accept an RTPLAN/RTDOSE whose PatientID differs from the structure set's when "
        "they share its frame of reference (e.g. after anonymisation); warned and recorded in "
        "the provenance",
    )
    p.add_argument(
        "--outside",
        choices=("exclude", "zero"),
        default="exclude",
        help="structure volume outside a dose grid: left out (default) or counted at 0 Gy",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate every lesion × regimen against OAR constraints; composite; recommendation",
        description=(
            "Scale each lesion's plan to every regimen of the catalogue (or --regimens), evaluate "
            "the target (BED10/EQD2, PTV D95%%/D98%%/V100%%, GTV mean BED10) and every OAR "
            "constraint at the regimen's fraction number (converted and marked when no table "
            "has it), sum the lesions' voxel-wise EQD2 for the composite, and recommend the "
            "highest-BED10 regimen per lesion that passes jointly. Exit code 0: the chosen "
            "plan passes; 1: a mandatory constraint fails; 2: could not evaluate."
        ),
    )
    p.add_argument("path", nargs="?", help="patient folder (DICOM CT/RTSTRUCT/RTPLAN/RTDOSE)")
    p.add_argument("--demo", action="store_true", help="use the built-in synthetic patient")
    p.add_argument("--patient", metavar="KEY|ID",
                   help="which patient when the folder holds several (the p-… key the error "
                   "names, or the PatientID)")
    p.add_argument(
        "--regimens",
        metavar="FILE",
        help="CSV 'lesion,total_dose_gy,fractions' (lesion '*' = every lesion); default: the "
        "built-in catalogue; the planned regimen is always added",
    )
    p.add_argument(
        "--regimen",
        action="append",
        default=[],
        metavar="[L1=]50/5",
        help="add a regimen for every lesion (or one lesion with L1=...); repeatable",
    )
    add_case_options(p)
    p.add_argument(
        "--choose",
        action="append",
        default=[],
        metavar="L1=50/5",
        help="fix a lesion's regimen for the composite and the verdict (repeatable); the "
        "other lesions take the recommendation",
    )
    p.add_argument(
        "--end-caps",
        choices=("half", "none"),
        default="half",
        help=END_CAPS_HELP,
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json (default, for scripts), csv (tidy: one row per patient, lesion, regimen, "
        "structure, metric), html (self-contained page) or text (a terminal table)",
    )
    p.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    p.add_argument(
        "--drop-not-evaluable",
        action="store_true",
        help="csv: leave out the rows of status 'not evaluable' (the verdict and exit code "
        "still count them). The CSV has planned/recommended/chosen columns (true/false) and "
        "numbers to 6 significant digits",
    )
    p.add_argument(
        "--quality",
        action="store_true",
        help="add per-lesion plan quality indices (Paddick and RTOG CI, GI, R50%%, D2cm, HI; "
        "isodose volumes split between lesions sharing a dose, bridging flag) on the planned "
        "dose; report-only, never part of a verdict; about 1 s per lesion",
    )
    add_prior_options(p)
    p.add_argument(
        "--deidentify",
        action="store_true",
        help="replace the patient ID by its key p-… (8 hex digits of its SHA-256; whoever "
        "has the ID can recompute it), withhold the folder and the patient name, and remove "
        "them from every other text too (file names, labels, warnings); error messages name "
        "files without the folder. Kept: lesions, structures, regimens, numbers",
    )
    p.set_defaults(handler=_cmd_evaluate)

    b = sub.add_parser(
        "bed",
        help="BED and EQD2 of a uniform dose (quick calculator)",
        description="BED = D (1 + d/(α/β)), EQD2 = BED / (1 + 2/(α/β)) for D Gy in n fractions "
        "(LQ; LQ-L and USC continue linearly above a transition dose per fraction).",
    )
    b.add_argument("dose", help="total physical dose (Gy), or DOSE/FRACTIONS as in 54/3")
    b.add_argument("fractions", nargs="?", help="number of fractions (omit with 54/3)")
    b.add_argument("--alpha-beta", type=float, required=True, metavar="GY", help="α/β (Gy)")
    b.add_argument("--model", choices=MODELS, default="lq", help="lq (default), lql or usc")
    b.add_argument(
        "--transition-dose",
        type=float,
        metavar="GY",
        help="dose per fraction where LQ-L turns linear (required for lql; no default is "
        "verified); for usc, D_T (default: from the Park 2008 NSCLC fit, marked unverified)",
    )
    b.add_argument("--format", choices=("text", "json"), default="text")
    b.set_defaults(handler=_cmd_bed)


# --------------------------------------------------------------------------------- evaluate


def add_prior_options(p) -> None:
    """``--prior`` and its options (:mod:`rtplan_assist.prior`), for ``evaluate`` and ``report``."""
    p.add_argument(
        "--prior", metavar="PRIOR_DIR",
        help="folder of an earlier course (its RTDOSE, RTPLAN; a rigid REG if it is in another "
        "frame of reference, here or in PATH): per-voxel cumulative EQD2 with each organ's "
        "α/β, per course and cumulative DVH metrics, cumulative limits, the HyTEC and Nieder "
        "cord re-irradiation rules, the ESTRO-EORTC re-irradiation type. Another frame of "
        "reference without a registration is refused (exit 2)")
    p.add_argument("--prior-fractions", type=int, metavar="N",
                   help="fractions of the prior course (default: its RTPLAN)")
    p.add_argument("--interval-days", type=float, metavar="D",
                   help="days between the courses (default: from the RTPlanDates)")
    p.add_argument("--recovery", action="append", default=[], metavar="none|nieder2006|ORGAN=R",
                   help="recovery of the prior dose, applied to the prior term only: none "
                   "(default); nieder2006 (cord: 25 %% from 6 months, 50 %% from 12 months); "
                   "ORGAN=R a recovered fraction R per organ (repeatable, e.g. SpinalCord=0.25)")
    p.add_argument("--prior-export", metavar="FILE",
                   help="also write the plain cumulative EQD2 (prior + current, one α/β, no "
                   "recovery) as an RTDOSE (export-dose's writer)")
    p.add_argument("--prior-export-alpha-beta", type=float, default=2.0, metavar="GY",
                   help="α/β of --prior-export for every voxel (default 2 Gy, the cord's)")


def load_prior(args, evaluator):
    """``(PriorCourse, recovery policy)`` of ``--prior`` (``(None, None)`` without it), read
    before the evaluation so that a refused prior course costs nothing."""
    if not getattr(args, "prior", None):
        for name in ("prior_fractions", "interval_days", "prior_export"):
            if getattr(args, name, None) is not None:
                raise EvaluationError(f"--{name.replace('_', '-')} needs --prior PRIOR_DIR")
        if getattr(args, "recovery", None):
            raise EvaluationError("--recovery needs --prior PRIOR_DIR")
        return None, None
    from .prior import load_prior_course, parse_recovery

    policy = parse_recovery(args.recovery)
    return load_prior_course(args.prior, evaluator.case, fractions=args.prior_fractions), policy


def prior_result(args, evaluator, choice, loaded):
    """The :class:`~rtplan_assist.prior.PriorResult` of ``--prior`` (None without it) for
    ``choice``, and ``--prior-export``."""
    prior, policy = loaded
    if prior is None:
        return None
    from .prior import evaluate_prior

    result = evaluate_prior(evaluator, choice, prior, interval_days=args.interval_days,
                            recovery=policy)
    if args.prior_export:
        from .export import write_eqd2_rtdose
        from .prior import cumulative_eqd2_grid

        ab = float(args.prior_export_alpha_beta)
        grid, eqd2 = cumulative_eqd2_grid(evaluator, choice, prior, ab)
        write_eqd2_rtdose(
            evaluator.case, grid, eqd2, args.prior_export,
            model_note=f"EQD2 prior+current LQ a/b={ab:g} Gy, no recovery",
            referenced_plans=[les.plan.sop_instance_uid for les in evaluator.lesions]
            + ([prior.plan_uid] if prior.plan_uid else []),
            deidentify=bool(getattr(args, "deidentify", False)),
        )
    return result



def _parse_assignments(items: list[str], what: str) -> dict[str, list]:
    """``L1=50/5`` items (or ``50/5`` for every lesion): custom regimens, checked for
    plausibility (:func:`rtplan_assist.regimens.check_custom_regimen`: warned or refused)."""
    from .regimens import check_custom_regimen, parse_regimen

    out: dict[str, list] = {}
    for item in items:
        lesion, sep, text = item.partition("=")
        if not sep:
            lesion, text = "*", item
        lesion = lesion.strip()
        if not lesion:
            raise EvaluationError(f"{what} '{item}': expected L1=50/5")
        regimen = parse_regimen(text)
        for warning in check_custom_regimen(regimen):  # refuses an implausible one
            print(f"rtplan-assist: warning: {what} {item}: {warning}", file=sys.stderr)
        out.setdefault(lesion, []).append(regimen)
    return out


def build_evaluator(args):
    """The :class:`~rtplan_assist.evaluation.Evaluation` of parsed ``evaluate`` arguments
    (:func:`rtplan_assist.workflow.evaluate_folder`)."""
    from .names import parse_map_argument
    from .workflow import evaluate_folder

    overrides: dict[str, str] = {}
    for item in args.map:
        name, target = parse_map_argument(item)
        overrides[name] = target
    return evaluate_folder(
        args.path or None,
        demo=args.demo,
        patient=getattr(args, "patient", None),
        tables=args.tables,
        tables_folder=args.tables_folder,
        map_file=args.map_file,
        overrides=overrides,
        regimens_file=args.regimens,
        extra_regimens=_parse_assignments(args.regimen, "--regimen"),
        outside=args.outside,
        end_caps=getattr(args, "end_caps", "half"),
        targets=parse_targets(getattr(args, "target", None) or []),
        prescriptions=parse_prescriptions(getattr(args, "prescription", None) or []),
        allow_patient_mismatch=bool(getattr(args, "allow_patient_mismatch", False)),
    )


def parse_targets(items: list[str]) -> dict[str, list[str]]:
    """``--target PLAN=ROI[,ROI...]`` (repeatable) → plan → ROI names."""
    from .evaluation.lesions import parse_targets as parse

    return parse(items)


def parse_prescriptions(items: list[str]):
    """``--prescription PLAN=DOSE/FRACTIONS`` (repeatable) → plan → Regimen."""
    from .evaluation.lesions import parse_prescriptions as parse

    return parse(items)


#: ``evaluate`` runs without the cyclic garbage collector (:func:`_cmd_evaluate`); the bench
#: (``benches/bench_evaluate.py --own``) reads it to time the evaluation as the command runs it.
EVALUATE_WITHOUT_GC = True


def _cmd_evaluate(args) -> int:
    # one command in its own process: the cyclic garbage collector's ~200 passes over the
    # young objects while 6,000 rows are made freed nothing (1,400 objects over a whole demo
    # run, imports included) and cost ~35 ms; it runs again when the command is done
    import gc

    collecting = gc.isenabled()
    if EVALUATE_WITHOUT_GC:
        gc.disable()
    try:
        return _evaluate_command(args)
    finally:
        if collecting:
            gc.enable()


def _evaluate_command(args) -> int:
    from .evaluation import result_to_csv, result_to_html, result_to_json, result_to_text
    from .outputs import atomic_write_text

    if args.drop_not_evaluable and args.format != "csv":
        raise EvaluationError("--drop-not-evaluable is for --format csv")
    evaluator = build_evaluator(args)
    loaded = load_prior(args, evaluator)
    choose = {}
    for lesion, regimens in _parse_assignments(args.choose, "--choose").items():
        if lesion == "*" or len(regimens) != 1:
            raise EvaluationError("--choose needs one L1=50/5 per lesion")
        choose[lesion] = regimens[0]
    result = evaluator.evaluate(choose or None)
    scrub = None
    if args.deidentify:
        from .deidentify import Identifiers, deidentify_result

        ids = Identifiers.of_case(evaluator.case, args.path, getattr(args, "prior", None))
        result = deidentify_result(result, ids)
        scrub = ids.scrub
    if args.quality:
        from .quality import render_with_quality

        text = render_with_quality(evaluator, result, args.format,
                                   drop_not_evaluable=args.drop_not_evaluable)
    elif args.format == "json":
        text = result_to_json(result)
    elif args.format == "csv":
        text = result_to_csv(result, drop_not_evaluable=args.drop_not_evaluable)
    elif args.format == "html":
        text = result_to_html(result)
    else:
        text = result_to_text(result)
    verdict = result.verdict()
    prior = prior_result(args, evaluator, result.choice, loaded)
    if prior is not None:
        from .prior import combined_verdict, render_with_prior

        text = render_with_prior(text, args.format, result, prior,
                                 drop_not_evaluable=args.drop_not_evaluable, scrub=scrub)
        verdict = combined_verdict(verdict, prior.verdict())
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if verdict != "pass":
        print(f"rtplan-assist: evaluate: verdict {verdict}", file=sys.stderr)
    return {"pass": 0, "fail": 1}.get(verdict, 2)


# --------------------------------------------------------------------------------- bed


def _bed_dose_fractions(dose: str, fractions: str | None) -> tuple[float, int]:
    """``bed 54 3`` or ``bed 54/3`` (the way regimens are written everywhere else)."""
    text = dose if fractions is None else f"{dose}/{fractions}"
    total, sep, n = text.partition("/")
    if not sep or "/" in n:
        raise RadiobiologyError(f"bed {text!r}: give DOSE FRACTIONS or DOSE/FRACTIONS, e.g. 54/3")
    try:
        total_gy = float(total)
    except ValueError:
        raise RadiobiologyError(f"bed: dose {total!r} is not a number (Gy)") from None
    try:
        n_fx = int(n)
    except ValueError:
        raise RadiobiologyError(f"bed: fractions {n!r} is not a whole number") from None
    return total_gy, n_fx


def _cmd_bed(args) -> int:
    from .radiobiology import Model, bed, eqd2, usc_park2008_nsclc

    if args.model == "lq":
        if args.transition_dose is not None:
            raise RadiobiologyError("--transition-dose is for --model lql or usc")
        model = Model("LQ", args.alpha_beta)
    elif args.model == "lql":
        model = Model("LQ-L", args.alpha_beta, args.transition_dose)
    else:
        if args.transition_dose is None:
            fit = usc_park2008_nsclc()
            model = Model("USC", args.alpha_beta, fit.transition_dose_gy, provenance=fit.provenance)
        else:
            model = Model("USC", args.alpha_beta, args.transition_dose)
    args.dose, args.fractions = _bed_dose_fractions(args.dose, args.fractions)
    bed_gy = bed(args.dose, args.fractions, model)
    eqd2_gy = eqd2(args.dose, args.fractions, model)
    per_fraction = args.dose / args.fractions
    if args.format == "json":
        payload = {
            "total_dose_gy": args.dose,
            "fractions": args.fractions,
            "dose_per_fraction_gy": per_fraction,
            "alpha_beta_gy": args.alpha_beta,
            "model": model.describe(),
            "bed_gy": bed_gy,
            "eqd2_gy": eqd2_gy,
        }
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(
            f"{args.dose:g} Gy in {args.fractions} × {per_fraction:.4g} Gy; {model.describe()}\n"
            f"BED  = {bed_gy:.2f} Gy\nEQD2 = {eqd2_gy:.2f} Gy\n"
        )
    return 0
