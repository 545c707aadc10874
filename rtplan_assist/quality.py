"""Per-lesion plan quality indices (issue 17): conformity, gradient, D2cm, homogeneity.

Report-only: these indices never change a constraint verdict.

Definitions (TV = target volume, PIV = prescription isodose volume, TV_PIV = target volume
inside the prescription isodose, V50 = volume of the 50 % prescription isodose):

* **Paddick CI** = TV_PIV² / (TV × PIV) (Paddick, J Neurosurg 2000); 1 is perfect, < 1 is
  under-coverage or spill.
* **RTOG CI** = PIV / TV (Shaw et al., IJROBP 1993; "conformality" of RTOG 0813/0915).
* **GI** (gradient index) = V50 / PIV (Paddick & Lippitz, J Neurosurg 2006).
* **R50%** = V50 / TV (RTOG 0813/0915).
* **D2cm** = maximum dose at 2 cm from the target in any direction (RTOG 0813/0915): the
  largest dose on the surface 20 mm from the target (sampled on the lattice below, within
  the lesion's own nearest-target cell), in Gy and in % of the prescription.
* **HI** = (D2% − D98%) / D50% of the target (ICRU Report 83).

How the volumes are obtained
----------------------------
TV and TV_PIV (and the target's D2 %, D50 %, D98 %) come from the engine's DVH of the target
(:func:`rtplan_assist.dvh.compute_dvh`: exact integration over the contour solid). PIV and
V50 are integrated on a lattice aligned with the dose-grid nodes (each node interval split
into ``m`` steps of at most ``step_mm``; midpoint rule, the dose interpolated trilinearly as
the DVH engine does); the targets' fractional occupancy of the lattice cells
(:func:`rtplan_assist.structures.occupancy`) decides which cells are inside a target. (Weighting
the outside part by 1 − occupancy is biased when the isodose follows the target surface, the
case of a conformal plan: a cell half inside contributes by its centre's dose only.)

Lesions sharing one dose: every lattice point belongs to the lesion whose target is nearest
(Euclidean distance to the target on the lattice; inside a target, that target; a
cell equidistant from k targets is shared 1/k each), so the
prescription and 50 % isodose volumes outside the targets are split between lesions and sum to
the whole isodose volume. A lesion is **bridged** with another when the connected 50 %
isodose region (its own 0.5 × prescription) that holds its target also holds the other's.
Lesions whose analysis boxes (target ± ``margin_mm``) do not overlap are analysed apart: the
isodose regions are assumed not to reach beyond ``margin_mm`` (checked: when the 50 %
isodose reaches the box edge, R50% and GI are not evaluable and say why).

Deviation grading (:func:`rtog_grades`): RTOG 0813/0915 protocol Table 1 by PTV volume
(``constraints/quality/rtog0813_0915_table1.csv``: two agreeing secondary transcriptions, cited
in the file): R100% (= RTOG CI), R50% and D2cm (% of Rx) are "per protocol" below the "none"
bound, a "minor deviation" below the "minor" bound, else a "major deviation" (the protocol's
Note 2); bounds linearly interpolated in the PTV volume (Note 1), no extrapolation beyond
1.8–163 cc. Graded only where the table applies: lung lesions (peripheral: 0915, central:
0813) planned in 1–5 fractions; any other lesion says why it is not graded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .dvh import compute_dvh
from .errors import GeometryError
from .model import Dose, Grid, Structure
from .structures import occupancy

D2CM_MM = 20.0
DEFAULT_STEP_MM = 1.0
DEFAULT_MARGIN_MM = 30.0

#: (key, label, unit, definition) of every index, in report order.
INDEX_DEFINITIONS = (
    ("CI_Paddick", "Paddick CI", "ratio", "TV_PIV² / (TV × PIV) (Paddick 2000)"),
    ("CI_RTOG", "RTOG CI", "ratio", "PIV / TV (Shaw 1993; RTOG 0813/0915)"),
    ("GI", "Gradient index", "ratio", "V50% / PIV (Paddick & Lippitz 2006)"),
    ("R50%", "R50%", "ratio", "V50% / TV (RTOG 0813/0915)"),
    ("D2cm[Gy]", "D2cm", "Gy", "max dose 20 mm from the target, any direction (RTOG 0813/0915)"),
    ("D2cm[%]", "D2cm", "% of Rx", "D2cm / prescription × 100"),
    ("HI", "Homogeneity index", "ratio", "(D2% − D98%) / D50% of the target (ICRU 83)"),
    ("TV[cc]", "Target volume", "cc", "target volume in the dose grid (DVH engine)"),
    ("PIV[cc]", "Prescription isodose volume", "cc",
     "volume ≥ Rx attributed to this lesion (nearest-target partition)"),
    ("TV_PIV[cc]", "Target volume ≥ Rx", "cc", "target volume receiving ≥ Rx (DVH engine)"),
    ("V50%[cc]", "50 % isodose volume", "cc",
     "volume ≥ 0.5 × Rx attributed to this lesion (nearest-target partition)"),
)
UNITS = {key: unit for key, _, unit, _ in INDEX_DEFINITIONS}
DEFINITIONS = {key: text for key, _, _, text in INDEX_DEFINITIONS}
QUALITY_NOTE = (
    "Plan quality indices are report-only (they never change a constraint verdict); computed "
    "on the planned physical dose at the planned prescription. R100% (RTOG CI), R50% and D2cm "
    "are graded against RTOG 0813/0915 protocol Table 1 by PTV volume for lung lesions planned "
    "in 1-5 fractions only. Volumes use the contour-stack end caps (half a plane spacing beyond "
    "the first and last planes) whatever --end-caps says."
)

RTOG_TABLE_FILE = "quality/rtog0813_0915_table1.csv"
RTOG_SOURCE = "RTOG 0813/0915 protocol Table 1"
#: graded index → (table column prefix, label)
RTOG_GRADED = (("CI_RTOG", "r100", "R100%"), ("R50%", "r50", "R50%"),
               ("D2cm[%]", "d2cm", "D2cm"))
RTOG_SITES = {"lung": "RTOG 0915 (peripheral lung)", "central lung": "RTOG 0813 (central lung)"}
RTOG_FRACTIONS = (1, 5)


@dataclass(frozen=True)
class Grade:
    """One index graded against RTOG 0813/0915 Table 1: ``level`` is ``per protocol``,
    ``minor deviation``, ``major deviation`` or ``not graded`` (``reason`` says why)."""

    index: str
    label: str
    value: float
    none_below: float
    minor_below: float
    level: str
    reason: str = ""

    def to_dict(self) -> dict:
        def num(v):
            return None if math.isnan(v) else v

        return {"index": self.index, "label": self.label, "value": num(self.value),
                "per_protocol_below": num(self.none_below),
                "minor_deviation_below": num(self.minor_below), "level": self.level,
                "reason": self.reason, "source": RTOG_SOURCE}


def rtog_table() -> np.ndarray:
    """The shipped Table 1 as an array (rows by PTV volume; columns as in the file)."""
    from .constraints import shipped_folder
    from .errors import ConstraintTableError

    path = shipped_folder() / RTOG_TABLE_FILE
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.startswith("#")]
        table = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    except (OSError, ValueError) as exc:
        raise ConstraintTableError(f"{path}: cannot read the RTOG 0813/0915 table: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != 7 or np.any(np.diff(table[:, 0]) <= 0):
        raise ConstraintTableError(f"{path}: expected 7 columns and increasing PTV volumes")
    return table


_COLUMNS = {"r100": (1, 2), "r50": (3, 4), "d2cm": (5, 6)}


def rtog_grades(values: dict[str, float], site: str, fractions: int | None,
                table: np.ndarray | None = None) -> tuple[Grade, ...]:
    """R100%, R50% and D2cm of one lesion graded against RTOG 0813/0915 Table 1 (module
    docstring); every index gets a :class:`Grade`, ``not graded`` with its reason when the
    table does not apply or the index is not evaluable."""
    table = rtog_table() if table is None else table
    tv = values.get("TV[cc]", math.nan)
    why = ""
    if site not in RTOG_SITES:
        why = f"the table is for lung SBRT (RTOG 0813/0915); this lesion's site is {site}"
    elif fractions is None or not RTOG_FRACTIONS[0] <= fractions <= RTOG_FRACTIONS[1]:
        why = (f"the table is for lung SBRT in {RTOG_FRACTIONS[0]}-{RTOG_FRACTIONS[1]} "
               f"fractions; planned in {fractions} fractions")
    elif math.isnan(tv):
        why = "the target volume is not evaluable"
    elif not table[0, 0] <= tv <= table[-1, 0]:
        why = (f"target volume {tv:.3g} cc outside the table's {table[0, 0]:g}-"
               f"{table[-1, 0]:g} cc (the protocol gives no extrapolation)")
    grades = []
    for key, prefix, label in RTOG_GRADED:
        value = values.get(key, math.nan)
        if why:
            grades.append(Grade(key, label, value, math.nan, math.nan, "not graded", why))
            continue
        lo, hi = _COLUMNS[prefix]
        none_below = float(np.interp(tv, table[:, 0], table[:, lo]))
        minor_below = float(np.interp(tv, table[:, 0], table[:, hi]))
        if math.isnan(value):
            grades.append(Grade(key, label, value, none_below, minor_below, "not graded",
                                f"{label} not evaluable"))
        elif value < none_below:
            grades.append(Grade(key, label, value, none_below, minor_below, "per protocol"))
        elif value < minor_below:
            grades.append(Grade(key, label, value, none_below, minor_below, "minor deviation"))
        else:
            grades.append(Grade(key, label, value, none_below, minor_below, "major deviation"))
    return tuple(grades)


@dataclass(frozen=True)
class QualityTarget:
    """One lesion to assess: its id, target, dose (total physical, Gy) and prescription (Gy)."""

    lesion_id: str
    target: Structure
    dose: Dose
    prescription_gy: float
    site: str = "unknown"
    fractions: int | None = None


@dataclass(frozen=True)
class LesionQuality:
    """Quality indices of one lesion (``values``: key of :data:`INDEX_DEFINITIONS` → float,
    NaN when not evaluable; ``notes`` say why)."""

    lesion_id: str
    target: str
    prescription_gy: float
    values: dict[str, float]
    bridged_with: tuple[str, ...] = ()
    shares_dose_with: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    grades: tuple[Grade, ...] = ()

    def to_dict(self) -> dict:
        return {
            "lesion_id": self.lesion_id,
            "target": self.target,
            "prescription_gy": self.prescription_gy,
            "indices": [
                {"index": key, "value": None if math.isnan(self.values[key]) else self.values[key],
                 "unit": UNITS[key], "definition": DEFINITIONS[key]}
                for key, *_ in INDEX_DEFINITIONS
            ],
            "bridged_with": list(self.bridged_with),
            "shares_dose_with": list(self.shares_dose_with),
            "notes": list(self.notes),
            "rtog_0813_0915": [g.to_dict() for g in self.grades],
        }


def quality_indices(items: list[QualityTarget], *, step_mm: float = DEFAULT_STEP_MM,
                    margin_mm: float = DEFAULT_MARGIN_MM) -> list[LesionQuality]:
    """Quality indices of every lesion of ``items``, in their order (module docstring)."""
    if step_mm <= 0 or margin_mm <= D2CM_MM:
        raise GeometryError(f"quality lattice: step {step_mm} mm, margin {margin_mm} mm "
                            f"(must be > 0 and > {D2CM_MM} mm)")
    out: dict[str, LesionQuality] = {}
    table = rtog_table()
    groups: dict[int, list[QualityTarget]] = {}
    for item in items:
        if not item.prescription_gy or item.prescription_gy <= 0:
            raise GeometryError(f"lesion {item.lesion_id}: quality indices need a positive "
                                f"prescription, got {item.prescription_gy!r}")
        groups.setdefault(id(item.dose), []).append(item)
    for group in groups.values():
        sharing = tuple(i.lesion_id for i in group)
        for cluster in _clusters(group, margin_mm):
            try:
                partials = _cluster_quality(cluster, step_mm, margin_mm)
            except GeometryError as exc:  # report-only: say why, never abort the evaluation
                partials = [_Partial(i.lesion_id, i.target.name, float(i.prescription_gy),
                                     {key: math.nan for key, *_ in INDEX_DEFINITIONS}, (),
                                     (f"not evaluable: {exc}",)) for i in cluster]
            by_id = {i.lesion_id: i for i in cluster}
            for q in partials:
                others = tuple(s for s in sharing if s != q.lesion_id)
                item = by_id[q.lesion_id]
                out[q.lesion_id] = LesionQuality(
                    q.lesion_id, q.target, q.prescription_gy, q.values, q.bridged_with,
                    others, q.notes, rtog_grades(q.values, item.site, item.fractions, table))
    return [out[i.lesion_id] for i in items]


def _clusters(group: list[QualityTarget], margin_mm: float) -> list[list[QualityTarget]]:
    """Lesions of one dose whose boxes (target bounds ± margin) overlap, transitively."""
    boxes = [i.target.bounds_mm() + np.array([-margin_mm, margin_mm]) for i in group]
    parent = list(range(len(group)))

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for a in range(len(group)):
        for b in range(a + 1, len(group)):
            if (np.all(boxes[a][:, 0] <= boxes[b][:, 1])
                    and np.all(boxes[b][:, 0] <= boxes[a][:, 1])):
                parent[root(b)] = root(a)
    clusters: dict[int, list[QualityTarget]] = {}
    for k, item in enumerate(group):
        clusters.setdefault(root(k), []).append(item)
    return list(clusters.values())


def _lattice(grid: Grid, lo: np.ndarray, hi: np.ndarray, step_mm: float):
    """Lattice aligned with the grid nodes (x, y, z axes in mm) over [lo, hi] ∩ node hull;
    (axes, touches) where touches says the box was clipped by the dose grid."""
    axes = []
    clipped = False
    nodes = (grid.x_mm, grid.y_mm, grid.z_mm)
    for a in range(3):
        c = nodes[a]
        if len(c) < 2:
            raise GeometryError("quality indices need a dose grid of at least 2 nodes per axis")
        spacing = float(np.min(np.diff(c)))
        m = max(1, math.ceil(spacing / step_mm - 1e-9))
        fine = np.concatenate([np.linspace(c[k], c[k + 1], m, endpoint=False)
                               for k in range(len(c) - 1)] + [c[-1:]])
        inside = (fine >= lo[a] - 1e-9) & (fine <= hi[a] + 1e-9)
        clipped |= bool(lo[a] < c[0] or hi[a] > c[-1])
        axes.append(fine[inside])
    return axes, clipped


def _cell_sizes(axis: np.ndarray) -> np.ndarray:
    """Length represented by each lattice point (midpoint rule, half cells at the ends)."""
    if len(axis) == 1:
        return np.ones(1)
    mid = (axis[1:] + axis[:-1]) / 2
    return np.diff(np.concatenate([[axis[0]], mid, [axis[-1]]]))


@dataclass(frozen=True)
class _Partial:
    lesion_id: str
    target: str
    prescription_gy: float
    values: dict[str, float]
    bridged_with: tuple[str, ...]
    notes: tuple[str, ...]


def _cluster_quality(cluster: list[QualityTarget], step_mm: float,
                     margin_mm: float) -> list[_Partial]:
    dose = cluster[0].dose
    grid = dose.grid
    bounds = np.array([i.target.bounds_mm() for i in cluster])
    lo = bounds[:, :, 0].min(axis=0) - margin_mm
    hi = bounds[:, :, 1].max(axis=0) + margin_mm
    (x, y, z), clipped = _lattice(grid, lo, hi, step_mm)
    if min(len(x), len(y), len(z)) < 2:
        raise GeometryError(f"dose {dose.path}: the targets lie outside the dose grid")
    shape = (len(z), len(y), len(x))
    lattice_dose, cell = _lattice_dose(dose, x, y, z)
    spacing = np.array([float(np.min(np.diff(x))), float(np.min(np.diff(y))),
                        float(np.min(np.diff(z)))])
    lattice_grid = Grid(np.array([x[0], y[0], z[0]]), spacing, shape, z)
    occ = []
    for item in cluster:
        mask = occupancy(item.target, lattice_grid)
        occ.append(mask.full())
    inside = [o >= 0.5 for o in occ]
    sampling = (spacing[2], spacing[1], spacing[0])
    dist = np.stack([ndimage.distance_transform_edt(~m, sampling=sampling) if m.any()
                     else np.full(shape, np.inf) for m in inside])
    # nearest-target partition: a lattice cell equidistant from k targets (a midplane, or
    # inside overlapping targets) gives 1/k of its volume to each
    nearest = dist <= dist.min(axis=0) + 1e-6
    share = nearest / nearest.sum(axis=0)
    results = []
    for k, item in enumerate(cluster):
        rx = float(item.prescription_gy)
        notes = []
        dvh = compute_dvh(item.target, dose)
        tv = float(dvh.dvh_volume_cc)
        if dvh.outside_cc > 0:
            notes.append(f"{dvh.outside_cc:.3g} cc of the target outside the dose grid: "
                         "TV is the covered part")
        mine = share[k] > 0
        weight = cell * share[k]
        tv_piv = float(dvh.volume_at(rx))
        piv = float(np.sum(weight, where=lattice_dose >= rx))
        v50 = float(np.sum(weight, where=lattice_dose >= 0.5 * rx))
        hot50 = lattice_dose >= 0.5 * rx
        edge = _on_edge(hot50)
        vals = {
            "TV[cc]": tv, "PIV[cc]": piv, "TV_PIV[cc]": tv_piv, "V50%[cc]": v50,
            "CI_Paddick": tv_piv**2 / (tv * piv) if tv > 0 and piv > 0 else math.nan,
            "CI_RTOG": piv / tv if tv > 0 else math.nan,
            "GI": v50 / piv if piv > 0 else math.nan,
            "R50%": v50 / tv if tv > 0 else math.nan,
        }
        if piv <= 0:
            notes.append("no volume receives the prescription: Paddick CI and GI not evaluable")
        if edge:
            where = "the dose grid edge" if clipped else f"{margin_mm:g} mm from the targets"
            notes.append(f"the 50 % isodose reaches {where}: V50%, GI and R50% not evaluable"
                         + (", bridging not assessed" if len(cluster) > 1 else ""))
            vals["V50%[cc]"] = vals["GI"] = vals["R50%"] = math.nan
        # the EDT measures to the nearest inside lattice point, about half a step inside
        # the surface: the shell of points 20 mm from the surface is EDT in [20, 20 + step)
        # shifted by half a step
        lo_d = D2CM_MM + 0.5 * float(np.min(spacing))
        shell = mine & (dist[k] >= lo_d) & (dist[k] < lo_d + float(np.max(spacing)))
        if shell.any() and not (clipped and _shell_clipped(dist[k], D2CM_MM)):
            d2 = float(np.max(lattice_dose[shell]))
            vals["D2cm[Gy]"], vals["D2cm[%]"] = d2, 100.0 * d2 / rx
        else:
            notes.append("the surface 2 cm from the target leaves the dose grid: D2cm not "
                         "evaluable")
            vals["D2cm[Gy]"] = vals["D2cm[%]"] = math.nan
        d2p, d98, d50 = (dvh.metric(m).value for m in ("D2%[Gy]", "D98%[Gy]", "D50%[Gy]"))
        vals["HI"] = (d2p - d98) / d50 if d50 > 0 else math.nan
        bridged = ()
        if len(cluster) > 1 and not edge:
            labels, _ = ndimage.label(hot50)
            own = set(np.unique(labels[inside[k] & hot50])) - {0}
            bridged = tuple(other.lesion_id for j, other in enumerate(cluster)
                            if j != k and own & set(np.unique(labels[inside[j] & hot50])))
            if bridged:
                notes.append("one 50 % isodose island holds this lesion and "
                             + ", ".join(bridged) + " (bridging)")
        results.append(_Partial(item.lesion_id, item.target.name, rx, vals, bridged,
                                tuple(notes)))
    return results


def isodose_volume_cc(dose: Dose, level_gy: float, lo_mm, hi_mm,
                      step_mm: float = DEFAULT_STEP_MM) -> float:
    """Volume (cc) where the trilinear dose is >= ``level_gy`` inside the box [lo, hi] (x, y, z
    mm), on the lattice :func:`quality_indices` uses, without any partition between lesions."""
    (x, y, z), _ = _lattice(dose.grid, np.asarray(lo_mm, float), np.asarray(hi_mm, float), step_mm)
    lattice_dose, cell = _lattice_dose(dose, x, y, z)
    return float(np.sum(cell, where=lattice_dose >= level_gy))


def _lattice_dose(dose: Dose, x: np.ndarray, y: np.ndarray, z: np.ndarray):
    """Trilinear dose (Gy) and cell volume (cc) at every lattice point, (nz, ny, nx)."""
    # trilinear interpolation is the tensor product of linear interpolations: one axis at a
    # time (the lattice lies inside the node hull)
    grid = dose.grid
    values = np.asarray(dose.dose_gy, dtype=np.float64)
    for axis, (nodes, coords) in enumerate(((grid.z_mm, z), (grid.y_mm, y), (grid.x_mm, x))):
        i = np.clip(np.searchsorted(nodes, coords, side="right") - 1, 0, len(nodes) - 2)
        t = (coords - nodes[i]) / (nodes[i + 1] - nodes[i])
        shape = [1, 1, 1]
        shape[axis] = len(coords)
        t = t.reshape(shape)
        values = (np.take(values, i, axis=axis) * (1.0 - t)
                  + np.take(values, i + 1, axis=axis) * t)
    lattice_dose = values
    cell = (_cell_sizes(z)[:, None, None] * _cell_sizes(y)[None, :, None]
            * _cell_sizes(x)[None, None, :]) / 1000.0
    return lattice_dose, cell


def _on_edge(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
                or mask[:, :, 0].any() or mask[:, :, -1].any())


def _shell_clipped(dist: np.ndarray, radius: float) -> bool:
    """The lattice box was clipped by the dose grid and the shell reaches its faces."""
    faces = (dist[0], dist[-1], dist[:, 0], dist[:, -1], dist[:, :, 0], dist[:, :, -1])
    return any(bool(np.any(f <= radius)) for f in faces)


def lesion_quality(evaluation) -> list[LesionQuality]:
    """Quality indices of every lesion of an :class:`~rtplan_assist.evaluation.Evaluation`
    (planned dose, planned prescription)."""
    items = [QualityTarget(les.lesion_id, les.target, les.dose, float(les.planned.total_dose_gy),
                           les.site, int(les.planned.fractions))
             for les in evaluation.lesions]
    # the planned doses and targets of a session do not change: computed once per session
    key = tuple((i.lesion_id, id(i.dose), id(i.target), i.prescription_gy, i.site, i.fractions)
                for i in items)
    cache = evaluation.__dict__.setdefault("_quality_cache", {})
    if key not in cache:
        cache[key] = quality_indices(items)
    return list(cache[key])


def quality_rows(qualities: list[LesionQuality], result) -> list:
    """The indices as tidy :class:`~rtplan_assist.evaluation.ResultRow` rows (role
    ``quality``, status ``info``, priority ``report``: they take part in no verdict), for the
    CSV of ``evaluate``; structure names are taken from ``result``'s lesions (so a
    de-identified result keeps its scrubbed names)."""
    from .evaluation import ResultRow

    lesions = {les.lesion_id: les for les in result.lesions}
    rows = []
    for q in qualities:
        les = lesions.get(q.lesion_id)
        structure = les.target.name if les is not None else q.target
        regimen = les.planned.label if les is not None else ""
        grades = {g.index: g for g in q.grades}
        for key, _, unit, definition in INDEX_DEFINITIONS:
            grade = grades.get(key)
            graded = grade is not None and grade.level != "not graded"
            reason = "; ".join(([grade_text(grade)] if grade is not None else [])
                               + list(q.notes))
            rows.append(ResultRow(
                patient_id=result.patient_id, lesion_id=q.lesion_id, regimen=regimen,
                structure=structure, organ="", role="quality", metric=key,
                value=q.values[key], unit=unit, kind="physical", model="",
                alpha_beta_gy=None, comparator="<" if graded else "",
                limit=grade.minor_below if graded else None,
                goal=grade.none_below if graded else None, status="info",
                reason=reason, source=definition + (f"; graded: {RTOG_SOURCE}" if graded else ""),
                constraint_fractions=None, converted_from_fractions=None, priority="report"))
    return rows


def grade_text(grade: Grade) -> str:
    """One line: the level, the interpolated bounds and the source, or why not graded."""
    if grade.level == "not graded":
        return f"{grade.label}: not graded against {RTOG_SOURCE} ({grade.reason})"
    return (f"{grade.label}: {grade.level} ({RTOG_SOURCE}: per protocol < "
            f"{grade.none_below:.3g}, minor deviation < {grade.minor_below:.3g}, else major)")


def quality_text(qualities: list[LesionQuality]) -> str:
    """Terminal table of the indices, one block per lesion, units and definitions."""
    lines = ["Plan quality indices (report-only)", QUALITY_NOTE]
    for q in qualities:
        lines.append(f"  {q.lesion_id} target {q.target}, Rx {q.prescription_gy:g} Gy"
                     + (f"; shares its dose with {', '.join(q.shares_dose_with)}"
                        if q.shares_dose_with else ""))
        for key, label, unit, definition in INDEX_DEFINITIONS:
            v = q.values[key]
            shown = "not evaluable" if math.isnan(v) else f"{v:.3f}" + (f" {unit}" if unit else "")
            lines.append(f"    {label:<28} {shown:<16} {definition}")
        lines += [f"    {grade_text(g)}" for g in _grades_to_show(q.grades)]
        lines += [f"    note: {n}" for n in q.notes]
    return "\n".join(lines) + "\n"


def _grades_to_show(grades: tuple[Grade, ...]) -> tuple[Grade, ...]:
    """Every graded index; when none is graded for one shared reason, that reason once."""
    if grades and all(g.level == "not graded" for g in grades) \
            and len({g.reason for g in grades}) == 1:
        g = grades[0]
        return (Grade("", "R100%, R50%, D2cm", g.value, g.none_below, g.minor_below,
                      g.level, g.reason),)
    return grades


def render_with_quality(evaluation, result, fmt: str, *, drop_not_evaluable: bool = False) -> str:
    """``evaluate --quality``: the result in ``fmt`` (json, csv, html, text) with the quality
    indices of every lesion (JSON key ``quality``; CSV rows of role ``quality``; a section of
    the text and of the HTML page). Target names come from ``result`` (de-identified or not);
    the verdict is ``result``'s, untouched."""
    import html
    from dataclasses import replace

    from .evaluation import result_to_csv, result_to_dict, result_to_html, result_to_text
    from .jsontext import json_pieces

    names = {les.lesion_id: les.target.name for les in result.lesions}
    qualities = [replace(q, target=names.get(q.lesion_id, q.target))
                 for q in lesion_quality(evaluation)]
    if fmt == "json":
        payload = result_to_dict(result)
        payload["quality_note"] = QUALITY_NOTE
        payload["quality"] = [q.to_dict() for q in qualities]
        return "".join(json_pieces(payload, end="\n"))  # json.dumps(indent=2) at C speed
    if fmt == "csv":
        return result_to_csv(replace(result, rows=list(result.rows)
                                     + quality_rows(qualities, result)),
                             drop_not_evaluable=drop_not_evaluable)
    if fmt == "html":
        page = result_to_html(result)
        section = ("<h2>Plan quality indices</h2><pre>"
                   + html.escape(quality_text(qualities)) + "</pre>")
        return page.replace("</body>", section + "</body>", 1)
    return result_to_text(result) + "\n" + quality_text(qualities)


def quality_html(evaluation, result) -> str:
    """The indices as an HTML section for the MDT report: one row per lesion, every value with
    its unit, the definitions under the table. Target names come from ``result``."""
    from html import escape

    names = {les.lesion_id: les.target.name for les in result.lesions}
    shown = ("CI_Paddick", "CI_RTOG", "GI", "R50%", "D2cm[Gy]", "D2cm[%]", "HI", "TV[cc]",
             "PIV[cc]", "V50%[cc]")
    labels = {key: label for key, label, *_ in INDEX_DEFINITIONS}

    def cell(value: float) -> str:
        text = "–" if math.isnan(value) else f"{value:.2f}"
        return f"<td class=num>{escape(text)}</td>"

    head = "".join(f"<th>{escape(labels[k])}"
                   + ("" if UNITS[k] == "ratio" else f" ({escape(UNITS[k])})") + "</th>"
                   for k in shown)
    rows = []
    for q in lesion_quality(evaluation):
        notes = "; ".join([grade_text(g) for g in _grades_to_show(q.grades)]
                          + list(q.notes)) or "–"
        rows.append(f"<tr><td><b>{escape(q.lesion_id)}</b></td>"
                    f"<td>{escape(names.get(q.lesion_id, q.target))}</td>"
                    f"<td class=num>{q.prescription_gy:g}</td>"
                    + "".join(cell(q.values[k]) for k in shown)
                    + f"<td>{escape(', '.join(q.bridged_with) or 'no')}</td>"
                    f"<td class=small>{escape(notes)}</td></tr>")
    definitions = "; ".join(f"{label}: {text}" for key, label, _, text in INDEX_DEFINITIONS
                            if key in shown)
    return ("<h2>Plan quality indices per lesion (report-only, planned dose)</h2>"
            "<table class=\"quality\"><thead><tr><th>Lesion</th><th>Target</th>"
            f"<th>Rx (Gy)</th>{head}<th>Bridging</th><th>Notes</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>"
            f"<p class=\"small\">{escape(QUALITY_NOTE)} Ratios are dimensionless. "
            f"{escape(definitions)}.</p>")
