"""Prepare a patient for the app in a fresh interpreter: ``python -m rtplan_assist.app.prepare``.

``python -m rtplan_assist.app.prepare FOLDER OUT.pkl [--target PLAN=ROI[,ROI...]]...
[--prescription PLAN=D/n]... [--map STRUCTURE=TG263]...`` loads the case, evaluates every regimen
of every lesion and the recommendation, and pickles the evaluator to ``OUT.pkl`` (written to a
temporary name and renamed). Progress goes to stdout as ``PROGRESS <i> <n> <text>`` lines; a
refusal is one ``ERROR <message>`` line and exit code 2, preceded, when the case gives no
lesion, by one ``PLANS <json>`` line (:func:`plan_form`: the app's form to give targets and
prescriptions).

Why a separate interpreter: the background callback runs in a process *forked* from the
threaded web server. Numba's OpenMP threading layer aborts a forked child that launches a
parallel kernel once the parent has used one (the web process does, for the composite EQD2),
and the fork-safe ``workqueue`` layer aborts on concurrent use from the server's threads. A
fresh interpreter has neither problem; it costs about a second of start-up on a job that takes
many seconds.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

PICKLE_VERSION = 1

# Caches of the evaluation that are large and cheap to rebuild in the web process (the lesion
# doses resampled onto the common grid: as large as the doses when the grids differ), dropped
# before pickling to keep the file small; the rows caches, which are what is slow, stay.
# (The recorded DVH samples are dropped by the evaluation's own __getstate__.)
_TRANSIENT_CACHES = ("_common_dose",)


def build_evaluator(folder: str | Path, progress=None, targets=None, prescriptions=None,
                    overrides=None):
    """Load ``folder`` and evaluate every regimen of every lesion and the recommendation.

    ``progress(i, n, text)`` is called between steps. ``targets``/``prescriptions``: plan →
    target ROI names / Regimen given by the user (as ``evaluate --target/--prescription``);
    ``overrides``: structure name → TG-263 name given by the user (as ``evaluate --map``; they
    win over the patient's mapping file, found as ``evaluate`` finds it:
    :func:`rtplan_assist.names.folder_map_file`).
    Returns ``(CaseEvaluator, Recommendation)``; the recommendation is kept because
    recomputing it is the slow part.

    Raises
    ------
    EvaluationError
        As :func:`~rtplan_assist.workflow.evaluate_folder`; when the case gives no lesion its
        ``plan_form`` attribute holds :func:`plan_form` of the case.
    """
    from rtplan_assist.errors import EvaluationError
    from rtplan_assist.deidentify import patient_key
    from rtplan_assist.dicom import load_case
    from rtplan_assist.workflow import evaluate_folder

    def report(i, n, text):
        if progress is not None:
            progress(i, n, text)

    report(0, 1, "reading the DICOM files")
    case = load_case(folder)
    # the key, not the ID: this text is relayed to the page (also in de-identified mode)
    report(0, 1, f"finding the lesions of patient {patient_key(case.patient_id)}")
    try:
        evaluator = evaluate_folder(case, targets=targets or None,
                                    prescriptions=prescriptions or None,
                                    overrides=overrides or None)
    except EvaluationError as exc:
        exc.plan_form = plan_form(case, targets, prescriptions)
        raise
    steps = [(les.lesion_id, r) for les in evaluator.lesions
             for r in evaluator.regimens_for(les.lesion_id)]
    total = len(steps) + 2
    for i, (lesion_id, regimen) in enumerate(steps, start=1):
        report(i, total, f"{lesion_id} at {regimen.label}: DVHs and constraints")
        evaluator.lesion_rows(lesion_id, regimen)
    report(len(steps) + 1, total, "joint recommendation and composite EQD2 of all lesions")
    recommendation = evaluator.recommend()
    evaluator.composite_rows(recommendation.choice)
    report(total, total, "done")
    return evaluator, recommendation


def plan_form(case, targets=None, prescriptions=None) -> dict | None:
    """What the app's plan form needs when ``case`` gives no lesion: every RTPLAN (``key``: its
    file name, ``label``, ``reasons``: why it is not a lesion) and the contoured structures;
    None when the case does give lesions (the refusal was something else)."""
    from rtplan_assist.errors import EvaluationError
    from rtplan_assist.evaluation.lesions import find_lesions

    reasons: list[str] = []
    try:
        if find_lesions(case, [], targets=targets or None, prescriptions=prescriptions or None,
                        reasons=reasons):
            return None
    except EvaluationError:
        return None
    plans = []
    for plan in case.plans:
        file = Path(plan.path).name if plan.path else plan.sop_instance_uid
        why = [r.split("; give ")[0] for r in reasons if f"({file})" in r]
        plans.append({"key": file, "label": plan.label or plan.name or file,
                      "reasons": why or ["gives no lesion"]})
    structures = [s.name for s in case.structures if not s.is_empty]
    return {"plans": plans, "structures": structures} if plans else None


def write_pickle(evaluator, recommendation, path: str | Path) -> None:
    """Pickle the evaluator and its recommendation atomically (transient caches dropped)."""
    for name in _TRANSIENT_CACHES:
        # no getattr default: a renamed cache fails the app tests instead of growing the pickle
        getattr(evaluator, name).clear()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump((PICKLE_VERSION, evaluator, recommendation), fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_pickle(path: str | Path):
    """``(evaluator, recommendation)`` from ``path``, or None when stale or unreadable."""
    try:
        with open(path, "rb") as fh:
            version, evaluator, recommendation = pickle.load(fh)
    except Exception:  # noqa: BLE001 - a stale or partial cache is simply recomputed
        return None
    return (evaluator, recommendation) if version == PICKLE_VERSION else None


def main(argv: list[str] | None = None) -> int:
    from rtplan_assist.errors import RtplanAssistError

    import json

    from rtplan_assist.evaluation.lesions import parse_prescriptions, parse_targets
    from rtplan_assist.names import parse_map_argument

    args = sys.argv[1:] if argv is None else argv
    options = {"--target": [], "--prescription": [], "--map": []}
    while len(args) > 2 and args[-2] in options:
        options[args[-2]].insert(0, args[-1])
        args = args[:-2]
    if len(args) != 2:
        print("usage: python -m rtplan_assist.app.prepare FOLDER OUT.pkl "
              "[--target PLAN=ROI[,ROI...]]... [--prescription PLAN=D/n]... "
              "[--map STRUCTURE=TG263]...", file=sys.stderr)
        return 2

    def progress(i, n, text):
        print(f"PROGRESS {i} {n} {' '.join(str(text).split())}", flush=True)

    try:
        evaluator, recommendation = build_evaluator(
            args[0], progress, parse_targets(options["--target"]),
            parse_prescriptions(options["--prescription"]),
            dict(parse_map_argument(item) for item in options["--map"]))
        write_pickle(evaluator, recommendation, args[1])
    except RtplanAssistError as exc:
        if getattr(exc, "plan_form", None):
            print(f"PLANS {json.dumps(exc.plan_form)}", flush=True)
        print(f"ERROR {' '.join(str(exc).split())}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
