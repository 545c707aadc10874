"""DVH commissioning against the Nelms analytical benchmark.

Nelms BE, Stambaugh C, Hunt D, Tonner B, Zhang G, Feygelman V. *Methods, software and
datasets to verify DVH calculations against analytical values: Twenty years late(r).*
Med Phys 2015;42(8):4435-4448 (dataset MP15-067).

Two truths are kept apart (dvh-accuracy.md §8):

* the **analytical** values of the ideal shapes (``analytical.csv``), which no stack of
  1-3 mm contours represents exactly;
* the **contour-stack** truth: the solid the RTSTRUCT's polygons define (right prisms,
  even-odd, half-spacing slabs and end caps), computed here in closed form for linear dose
  fields by clipping each polygon with the iso-dose half-plane (Sutherland-Hodgman) or, for
  a gradient along z, by slab overlap. It shares no code with the engine.

An engine error is a difference from the contour-stack truth; a representation error is a
difference between the contour-stack truth and the analytical value.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dicom import load_case
from .dvh import DVH, compute_dvh
from .errors import DicomInputError, RtplanAssistError
from .geometry import _point_in_polygon, nominal_spacing, shoelace_area, slab_limits
from .model import Dose, Structure

METRICS = ("volume_cc", "dmin_gy", "dmax_gy", "dmean_gy", "d99_gy", "d95_gy", "d5_gy",
           "d1_gy", "d0_03cc_gy")
CLINICAL = ("volume_cc", "dmean_gy", "d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy")
_QUERY = {"dmin_gy": "Min[Gy]", "dmax_gy": "Max[Gy]", "dmean_gy": "Mean[Gy]",
          "d99_gy": "D99%[Gy]", "d95_gy": "D95%[Gy]", "d5_gy": "D5%[Gy]", "d1_gy": "D1%[Gy]",
          "d0_03cc_gy": "D0.03cc[Gy]"}


@dataclass
class BenchmarkRow:
    """One structure × dose row: analytical, contour-stack and engine values per metric."""

    structure: str
    contour_spacing_mm: float
    shift: str
    dose_voxel_mm: str
    gradient: str
    analytical: dict[str, float]
    stack: dict[str, float]
    engine: dict[str, float]

    def error_pct(self, metric: str, against: str = "analytical") -> float:
        ref = (self.analytical if against == "analytical" else self.stack)[metric]
        got = self.engine[metric]
        if ref is None or math.isnan(ref) or ref == 0:
            return math.nan
        return 100.0 * (got - ref) / ref

    def stack_error_pct(self, metric: str) -> float:
        ref = self.analytical[metric]
        return 100.0 * (self.stack[metric] - ref) / ref if ref else math.nan


def _fit_linear(dose: Dose) -> tuple[float, np.ndarray] | None:
    """Least-squares linear fit d = c + g·r of a dose grid; None when it is not linear."""
    g = dose.grid
    zz, yy, xx = np.meshgrid(g.z_mm, g.y_mm, g.x_mm, indexing="ij")
    values = dose.dose_gy.ravel().astype(np.float64)
    keep = values > 0.05 * values.max()  # the benchmark fields are clipped at 0 Gy
    a = np.c_[np.ones(xx.size), xx.ravel(), yy.ravel(), zz.ravel()][keep]
    coef, *_ = np.linalg.lstsq(a, values[keep], rcond=None)
    resid = np.abs(a @ coef - values[keep]).max()
    if resid > 1e-3 * max(values.max(), 1e-9):
        return None
    return float(coef[0]), coef[1:]


def _clip_half_plane(poly: np.ndarray, n: np.ndarray, a: float) -> np.ndarray:
    """Part of a polygon with n·p >= a (Sutherland-Hodgman against one edge, vectorised):
    each edge contributes its start vertex when inside and its crossing point when it
    crosses the line, in order."""
    q = np.roll(poly, -1, axis=0)
    sp = poly @ n - a
    sq = q @ n - a
    inside = sp >= 0
    crosses = inside != (sq >= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, sp / (sp - sq), 0.0)
    hit = poly + t[:, None] * (q - poly)
    pts = np.stack([poly, hit], axis=1).reshape(-1, 2)
    keep = np.stack([inside, crosses], axis=1).reshape(-1)
    return pts[keep]


class ContourStackTruth:
    """Closed-form DVH of a contour stack in a linear dose field (no engine code).

    Supports gradients in the plane of the contours (clipping) or along z (slabs).
    """

    def __init__(self, structure: Structure, c: float, gradient: np.ndarray):
        z = np.asarray(structure.plane_z_mm, dtype=np.float64)
        order = np.argsort(z)
        self.z = z[order]
        self.z_lo, self.z_hi = slab_limits(self.z, nominal_spacing(structure))
        self.planes = []
        for p in order:
            polys = [np.asarray(q, dtype=np.float64) for q in structure.polygons[p] if len(q) >= 3]
            signs = []
            for i, poly in enumerate(polys):
                depth = sum(_point_in_polygon(poly[0][0], poly[0][1], o)
                            for j, o in enumerate(polys) if j != i)
                signs.append(-1.0 if depth % 2 else 1.0)
            self.planes.append(list(zip(signs, polys)))
        self.c = c
        self.g = np.asarray(gradient, dtype=np.float64)
        g_in = float(np.hypot(self.g[0], self.g[1]))
        self.mode = "z" if g_in < 1e-9 * max(abs(self.g[2]), 1e-12) else (
            "plane" if abs(self.g[2]) < 1e-9 * g_in else "mixed")
        self.areas = np.array([sum(s * abs(shoelace_area(p)) for s, p in pl) for pl in self.planes])
        self.thick = self.z_hi - self.z_lo
        self.volume_mm3 = float(np.sum(self.areas * self.thick))

    @property
    def supported(self) -> bool:
        return self.mode != "mixed"

    def volume_above(self, d: float) -> float:
        """Volume (mm³) with dose >= d."""
        if self.mode == "z":
            gz = self.g[2]
            zc = (d - self.c) / gz
            if gz > 0:
                overlap = np.clip(self.z_hi - np.maximum(self.z_lo, zc), 0, self.thick)
            else:
                overlap = np.clip(np.minimum(self.z_hi, zc) - self.z_lo, 0, self.thick)
            return float(np.sum(self.areas * overlap))
        n = self.g[:2]
        total = 0.0
        for pl, t in zip(self.planes, self.thick):
            for s, p in pl:
                clipped = _clip_half_plane(p, n, d - self.c)
                if len(clipped) >= 3:
                    total += t * s * abs(shoelace_area(clipped))
        return total

    def extremes(self) -> tuple[float, float]:
        vals = []
        for pl, lo, hi in zip(self.planes, self.z_lo, self.z_hi):
            for _, p in pl:
                for z in (lo, hi):
                    vals.append(self.c + p @ self.g[:2] + self.g[2] * z)
        v = np.concatenate([np.atleast_1d(x) for x in vals])
        return float(v.min()), float(v.max())

    def mean(self) -> float:
        total = 0.0
        for pl, lo, hi in zip(self.planes, self.z_lo, self.z_hi):
            for s, p in pl:
                a = abs(shoelace_area(p))
                cx, cy = _centroid(p)
                zc = 0.5 * (lo + hi)
                total += s * a * (hi - lo) * (self.c + self.g[0] * cx + self.g[1] * cy + self.g[2] * zc)
        return total / self.volume_mm3

    def dose_at_volume(self, v_mm3: float) -> float:
        """The dose d with volume_above(d) = v (Brent's method on the continuous, monotone
        volume-above function between Dmin and Dmax; 1e-9 Gy)."""
        from scipy.optimize import brentq

        lo, hi = self.extremes()
        f_lo, f_hi = self.volume_above(lo) - v_mm3, self.volume_above(hi) - v_mm3
        if f_lo <= 0:
            return lo
        if f_hi >= 0:
            return hi
        return float(brentq(lambda d: self.volume_above(d) - v_mm3, lo, hi, xtol=1e-9,
                            rtol=1e-12))

    def metrics(self) -> dict[str, float]:
        dmin, dmax = self.extremes()
        v = self.volume_mm3
        return {
            "volume_cc": v / 1000.0, "dmin_gy": dmin, "dmax_gy": dmax, "dmean_gy": self.mean(),
            "d99_gy": self.dose_at_volume(0.99 * v), "d95_gy": self.dose_at_volume(0.95 * v),
            "d5_gy": self.dose_at_volume(0.05 * v), "d1_gy": self.dose_at_volume(0.01 * v),
            "d0_03cc_gy": self.dose_at_volume(30.0),
        }


def _centroid(p: np.ndarray) -> tuple[float, float]:
    x, y = p[:, 0], p[:, 1]
    x2, y2 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y2 - x2 * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-15:
        return float(x.mean()), float(y.mean())
    return float(((x + x2) * cross).sum() / (6 * a)), float(((y + y2) * cross).sum() / (6 * a))


def engine_metrics(dvh: DVH) -> dict[str, float]:
    out = {"volume_cc": dvh.dvh_volume_cc}
    for key, query in _QUERY.items():
        out[key] = dvh.metric(query).value
    return out


def run_nelms(nelms_dir: str | Path, *, progress=None) -> list[BenchmarkRow]:
    """Evaluate every row of ``analytical.csv`` that has both files.

    Parameters
    ----------
    nelms_dir : folder holding ``analytical.csv``, ``structures/`` and ``dose/``
    progress : optional callable(i, n, label)

    Returns
    -------
    list of BenchmarkRow
    """
    root = Path(nelms_dir)
    table = root / "analytical.csv"
    if not table.is_file():
        raise DicomInputError("no analytical.csv here; pass the nelms-dvh folder", path=root)
    with open(table, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["rtstruct"] and r["rtdose"]]
    cache: dict[tuple[str, str], tuple[Structure, Dose]] = {}
    out = []
    for i, r in enumerate(rows):
        if progress:
            progress(i, len(rows), r["structure"])
        key = (r["rtstruct"], r["rtdose"])
        if key not in cache:
            case = load_case([root / r["rtstruct"], root / r["rtdose"]])
            shapes = [s for s in case.structures if not s.is_empty and not s.name.upper().startswith("POI")]
            if len(shapes) != 1 or len(case.doses) != 1:
                raise DicomInputError(
                    f"expected one shape and one dose, found {[s.name for s in shapes]}",
                    path=root / r["rtstruct"],
                )
            cache[key] = (shapes[0], case.doses[0])
        structure, dose = cache[key]
        dvh = compute_dvh(structure, dose)
        fit = _fit_linear(dose)
        stack = {m: math.nan for m in METRICS}
        if fit is not None:
            truth = ContourStackTruth(structure, fit[0], fit[1])
            if truth.supported:
                stack = truth.metrics()
        out.append(BenchmarkRow(
            structure=r["structure"], contour_spacing_mm=float(r["contour_spacing_mm"]),
            shift=r["shift"], dose_voxel_mm=r["dose_voxel_mm"], gradient=r["gradient"],
            analytical={m: float(r[m]) for m in METRICS}, stack=stack,
            engine=engine_metrics(dvh),
        ))
    return out


def summarize(rows: list[BenchmarkRow]) -> dict[str, object]:
    """Counts in the paper's scoring (> 3 %, > 2 % of the analytical value) and the engine's
    largest difference from the contour-stack truth per metric."""
    beyond3 = [(r.structure, r.gradient, m) for r in rows for m in CLINICAL if m != "volume_cc"
               and abs(r.error_pct(m)) > 3]
    beyond2 = [(r.structure, r.gradient, m) for r in rows for m in CLINICAL if m != "volume_cc"
               and abs(r.error_pct(m)) > 2]
    worst_engine = {}
    for m in METRICS:
        errs = [abs(r.error_pct(m, "stack")) for r in rows if not math.isnan(r.error_pct(m, "stack"))]
        worst_engine[m] = max(errs) if errs else math.nan
    stack_limited = [x for x in beyond3
                     if abs(next(r for r in rows if (r.structure, r.gradient) == x[:2])
                            .stack_error_pct(x[2])) > 2]
    return {
        "rows": len(rows),
        "dose_metrics_beyond_3pct": beyond3,
        "dose_metrics_beyond_2pct": beyond2,
        "beyond_3pct_where_stack_itself_beyond_2pct": stack_limited,
        "dmin_dmax_dmean_within_0_5pct": sum(
            all(abs(r.error_pct(m)) <= 0.5 for m in ("dmin_gy", "dmax_gy", "dmean_gy"))
            for r in rows),
        "volume_within_0_2pct_of_stack": sum(abs(r.error_pct("volume_cc", "stack")) <= 0.2 for r in rows),
        "worst_engine_error_vs_stack_pct": worst_engine,
    }


def format_table(rows: list[BenchmarkRow]) -> str:
    """Fixed-width table: per row and metric, engine error vs analytical (and vs stack)."""
    short = {"volume_cc": "Vol", "dmin_gy": "Dmin", "dmax_gy": "Dmax", "dmean_gy": "Dmean",
             "d99_gy": "D99", "d95_gy": "D95", "d5_gy": "D5", "d1_gy": "D1",
             "d0_03cc_gy": "D.03cc"}
    head = f"{'structure':<18}{'grad':<5}{'grid':<6}" + "".join(f"{short[m]:>15}" for m in METRICS)
    lines = [
        "error of rtplan-assist vs analytical in % [vs contour-stack truth in %]",
        head, "-" * len(head),
    ]
    for r in rows:
        cells = []
        for m in METRICS:
            e, s = r.error_pct(m), r.error_pct(m, "stack")
            flag = "*" if abs(e) > 3 else " "
            cells.append(f"{e:+6.2f}{flag}[{s:+5.2f}]")
        grid = r.dose_voxel_mm.split("x")[0] if "x" in r.dose_voxel_mm else r.dose_voxel_mm
        lines.append(f"{r.structure:<18}{r.gradient[:4]:<5}{grid:<6}" + "".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


# -- agreement with a TPS's own DVHs (RTDOSE DVHSequence) ---------------------------------

TPS_METRICS = ("volume_cc", "dmin_gy", "dmean_gy", "dmax_gy", "D98%", "D95%", "D50%", "D2%")


@dataclass(frozen=True)
class TpsComparison:
    """One metric of one structure: the TPS's value (from its cumulative DVH) and ours."""

    structure: str
    metric: str
    tps: float
    engine: float

    @property
    def error_pct(self) -> float:
        if self.tps == 0:
            return 0.0 if self.engine == 0 else math.inf
        return 100.0 * (self.engine - self.tps) / abs(self.tps)


def tps_dvh_metrics(item, summary_scale_gy: float | None = None) -> dict[str, float]:
    """The :data:`TPS_METRICS` of one cumulative DVHSequence item.

    The curve's dose axis is DVHData's bin widths × DVHDoseScaling (× 0.01 for CGY);
    ``summary_scale_gy`` (Gy per unit of DVHMinimum/Maximum/MeanDose, default the same) is
    for exports that write those in another unit (the dicompyler-core example: % of the
    14 Gy prescription, under DoseUnits GY). D-metrics are interpolated linearly on the curve.
    """
    if str(item.get("DVHType", "")).upper() != "CUMULATIVE":
        raise RtplanAssistError("only cumulative TPS DVHs are compared")
    scale = float(item.get("DVHDoseScaling", 1.0) or 1.0)
    if str(item.get("DoseUnits", "GY")).upper() == "CGY":
        scale *= 0.01
    summary = scale if summary_scale_gy is None else summary_scale_gy
    data = np.asarray([float(v) for v in item.DVHData], dtype=np.float64)
    widths, volumes = data[0::2] * scale, data[1::2]
    edges = np.concatenate(([0.0], np.cumsum(widths)))[: len(volumes)]
    total = float(volumes[0])
    out = {
        "volume_cc": total,
        "dmin_gy": float(item.DVHMinimumDose) * summary,
        "dmean_gy": float(item.DVHMeanDose) * summary,
        "dmax_gy": float(item.DVHMaximumDose) * summary,
    }
    # volume non-increasing in dose: interpolate dose at volume on the reversed curve
    v = np.minimum.accumulate(np.clip(volumes, 0.0, None))
    for pct in (98, 95, 50, 2):
        target = pct / 100.0 * total
        out[f"D{pct}%"] = float(np.interp(-target, -v, edges))
    return out


def compare_with_tps(dose_file: str | Path, dvhs_by_roi: dict[int, DVH], *,
                     summary_scale_gy: float | None = None) -> list[TpsComparison]:
    """Every :data:`TPS_METRICS` of every DVHSequence item of ``dose_file`` whose ROI has a
    DVH in ``dvhs_by_roi`` (ROINumber → our DVH on that RTDOSE)."""
    import pydicom

    ds = pydicom.dcmread(str(dose_file), stop_before_pixels=True)
    rows = []
    for item in ds.get("DVHSequence", None) or []:
        refs = item.get("DVHReferencedROISequence", None) or []
        if not refs or int(refs[0].ReferencedROINumber) not in dvhs_by_roi:
            continue
        dvh = dvhs_by_roi[int(refs[0].ReferencedROINumber)]
        tps = tps_dvh_metrics(item, summary_scale_gy)
        ours = {"volume_cc": dvh.volume_cc, "dmin_gy": dvh.dmin_gy, "dmean_gy": dvh.dmean_gy,
                "dmax_gy": dvh.dmax_gy}
        for pct in (98, 95, 50, 2):
            ours[f"D{pct}%"] = dvh.metric(f"D{pct}%[Gy]").value
        rows.extend(TpsComparison(dvh.name, m, tps[m], float(ours[m])) for m in TPS_METRICS)
    return rows


def agreement_counts(rows: list[TpsComparison]) -> dict[str, int]:
    """How many comparisons lie within 1, 2 and 3 % of the TPS value."""
    return {"total": len(rows),
            **{f"within_{k}pct": sum(abs(r.error_pct) <= k for r in rows) for k in (1, 2, 3)}}
