"""The joint recommendation: the highest-BED10 regimen per lesion such that every mandatory
per-lesion and composite limit passes.

Search: regimens that fail a mandatory per-lesion constraint are removed first; the remaining
combinations are visited by descending total BED10 and each combination's composite is decided
by sound bounds (:mod:`.bounds`) where possible, by voxels otherwise; a failure is reduced to
the smallest group of lesions that fails on its own, and combinations containing that group
are skipped.

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
from ..regimens import Regimen
from .bounds import bound
from .records import CompositeLimit, Recommendation, ResultRow, choice_key, excess


class SearchMixin:
    """The recommendation's search (methods of the evaluation session)."""

    def _individual(self, lesion_id: str, regimen: Regimen) -> list[ResultRow]:
        return [
            r
            for r in self.lesion_rows(lesion_id, regimen)
            if r.priority == "mandatory" and r.status == "fail"
        ]

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

    def _search(self, *, max_composite_evaluations: int = 400) -> Recommendation:
        """The highest-BED10 regimen per lesion that passes every mandatory constraint, chosen
        jointly so that the mandatory composite limits pass too.

        Search: regimens that fail a mandatory per-lesion constraint are removed first; the
        remaining combinations are visited by descending total BED10 (best-first over the
        per-lesion lists sorted by BED10). A combination's composite is decided by sound
        bounds from the single-lesion EQD2 DVHs where possible, by voxels otherwise; a failure
        is reduced to the smallest group of lesions that fails on its own, and combinations
        containing that group are skipped. A lesion with no passing regimen keeps the option
        with the fewest mandatory failures (then the highest BED10) and the explanation says
        so. ``binding`` names, for every lesion below its highest-BED10 option, the constraint
        that stopped the next-higher one.
        """
        t0 = time.perf_counter()
        self._composite_evaluations = 0
        self._warm()
        explanation: list[str] = []
        lists: dict[str, list[Regimen]] = {}
        failures: dict[tuple[str, Regimen], list[ResultRow]] = {}
        for lesion in self.lesions:
            lid = lesion.lesion_id
            by_bed = sorted(self.regimens_for(lid), key=lambda r: (-r.bed10_gy(), r.fractions))
            ok = []
            for regimen in by_bed:
                fails = self._individual(lid, regimen)
                failures[(lid, regimen)] = fails
                if not fails:
                    ok.append(regimen)
            if not ok:
                best = min(by_bed, key=lambda r: (len(failures[(lid, r)]), -r.bed10_gy()))
                explanation.append(
                    f"{lid}: no regimen passes every mandatory constraint; {best.label} has the "
                    f"fewest failures ({len(failures[(lid, best)])})"
                )
                ok = [best]
            lists[lid] = ok
        ids = [lesion.lesion_id for lesion in self.lesions]
        beds = {lid: [r.bed10_gy() for r in lists[lid]] for lid in ids}

        def total(index: tuple[int, ...]) -> float:
            return sum(beds[lid][i] for lid, i in zip(ids, index))

        start = tuple(0 for _ in ids)
        heap = [(-total(start), start)]
        seen = {start}
        nogoods: list[dict[str, Regimen]] = []
        chosen_index = None
        composite_status = "fail"
        blocked_by: dict[tuple, ResultRow] = {}
        visited = 0
        while heap and self._composite_evaluations <= max_composite_evaluations:
            _, index = heapq.heappop(heap)
            visited += 1
            choice = {lid: lists[lid][i] for lid, i in zip(ids, index)}
            clash = next(
                (ng for ng in nogoods if all(choice[lid] == reg for lid, reg in ng.items())),
                None,
            )
            if clash is None:
                status, row = self._composite_check(choice, first_failure=True)
                if status == "pass":
                    chosen_index, composite_status = index, "pass"
                    break
                nogoods.append(self._nogood(choice, row))
            for pos in range(len(ids)):
                nxt = list(index)
                nxt[pos] += 1
                nxt = tuple(nxt)
                if nxt[pos] < len(lists[ids[pos]]) and nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (-total(nxt), nxt))
        if chosen_index is None:
            chosen_index = start
            explanation.append(
                "no combination of individually acceptable regimens passes the mandatory "
                "composite limits"
                + (" within the search budget" if heap else "")
                + "; the highest-BED10 combination is shown and its composite fails"
            )
        choice = {lid: lists[lid][i] for lid, i in zip(ids, chosen_index)}
        binding: dict[str, str] = {}
        binding_rows: dict[str, ResultRow] = {}
        deescalated: list[str] = []
        for lid in ids:
            regimen = choice[lid]
            by_bed = sorted(self.regimens_for(lid), key=lambda r: (-r.bed10_gy(), r.fractions))
            higher = [r for r in by_bed if r.bed10_gy() > regimen.bed10_gy() + 1e-9]
            if not higher:
                continue
            deescalated.append(lid)
            above = higher[-1]  # the next-higher BED10 option
            fails = failures.get((lid, above), [])
            if fails:
                row = max(fails, key=excess)
                binding_rows[lid] = row
                binding[lid] = (
                    f"{row.describe()}: {above.label} (BED10 {above.bed10_gy():.1f} Gy) fails it"
                )
            else:
                trial = dict(choice, **{lid: above})
                status, row = self._composite_check(trial)
                if row is not None:
                    blocked_by[(lid, above)] = row
                    binding_rows[lid] = row
                    binding[lid] = (
                        f"composite {row.describe()} with {lid} at {above.label} "
                        f"(BED10 {above.bed10_gy():.1f} Gy) and the other lesions as recommended"
                    )
                else:
                    binding[lid] = (
                        f"{above.label} passes alone and in the composite with the others as "
                        "recommended, but raising it needs another lesion lowered (lower total "
                        "BED10)"
                    )
            explanation.append(
                f"{lid}: {regimen.label} (BED10 {regimen.bed10_gy():.1f} Gy) instead of "
                f"{by_bed[0].label} (BED10 {by_bed[0].bed10_gy():.1f} Gy); binding: {binding[lid]}"
            )
        for lid in ids:
            if lid not in deescalated:
                explanation.append(
                    f"{lid}: {choice[lid].label} (BED10 {choice[lid].bed10_gy():.1f} Gy), its "
                    "highest-BED10 option, passes every mandatory constraint"
                )
        if composite_status == "pass":
            explanation.append(
                f"composite: every mandatory EQD2 limit passes for this choice ({visited} "
                f"combination(s) visited, {self._composite_evaluations} voxel-wise composite "
                "evaluation(s))"
            )
        self.timings["recommend_s"] = time.perf_counter() - t0
        return Recommendation(
            choice=choice,
            binding=binding,
            deescalated=deescalated,
            composite_status=composite_status,
            explanation=explanation,
            binding_rows=binding_rows,
            feasible={lid: list(lists[lid]) for lid in ids},
            composite_evaluations=self._composite_evaluations,
        )
