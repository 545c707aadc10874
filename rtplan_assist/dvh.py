"""Dose-volume histograms of contour-defined structures.

:func:`compute_dvh` integrates the dose over the solid the contours define (see
``kernels/dvh.py`` for the method and its references) and returns an immutable
:class:`DVH`: a cumulative curve exact at fine bin edges, plus Dmin/Dmax/Dmean and the
volumes needed to reconcile with a TPS. Metrics use the one TG-263 parser
(:mod:`rtplan_assist.metrics`) and are interpolated on the curve, never read at the
nearest bin.

Outside policy: a structure partly outside the dose grid has that part reported as
``outside_cc`` with a warning. ``outside="exclude"`` (default) leaves it out of the DVH, so
percentages refer to the covered volume; ``outside="zero"`` counts it at 0 Gy.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from .errors import GeometryError, MetricSyntaxError
from .geometry import END_CAPS, flatten, polygon_volume_cc
from .kernels.dvh import (
    Refinement,
    dvh_accumulate,
    dvh_accumulate_recorded,
    dvh_replay,
    dvh_support,
)
from .kernels.eqd2 import voxel_runs
from .metrics import Metric, parse_metric
from .model import Dose, Grid, Structure

N_BINS = 8192
ROW_BUDGET_MM = 5.0e5
SMALL_STRUCTURE_CC = 100.0
H_MIN_MM = 0.05
OUTSIDE_POLICIES = ("exclude", "zero")
#: Most row × sub-slab samples one DVH may take: a bound on run time that refuses absurd
#: geometry (a contour kilometres long sampled at 0.05 mm) before the kernel starts.
#: Clinical structures take about 1e5 (demo patient and dicompyler example: at most 1.1e5).
MAX_DVH_SAMPLES = 2.0e7
#: Dose-adaptive refinement (``kernels/dvh.py``): the dose cells holding the top and the
#: bottom REFINE_QUANTILE of a structure's grid-node doses get r × r dose samples per chord
#: piece, r from a budget of REFINE_BUDGET_MM of extra chord (a tenth of the row budget).
REFINE_QUANTILE = 0.04
REFINE_BUDGET_MM = 0.1 * ROW_BUDGET_MM


@dataclass(frozen=True)
class MetricValue:
    """A metric's value with its unit; ``value`` is NaN when not evaluable (see ``note``)."""

    metric: str
    value: float
    unit: str
    note: str = ""

    @property
    def evaluable(self) -> bool:
        return not math.isnan(self.value)


@dataclass(frozen=True)
class DVH:
    """Cumulative DVH of one structure on one dose distribution.

    Attributes
    ----------
    name : str
    roi_number : int
    volume_cc : float
        Contour-stack volume from the polygons (shoelace × slab thickness, end caps).
    dvh_volume_cc : float
        Volume the DVH tallies (the part inside the dose grid, plus the outside part under
        ``outside="zero"``).
    outside_cc : float
        Volume outside the dose grid.
    dose_gy : (K,) float64
        Ascending dose axis.
    volume_cc_at_dose : (K,) float64
        Volume receiving at least ``dose_gy[k]`` (non-increasing).
    dmin_gy, dmean_gy, dmax_gy : float
    dose_kind : str
        ``physical``, ``EQD2`` or ``BED``.
    model : str
        Radiobiological model and α/β when ``dose_kind`` is not physical.
    outside_policy : str
    end_caps : str
        End-cap convention of the solid (``geometry.END_CAPS``): ``half`` or ``none``.
    warnings : tuple of str
    """

    name: str
    roi_number: int
    volume_cc: float
    dvh_volume_cc: float
    outside_cc: float
    dose_gy: np.ndarray
    volume_cc_at_dose: np.ndarray
    dmin_gy: float
    dmean_gy: float
    dmax_gy: float
    dose_kind: str = "physical"
    model: str = ""
    outside_policy: str = "exclude"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    end_caps: str = "half"

    def __repr__(self) -> str:
        kind = "" if self.dose_kind == "physical" else f" {self.dose_kind} ({self.model})"
        return (
            f"<DVH {self.name!r}{kind}: {self.dvh_volume_cc:.4g} cc in the grid"
            + (f" ({self.outside_cc:.3g} cc outside)" if self.outside_cc > 0 else "")
            + f", mean {self.dmean_gy:.4g} Gy, max {self.dmax_gy:.4g} Gy>"
        )

    def __getitem__(self, metric: str) -> MetricValue:
        """``dvh["D95%[Gy]"]``: :meth:`metric` without a prescription (a metric relative to
        the prescription is not evaluable here: use ``dvh.metric(m, prescription_gy=...)``)."""
        return self.metric(metric)

    # -- curve queries -------------------------------------------------------------------
    def volume_at(self, dose_gy: float) -> float:
        """Volume (cc) receiving at least ``dose_gy``, interpolated linearly on the curve."""
        if self.dvh_volume_cc <= 0:
            return math.nan
        if dose_gy <= self.dose_gy[0]:
            return float(self.volume_cc_at_dose[0])
        if dose_gy > self.dose_gy[-1]:
            return 0.0
        return float(np.interp(dose_gy, self.dose_gy, self.volume_cc_at_dose))

    def dose_at(self, volume_cc: float) -> float:
        """Minimum dose (Gy) to the hottest ``volume_cc``, interpolated on the curve.

        NaN when the structure is smaller than ``volume_cc``.
        """
        v = self.volume_cc_at_dose
        if self.dvh_volume_cc <= 0 or volume_cc > self.dvh_volume_cc * (1 + 1e-9):
            return math.nan
        if volume_cc <= 0:
            return self.dmax_gy
        # v is non-increasing; find the last edge still receiving >= volume_cc
        idx = int(np.searchsorted(-v, -volume_cc, side="right")) - 1
        if idx < 0:
            return float(self.dose_gy[0])
        if idx >= len(v) - 1:
            return float(self.dose_gy[-1])
        v0, v1 = v[idx], v[idx + 1]
        d0, d1 = self.dose_gy[idx], self.dose_gy[idx + 1]
        if v0 == v1:
            return float(d0)
        return float(d0 + (d1 - d0) * (v0 - volume_cc) / (v0 - v1))

    def differential(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin centres (Gy) and volume per bin (cc) of the differential DVH."""
        centres = 0.5 * (self.dose_gy[1:] + self.dose_gy[:-1])
        return centres, -np.diff(self.volume_cc_at_dose)

    # -- metrics ------------------------------------------------------------------------
    def metric(self, metric: str | Metric, prescription_gy: float | None = None) -> MetricValue:
        """Evaluate a TG-263 metric (``D95%[Gy]``, ``V20Gy[%]``, ``Mean[Gy]``, ...).

        ``prescription_gy`` is needed when the metric has a dose in % of prescription.
        """
        m = parse_metric(metric) if isinstance(metric, str) else metric
        label = str(m)
        if m.needs_prescription and not prescription_gy:
            return MetricValue(label, math.nan, m.out_unit, "needs a prescription dose")
        if self.dvh_volume_cc <= 0:
            return MetricValue(label, math.nan, m.out_unit, "no volume inside the dose grid")
        if not (math.isfinite(self.dmax_gy) and math.isfinite(self.dmin_gy)):
            # e.g. a DVH scaled by an absurd prescription ratio (1e-300 Gy planned): the
            # dose axis overflowed; interpolating on it would give inf - inf
            return MetricValue(label, math.nan, m.out_unit,
                               f"the {self.dose_kind} dose values are not finite "
                               f"(Dmax {self.dmax_gy:g} Gy)")
        total = self.dvh_volume_cc
        if m.returns_dose:
            if m.kind == "Mean":
                dose = self.dmean_gy
            elif m.kind == "Max":
                dose = self.dmax_gy
            elif m.kind == "Min":
                dose = self.dmin_gy
            else:
                vol = m.value if m.query_unit == "cc" else m.value / 100.0 * total
                if m.kind == "DC":
                    vol = total - vol
                if vol > total * (1 + 1e-9):
                    return MetricValue(
                        label, math.nan, m.out_unit,
                        f"structure volume {total:.3f} cc is smaller than {m.value:g} cc",
                    )
                dose = self.dose_at(min(vol, total))
            return MetricValue(label, _dose_out(dose, m.out_unit, prescription_gy), m.out_unit)
        threshold = m.value
        if m.query_unit == "cGy":
            threshold = m.value / 100.0
        elif m.query_unit == "%":
            threshold = m.value / 100.0 * prescription_gy
        vol = self.volume_at(threshold)
        if m.kind == "CV":
            vol = total - vol
        value = vol if m.out_unit == "cc" else 100.0 * vol / total
        return MetricValue(label, value, m.out_unit)

    # -- derived DVHs -------------------------------------------------------------------
    def scaled(self, factor: float) -> DVH:
        """The DVH of the same plan with every dose multiplied by ``factor`` (> 0)."""
        if not factor > 0:
            raise ValueError("scale factor must be positive")
        # the axis ascends: when both ends scale to finite values no element can overflow,
        # and np.errstate (~20 us a call, ~1,000 calls in an evaluation) is not needed
        f = float(factor)
        lo, hi = (float(self.dose_gy[0]), float(self.dose_gy[-1])) if len(self.dose_gy) else (0, 0)
        if math.isfinite(lo * f) and math.isfinite(hi * f):
            axis = self.dose_gy * factor
        else:
            with np.errstate(over="ignore"):  # an overflow makes metrics not evaluable
                axis = self.dose_gy * factor
        return replace(
            self,
            dose_gy=axis,
            dmin_gy=float(self.dmin_gy) * factor,
            dmean_gy=float(self.dmean_gy) * factor,
            dmax_gy=float(self.dmax_gy) * factor,
        )

    def mapped(self, transform: Callable[[np.ndarray], np.ndarray], dose_kind: str,
               model: str) -> DVH:
        """The DVH under a monotone increasing point transform of dose (e.g. physical →
        EQD2 for one plan with a fixed number of fractions).

        Exact for the curve and the extremes because the transform preserves order; the
        mean is integrated from the distribution (Σ transform(bin centre) × bin volume),
        never computed as transform(mean dose).
        """
        new_axis = np.asarray(transform(self.dose_gy), dtype=np.float64)
        centres, dv = self.differential()
        tail = self.volume_cc_at_dose[-1]
        total = self.dvh_volume_cc
        mean = math.nan
        if total > 0:
            integral = float(np.sum(np.asarray(transform(centres)) * dv))
            integral += float(transform(np.array([self.dose_gy[-1]]))[0]) * tail
            mean = integral / total
        return replace(
            self,
            dose_gy=new_axis,
            dmin_gy=float(transform(np.array([self.dmin_gy]))[0]),
            dmax_gy=float(transform(np.array([self.dmax_gy]))[0]),
            dmean_gy=mean,
            dose_kind=dose_kind,
            model=model,
        )

    def resampled(self, step_gy: float) -> tuple[np.ndarray, np.ndarray]:
        """Curve on a regular dose axis from 0 Gy past Dmax (for output files)."""
        axis = np.arange(0.0, max(self.dose_gy[-1], 0.0) + step_gy, step_gy)
        volume = np.interp(axis, self.dose_gy, self.volume_cc_at_dose, right=0.0)
        return axis, volume


def _dose_out(dose_gy: float, unit: str, prescription_gy: float | None) -> float:
    if unit == "Gy":
        return dose_gy
    if unit == "cGy":
        return dose_gy * 100.0
    if unit == "%":
        return 100.0 * dose_gy / prescription_gy
    raise MetricSyntaxError(f"unit {unit} is not a dose unit")


def grid_coverage(grid: Grid) -> np.ndarray:
    """(3, 2) [min, max] in mm of the voxel extent of a grid (where dose is defined)."""
    return grid.extent_mm()


def sampling_step_mm(volume_cc: float, grid: Grid) -> float:
    """Row and sub-slab spacing for a structure: fine for small structures, capped for big.

    ``h = sqrt(V / budget)`` keeps the work per structure near ``ROW_BUDGET_MM`` of chord,
    bounded below by ``H_MIN_MM`` (tiny lesions get 0.05 mm rows) and above by the smallest
    dose-grid spacing (only organs of several litres reach it; rows never straddle a dose
    row and x stays exact, so one row per dose row is still a fine sampling there).
    """
    # small structures (lesions, cord, plexus) get twice the budget: their D-metrics are
    # the ones read against tight limits
    budget = 2.0 * ROW_BUDGET_MM if volume_cc <= SMALL_STRUCTURE_CC else ROW_BUDGET_MM
    h = math.sqrt(max(volume_cc, 1e-6) * 1000.0 / budget)
    h_max = float(min(grid.spacing[1], _min_dz(grid)))
    return float(min(max(h, H_MIN_MM), max(h_max, H_MIN_MM)))


def _min_dz(grid: Grid) -> float:
    z = grid.z_mm
    return float(np.min(np.diff(z))) if len(z) > 1 else float(grid.spacing[2])


def compute_dvh(
    structure: Structure,
    dose: Dose,
    *,
    outside: str = "exclude",
    h_mm: float | None = None,
    dose_array: np.ndarray | None = None,
    refine: bool = True,
    end_caps: str = "half",
) -> DVH:
    """DVH of ``structure`` on ``dose``.

    Parameters
    ----------
    structure : Structure
        Closed planar contours (mm).
    dose : Dose
        Dose grid in Gy; ``dose_array`` (same shape) replaces ``dose.dose_gy`` when given
        (e.g. a voxel-wise EQD2 grid on the same geometry).
    outside : {"exclude", "zero"}
        Policy for volume outside the dose grid (module docstring).
    h_mm : float, optional
        Row/sub-slab spacing; default from :func:`sampling_step_mm`.
    end_caps : {"half", "none"}
        End-cap convention (``geometry.END_CAPS``): half a plane spacing beyond the end
        contours (default; Nelms 2015, most TPSs) or none (Eclipse). Stated in the DVH.
    refine : bool
        Dose-adaptive refinement of the hottest and coldest cells (``REFINE_QUANTILE``); off,
        every chord piece is sampled once (what :class:`DVHSampler` replays). Dmin and Dmax
        are exact either way.

    Returns
    -------
    DVH

    Raises
    ------
    GeometryError
        Empty structure, or an unknown outside policy.

    See Also
    --------
    DVHSampler : the same DVH for many dose arrays on one grid, without re-walking contours.
    """
    values = dose.dose_gy if dose_array is None else dose_array
    flat, volume_cc, h = _prepare(structure, dose.grid, values.shape, outside, h_mm, _name(dose),
                                  end_caps)
    bin_width, n_edges = _bins(values, dose.path)
    grid = dose.grid
    # no refinement for a zero contour-stack volume (a self-intersecting bow tie): its hot
    # share would be 0 mm³ and the kernel's refinement step h / sqrt(0) (issue 18 fuzzing)
    refinement = (Refinement(REFINE_QUANTILE, REFINE_BUDGET_MM, volume_cc * 1000.0)
                  if refine and volume_cc > 0 else None)
    cdf, stats = dvh_accumulate(
        flat.z_lo, flat.z_hi, flat.plane_poly, flat.poly_start, flat.vx, flat.vy,
        values, grid.origin, grid.spacing, grid.z_mm, grid_coverage(grid),
        h, bin_width, n_edges, refinement,
    )
    return _assemble(structure, volume_cc, cdf, stats, bin_width, n_edges, outside, _name(dose),
                     end_caps)


class DVHSampler:
    """DVHs of one structure on one grid for many dose arrays (e.g. composite EQD2 sums).

    :func:`compute_dvh`'s kernel walks the contours once here and records its samples
    (``kernels/dvh.py``); :meth:`dvh` replays them on a dose array: the DVH
    :func:`compute_dvh` gives for that array (same samples, same arithmetic; the mean may
    differ in the last digits from the order of summation), without walking the contours
    again. Only the voxels in :attr:`support` are read, so an array may hold anything
    (zeros) elsewhere. Memory: :attr:`nbytes` (about 24 bytes per chord piece). The replay
    has no dose-adaptive refinement (it is decided per dose array): it equals
    :func:`compute_dvh` with ``refine=False``; Dmin/Dmax are exact in both.

    Parameters
    ----------
    structure : Structure
    grid : Grid
        The dose grid every array given to :meth:`dvh` lies on.
    outside, h_mm : as :func:`compute_dvh`.
    label : str
        Names the grid in warnings (as a dose file name would).
    """

    def __init__(self, structure: Structure, grid: Grid, *, outside: str = "exclude",
                 h_mm: float | None = None, label: str = "composite", end_caps: str = "half"):
        flat, self._volume_cc, self.h_mm = _prepare(
            structure, grid, grid.shape, outside, h_mm, label, end_caps)
        self.end_caps = end_caps
        self.structure = structure
        self.grid = grid
        self.outside = outside
        self.label = label
        # first guess of the recording's size: rows x sub-slabs, chord pieces per voxel
        # column crossed (+2 per row for the ends), a few points per vertex; a guess too
        # small costs one more pass with the exact counts
        rows = sample_count(flat, grid, self.h_mm)
        pieces = self._volume_cc * 1000.0 / (self.h_mm**2 * float(grid.spacing[0]))
        # extreme pieces: edge pieces and row chords, at ~3 levels per plane (3.5: the demo's
        # largest organ needed 1.04 x the estimate at 3, and a short guess costs a whole pass)
        chords = float(np.sum(np.ptp(flat.vy) / float(grid.spacing[1]) + 2)) * len(flat.z_lo)
        capacity = (int(rows) + 16, int(1.3 * pieces + 3 * rows) + 64,
                    int(3.5 * (2 * len(flat.vx) + chords)) + 64)
        zeros = np.zeros(grid.shape)
        samples = None
        while samples is None:
            _, _, samples, capacity = dvh_accumulate_recorded(
                flat.z_lo, flat.z_hi, flat.plane_poly, flat.poly_start, flat.vx, flat.vy,
                zeros, grid.origin, grid.spacing, grid.z_mm, grid_coverage(grid),
                self.h_mm, 1.0, 3, capacity,
            )
        self._samples = samples
        self.support = dvh_support(samples)

    @property
    def nbytes(self) -> int:
        return self._samples.nbytes + self.support.nbytes

    @cached_property
    def support_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """:attr:`support` as runs along x, ``(starts, lengths)`` (``kernels.eqd2.voxel_runs``):
        what ``add_eqd2_box`` takes to compute a dose sum on these voxels only."""
        return voxel_runs(self.support, self.grid.shape)

    def dvh(self, values: np.ndarray) -> DVH:
        """DVH of ``values`` ((nz, ny, nx) Gy on :attr:`grid`; the voxels of
        :attr:`support` non-negative and finite)."""
        if values.shape != self.grid.shape:
            raise GeometryError(
                f"dose array shape {values.shape} does not match its grid {self.grid.shape}"
            )
        bin_width, n_edges = _bins(values.reshape(-1)[self.support], self.label)
        cdf, stats = dvh_replay(self._samples, values, bin_width, n_edges)
        return _assemble(self.structure, self._volume_cc, cdf, stats, bin_width, n_edges,
                         self.outside, self.label, self.end_caps)


def _prepare(structure: Structure, grid: Grid, shape: tuple, outside: str,
             h_mm: float | None, label: str, end_caps: str = "half"):
    """Checks shared by :func:`compute_dvh` and :class:`DVHSampler`: (flat, volume, h)."""
    if outside not in OUTSIDE_POLICIES:
        raise GeometryError(f"outside policy must be one of {OUTSIDE_POLICIES}, got {outside!r}")
    if end_caps not in END_CAPS:
        raise GeometryError(f"end caps must be one of {END_CAPS}, got {end_caps!r}")
    if structure.is_empty:
        raise GeometryError(f"structure '{structure.name}' has no contours")
    if tuple(shape) != tuple(grid.shape):
        raise GeometryError(f"dose array shape {tuple(shape)} does not match its grid {grid.shape}")
    flat = flatten(structure, fallback_spacing_mm=_min_dz(grid), end_caps=end_caps)
    volume_cc = polygon_volume_cc(structure, fallback_spacing_mm=_min_dz(grid), end_caps=end_caps)
    h = h_mm if h_mm else sampling_step_mm(volume_cc, grid)
    samples = sample_count(flat, grid, h)
    if samples > MAX_DVH_SAMPLES:
        raise GeometryError(
            f"structure '{structure.name}': its contours span too large a region for the "
            f"dose grid {label} ({samples:.2g} samples at {h:g} mm, limit "
            f"{MAX_DVH_SAMPLES:.0e}); check the contour coordinates (a damaged point far away?)"
        )
    return flat, volume_cc, h


#: (max, min) of read-only dose arrays, by id, while the array lives: a patient's 5 doses are
#: scanned once instead of once per structure (70 scans of 1.3 M voxels in ``evaluate``).
#: Only read-only arrays (the loader's) are kept: their values cannot change under the key.
_RANGES: dict[int, tuple[weakref.ref, float, float]] = {}


def _value_range(values: np.ndarray) -> tuple[float, float]:
    """``(max, min)`` of ``values`` (NaN propagates), memoised for read-only arrays."""
    key = id(values)
    known = _RANGES.get(key)
    if known is not None and known[0]() is values:
        return known[1], known[2]
    top = float(np.max(values)) if values.size else 0.0
    low = float(np.min(values)) if values.size else 0.0
    if not values.flags.writeable:
        try:
            ref = weakref.ref(values, lambda _, key=key: _RANGES.pop(key, None))
        except TypeError:  # pragma: no cover - an array type without weak references
            return top, low
        _RANGES[key] = (ref, top, low)
    return top, low


def _bins(values: np.ndarray, label: str) -> tuple[float, int]:
    """Bin width (Gy) and edge count of the CDF: ``N_BINS`` bins up to the array's maximum."""
    top, low = _value_range(values)  # NaN propagates: refused below
    if not np.isfinite(top) or (values.size and low < 0):
        raise GeometryError(f"dose grid {label}: negative or non-finite values")
    return max(top, 1e-6) * 1.000001 / N_BINS, N_BINS + 2


def _assemble(structure: Structure, volume_cc: float, cdf: np.ndarray, stats: np.ndarray,
              bin_width: float, n_edges: int, outside: str, label: str,
              end_caps: str = "half") -> DVH:
    """The DVH from the kernel's CDF and stats (volumes, warnings, outside policy)."""
    inside_cc = stats[0] / 1000.0
    outside_cc = stats[1] / 1000.0
    warnings: list[str] = []
    total_cc = inside_cc + outside_cc
    if volume_cc > 0 and abs(total_cc - volume_cc) > 0.005 * volume_cc + 1e-6:
        warnings.append(
            f"{structure.name}: even-odd scan volume {total_cc:.4f} cc differs from the "
            f"polygon volume {volume_cc:.4f} cc (self-intersecting or overlapping contours?)"
        )
    if outside_cc > 1e-6 * max(total_cc, 1e-9):
        frac = outside_cc / total_cc
        what = "excluded from the DVH" if outside == "exclude" else "counted at 0 Gy"
        warnings.append(
            f"{structure.name}: {frac:.1%} ({outside_cc:.3f} cc) lies outside dose grid "
            f"{label}; {what}"
        )
    dmin, dmax = float(stats[3]), float(stats[4])
    dose_integral = stats[2] / 1000.0
    tallied = inside_cc
    if outside == "zero" and outside_cc > 0:
        cdf[1:] += outside_cc * 1000.0
        tallied = total_cc
        dmin = 0.0
    if tallied <= 0:
        empty = np.array([0.0])
        return DVH(structure.name, structure.roi_number, volume_cc, 0.0, outside_cc,
                   empty, empty, math.nan, math.nan, math.nan, outside_policy=outside,
                   warnings=tuple(warnings + [f"{structure.name}: no volume inside the dose grid"]),
                   end_caps=end_caps)
    edges = np.arange(n_edges) * bin_width
    vol_ge = tallied - cdf / 1000.0
    lo_dose = 0.0 if outside == "zero" and outside_cc > 0 else max(min(dmin, stats[3]), 0.0)
    k_lo = max(math.floor(lo_dose / bin_width), 0)
    k_hi = min(math.ceil(stats[4] / bin_width) + 1, n_edges - 1)
    dose_axis = edges[k_lo : k_hi + 1].copy()
    vol_axis = np.clip(vol_ge[k_lo : k_hi + 1], 0.0, tallied)
    vol_axis = np.minimum.accumulate(vol_axis)
    vol_axis[0] = tallied
    return DVH(
        name=structure.name,
        roi_number=structure.roi_number,
        volume_cc=volume_cc,
        dvh_volume_cc=tallied,
        outside_cc=outside_cc,
        dose_gy=dose_axis,
        volume_cc_at_dose=vol_axis,
        dmin_gy=dmin,
        dmean_gy=dose_integral / tallied,
        dmax_gy=dmax,
        outside_policy=outside,
        warnings=tuple(warnings),
        end_caps=end_caps,
    )


def sample_count(flat, grid: Grid, h: float) -> float:
    """Upper estimate of the kernel's row × sub-slab samples for a structure (see
    ``kernels/dvh.py``: rows of height <= h between dose-grid rows, sub-slabs of thickness
    <= h between dose planes)."""
    starts = flat.poly_start[flat.plane_poly[:-1]]
    ends = flat.poly_start[flat.plane_poly[1:]]
    keep = (ends - starts) >= 3  # flatten keeps polygons of >= 3 vertices, so planes are
    if not np.any(keep):  # empty or >= 3 vertices and contiguous
        return 0.0
    y_lo = np.minimum.reduceat(flat.vy, starts[keep])
    y_hi = np.maximum.reduceat(flat.vy, starts[keep])
    y_grid, z_grid = np.sort(grid.y_mm), np.sort(grid.z_mm)
    rows = ((y_hi - y_lo) / h + np.searchsorted(y_grid, y_hi, "left")
            - np.searchsorted(y_grid, y_lo, "right") + 2)
    z_lo, z_hi = flat.z_lo[keep], flat.z_hi[keep]
    subs = ((z_hi - z_lo) / h + np.searchsorted(z_grid, z_hi, "left")
            - np.searchsorted(z_grid, z_lo, "right") + 3)
    return float(np.sum(rows * subs))


def _name(dose: Dose) -> str:
    from pathlib import Path

    return Path(dose.path).name if dose.path else dose.sop_instance_uid


def compute_dvhs(
    structures: list[Structure],
    dose: Dose,
    *,
    outside: str = "exclude",
    dose_array: np.ndarray | None = None,
    workers: int | None = None,
    end_caps: str = "half",
) -> dict[str, DVH]:
    """DVHs of several structures on one dose, computed on parallel threads.

    The kernels release the GIL, so structures run concurrently (largest first, for
    balance). Empty structures are skipped; the caller reports them.

    Returns
    -------
    dict mapping structure name to DVH, in the order of ``structures``.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    todo = [s for s in structures if not s.is_empty]
    if not todo:
        return {}
    n = workers or min(len(todo), os.cpu_count() or 1)
    by_size = sorted(todo, key=lambda s: -sum(len(p) for plane in s.polygons for p in plane))
    if n <= 1:
        done = {s.name: compute_dvh(s, dose, outside=outside, dose_array=dose_array,
                                    end_caps=end_caps) for s in by_size}
    else:
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = {s.name: pool.submit(compute_dvh, s, dose, outside=outside,
                                           dose_array=dose_array, end_caps=end_caps)
                       for s in by_size}
            done = {name: f.result() for name, f in futures.items()}
    return {s.name: done[s.name] for s in todo}
