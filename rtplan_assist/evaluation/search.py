"""The joint recommendation: the best regimen per lesion by the lexicographic, per-lesion
objective of :mod:`.objective` such that every mandatory per-lesion and composite limit passes.

Search: regimens that fail a mandatory per-lesion constraint are removed first; the remaining
combinations are visited best-first per margin level (see :meth:`SearchMixin.recommend`) and
each combination's composite is decided by sound bounds (:mod:`.bounds`) where possible, by
voxels otherwise; a failure is reduced to the smallest group of lesions that fails on its own,
and combinations containing that group are skipped.

:class:`SearchMixin` holds the search over the session's caches (it is a base class of
:class:`~rtplan_assist.evaluation.session.Evaluation`, which provides ``lesion_rows``,
``composite_limits``, ``_organ_composite`` and the other caches it reads).
"""

from __future__ import annotations

import heapq
import math
import time

from ..dvh import DVH
from ..radiobiology import Model, eqd2_transform
from ..regimens import Regimen, citations, is_standard
from .bounds import bound
from .objective import (
    BORDERLINE_FRACTION,
    Option,
    describe_objective,
    option,
    target_check,
)
from .objective import choice_key as objective_key
from .records import (
    CompositeLimit,
    Recommendation,
    ResultRow,
    choice_key,
    excess,
    unevaluable_lesions,
)


class SearchMixin:
    """The recommendation's search (methods of the evaluation session)."""

    def _individual(self, lesion_id: str, regimen: Regimen) -> list[ResultRow]:
        return [
            r
            for r in self.lesion_rows(lesion_id, regimen)
            if r.priority == "mandatory"
            and (r.status == "fail" or (r.status == "not evaluable" and r.structure))
        ]

    def _judged(self, unit: list[str], regimen: Regimen) -> bool:
        """True when every lesion of the unit has an evaluable mandatory OAR row at
        ``regimen`` (issue 12: otherwise the regimen is not evaluable, never acceptable)."""
        return not any(unevaluable_lesions(self.lesion_rows(lid, regimen)) for lid in unit)

    def _single_eqd2(self, lid: str, organ: str, regimen: Regimen) -> DVH | None:
        """One lesion's EQD2 DVH (organ α/β) of an organ: exact monotone map of its DVH."""
        key = (lid, organ, regimen)
        if key not in self._single_cache:
            lesion = self._by_id[lid]
            structure = self.oar_structures[organ]
            dvh = self._physical_dvhs(lesion, [structure])[structure.name]
            ab = self._composite_alpha_beta(organ)
            if dvh.dvh_volume_cc <= 0 or dvh.outside_cc > 1e-6 * max(dvh.volume_cc, 1e-9):
                self._single_cache[key] = None
            else:
                self._single_cache[key] = dvh.scaled(regimen.scale_from(lesion.planned)).mapped(
                    eqd2_transform(regimen.fractions, Model("LQ", ab)), "EQD2", ""
                )
        return self._single_cache[key]

    def _composite_check(
        self,
        subset: dict[str, Regimen],
        *,
        organs: tuple[str, ...] | None = None,
        first_failure: bool = False,
    ) -> tuple[str, ResultRow | None]:
        """Mandatory composite limits on the sum of the ``subset``'s lesions.

        Per organ: (1) sound bounds from the single-lesion EQD2 DVHs; (2) the voxel-wise sum
        of the organ's contributing lesions (cached by their regimens only) bounded with the
        single-lesion DVHs of the others; (3) the voxel-wise sum of all, when neither decides.
        Organ results are cached per subset. ``organs`` restricts the check to those organs;
        ``first_failure`` stops at the first failing organ (cheapest organs first: enough for
        the search, which only needs to know that a combination fails). Returns
        ``("pass", None)`` or ``("fail", the failing row furthest past its limit)``.
        """
        key = choice_key(subset)
        limits = self.composite_limits(subset)
        regs = tuple(sorted(subset.items()))
        wanted = [
            organ
            for organ, items in limits.items()
            if organ in self.oar_structures
            and (organs is None or organ in organs)
            and any(x.row.priority == "mandatory" for x in items)
        ]
        known = {o: self._check_cache[(key, o)] for o in wanted if (key, o) in self._check_cache}
        failed = [row for row in known.values() if row is not None]
        todo = [o for o in wanted if o not in known]
        if failed and first_failure:
            return "fail", max(failed, key=excess)
        # bounds first (cheap); what they cannot decide needs the organ's voxels
        pending: dict[str, list[CompositeLimit]] = {}
        for organ in todo:
            undecided = self._undecided(organ, limits[organ], regs)
            if undecided:
                pending[organ] = undecided
            else:
                self._check_cache[(key, organ)] = None
        if first_failure:
            order = sorted(
                pending, key=lambda o: math.prod(self._box(self.oar_structures[o])[1].shape)
            )
            for organ in order:
                self._composite_evaluations += (organ, regs) not in self._organ_cache
                row = self._voxel_check(organ, pending[organ], subset, regs)
                self._check_cache[(key, organ)] = row
                if row is not None:
                    return "fail", row
            return "pass", None
        # every organ: the voxel-wise sums two organs at a time
        self._composite_evaluations += sum((o, regs) not in self._organ_cache for o in pending)
        self._organ_composites(list(pending), subset)
        for organ, undecided in pending.items():
            row = self._voxel_check(organ, undecided, subset, regs)
            self._check_cache[(key, organ)] = row
            if row is not None:
                failed.append(row)
        return ("fail", max(failed, key=excess)) if failed else ("pass", None)

    def _undecided(
        self, organ: str, items: list[CompositeLimit], regs: tuple[tuple[str, Regimen], ...]
    ) -> list[CompositeLimit]:
        """The organ's mandatory limits that the single-lesion bounds (and the voxel-wise sum
        of its contributing lesions, when the others are bounded) cannot decide."""
        todo = [x for x in items if x.row.priority == "mandatory"]
        if not todo or not self.common_grid()[1]:
            return todo
        regs = self.dose_once(regs)
        singles = {lid: self._single_eqd2(lid, organ, r) for lid, r in regs}
        if any(p is None for p in singles.values()):
            return todo
        todo = [lim for lim in todo if bound(lim, list(singles.values())) != "pass"]
        inner = tuple((lid, r) for lid, r in regs if lid in self.contributors(organ))
        if todo and inner and len(inner) < len(regs):
            partial = self._organ_composite(organ, inner)
            others = [singles[lid] for lid, _ in regs if lid not in dict(inner)]
            todo = [lim for lim in todo if bound(lim, [partial] + others) != "pass"]
        return todo

    def _voxel_check(self, organ, todo, subset, regs) -> ResultRow | None:
        """The worst failing row of ``todo`` on the organ's voxel-wise sum, or None."""
        dvh = self._organ_composite(organ, regs)
        structure = self.oar_structures[organ]
        label = ", ".join(f"{lid} {r.label}" for lid, r in regs)
        rows = [self._composite_row(organ, structure, lim, dvh, label) for lim in todo]
        failed = [row for row in rows if row.status == "fail"]
        return max(failed, key=excess) if failed else None

    def _nogood(self, choice: dict[str, Regimen], row: ResultRow) -> dict[str, Regimen]:
        """A group of lesions (with their regimens) whose sum alone fails ``row``'s organ:
        every combination containing it fails too (more lesions only add EQD2 and more
        fraction numbers only tighten the limits). Deletion filter: drop the lesions one at a
        time, smallest contribution to the organ first, while the rest still fails; the group
        left is irreducible (removing any one lesion makes it pass)."""
        organ = row.organ
        if organ not in self.oar_structures or len(choice) <= 1:
            return dict(choice)
        contributions = []
        for lid, regimen in choice.items():
            part = self._single_eqd2(lid, organ, regimen)
            contributions.append((part.dmax_gy if part is not None else math.inf, lid))
        group = dict(choice)
        for _, lid in sorted(contributions):
            if len(group) == 1:
                break
            trial = {k: v for k, v in group.items() if k != lid}
            status, _ = self._composite_check(trial, organs=(organ,), first_failure=True)
            if status == "fail":
                group = trial
        return group

    def dose_once(self, regs) -> tuple:
        """``(lesion id, regimen)`` pairs with one lesion per plan: the lesions of one RTPLAN
        (several targets) share its dose, which the composite counts once — their dose is
        delivered in the same session, so per-fraction doses are summed before the LQ
        conversion (the plan's dose already is that sum), never EQD2s added (reference
        §6.6)."""
        seen: set[str] = set()
        out = []
        for lid, regimen in regs:
            uid = self._by_id[lid].plan.sop_instance_uid or lid
            if uid not in seen:
                seen.add(uid)
                out.append((lid, regimen))
        return tuple(out)

    # ------------------------------------------------------------------ the objective
    def plan_units(self) -> list[list[str]]:
        """Lesion ids grouped by plan: the lesions of one RTPLAN (several targets) share one
        regimen and are searched as one unit; in plan order."""
        units: dict[str, list[str]] = {}
        for lesion in self.lesions:
            units.setdefault(lesion.plan.sop_instance_uid or lesion.lesion_id, []).append(
                lesion.lesion_id
            )
        return list(units.values())

    def _unit_options(self, unit: list[str]) -> tuple[list[Option], list[Option]]:
        """(options passing every mandatory per-lesion row of every lesion of the unit, every
        option); each list in the unit's own preference order."""
        lesions = [self._by_id[lid] for lid in unit]
        regimens = [
            r for r in self.regimens_for(unit[0]) if all(r in self.regimens_for(x) for x in unit)
        ]
        every, ok = [], []
        cache = self.__dict__.setdefault("_option_cache", {})
        for regimen in regimens:
            key = (tuple(unit), regimen)
            if key not in cache:
                fails = sum(len(self._individual(lid, regimen)) for lid in unit)
                cache[key] = option(regimen, lesions, self.lesion_rows, failures=fails)
            opt = cache[key]
            every.append(opt)
            fails = opt.failures
            if not fails and self._judged(unit, regimen):
                ok.append(opt)
        every.sort(key=_unit_order)
        ok.sort(key=_unit_order)
        return ok, every

    def _search(self, *, max_composite_evaluations: int = 400) -> Recommendation:
        """The best regimen per lesion by the lexicographic objective of :mod:`.objective`
        (control target; worst-lesion margin to the mandatory limits, capped at the borderline
        band; standard regimens and fewer fractions; BED10) among the choices whose lesions
        pass every mandatory per-lesion row and whose composite passes every mandatory limit.

        Search: per unit (a plan's lesions), options failing a mandatory per-lesion row are
        removed (a unit with no passing option keeps its fewest-failure option, said in the
        explanation). For each distinct capped margin level ``t`` (highest first) the options
        with margin >= ``t`` are searched best-first by the additive criteria (1, 3, 4; the
        order is compatible with addition, so the first combination whose composite passes is
        that level's best); the best over the levels is the optimum of the whole key (its worst
        margin is some level ``t*``, whose search finds it). Composite failures are reduced to
        the smallest failing group of lesions and skipped in every later combination.
        ``binding`` names, for every unit not at its own best option, why that better option
        was not taken.
        """
        t0 = time.perf_counter()
        self._composite_evaluations = 0
        self._warm()
        explanation: list[str] = []
        units = self.plan_units()
        ok: list[list[Option]] = []
        every: dict[int, list[Option]] = {}
        for u, unit in enumerate(units):
            passing, all_options = self._unit_options(unit)
            every[u] = all_options
            judged = [o for o in all_options if self._judged(unit, o.regimen)]
            if not judged:
                # issue 12: nothing could be evaluated for this unit; never read as passing
                explanation.append(
                    f"{'+'.join(unit)}: no regimen can be judged: none of its mandatory "
                    "organ-at-risk limits could be evaluated (no case structure maps to a "
                    "constrained organ, or no table covers the site); its first option by the "
                    "objective is shown, not evaluated"
                )
                passing = [all_options[0]]
            elif not passing:
                best = min(judged, key=lambda o: (o.failures, _unit_order(o)))
                explanation.append(
                    f"{'+'.join(unit)}: no regimen passes every mandatory constraint; "
                    f"{best.regimen.label} has the fewest failures ({best.failures})"
                )
                passing = [best]
            ok.append(passing)
        nogoods: list[dict[str, Regimen]] = []
        levels = sorted({o.capped for opts in ok for o in opts}, reverse=True)
        lower = tuple(
            sum(v) for v in zip(*(min(o.additive()[:4] for o in opts) for opts in ok))
        )
        best_key, best_index, best_lists = None, None, None
        visited = 0
        exhausted = False
        for level in levels:
            lists = [[o for o in opts if o.capped >= level - 1e-12] for opts in ok]
            if any(not x for x in lists):
                continue
            bound_1 = tuple(
                sum(v) for v in zip(*(min(o.additive()[:4] for o in x) for x in lists))
            )
            if best_key is not None and bound_1 >= best_key[:4]:
                continue  # criterion 1 cannot beat the best found, and its margin is lower
            for x in lists:
                x.sort(key=Option.additive)
            index, seen_n, budget_hit = self._best_first(units, lists, nogoods,
                                                         max_composite_evaluations)
            visited += seen_n
            exhausted |= budget_hit
            if index is None:
                continue
            key = objective_key([lists[u][i] for u, i in enumerate(index)])
            if best_key is None or key < best_key:
                best_key, best_index, best_lists = key, index, lists
            if best_key[:4] == lower or self._composite_evaluations > max_composite_evaluations:
                break  # criterion 1 cannot improve at a lower margin level
        composite_status = "pass"
        if best_index is None:
            composite_status = "fail"
            best_lists = [sorted(x, key=Option.additive) for x in ok]
            best_index = tuple(0 for _ in units)
            explanation.append(
                "no combination of individually acceptable regimens passes the mandatory "
                "composite limits"
                + (" within the search budget" if exhausted else "")
                + "; the best combination by the objective is shown and its composite fails"
            )
        chosen = {u: best_lists[u][i] for u, i in enumerate(best_index)}
        choice = {lid: chosen[u].regimen for u, unit in enumerate(units) for lid in unit}
        worst_u = min(chosen, key=lambda u: chosen[u].capped)
        binding: dict[str, str] = {}
        binding_rows: dict[str, ResultRow] = {}
        alternatives: dict[str, Regimen] = {}
        deescalated: list[str] = []
        reasons: dict[str, str] = {}
        for u, unit in enumerate(units):
            opt = chosen[u]
            name = "+".join(unit)
            for lid in unit:
                reasons[lid] = self._reason(lid, opt, u == worst_u)
            # the options the objective would prefer if every limit allowed them
            better = sorted(
                (o for o in every[u] if _ideal(o) < _ideal(opt) and o.regimen != opt.regimen),
                key=_ideal,
            )
            if not better:
                explanation.append(f"{name}: {opt.regimen.label}, its best option by the "
                                   f"objective; {reasons[unit[0]]}")
                continue
            deescalated += unit
            above = better[-1]  # the next-better option of this unit
            text, row = self._why_not(unit, above, choice)
            for lid in unit:
                binding[lid] = text
                alternatives[lid] = above.regimen
                if row is not None:
                    binding_rows[lid] = row
            explanation.append(
                f"{name}: {opt.regimen.label} (BED10 {opt.regimen.bed10_gy():.1f} Gy); the "
                f"preferred option {above.regimen.label} (BED10 {above.regimen.bed10_gy():.1f} "
                f"Gy) is rejected: {text}; {reasons[unit[0]]}"
            )
        limits = self.composite_limits(choice)
        if not any(
            organ in self.oar_structures and any(x.row.priority == "mandatory" for x in items)
            for organ, items in limits.items()
        ):
            composite_status = "not evaluable"
            explanation.append(
                "composite: no mandatory composite limit could be evaluated (none of the loaded "
                "tables gives one for an organ of this case, or no case structure maps to a "
                "constrained organ)"
            )
        if composite_status == "pass":
            explanation.append(
                f"composite: every mandatory EQD2 limit passes for this choice ({visited} "
                f"combination(s) visited, {self._composite_evaluations} voxel-wise composite "
                "evaluation(s))"
            )
        explanation.append("objective: " + "; ".join(describe_objective()))
        self.timings["recommend_s"] = time.perf_counter() - t0
        return Recommendation(
            choice=choice,
            binding=binding,
            deescalated=deescalated,
            composite_status=composite_status,
            explanation=explanation,
            binding_rows=binding_rows,
            feasible={lid: [o.regimen for o in ok[u]] for u, unit in enumerate(units)
                      for lid in unit},
            composite_evaluations=self._composite_evaluations,
            reasons=reasons,
            alternatives=alternatives,
        )

    def _best_first(self, units, lists, nogoods, budget):
        """Best-first over the per-unit lists by the summed additive key; the first
        combination whose mandatory composite passes, as indices (or None)."""
        def total(index):
            return tuple(sum(v) for v in zip(*(lists[u][i].additive()
                                                for u, i in enumerate(index))))

        start = tuple(0 for _ in units)
        heap = [(total(start), start)]
        seen = {start}
        visited = 0
        while heap:
            if self._composite_evaluations > budget:
                return None, visited, True
            _, index = heapq.heappop(heap)
            visited += 1
            choice = {
                lid: lists[u][i].regimen for u, i in enumerate(index) for lid in units[u]
            }
            clash = next(
                (ng for ng in nogoods if all(choice.get(lid) == reg for lid, reg in ng.items())),
                None,
            )
            if clash is None:
                status, row = self._composite_check(choice, first_failure=True)
                if status == "pass":
                    return index, visited, False
                nogoods.append(self._nogood(choice, row))
            for pos in range(len(units)):
                nxt = list(index)
                nxt[pos] += 1
                nxt = tuple(nxt)
                if nxt[pos] < len(lists[pos]) and nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (total(nxt), nxt))
        return None, visited, False

    def _reason(self, lid: str, opt: Option, worst: bool) -> str:
        """Why this regimen, for one lesion: target, margin, standard."""
        lesion = self._by_id[lid]
        check = target_check(opt.regimen, lesion.site)
        parts = [f"site {lesion.site}: {check.text}"]
        if opt.margin_row is not None and not math.isnan(opt.margin):
            band = "borderline" if opt.margin < BORDERLINE_FRACTION else "clear"
            parts.append(
                f"smallest margin to a mandatory limit {opt.margin:.1%} ({band}; "
                f"{opt.margin_row.describe()})"
                + (" — the worst lesion's margin of this choice" if worst else "")
            )
        else:
            parts.append("no evaluable mandatory per-lesion limit")
        std = is_standard(opt.regimen, lesion.site)
        cites = citations(opt.regimen)
        parts.append(
            f"standard for {lesion.site} ({'; '.join(cites)})" if std
             else f"not a cited standard for {lesion.site}"
        )
        return "; ".join(parts)

    def _why_not(self, unit, above: Option, choice) -> tuple[str, ResultRow | None]:
        """Why the unit's next-better option ``above`` was not taken."""
        fails = [row for lid in unit for row in self._individual(lid, above.regimen)]
        if fails:
            row = max(fails, key=excess)
            if row.status == "not evaluable":
                return (
                    (f"{row.structure or row.organ}: {above.regimen.label} cannot be judged: "
                     f"{row.reason}"),
                    row,
                )
            return f"{row.describe()}: {above.regimen.label} fails it", row
        trial = dict(choice, **{lid: above.regimen for lid in unit})
        _, row = self._composite_check(trial)
        if row is not None:
            return (
                (f"composite {row.describe()} with {'+'.join(unit)} at {above.regimen.label} and "
                "the other lesions as recommended"),
                row,
            )
        return (
            (f"{above.regimen.label} passes alone and in the composite with the others as "
            "recommended, but the whole choice ranks lower with it (the worst-lesion margin is "
            "set by another lesion, so its larger margin does not count, and criteria 3-4 "
            "prefer the recommended regimen) or it needs another lesion lowered"),
            None,
        )


def _ideal(o: Option) -> tuple:
    """The objective without the limits (criteria 1, 3, 4): what the unit would get if every
    limit allowed it."""
    return (o.below, round(o.shortfall, 6), o.fragile, o.nonstandard, o.fractions, -o.bed10)


def _unit_order(o: Option) -> tuple:
    """A unit's own preference order of its options (the objective for one unit)."""
    return (o.failures, o.below, round(o.shortfall, 6), o.fragile, -o.capped, o.nonstandard,
            o.fractions, -o.bed10)
