"""rtplan-assist: radiotherapy planning assistant for multi-lesion consolidation radiotherapy.

Decision support for experts, not a treatment planning system.

From Python (``import rtplan_assist as rpa``; see the README, "Use it from Python")::

    case = rpa.load_case("patient/")          # DICOM CT, RTSTRUCT, RTPLAN, RTDOSE
    d = rpa.dvh(case, "PTV_1", dose="L1")     # a DVH; d["D95%[Gy]"] in the TG-263 grammar
    result = rpa.evaluate(case)               # every lesion × regimen, composite, recommendation
    result.table()                            # columns for pandas.DataFrame
    rpa.eqd2(50, 5, alpha_beta_gy=3)          # LQ, Gy

Names are imported on first use: ``import rtplan_assist`` loads neither pydicom nor Numba.
The command line is ``rtplan-assist``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .dvh import DVH
    from .evaluation import EvaluationResult
    from .model import Case, Dose

#: name → (module, attribute), imported on first access
_LAZY = {
    "load_case": ("rtplan_assist.dicom", "load_case"),
    "evaluate_folder": ("rtplan_assist.workflow", "evaluate_folder"),
    "Evaluation": ("rtplan_assist.evaluation", "Evaluation"),
    "EvaluationResult": ("rtplan_assist.evaluation", "EvaluationResult"),
    "Regimen": ("rtplan_assist.regimens", "Regimen"),
    "Model": ("rtplan_assist.radiobiology", "Model"),
    "write_report": ("rtplan_assist.report", "write_report"),
    "Case": ("rtplan_assist.model", "Case"),
    "DVH": ("rtplan_assist.dvh", "DVH"),
    "RtplanAssistError": ("rtplan_assist.errors", "RtplanAssistError"),
}

__all__ = [
    "DVH",
    "Case",
    "Evaluation",
    "EvaluationResult",
    "Model",
    "Regimen",
    "RtplanAssistError",
    "__version__",
    "bed",
    "dvh",
    "eqd2",
    "evaluate",
    "evaluate_folder",
    "load_case",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtplan_assist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def dvh(
    case: Case, name: str, dose: Dose | str | int | None = None, *, outside: str = "exclude"
) -> DVH:
    """The cumulative DVH of one structure on one dose of a case.

    Parameters
    ----------
    case : Case
    name : str
        The structure's name as exported (exact match).
    dose : Dose, str, int or None
        The dose: a :class:`~rtplan_assist.model.Dose`, its file name or SOPInstanceUID, the
        plan label or lesion id (``"L1"``, in the order of the plans) of its RTPLAN, or its
        index in ``case.doses``; default the only dose of the case.
    outside : {"exclude", "zero"}
        Structure volume outside the dose grid: left out, or counted at 0 Gy (reported
        either way).

    Returns
    -------
    DVH
        Of the total plan dose in Gy: a ``FRACTION`` dose is multiplied by its plan's
        number of fractions (:meth:`~rtplan_assist.model.Case.total_dose`). Metrics in the
        TG-263 grammar: ``d["D95%[Gy]"]``, ``d["V20Gy[%]"]``, ``d["Mean[Gy]"]``.

    Raises
    ------
    StructureNotFoundError
        No structure ``name``; the message lists the case's structures.
    RtplanAssistError
        No such dose, or several doses and none chosen; the message lists them.
    """
    from pathlib import Path

    from .dvh import compute_dvh
    from .errors import RtplanAssistError

    structure = case.structure(name)
    doses = list(case.doses)
    files = ", ".join(Path(d.path).name or d.sop_instance_uid for d in doses) or "none"
    if dose is None:
        if len(doses) != 1:
            raise RtplanAssistError(
                f"the case has {len(doses)} doses ({files}): choose one with dose=",
                path=case.folder,
            )
        chosen = doses[0]
    elif isinstance(dose, int):
        if not -len(doses) <= dose < len(doses):
            raise RtplanAssistError(f"dose={dose}: the case has {len(doses)} doses ({files})")
        chosen = doses[dose]
    elif isinstance(dose, str):
        lesion_ids = {}
        for index, plan in enumerate(case.plans, start=1):
            lesion_ids[f"L{index}"] = plan.sop_instance_uid
        matches = [
            d
            for d in doses
            if dose in (Path(d.path).name, d.sop_instance_uid)
            or (d.referenced_plan_uid and d.referenced_plan_uid == lesion_ids.get(dose))
            or any(
                d.referenced_plan_uid == p.sop_instance_uid and dose in (p.label, p.name)
                for p in case.plans
            )
        ]
        if len(matches) != 1:
            raise RtplanAssistError(
                f"dose={dose!r}: {'no' if not matches else len(matches)} dose(s) match; the case "
                f"has {files}",
                path=case.folder,
            )
        chosen = matches[0]
    else:
        chosen = dose
    total, _ = case.total_dose(chosen)
    return compute_dvh(structure, total, outside=outside)


def evaluate(case, *, choice=None, **options) -> EvaluationResult:
    """Evaluate a case or a patient folder: every lesion × regimen, the composite and the
    joint recommendation.

    Parameters
    ----------
    case : Case or path
    choice : dict of str to Regimen, "planned" or None
        The regimens shown in the composite and the verdict (default: the recommendation).
    **options
        Those of :func:`rtplan_assist.workflow.evaluate_folder` (``tables``, ``regimens``,
        ``overrides``, ``outside``, ...).

    Returns
    -------
    EvaluationResult
        ``result.table()`` gives its rows as columns for pandas; keep the evaluation itself
        with ``rpa.evaluate_folder(case)`` when you want to ask it more.
    """
    from .workflow import evaluate_folder

    return evaluate_folder(case, **options).result(choice)


def bed(total_dose_gy, fractions: int, alpha_beta_gy: float):
    """Biologically effective dose (Gy, LQ) of ``total_dose_gy`` in ``fractions`` equal
    fractions: ``D (1 + d / (α/β))``. Other models: :func:`rtplan_assist.radiobiology.bed`."""
    from .radiobiology import Model
    from .radiobiology import bed as _bed

    return _bed(total_dose_gy, fractions, Model("LQ", alpha_beta_gy))


def eqd2(total_dose_gy, fractions: int, alpha_beta_gy: float):
    """Equivalent dose in 2-Gy fractions (Gy, LQ): ``D (d + α/β) / (2 + α/β)``. Other models:
    :func:`rtplan_assist.radiobiology.eqd2`."""
    from .radiobiology import Model
    from .radiobiology import eqd2 as _eqd2

    return _eqd2(total_dose_gy, fractions, Model("LQ", alpha_beta_gy))


# ``rpa.dvh`` is the function above, and ``rtplan_assist.dvh`` is also the DVH engine's module:
# importing that module (which any evaluation does) makes Python set the package attribute
# ``dvh`` to the module. So that ``rpa.dvh(case, name, dose=...)`` keeps working afterwards,
# the module, when it is set on the package, becomes callable with the function's signature
# (module ``__class__`` assignment; its contents are untouched).
_dvh_function = dvh


class _CallableDVHModule(types.ModuleType):
    def __call__(self, case, name, dose=None, *, outside="exclude"):
        return _dvh_function(case, name, dose, outside=outside)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "dvh" and type(value) is types.ModuleType:
            value.__class__ = _CallableDVHModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
