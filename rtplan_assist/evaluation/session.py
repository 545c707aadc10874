"""The evaluation session: one case, its lesions, the caches, and the public API.

:class:`Evaluation` (alias ``CaseEvaluator``) owns every cache (physical DVHs per lesion and structure, rows per
lesion × regimen, constraints per organ × fraction number, composite limits, the common grid,
recorded composite samplers, composite DVHs and rows per choice) and delegates the computing to
the pure modules of the package: :mod:`.lesions`, :mod:`.organs`, :mod:`.rows`, :mod:`.limits`,
:mod:`.composite`, :mod:`.bounds`; the recommendation's search is :mod:`.search`.
"""

from __future__ import annotations

import copy as _copy
import math
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import __version__
from ..constraints import Constraint, ConstraintSet, load_tables, site_coverage
from ..dvh import DVH, DVHSampler, compute_dvh
from ..errors import EvaluationError
from ..geometry import END_CAPS
from ..model import Case, Grid, Structure
from ..radiobiology import COMPOSITE_CAVEATS, Model, eqd2_transform
from ..regimens import TUMOUR_MODEL, Regimen, site_regimens
from .composite import CompositeMixin
from .lesions import find_lesions, folder_plan_options, no_lesion_message
from .organs import (
    constraints_at,
    map_organs,
    missing_reason,
    name_warnings,
)
from .records import (
    CompositeLimit,
    EvaluationResult,
    Lesion,
    Recommendation,
    ResultRow,
    rows_verdict,
)
from .robustness import assess_composite, assess_rows, recommendation_robustness
from .rows import constraint_templates, make_row, oar_rows, target_rows
from .search import SearchMixin


class Evaluation(CompositeMixin, SearchMixin):
    """Evaluate one case: lesions × regimens, the composite, and the recommendation.

    The one stateful object of the package: it computes on demand and caches. Build it with
    :func:`rtplan_assist.workflow.evaluate_folder` (the defaults of the CLI, the batch, the
    report and the app) or directly from a :class:`~rtplan_assist.model.Case`.

    Public API: :attr:`lesions`, :meth:`regimens`, :meth:`add_regimen`, :meth:`dvhs`,
    :meth:`rows`, :meth:`composite`, :meth:`composite_dvhs`, :meth:`composite_eqd2`,
    :meth:`recommend` (cached per regimen lists, shared by :meth:`copy`), :meth:`result`,
    :meth:`copy`. The longer names of earlier releases (``lesion_rows``, ``lesion_dvhs``,
    ``regimens_for``, ``composite_rows``, ``session_copy``, ``evaluate``) remain.

    Parameters
    ----------
    case : Case
    tables : ConstraintSet, optional
        Default :func:`rtplan_assist.constraints.load_tables` (every shipped table).
    overrides : dict of str to str, optional
        Case structure name → TG-263 name (``--map``).
    regimens : dict of str to list of Regimen, or "planned", optional
        Lesion id or ``"*"`` → regimens; default per lesion :func:`~rtplan_assist.regimens.site_regimens`
        of its site; ``"planned"``: each
        lesion's planned regimen only. The planned regimen of each lesion is always added (it
        is the baseline of the comparison).
    outside : {"exclude", "zero"}
        DVH policy for structure volume outside a dose grid (:mod:`rtplan_assist.dvh`).
    targets, prescriptions : dict, optional
        Plan (RTPlanLabel or file name) → target ROI names / prescription Regimen, for plans
        that lack them (:func:`.lesions.find_lesions`; ``--target``, ``--prescription``).

    Attributes
    ----------
    case : Case
    lesions : list of Lesion
    name_match : NameMatch
    warnings : list of str
    tables : ConstraintSet
    oar_structures : dict of str to Structure
        TG-263 organ → case structure, for every organ the tables constrain.

    Raises
    ------
    EvaluationError
        No lesion in the case, or regimens for an unknown lesion id.
    """

    def __init__(
        self,
        case: Case,
        *,
        tables: ConstraintSet | None = None,
        overrides: dict[str, str] | None = None,
        regimens: dict[str, list[Regimen]] | str | None = None,
        outside: str = "exclude",
        targets: dict[str, list[str]] | None = None,
        prescriptions: dict[str, Regimen] | None = None,
        end_caps: str = "half",
    ):
        if end_caps not in END_CAPS:
            raise EvaluationError(f"end caps must be one of {', '.join(END_CAPS)}, got {end_caps!r}")
        self.case = case
        self.tables = tables if tables is not None else load_tables()
        self.outside = outside
        self.end_caps = end_caps
        self.warnings: list[str] = list(case.warnings)
        reasons: list[str] = []
        # the patient folder's mapping file may carry --target/--prescription rows; the
        # options given explicitly win
        folder_targets, folder_rx = folder_plan_options(case)
        targets = {**folder_targets, **(targets or {})}
        prescriptions = {**folder_rx, **(prescriptions or {})}
        self.lesions: list[Lesion] = find_lesions(
            case, self.warnings, targets=targets, prescriptions=prescriptions, reasons=reasons
        )
        if not self.lesions:
            raise EvaluationError(no_lesion_message(case, reasons))
        self._by_id = {lesion.lesion_id: lesion for lesion in self.lesions}
        self.name_match, self.oar_structures = map_organs(
            case, self.tables, overrides, self.warnings
        )
        self._organ_of = {s.name: o for o, s in self.oar_structures.items()}
        self.warnings += name_warnings(
            self.name_match, self.lesions, self.oar_structures, self.tables.organs()
        )
        for lesion in self.lesions:
            # issue 12: a site no constraint table covers says so
            note = site_coverage(lesion.site, self.tables)
            if note:
                self.warnings.append(f"{lesion.lesion_id}: {note}")
        self._regimens: dict[str, list[Regimen]] = {}
        if regimens == "planned":
            regimens = {lesion.lesion_id: [lesion.planned] for lesion in self.lesions}
        elif isinstance(regimens, str):
            raise EvaluationError(f"regimens: a dict or 'planned', got {regimens!r}")
        regimens = dict(regimens or {})
        unknown = [k for k in regimens if k != "*" and k not in self._by_id]
        if unknown:
            raise EvaluationError(
                f"regimens given for unknown lesion(s) {', '.join(unknown)}; the lesions are "
                f"{', '.join(self._by_id)}"
            )
        for lesion in self.lesions:
            chosen = (
                regimens.get(lesion.lesion_id)
                or regimens.get("*")
                or site_regimens(lesion.site)
            )
            listed = list(dict.fromkeys(list(chosen) + [lesion.planned]))
            self._regimens[lesion.lesion_id] = sorted(listed)
        # caches
        self._physical: dict[tuple[str, str], DVH] = {}
        self._rows: dict[tuple[str, Regimen], list[ResultRow]] = {}
        self._constraints: dict[tuple[str, int], tuple[list[Constraint], str]] = {}
        self._composite_limits: dict[str, list[CompositeLimit]] = {}
        self._composite_notes: dict[str, str] = {}
        self._contributors: dict[str, list[str]] = {}
        self._common: tuple[Grid, bool] | None = None
        self._common_dose: dict[str, np.ndarray] = {}
        self._boxes: dict[str, tuple] = {}
        self._samplers: dict[str, DVHSampler] = {}
        self._organ_cache: OrderedDict = OrderedDict()
        self._composite_rows_cache: OrderedDict = OrderedDict()
        self._single_cache: dict[tuple, DVH | None] = {}
        self._check_cache: dict[tuple, ResultRow | None] = {}  # (choice, organ) → failing row
        self._composite_evaluations = 0
        # regimen lists → Recommendation: a copy() shares the entries (immutable once made)
        self._recommendations: dict[tuple, Recommendation] = {}
        self.timings: dict[str, float] = {}
        for lesion in self.lesions:
            self._check_plausible(lesion)

    def _check_plausible(self, lesion: Lesion) -> None:
        """Refuse a dose that does not fit the prescription it was scaled to or read with
        (issue 12): after FRACTION × n scaling, a RELATIVE dose taken as a fraction of the
        prescription, or a prescription given by the user, the target's D50 must lie within
        0.5-1.5 × Rx and its maximum within 2 × Rx.

        Raises
        ------
        EvaluationError
            Naming the dose file, the values and what was assumed.
        """
        name = Path(lesion.dose.path).name if lesion.dose.path else lesion.dose.sop_instance_uid
        plan = lesion.plan
        assumed = []
        if lesion.dose_scale_note:
            assumed.append(lesion.dose_scale_note.split(": ", 1)[-1])
        if any(name in w and "RELATIVE dose converted" in w for w in self.case.warnings):
            assumed.append("a RELATIVE dose of 1.0 taken as the prescription")
        own = (
            Regimen(int(plan.fractions), float(plan.prescription_gy))
            if plan.fractions and plan.prescription_gy
            else None
        )
        if own != lesion.planned:
            assumed.append(
                f"the prescription {lesion.planned.label} given for the plan (not the RTPLAN's "
                f"{own.label if own else 'missing one'})"
            )
        if not assumed:
            return
        dvh = self._physical_dvhs(lesion, [lesion.target]).get(lesion.target.name)
        if dvh is None:
            return
        rx = lesion.planned.total_dose_gy
        d50 = dvh.metric("D50%[Gy]").value
        dmax = dvh.dmax_gy
        problems = []
        if not math.isnan(d50) and not 0.5 * rx <= d50 <= 1.5 * rx:
            problems.append(f"target {lesion.target.name} D50 = {d50:.2f} Gy is outside "
                            f"0.5-1.5 × Rx ({0.5 * rx:g}-{1.5 * rx:g} Gy)")
        if not math.isnan(dmax) and dmax > 2.0 * rx:
            problems.append(f"its maximum {dmax:.2f} Gy exceeds 2 × Rx ({2 * rx:g} Gy)")
        if problems:
            raise EvaluationError(
                f"{name}: implausible dose for prescription {lesion.planned.label}: "
                + "; ".join(problems)
                + f". Assumed: {'; '.join(assumed)}. Check DoseSummationType, DoseUnits and "
                "the prescription (--prescription PLAN=DOSE/FRACTIONS)"
            )

    def __repr__(self) -> str:
        lesions = ", ".join(
            f"{lesion.lesion_id} {lesion.planned.label} {lesion.target.name}"
            for lesion in self.lesions[:4]
        ) + (", ..." if len(self.lesions) > 4 else "")
        return (
            f"<Evaluation patient {self.case.patient_id!r}: {len(self.lesions)} lesion(s) "
            f"[{lesions}], {len(self.oar_structures)} constrained organ(s) in the case>"
        )

    def copy(self) -> Evaluation:
        """An evaluation for one more user of the same case, at the cost of a few dict copies.

        It shares the case (doses, structures), the lesions and every cached result (DVHs,
        rows, recorded samples: immutable once made) with this one, and owns copies of every
        container, so its added regimens and new results stay its own and the two can be used
        from different threads (each under its own lock). The app gives each browser session
        one, made from a single unpickled evaluator per patient.
        """
        twin = _copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, dict | list | set):
                setattr(twin, name, value.copy())
        twin.__dict__.pop("recommend", None)  # an instance override (the app's) is not copied
        return twin

    session_copy = copy

    def __getstate__(self) -> dict:
        # recorded DVH samples are tens of MB and cheap to record again: not pickled (the
        # app stores prepared evaluators on disk)
        state = self.__dict__.copy()
        state["_samplers"] = {}
        state.pop("_robustness_cache", None)  # rebuilt on demand
        return state

    # ----------------------------------------------------------------------------- names
    def _missing_reason(self, organ: str) -> str:
        return missing_reason(self.name_match, organ)

    # ----------------------------------------------------------------------------- regimens
    def regimens_for(self, lesion_id: str) -> list[Regimen]:
        """Regimens evaluated for a lesion, ordered by (fractions, total dose)."""
        self._lesion(lesion_id)
        return list(self._regimens[lesion_id])

    def add_regimen(self, lesion_id: str, regimen: Regimen) -> None:
        """Add a regimen to a lesion's list (no-op when present)."""
        self._lesion(lesion_id)
        if regimen not in self._regimens[lesion_id]:
            self._regimens[lesion_id] = sorted(self._regimens[lesion_id] + [regimen])

    def remove_regimen(self, lesion_id: str, regimen: Regimen) -> None:
        """Take a regimen off a lesion's list (no-op when absent); the planned regimen stays.
        Cached results are kept: they are per (lesion, regimen) and valid if it comes back."""
        lesion = self._lesion(lesion_id)
        if regimen != lesion.planned and regimen in self._regimens[lesion_id]:
            self._regimens[lesion_id] = [r for r in self._regimens[lesion_id] if r != regimen]

    def _lesion(self, lesion_id: str) -> Lesion:
        try:
            return self._by_id[lesion_id]
        except KeyError:
            raise EvaluationError(
                f"unknown lesion '{lesion_id}'; the lesions are {', '.join(self._by_id)}"
            ) from None

    # ----------------------------------------------------------------------------- DVHs
    def _lesion_structures(self, lesion: Lesion) -> list[Structure]:
        wanted = [lesion.target] + ([lesion.gtv] if lesion.gtv else [])
        wanted += list(self.oar_structures.values())
        return list({s.name: s for s in wanted if not s.is_empty}.values())

    def _compute_physical(self, tasks: list[tuple[Lesion, Structure]]) -> None:
        """Physical DVHs of (lesion, structure) pairs on two threads, largest first."""
        unique = {(lesion.lesion_id, s.name): (lesion, s) for lesion, s in tasks}
        todo = [item for key, item in unique.items() if key not in self._physical]
        if not todo:
            return
        t0 = time.perf_counter()
        todo.sort(key=lambda item: -sum(len(p) for plane in item[1].polygons for p in plane))

        def run(item):
            lesion, structure = item
            return compute_dvh(structure, lesion.dose, outside=self.outside, end_caps=self.end_caps)

        if len(todo) == 1:
            results = [run(todo[0])]
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(run, todo))
        for (lesion, structure), dvh in zip(todo, results):
            self._physical[(lesion.lesion_id, structure.name)] = dvh
        self.timings["physical_dvh_s"] = (
            self.timings.get("physical_dvh_s", 0.0) + time.perf_counter() - t0
        )

    def _warm(self) -> None:
        """Compute every lesion's physical DVHs in one pool (better balance than per lesion)."""
        self._compute_physical(
            [(lesion, s) for lesion in self.lesions for s in self._lesion_structures(lesion)]
        )

    def _physical_dvhs(
        self, lesion: Lesion, structures: list[Structure] | None = None
    ) -> dict[str, DVH]:
        structures = structures if structures is not None else self._lesion_structures(lesion)
        self._compute_physical([(lesion, s) for s in structures if not s.is_empty])
        return {
            s.name: self._physical[(lesion.lesion_id, s.name)] for s in structures if not s.is_empty
        }

    def lesion_dvhs(
        self,
        lesion_id: str,
        regimen: Regimen,
        kind: str = "physical",
        structures: list[str] | None = None,
    ) -> dict[str, DVH]:
        """DVHs of one lesion's plan scaled to ``regimen``.

        Parameters
        ----------
        lesion_id : str
        regimen : Regimen
        kind : {"physical", "EQD2"}
            ``EQD2``: the dose axis mapped with each structure's α/β (targets 10 Gy; OARs their
            organ's default), exact for one plan; means integrated from the distribution.
        structures : list of str, optional
            Case structure names; default the lesion's PTV and GTV and every constrained OAR.
            Structures without an α/β are left out of an EQD2 request.

        Returns
        -------
        dict of str to DVH
        """
        lesion = self._lesion(lesion_id)
        if kind not in ("physical", "EQD2"):
            raise EvaluationError(f"kind must be 'physical' or 'EQD2', got {kind!r}")
        if structures is None:
            wanted = self._lesion_structures(lesion)
        else:
            by_name = {s.name: s for s in self.case.structures}
            missing = [n for n in structures if n not in by_name]
            if missing:
                raise EvaluationError(f"no structure {', '.join(missing)} in the case")
            wanted = [by_name[n] for n in structures if not by_name[n].is_empty]
        factor = regimen.scale_from(lesion.planned)
        out = {}
        for name, dvh in self._physical_dvhs(lesion, wanted).items():
            scaled = dvh.scaled(factor)
            if kind == "physical":
                out[name] = scaled
                continue
            ab = self._alpha_beta_of(name, lesion)
            if ab is None:
                continue
            model = Model("LQ", ab)
            out[name] = scaled.mapped(
                eqd2_transform(regimen.fractions, model), "EQD2", model.describe()
            )
        return out

    def _alpha_beta_of(self, structure_name: str, lesion: Lesion | None = None) -> float | None:
        targets = {lesion.target.name} | ({lesion.gtv.name} if lesion and lesion.gtv else set())
        if lesion is not None and structure_name in targets:
            return TUMOUR_MODEL.alpha_beta_gy
        if any(
            structure_name in (l.target.name, getattr(l.gtv, "name", None)) for l in self.lesions
        ):
            return TUMOUR_MODEL.alpha_beta_gy
        organ = self._organ_of.get(structure_name) or self.name_match.matched.get(structure_name)
        return self.tables.alpha_beta_for(organ) if organ else None

    # ----------------------------------------------------------------------------- constraints
    def _constraints_at(self, organ: str, fractions: int) -> tuple[list[Constraint], str]:
        """Rows of an organ at a fraction number and a note (:func:`.organs.constraints_at`),
        cached."""
        key = (organ, fractions)
        if key not in self._constraints:
            self._constraints[key] = constraints_at(self.tables, organ, fractions)
        return self._constraints[key]

    def _templates(self, organ: str, fractions: int) -> list[tuple[dict, str]]:
        """:func:`.rows.constraint_templates` of the organ's rows at a fraction number,
        cached (shared by every lesion and regimen of that fraction number)."""
        cache = self.__dict__.setdefault("_template_cache", {})  # pickles of older releases
        key = (organ, fractions)
        if key not in cache:
            cache[key] = constraint_templates(organ, self._constraints_at(organ, fractions)[0])
        return cache[key]

    def _organ_list(self) -> list[tuple[str, Structure | None, str]]:
        """``(organ, its case structure or None, why it has none)`` for every organ the
        tables constrain, in the tables' order; made again only when the tables or the
        structure map change."""
        mapped = list(self.oar_structures.items())
        cached = self.__dict__.get("_organ_list_cache")
        if (
            cached is None
            or cached[0] is not self.tables
            or len(cached[1]) != len(mapped)
            or any(a[0] != b[0] or a[1] is not b[1] for a, b in zip(cached[1], mapped))
        ):
            organs = [
                (organ, self.oar_structures.get(organ), self._missing_reason(organ))
                for organ in self.tables.organs()
            ]
            cached = (self.tables, mapped, organs)
            self.__dict__["_organ_list_cache"] = cached
        return cached[2]

    # ----------------------------------------------------------------------------- rows
    def lesion_rows(self, lesion_id: str, regimen: Regimen) -> list[ResultRow]:
        """Target rows and every OAR constraint row of one lesion at one regimen.

        The lesion's physical DVHs (computed once) are scaled by ``D / D0``; constraints come
        from the table at ``regimen.fractions`` or are converted from the nearest tabulated
        fraction number (marked). Cached per (lesion, regimen).
        """
        lesion = self._lesion(lesion_id)
        key = (lesion_id, regimen)
        if key in self._rows:
            return list(self._rows[key])
        dvhs = self._physical_dvhs(lesion)
        factor = regimen.scale_from(lesion.planned)
        patient_id = self.case.patient_id
        rows = target_rows(patient_id, lesion, regimen, dvhs, factor)
        for organ, structure, missing in self._organ_list():
            constraints, table_note = self._constraints_at(organ, regimen.fractions)
            rows += oar_rows(
                patient_id,
                lesion,
                regimen,
                organ,
                constraints,
                table_note,
                structure,
                missing,
                dvhs,
                factor,
                self._templates(organ, regimen.fractions),
            )
        self._rows[key] = rows
        return list(rows)

    def _row(self, lesion: Lesion | None, regimen: str, **values) -> ResultRow:
        return make_row(self.case.patient_id, lesion, regimen, **values)

    # ----------------------------------------------------------------------------- results
    def recommend(self, *, max_composite_evaluations: int = 400) -> Recommendation:
        """The joint recommendation over the current regimen lists (:mod:`.search`).

        Cached per (regimen lists, budget): asking again, from this session or from a
        :meth:`copy` made after it was computed, returns the same object without a search;
        :meth:`add_regimen` changes the lists, so the next call searches again.
        """
        key = (
            tuple((lid, tuple(regs)) for lid, regs in self._regimens.items()),
            max_composite_evaluations,
        )
        cache = self.__dict__.setdefault("_recommendations", {})  # pickles of older releases
        if key not in cache:
            cache[key] = self._search(max_composite_evaluations=max_composite_evaluations)
        return cache[key]

    def planned_choice(self) -> dict[str, Regimen]:
        """Lesion id → planned regimen."""
        return {lesion.lesion_id: lesion.planned for lesion in self.lesions}

    def evaluate(self, choice: dict[str, Regimen] | None = None) -> EvaluationResult:
        """:meth:`result` of ``choice`` (the name of earlier releases)."""
        return self.result(choice)

    def result(
        self,
        choice: dict[str, Regimen] | str | None = None,
        *,
        recommendation: Recommendation | None = None,
    ) -> EvaluationResult:
        """Every lesion × regimen, the recommendation, and the composite of ``choice``.

        Parameters
        ----------
        choice : dict of str to Regimen, "planned", or None
            Lesion id → regimen shown in the composite and the verdict; default the
            recommended choice; a partial ``choice`` is completed from the recommendation;
            ``"planned"`` takes every lesion's planned regimen. A regimen not in a lesion's
            list is added to it (after the recommendation was made).
        recommendation : Recommendation, optional
            Use this recommendation instead of :meth:`recommend` (e.g. one computed over
            other regimen lists and kept by the caller).
        """
        if choice == "planned":
            choice = self.planned_choice()
        elif isinstance(choice, str):
            raise EvaluationError(
                f"choice: a dict of lesion id to Regimen or 'planned', got {choice!r}"
            )
        t0 = time.perf_counter()
        self._warm()
        rows: list[ResultRow] = []
        for lesion in self.lesions:
            for regimen in self.regimens_for(lesion.lesion_id):
                rows += self.lesion_rows(lesion.lesion_id, regimen)
        if recommendation is None:
            recommendation = self.recommend()
        final = dict(recommendation.choice)
        for lid, regimen in (choice or {}).items():
            self._lesion(lid)
            self.add_regimen(lid, regimen)
            if not any(r.lesion_id == lid and r.regimen == regimen.label for r in rows):
                rows += self.lesion_rows(lid, regimen)
            final[lid] = regimen
        composite = self.composite_rows(final)
        # uncertainty of every verdict and of the recommendation (issue 13, .robustness)
        cache = self.__dict__.setdefault("_robustness_cache", {})
        rows = assess_rows(rows, self.tables, cache)
        composite = assess_composite(self, assess_rows(composite, self.tables, cache), final)
        if not recommendation.robustness and final == recommendation.choice:
            recommendation.robustness = recommendation_robustness(
                recommendation, rows, composite, self.lesions
            )
            recommendation.explanation += [
                f"{lid} robustness: {text}" for lid, text in recommendation.robustness.items()
            ]
        self.timings["evaluate_s"] = time.perf_counter() - t0
        composite_status = rows_verdict(composite)
        caveats = list(COMPOSITE_CAVEATS) + [
            (
                "Regimens scale each lesion's planned dose distribution by D/D0: a replan at "
                "another dose may shape the dose differently."
            ),
            (
                "Composite limits are fixed per organ, whatever the regimens: cumulative EQD2 "
                "limits where a source gives them (cord: HyTEC thecal sac Dmax EQD2 <= 70 Gy, "
                "α/β 2); otherwise the most conservative of the organ's limits re-expressed in "
                "EQD2 (LQ, the organ's α/β), with limits of SBRT tables advisory only (an EQD2 "
                "sum is in the conventional regime). These are single-course tolerances "
                "re-expressed in EQD2, not validated cumulative limits. Lung low-dose-bath "
                "limits (V5) are judged on the physical dose sum."
            ),
            (
                "Tumour time factor (repopulation) is not applied: BED/EQD2 of long courses "
                "(e.g. 30 fx over 6 weeks) are not corrected for overall treatment time."
            ),
            (
                "Interaction with systemic therapy (chemotherapy, immunotherapy) is not "
                "modelled: pneumonitis and oesophagitis risk after chemo-immunotherapy may be "
                "higher than the radiotherapy-only limits assume."
            ),
            f"Composite status of the shown choice: {composite_status}.",
        ]
        provenance = {
            "rtplan_assist": __version__,
            "tables": list(self.tables.files),
            "table_notes": list(self.tables.notes),
            "tumour_model": TUMOUR_MODEL.describe(),
            "oar_model": "LQ, organ α/β from alpha_beta.csv",
            "outside_policy": self.outside,
            "end_caps": self.end_caps,
            "name_mapping": dict(self.name_match.matched),
            "name_rules": dict(self.name_match.rule),
            "common_grid_resampled": not self.common_grid()[1],
            "patient_mismatch_accepted": [
                w for w in self.case.warnings if "accepted by --allow-patient-mismatch" in w
            ],
            "timings_s": dict(self.timings),
        }
        return EvaluationResult(
            patient_id=self.case.patient_id,
            folder=str(self.case.folder),
            lesions=list(self.lesions),
            rows=rows,
            composite_rows=composite,
            recommendation=recommendation,
            choice=final,
            warnings=list(dict.fromkeys(self.warnings + _dvh_warnings(self))),
            caveats=caveats,
            provenance=provenance,
        )

    # the short names of the public API
    regimens = regimens_for
    dvhs = lesion_dvhs
    rows = lesion_rows


def _dvh_warnings(evaluator: Evaluation) -> list[str]:
    out = []
    for (lid, _), dvh in evaluator._physical.items():
        out += [f"{lid}: {w}" for w in dvh.warnings]
    return out


#: The name of earlier releases.
CaseEvaluator = Evaluation
