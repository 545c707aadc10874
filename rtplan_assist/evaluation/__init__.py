"""Evaluation of every lesion × regimen and of the composite, and the joint recommendation.

What is computed (GitHub issue 3, items 5 and 6)
------------------------------------------------
* **Lesions** (:func:`find_lesions`): one per RTDOSE whose RTPLAN gives fractions and a
  prescription; the target is the plan's ReferencedROINumber (else a PTV matched by name).
* **Per lesion × regimen** (:meth:`CaseEvaluator.lesion_rows`): the lesion's plan is scaled by
  ``D / D0`` (:mod:`rtplan_assist.regimens`). Target rows: prescription BED10 and EQD2 (LQ,
  α/β 10 Gy, against the ablative line BED10 >= 100 Gy, status ``info``), PTV D95%, D98% and
  V100% (physical), GTV mean BED10 integrated over the GTV dose distribution (never the BED of
  the mean dose). OAR rows: every constraint of every organ the tables constrain, evaluated on
  the lesion's scaled physical dose with the table at the regimen's fraction number, or the
  nearest tabulated fraction number converted through EQD2 (LQ, the organ's α/β) and marked
  ``converted from n=…`` (:func:`rtplan_assist.constraints.constraints_for`). Where that
  leaves an organ with report-only rows (e.g. the cord at 15 fx: the nearest table is QUANTEC
  at 30 fx), the mandatory rows of the nearest fraction number that has them are converted
  too, so that no fractionation leaves an organ without a mandatory limit. Organs the tables
  constrain but the case lacks give ``not evaluable`` rows.
* **Composite** (:meth:`CaseEvaluator.composite_rows`): for one regimen per lesion, the
  voxel-wise EQD2 of every lesion (its own ``n``, the organ's α/β) summed on a common grid and
  evaluated against limits expressed in EQD2.

Composite limits (decision, documented in every composite row)
---------------------------------------------------------------
Every *tabulated* row of an organ is converted to EQD2 at its own fraction number with the
organ's α/β (LQ; reference §10.3: "``D0.35cc[Gy] <= 18`` in 3 fx → EQD2 36.0 Gy at α/β 2"): a
dose limit becomes an EQD2 limit; a volume metric queried at a dose (``V20Gy``, ``CV12.4Gy``)
has its dose threshold converted and keeps its volume limit. Rows that are relative to the
prescription are left out (they have no EQD2 form without a prescription). Rows are then
grouped per organ × metric (dose metrics by their volume query, ``D0.035cc`` and ``D0.03cc``
apart; volume metrics by their kind and volume limit) and the **most conservative** converted
limit of the highest priority present (mandatory before optimal before report) is applied,
naming its source. The assumption of every conversion (the voxel at the limit got it in ``n``
equal fractions) is that of :func:`rtplan_assist.constraints.convert_constraint`.

Performance
-----------
Physical DVHs are computed once per (lesion dose, structure) and cached; a regimen is an exact
scale of them and a single-lesion EQD2 DVH an exact monotone mapping of the dose axis. Only the
composite needs voxel-wise EQD2 (one summed grid per α/β value), and composite DVHs are cached
per choice. The recommendation prunes individually infeasible regimens first, then visits
combinations by descending total BED10 and evaluates the composite (mandatory limits only,
first by exact lower bounds and sound upper bounds from the per-lesion DVHs, then voxel-wise
when the bounds do not decide) until one passes.

Modules
-------
``records``    Lesion, ResultRow, CompositeLimit, Recommendation, EvaluationResult; status rules
``lesions``    find_lesions: plans, doses, targets, GTVs and sites
``organs``     structure → TG-263 organ, an organ's rows at a fraction number, its α/β
``rows``       a DVH and a limit make a row (target, OAR and composite rows)
``limits``     table rows as EQD2 limits of the composite
``composite``  the common grid, a lesion's dose on it, an organ's box
``bounds``     sound bounds on composite metrics from single-lesion EQD2 DVHs
``search``     the joint recommendation
``session``    Evaluation (alias CaseEvaluator): the caches and the public API
``output``     dict, tidy rows, CSV, text and HTML of a result
``reasons``    the recommendation, rejections and composite in plain words (issue 14)
"""

from .lesions import find_lesions
from .output import (
    CSV_FLAG_COLUMNS,
    result_rows_tidy,
    result_to_csv,
    result_to_dict,
    result_to_html,
    result_to_json,
    result_to_text,
)
from .records import (
    ABLATIVE_SOURCE,
    CONTRIBUTION_FRACTION,
    PRIORITY_RANK,
    SITES,
    TIDY_COLUMNS,
    CompositeLimit,
    EvaluationResult,
    Lesion,
    Recommendation,
    ResultRow,
    rows_verdict,
)
from .session import CaseEvaluator, Evaluation

__all__ = [
    "ABLATIVE_SOURCE",
    "CONTRIBUTION_FRACTION",
    "CSV_FLAG_COLUMNS",
    "PRIORITY_RANK",
    "SITES",
    "TIDY_COLUMNS",
    "CaseEvaluator",
    "CompositeLimit",
    "Evaluation",
    "EvaluationResult",
    "Lesion",
    "Recommendation",
    "ResultRow",
    "find_lesions",
    "result_rows_tidy",
    "result_to_csv",
    "result_to_dict",
    "result_to_html",
    "result_to_json",
    "result_to_text",
    "rows_verdict",
]
