"""``rtplan-assist dvh``, ``validate-dvh`` and ``demo``.

JSON contract of ``dvh`` (stable; scripts read it)::

    {"structures": [{"name", "roi_number", "volume_cc", "dmin_gy", "dmean_gy", "dmax_gy",
                     "metrics": {"D95%[Gy]": ...},
                     "dvh": {"dose_gy": [...], "volume_cc": [...]},
                     # additions that never change the keys above:
                     "dvh_volume_cc", "outside_cc", "dose_file", "end_caps"}],
     "warnings": [...],
     "dose": {...} | "doses": [...]}

``volume_cc`` is the contour-stack volume from the polygons (what a TPS reports);
``dvh_volume_cc`` the volume the DVH tallies. The cumulative DVH is in cc, dose ascending,
on a regular axis of ``--dvh-step`` Gy. A metric that cannot be evaluated is ``null`` and
a warning says why.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DicomInputError, RtplanAssistError
from .outputs import atomic_write_text

if TYPE_CHECKING:  # pydicom, numba and the kernels load only when a command runs
    from .dvh import DVH
    from .model import Case, Dose

DEFAULT_METRICS = ("D98%[Gy]", "D95%[Gy]", "D50%[Gy]", "D2%[Gy]", "D0.03cc[Gy]", "Mean[Gy]")


def register(sub) -> None:
    p = sub.add_parser(
        "dvh",
        help="DVHs and TG-263 metrics of every structure on a dose grid",
        description="Compute DVHs from a patient folder or an RTSTRUCT + RTDOSE file pair.",
    )
    p.add_argument("path", nargs="+", help="patient folder, or RTSTRUCT and RTDOSE files")
    p.add_argument("--structure", action="append", default=[], metavar="NAME",
                   help="only this structure (repeatable): its ROI name or the TG-263 name the tool "
                   "maps it to, case-insensitive; an ambiguous name is refused with the candidates")
    p.add_argument("--metric", action="append", default=[], metavar="M",
                   help="TG-263 metric, e.g. 'D95%%[Gy]', 'V20Gy[%%]' (repeatable; "
                   f"default {', '.join(DEFAULT_METRICS).replace('%', '%%')})")
    p.add_argument("--dose", metavar="FILE|UID|all",
                   help="which RTDOSE when the folder holds several ('all' for every one)")
    p.add_argument("--patient", metavar="KEY|ID",
                   help="which patient when the input holds several (the p-… key the error "
                   "names, or the PatientID)")
    p.add_argument("--prescription", type=float, metavar="GY",
                   help="prescription (Gy) for %% doses; default: the dose's plan")
    p.add_argument("--end-caps", choices=("half", "none"), default="half",
                   help="end caps of each structure's solid: half a plane spacing beyond the "
                   "first and last contour (default; Nelms 2015, Pinnacle, RayStation, Monaco) "
                   "or none (Eclipse); stated in the output (README: agreement per TPS)")
    # dvh.OUTSIDE_POLICIES, spelled out so that --help does not load the DVH engine
    # (tests/test_startup.py checks they agree)
    p.add_argument("--outside", choices=("exclude", "zero"), default="exclude",
                   help="volume outside the dose grid: leave out of the DVH (default) or "
                   "count at 0 Gy; either way it is reported")
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("--dvh-step", type=float, default=0.01, metavar="GY",
                   help="dose step of the written cumulative DVH (default 0.01 Gy)")
    p.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    p.set_defaults(handler=_cmd_dvh)

    v = sub.add_parser(
        "validate-dvh",
        help="run the Nelms et al. 2015 analytical DVH benchmark",
        description="Compare DVH metrics with the analytical values of Nelms et al., Med Phys "
        "2015;42(8):4435-48 (dataset MP15-067) and with the exact contour-stack truth.",
    )
    v.add_argument("nelms_dir", help="folder with analytical.csv, structures/ and dose/")
    v.add_argument("--format", choices=("table", "json", "csv"), default="table")
    v.add_argument("--out", metavar="FILE")
    v.set_defaults(handler=_cmd_validate)

    d = sub.add_parser("demo", help="write the built-in synthetic demo patient as DICOM")
    d.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    d.add_argument("--seed", type=int, default=0, help="geometry variant (default 0)")
    d.add_argument(
        "--variant",
        choices=("standard", "two-targets", "no-prescription", "prior", "prior-reg"),
        default="standard",
        help="two-targets: L3 and L4 in one RTPLAN (two targets, one dose); no-prescription: "
        "RTPLANs without prescription or target ROI, as some TPS export them; prior: also an "
        "earlier course (30 Gy/10 thoracic RT a year before) in <ID>-prior/ for evaluate "
        "--prior; prior-reg: the same in a shifted frame of reference with a rigid REG",
    )
    d.set_defaults(handler=_cmd_demo)


def _emit(text: str, out: str | None) -> None:
    if out:
        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)


def _select_doses(case: Case, choice: str | None) -> list[Dose]:
    if not case.doses:
        raise DicomInputError("no RTDOSE found", path=case.folder)
    if choice == "all":
        return list(case.doses)
    if choice:
        picked = [d for d in case.doses
                  if Path(d.path).name == Path(choice).name or d.sop_instance_uid == choice]
        if not picked:
            raise DicomInputError(f"--dose {choice}: no such RTDOSE; have "
                                  f"{', '.join(Path(d.path).name for d in case.doses)}",
                                  path=case.folder)
        return picked
    if len(case.doses) > 1:
        raise DicomInputError(
            f"{len(case.doses)} RTDOSE files; choose one with --dose FILE or use --dose all "
            f"({', '.join(Path(d.path).name for d in case.doses)})",
            path=case.folder,
        )
    return list(case.doses)


def _round(x: float, digits: int = 6):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(f"{x:.{digits}g}")


def _round_all(values, digits: int) -> list:
    """``[_round(x, digits) for x in values]`` at C speed (a curve has thousands of points)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    out = list(map(float, map(f"{{:.{digits}g}}".format, values.tolist())))
    if np.isnan(values).any():
        out = [None if x != x else x for x in out]  # NaN is null, as in _round
    return out


def _structure_entry(dvh: DVH, metrics, prescription, step, dose_file, warnings) -> dict:
    values = {}
    for m in metrics:
        mv = dvh.metric(m, prescription_gy=prescription)
        values[str(m)] = _round(mv.value)
        if not mv.evaluable:
            warnings.append(f"{dvh.name}: {m} not evaluable: {mv.note}")
    if dvh.dvh_volume_cc > 0:
        axis, vol = dvh.resampled(step)
    else:
        axis, vol = [], []
    return {
        "name": dvh.name,
        "roi_number": dvh.roi_number,
        "volume_cc": _round(dvh.volume_cc),
        "dmin_gy": _round(dvh.dmin_gy),
        "dmean_gy": _round(dvh.dmean_gy),
        "dmax_gy": _round(dvh.dmax_gy),
        "metrics": values,
        "dvh": {"dose_gy": _round_all(axis, 5), "volume_cc": _round_all(vol, 6)},
        "dvh_volume_cc": _round(dvh.dvh_volume_cc),
        "outside_cc": _round(dvh.outside_cc),
        "dose_file": dose_file,
        "end_caps": dvh.end_caps,
    }


def select_structure(case: Case, requested: str) -> str:
    """The case's ROI name for ``--structure requested``: the exact ROI name, else the one ROI
    whose name matches ignoring case, spaces, ``_``, ``-`` and ``'``, else the one ROI the tool
    maps to that TG-263 name (folder map file, aliases, TG-263 list; case-insensitive).
    Several candidates or none: an error naming them."""
    from .names import normalise_name

    names = [s.name for s in case.structures]
    if requested in names:
        return requested
    key = normalise_name(requested)
    same = [n for n in names if normalise_name(n) == key]
    if not same:
        from .constraints import load_tables
        from .names import folder_mapping, match_structures

        tables = load_tables()
        folder_map, _ = folder_mapping(case)
        found = match_structures(names, [], tables, folder_map or None)
        same = [n for n in names if n in found.matched and normalise_name(found.matched[n]) == key]
        for amb in found.ambiguous:  # several ROIs the tool could map to this organ
            if amb.kind == "organ" and normalise_name(amb.key) == key:
                same += [n for n in amb.candidates if n not in same]
    if len(same) == 1:
        return same[0]
    if same:
        raise RtplanAssistError(
            f"--structure {requested!r} is ambiguous: it matches {', '.join(sorted(same))}; "
            "give the exact ROI name")
    raise RtplanAssistError(
        f"no structure named {requested!r} (nor with that TG-263 name); have "
        f"{', '.join(sorted(names))}")


def dvh_report(case: Case, *, structures=(), metrics=(), dose=None, prescription=None,
               outside="exclude", step=0.01, end_caps="half") -> dict:
    """The ``dvh`` command's JSON document for a loaded case (see the module docstring)."""
    from .dvh import compute_dvhs
    from .metrics import parse_metric

    if step <= 0:
        raise RtplanAssistError("--dvh-step must be positive")
    parsed = [parse_metric(m) for m in (metrics or DEFAULT_METRICS)]
    warnings = list(case.warnings)
    chosen = list(case.structures)
    if structures:
        wanted = {select_structure(case, n) for n in structures}
        chosen = [s for s in case.structures if s.name in wanted]
    for s in chosen:
        if s.is_empty:
            warnings.append(f"{s.name}: no closed contours; no DVH")
    entries = []
    doses = _select_doses(case, dose)
    for d in doses:
        rx = prescription
        plan = case.plan_for_dose(d)
        if rx is None and plan is not None:
            rx = plan.prescription_gy
        total, note = case.total_dose(d)  # a FRACTION dose × the plan's fractions (said)
        if note:
            warnings.append(note)
        dvhs = compute_dvhs(chosen, total, outside=outside, end_caps=end_caps)
        for s in chosen:
            if s.name in dvhs:
                h = dvhs[s.name]
                warnings.extend(h.warnings)
                entries.append(_structure_entry(h, parsed, rx, step, Path(d.path).name, warnings))
    doc = {"structures": entries, "warnings": warnings}
    info = [{"file": Path(d.path).name, "sop_instance_uid": d.sop_instance_uid,
             "summation_type": d.summation_type, "dose_type": d.dose_type,
             "outside_policy": outside, "end_caps": end_caps} for d in doses]
    if len(info) == 1:
        doc["dose"] = info[0]
    else:
        doc["doses"] = info
    return doc


def _cmd_dvh(args) -> int:
    from .dicom import load_case
    from .escape import csv_cell  # an ROI named '=HYPERLINK(...)' stays text in a spreadsheet

    paths = [Path(p) for p in args.path]
    case = load_case(paths[0] if len(paths) == 1 else paths, patient_id=args.patient)
    doc = dvh_report(case, structures=args.structure, metrics=args.metric, dose=args.dose,
                     prescription=args.prescription, outside=args.outside, step=args.dvh_step,
                     end_caps=args.end_caps)
    if not doc["structures"]:
        # nothing computed is a failed request, not an empty success (exit 2, issue 11); an
        # error is one line, so the warnings that explain it go into it
        why = "; ".join(doc["warnings"][:4]) + (" ..." if len(doc["warnings"]) > 4 else "")
        raise RtplanAssistError(
            "no DVH computed: no structure with closed contours"
            + (" among those selected" if args.structure else " in the case")
            + (f" ({why})" if why else "")
        )
    if args.format == "json":
        from .jsontext import json_pieces  # json.dumps(doc, indent=1), at C-encoder speed

        _emit("".join(json_pieces(doc, indent=1, ensure_ascii=True, end="\n")), args.out)
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["dose_file", "structure", "roi_number", "volume_cc", "dvh_volume_cc",
                    "outside_cc", "end_caps", "metric", "value"])
        for e in doc["structures"]:
            base = [e["dose_file"], csv_cell(e["name"]), e["roi_number"], e["volume_cc"],
                    e["dvh_volume_cc"], e["outside_cc"], e["end_caps"]]
            for key in ("dmin_gy", "dmean_gy", "dmax_gy"):
                w.writerow(base + [key, e[key]])
            for m, val in e["metrics"].items():
                w.writerow(base + [m, "" if val is None else val])
        _emit(buf.getvalue(), args.out)
    for line in doc["warnings"]:
        print(f"rtplan-assist: warning: {line}", file=sys.stderr)
    return 0


def _cmd_validate(args) -> int:
    from .validation import format_table, run_nelms, summarize

    def progress(i, n, label):
        print(f"\r[{i + 1}/{n}] {label:<24}", end="", file=sys.stderr, flush=True)

    rows = run_nelms(args.nelms_dir, progress=progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    summary = summarize(rows)
    if args.format == "json":
        doc = {"rows": [r.__dict__ for r in rows], "summary": summary}
        _emit(json.dumps(doc, indent=1, default=_json_default) + "\n", args.out)
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["structure", "gradient", "dose_voxel_mm", "metric", "analytical",
                    "contour_stack", "engine", "error_vs_analytical_pct", "error_vs_stack_pct"])
        for r in rows:
            for m in r.analytical:
                w.writerow([r.structure, r.gradient, r.dose_voxel_mm, m, r.analytical[m],
                            r.stack[m], r.engine[m], f"{r.error_pct(m):.4f}",
                            f"{r.error_pct(m, 'stack'):.4f}"])
        _emit(buf.getvalue(), args.out)
    else:
        lines = [format_table(rows), "", "Summary (Nelms et al., Med Phys 2015;42(8):4435-48):"]
        b3 = summary["dose_metrics_beyond_3pct"]
        lines.append(f"  rows: {summary['rows']}")
        lines.append(f"  Dmin, Dmax and Dmean within 0.5 % of analytical: "
                     f"{summary['dmin_dmax_dmean_within_0_5pct']}/{summary['rows']}")
        lines.append(f"  volume within 0.2 % of the contour-stack volume: "
                     f"{summary['volume_within_0_2pct_of_stack']}/{summary['rows']}")
        lines.append(f"  D99/D95/D5/D1/D0.03cc beyond 3 % of analytical: {len(b3)} "
                     f"(of which the contour stack itself is > 2 % off: "
                     f"{len(summary['beyond_3pct_where_stack_itself_beyond_2pct'])})")
        for s, g, m in b3:
            lines.append(f"    {s} {g} {m}")
        lines.append("  largest engine error vs contour-stack truth (%): " + ", ".join(
            f"{k} {v:.3f}" for k, v in summary["worst_engine_error_vs_stack_pct"].items()))
        _emit("\n".join(lines) + "\n", args.out)
    return 0


def _json_default(obj):
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)


def _cmd_demo(args) -> int:
    from .demo import write_demo_patient

    folder = write_demo_patient(args.out, seed=args.seed, variant=args.variant)
    print(folder)
    if args.variant in ("prior", "prior-reg"):
        print(f"{folder}-prior")  # the earlier course, for evaluate --prior
    return 0
