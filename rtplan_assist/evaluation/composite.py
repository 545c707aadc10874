"""The composite: the common grid of the lesion doses, a lesion's dose on it, the box of the
grid that holds an organ (pure functions), and :class:`CompositeMixin`, the session's cached
composite limits, voxel-wise EQD2 sums, organ composite DVHs and composite rows.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ..dvh import DVH, DVHSampler, sampling_step_mm
from ..errors import EvaluationError
from ..geometry import polygon_volume_cc
from ..kernels.eqd2 import add_eqd2_box
from ..model import Grid, Structure
from ..radiobiology import Model, eqd2_grid
from ..regimens import Regimen
from .limits import organ_limits
from .organs import composite_alpha_beta
from .records import (
    CONTRIBUTION_FRACTION,
    CompositeLimit,
    Lesion,
    ResultRow,
    choice_key,
)
from .rows import composite_row

#: Largest common grid (voxels); a finer one is coarsened by 1.25× steps until it fits.
MAX_COMMON_VOXELS = 30_000_000


def common_grid(lesions: list[Lesion]) -> tuple[Grid, bool, str]:
    """The grid of the composite, whether every lesion dose already lies on it, and a warning.

    Same-geometry lesion grids are used as they are (warning ``""``); otherwise a uniform grid
    covering the union of the lesion grids at the finest spacing (coarsened if it would exceed
    :data:`MAX_COMMON_VOXELS`), onto which each lesion's physical dose is resampled trilinearly
    (:func:`dose_on_grid`).
    """
    grids = [lesion.dose.grid for lesion in lesions]
    if all(g.same_geometry(grids[0]) for g in grids[1:]):
        return grids[0], True, ""
    extents = np.array([g.extent_mm() for g in grids])
    lo = extents[:, :, 0].min(axis=0)
    hi = extents[:, :, 1].max(axis=0)
    spacing = np.array([min(float(g.spacing[a]) for g in grids) for a in range(3)])
    while True:
        counts = np.maximum(np.floor((hi - lo) / spacing + 1e-6).astype(int), 1)
        if int(np.prod(counts)) <= MAX_COMMON_VOXELS:
            break
        spacing = spacing * 1.25
    origin = lo + spacing / 2
    grid = Grid.uniform(origin, spacing, (counts[2], counts[1], counts[0]))
    warning = (
        "lesion dose grids differ: the composite is computed on a common "
        f"{grid.shape[2]}×{grid.shape[1]}×{grid.shape[0]} grid of "
        f"{spacing[0]:.2f}×{spacing[1]:.2f}×{spacing[2]:.2f} mm (trilinear resampling)"
    )
    return grid, False, warning


def dose_on_grid(lesion: Lesion, grid: Grid, same: bool) -> np.ndarray:
    """The lesion's physical dose (Gy, ``(nz, ny, nx)``) on the common ``grid``: its own array
    when ``same``, else resampled trilinearly (``kernels/resample.py``; 0 Gy outside the
    lesion's grid)."""
    if same:
        return lesion.dose.dose_gy
    from ..kernels.resample import resample_trilinear

    src = lesion.dose.grid
    ext = src.extent_mm()
    half = (
        (src.z_mm[0] - ext[2, 0], ext[2, 1] - src.z_mm[-1]),
        (src.spacing[1] / 2, src.spacing[1] / 2),
        (src.spacing[0] / 2, src.spacing[0] / 2),
    )
    values, _ = resample_trilinear(
        lesion.dose.dose_gy,
        (src.z_mm, src.y_mm, src.x_mm),
        half,
        (grid.z_mm, grid.y_mm, grid.x_mm),
    )
    return values


def box(structure: Structure, grid: Grid) -> tuple[tuple[slice, slice, slice], Grid]:
    """``((z, y, x) slices, sub-grid)`` of ``grid`` that holds ``structure`` with a margin of
    two voxels in x and y and a slab (at least 5 mm) plus two voxels in z."""
    bounds = structure.bounds_mm()
    slab = max(structure.slice_thickness_mm or 0.0, 5.0)
    margin = np.array([2 * grid.spacing[0], 2 * grid.spacing[1], slab + 2 * grid.spacing[2]])
    lo = bounds[:, 0] - margin
    hi = bounds[:, 1] + margin
    axes = (grid.x_mm, grid.y_mm, grid.z_mm)
    cuts = []
    for axis in range(3):
        coords = axes[axis]
        start = max(int(np.searchsorted(coords, lo[axis], side="left")) - 1, 0)
        stop = min(int(np.searchsorted(coords, hi[axis], side="right")) + 1, len(coords))
        cuts.append(slice(start, max(stop, start + 1)))
    sx, sy, sz = cuts
    z = grid.z_mm[sz]
    origin = np.array([grid.x_mm[sx][0], grid.y_mm[sy][0], z[0]])
    sub = Grid(
        origin, grid.spacing.copy(), (len(z), sy.stop - sy.start, sx.stop - sx.start), z.copy()
    )
    return (sz, sy, sx), sub


class CompositeMixin:
    """The composite part of the evaluation session (a base class of
    :class:`~rtplan_assist.evaluation.session.Evaluation`, whose caches it fills)."""

    def _composite_alpha_beta(self, organ: str) -> float | None:
        return composite_alpha_beta(self.tables, organ)

    def contributors(self, organ: str) -> list[str]:
        """Lesions whose planned dose reaches at least 10 % of their prescription somewhere in
        the organ (physical Dmax of the organ; scaling keeps the ratio, so this does not depend
        on the regimen). When none does, the lesion with the highest ratio. These lesions'
        fractionations set the organ's composite limits."""
        if organ in self._contributors:
            return self._contributors[organ]
        structure = self.oar_structures[organ]
        ratios = []
        for lesion in self.lesions:
            dvh = self._physical_dvhs(lesion, [structure])[structure.name]
            dmax = dvh.dmax_gy if not math.isnan(dvh.dmax_gy) else 0.0
            ratios.append((dmax / lesion.planned.total_dose_gy, lesion.lesion_id))
        found = [lid for ratio, lid in ratios if ratio >= CONTRIBUTION_FRACTION]
        if not found:
            found = [max(ratios)[1]]
        self._contributors[organ] = found
        return found

    def composite_limits(self, choice: dict[str, Regimen]) -> dict[str, list[CompositeLimit]]:
        """Organ → EQD2 limits of the composite for a choice (a regimen per lesion, or a subset).

        The limits of an organ are fixed, the same whatever regimens are chosen (issue 12,
        :mod:`.limits`, :func:`rtplan_assist.constraints.composite_limits`). Organs none of
        whose contributors (:meth:`contributors`) is in ``choice`` are left out (subsets of
        the recommendation search).
        """
        limits: dict[str, list[CompositeLimit]] = {}
        for organ in self.tables.organs():
            if organ in self.oar_structures:
                lids = [lid for lid in self.contributors(organ) if lid in choice]
            else:
                lids = list(choice)
            if not lids:
                continue
            found = self._organ_limits(organ)
            if found:
                limits[organ] = found
        return limits

    def _organ_limits(self, organ: str):
        if organ in self._composite_limits:
            return self._composite_limits[organ]
        ab = self._composite_alpha_beta(organ)
        if ab is None:
            self._composite_notes[organ] = (
                f"{organ}: no α/β in alpha_beta.csv or the tables; no composite EQD2 limit"
            )
            self._composite_limits[organ] = []
            return []
        chosen, note = organ_limits(organ, self.tables, ab)
        if note:
            self._composite_notes[organ] = note
        self._composite_limits[organ] = chosen
        return chosen

    def common_grid(self) -> tuple[Grid, bool]:
        """The grid of the composite and whether every lesion dose already lies on it
        (:func:`.composite.common_grid`; its warning joins :attr:`warnings`). Cached."""
        if self._common is None:
            grid, same, warning = common_grid(self.lesions)
            if warning:
                self.warnings.append(warning)
            self._common = (grid, same)
        return self._common

    def _lesion_on_common(self, lesion: Lesion) -> np.ndarray:
        if lesion.lesion_id not in self._common_dose:
            grid, same = self.common_grid()
            self._common_dose[lesion.lesion_id] = dose_on_grid(lesion, grid, same)
        return self._common_dose[lesion.lesion_id]

    def _check_choice(self, choice: dict[str, Regimen]) -> dict[str, Regimen]:
        choice = dict(choice)
        for lid in choice:
            self._lesion(lid)
        missing = [lesion.lesion_id for lesion in self.lesions if lesion.lesion_id not in choice]
        if missing:
            raise EvaluationError(
                f"the composite needs a regimen for every lesion; missing {', '.join(missing)}"
            )
        return choice

    def composite_eqd2(
        self, choice: dict[str, Regimen], alpha_beta_gy: float = 3.0
    ) -> tuple[Grid, np.ndarray]:
        """Voxel-wise sum of the lesions' EQD2 at one α/β on the common grid.

        Parameters
        ----------
        choice : dict of str to Regimen
            A regimen for every lesion.
        alpha_beta_gy : float
            One α/β for the whole grid (default 3 Gy, generic late-responding tissue): a single
            exported grid needs one value; the composite rows use each organ's own α/β.

        Returns
        -------
        grid : Grid
        eqd2_gy : (nz, ny, nx) float64
            ``Σ_lesions D_i (D_i / n + α/β) / (2 + α/β)`` with each lesion's own ``n`` and its
            dose scaled to the chosen regimen (reference §6.6).
        """
        choice = self._check_choice(choice)
        grid, _ = self.common_grid()
        model = Model("LQ", float(alpha_beta_gy))
        total = None
        once = dict(self.dose_once(sorted(choice.items())))  # a plan's dose once
        for lesion in self.lesions:
            if lesion.lesion_id not in once:
                continue
            regimen = choice[lesion.lesion_id]
            physical = np.asarray(self._lesion_on_common(lesion), dtype=np.float64) * (
                regimen.scale_from(lesion.planned)
            )
            part = eqd2_grid(physical, regimen.fractions, model)
            total = part if total is None else np.add(total, part, out=total)
        return grid, total

    def _box(self, structure: Structure) -> tuple[tuple[slice, slice, slice], Grid]:
        """Sub-grid of the common grid that holds ``structure`` with a margin (cached)."""
        if structure.name not in self._boxes:
            self._boxes[structure.name] = box(structure, self.common_grid()[0])
        return self._boxes[structure.name]

    def _composite_step(self, structure: Structure, grid: Grid) -> float:
        key = ("step", structure.name)
        if key not in self._boxes:
            self._boxes[key] = sampling_step_mm(polygon_volume_cc(structure, end_caps=self.end_caps), grid)
        return self._boxes[key]

    def _organ_composite(
        self,
        organ: str,
        regimens: tuple[tuple[str, Regimen], ...],
        physical: bool = False,
        alpha_beta: float | None = None,
    ) -> DVH:
        """Composite EQD2 DVH (organ α/β) of ``organ`` for the listed lesions (voxel-wise);
        ``physical``: the physical dose sum (lung low-dose-bath limits, never LQ-converted)."""
        key = (organ, regimens) if not physical else (organ, regimens, "physical")
        if alpha_beta is not None and not physical:  # another α/β (robustness, .robustness)
            key = (organ, regimens, "ab", float(alpha_beta))
        if key in self._organ_cache:
            self._organ_cache.move_to_end(key)
            return self._organ_cache[key]
        structure = self.oar_structures[organ]
        # the physical sum is the EQD2 sum at α/β -> ∞: D (d + α/β) / (2 + α/β) differs from D
        # by D (d - 2) / (2 + α/β), < 1e-9 Gy at α/β = 1e12 for any dose here
        ab = self._composite_alpha_beta(organ) if not physical else 1e12
        if alpha_beta is not None and not physical:
            ab = float(alpha_beta)
        (sz, sy, sx), sub = self._box(structure)
        sampler = self._sampler(structure, sub)
        total = np.zeros(sub.shape, dtype=np.float64)
        for lid, regimen in self.dose_once(regimens):  # a plan's dose once (same session)
            lesion = self._by_id[lid]
            # EQD2 = D (D/n + α/β) / (2 + α/β), voxel by voxel (reference §6.5), on the
            # voxels the organ's DVH reads
            add_eqd2_box(
                total,
                self._lesion_on_common(lesion),
                (sz.start, sy.start, sx.start),
                regimen.scale_from(lesion.planned),
                regimen.fractions,
                ab,
                runs=sampler.support_runs,
            )
        t0 = time.perf_counter()
        dvh = sampler.dvh(total)
        self.timings["composite_dvh_s"] = (
            self.timings.get("composite_dvh_s", 0.0) + time.perf_counter() - t0
        )
        dvh = (
            replace(dvh, dose_kind="EQD2", model=f"LQ, α/β = {ab:g} Gy", warnings=())
            if not physical
            else replace(dvh, dose_kind="physical", model="physical dose sum", warnings=())
        )
        self._organ_cache[key] = dvh
        while len(self._organ_cache) > 2048:
            self._organ_cache.popitem(last=False)
        return dvh

    def _sampler(self, structure: Structure, sub: Grid) -> DVHSampler:
        """The organ's DVH samples on its box of the common grid, recorded once (the contour
        walk is most of a DVH's cost; every composite of the search replays it)."""
        if structure.name not in self._samplers:
            # Composite DVHs sample rows every voxel at most (not the 0.05-0.2 mm of the
            # physical per-lesion DVHs): the summed EQD2 grid is itself a voxel-wise estimate
            # (reference §6.6), and this keeps a regimen change interactive.
            h = max(self._composite_step(structure, sub), float(min(sub.spacing)))
            self._samplers[structure.name] = DVHSampler(
                structure, sub, outside=self.outside, h_mm=h, label="composite",
                end_caps=self.end_caps,
            )
        return self._samplers[structure.name]

    def _organ_composites(self, organs: list[str], choice: dict[str, Regimen]) -> dict[str, DVH]:
        regs = tuple(sorted(choice.items()))
        todo = [o for o in organs if (o, regs) not in self._organ_cache]
        if len(todo) > 1:
            # big organs first; the DVH kernel releases the GIL, so two threads share the work
            todo.sort(
                key=lambda o: -float(np.prod(np.ptp(self.oar_structures[o].bounds_mm(), axis=1)))
            )
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda o: self._organ_composite(o, regs), todo))
        return {o: self._organ_composite(o, regs) for o in organs}

    def composite_dvhs(self, choice: dict[str, Regimen]) -> dict[str, DVH]:
        """EQD2 DVHs (each organ's α/β, voxel-wise sum) of every constrained OAR, keyed by case
        structure name; cached per choice."""
        choice = self._check_choice(choice)
        limits = self.composite_limits(choice)
        organs = [o for o in limits if o in self.oar_structures]
        done = self._organ_composites(organs, choice)
        return {self.oar_structures[o].name: done[o] for o in organs}

    def composite_rows(
        self, choice: dict[str, Regimen], *, mandatory_only: bool = False
    ) -> list[ResultRow]:
        """Rows of the composite EQD2 against EQD2 limits, one regimen per lesion.

        Every row: EQD2, LQ, the organ's α/β, the converted limit and its source
        (``converted_from_fractions``; the reason gives the conversion), and, where a lesion's
        own dose grid does not cover the OAR, which lesion and how much. Organs the case lacks
        give ``not evaluable`` rows. Cached per choice.
        """
        choice = self._check_choice(choice)
        key = (choice_key(choice), mandatory_only)
        if key in self._composite_rows_cache:
            return list(self._composite_rows_cache[key])
        limits = self.composite_limits(choice)
        organs = [
            o
            for o, items in limits.items()
            if not mandatory_only or any(x.row.priority == "mandatory" for x in items)
        ]
        dvhs = self._organ_composites([o for o in organs if o in self.oar_structures], choice)
        label = ", ".join(f"{lid} {r.label}" for lid, r in sorted(choice.items()))
        rows: list[ResultRow] = []
        for organ in organs:
            structure = self.oar_structures.get(organ)
            for lim in limits[organ]:
                if mandatory_only and lim.row.priority != "mandatory":
                    continue
                dvh = dvhs.get(organ)
                if lim.alpha_beta_gy is None and structure is not None:
                    dvh = self._organ_composite(
                        organ, tuple(sorted(choice.items())), physical=True
                    )
                rows.append(self._composite_row(organ, structure, lim, dvh, label))
        if not mandatory_only:
            for organ, note in self._composite_notes.items():
                rows.append(
                    self._row(
                        None,
                        "composite",
                        organ=organ,
                        status="not evaluable",
                        reason=note,
                        kind="EQD2",
                    )
                )
        self._composite_rows_cache[key] = rows
        while len(self._composite_rows_cache) > 256:
            self._composite_rows_cache.popitem(last=False)
        return list(rows)

    def _composite_row(self, organ, structure, lim: CompositeLimit, dvh, label) -> ResultRow:
        coverage = ""
        if structure is not None and dvh is not None:
            coverage = self._composite_coverage(structure)
        return composite_row(
            self.case.patient_id,
            organ,
            structure,
            lim,
            dvh,
            label,
            self._missing_reason(organ),
            coverage,
        )

    def _composite_coverage(self, structure: Structure) -> str:
        notes = []
        for lesion in self.lesions:
            dvh = self._physical_dvhs(lesion, [structure])[structure.name]
            if dvh.outside_cc > 1e-6 * max(dvh.volume_cc, 1e-9):
                frac = dvh.outside_cc / max(dvh.outside_cc + dvh.dvh_volume_cc, 1e-12)
                notes.append(
                    f"{lesion.lesion_id}'s dose grid does not cover {frac:.1%} of "
                    f"{structure.name}: no dose from {lesion.lesion_id} is counted there "
                    "(unknown, not 0 Gy)"
                )
        return ("; " + "; ".join(notes)) if notes else ""

    composite = composite_rows
