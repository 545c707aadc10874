"""Prior courses (re-irradiation): cumulative EQD2 of an earlier course and the current one.

``evaluate PATH --prior PRIOR_DIR`` reads the RTDOSE of an earlier course (and its RTPLAN for
the fractions and the date), puts it on the current case's composite grid, and for every
constrained organ sums voxel by voxel (reference §6.6, each organ's own α/β)::

    EQD2_cum,i = (1 - r_organ) · EQD2(D_prior,i, n_prior) + Σ_lesions EQD2(D_lesion,i, n_lesion)

The recovery ``r`` touches the prior term only. The prior dose is used only when it is in the
current frame of reference, or when a DICOM Spatial Registration object (REG, rigid 4×4
matrix) in either folder maps its frame onto the current one; otherwise the run is refused
(:class:`PriorCourseError`): two doses in different frames are never summed blindly.

What is reported (:class:`PriorResult`):

* per organ, EQD2 Max / D0.035cc / Mean of the prior course, the current course, their plain
  sum and the recovery-adjusted sum;
* the adjusted sum against the organ's composite EQD2 limits (single-course tolerances
  re-expressed in EQD2: not validated cumulative limits; counted in the verdict, conservative),
  the prior course alone against them (for information);
* the spinal cord against cited re-irradiation rules, on the *plain* sums at α/β 2 (both rule
  sets were derived from unrecovered sums; the interval is their own criterion):

  - HyTEC (Sahgal et al., IJROBP 2021, doi 10.1016/j.ijrobp.2019.09.038, abstract [P]; from
    Sahgal et al., IJROBP 2012;82(1):107-116, abstract [P]): cumulative thecal-sac EQD2 (α/β 2)
    Dmax ≤ 70 Gy; SBRT-course EQD2 Dmax ≤ 25 Gy; SBRT/cumulative ratio ≤ 0.5; interval
    ≥ 5 months. The rules are for the thecal sac; the case's cord stands in for it (its Dmax
    is at most the thecal sac's: a pass is not a pass on the thecal sac).
  - Nieder et al., IJROBP 2006;66(5):1446-1449 (PMID 17084560, abstract [P]): risk of
    myelopathy small at cumulative BED ≤ 135.5 Gy2 when the interval is ≥ 6 months and each
    course ≤ 98 Gy2 (α/β 2 Gy for cervical and thoracic cord; BED = 2 × EQD2 at α/β 2).

* the ESTRO-EORTC re-irradiation type (Andratschke et al., Lancet Oncol 2022; definitions as
  summarised by the 2023 ASTRO panel, Ann Palliat Med 2024, PMID 38859596 [S], and the EORTC
  consensus page [S]): type 1 when the irradiated volumes of the two courses overlap; without
  overlap, type 2 (cumulative dose raises toxicity concern) or repeat organ/repeat irradiation,
  a clinical judgement that the report leaves to the user, listing the organs both courses
  reach. The consensus gives no dose level for "irradiated volume": here, the volume receiving
  at least :data:`IRRADIATED_FRACTION` of each course's prescription (an operational choice).

Recovery (``--recovery``): ``none`` (default); ``nieder2006``: the spinal cord's prior term
counted at 100 % before 6 months, 75 % from 6 months, 50 % from 12 months (25 % / 50 %
recovery: Doi, Tamari, Oh, Nieder, Strahlenther Onkol 2021;197:463, introduction [P]; the
same steps in SlicerRadReirradiation, which attributes them to Nieder 2006 [S]; its 65 %
beyond 24 months has one source and is not used), no recovery for other organs;
``ORGAN=R`` (repeatable): a user-given recovered fraction R in [0, 1) for one organ.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import RtplanAssistError

__all__ = [
    "IRRADIATED_FRACTION",
    "PriorCourse",
    "PriorCourseError",
    "PriorResult",
    "evaluate_prior",
    "load_prior_course",
    "parse_recovery",
    "recovery_fraction",
]

#: A voxel is in a course's irradiated volume when it receives at least this fraction of the
#: course's prescription (operational choice for the ESTRO-EORTC overlap; not in the consensus).
IRRADIATED_FRACTION = 0.5
DAYS_PER_MONTH = 365.25 / 12
CORD = "SpinalCord"
RULE_ALPHA_BETA = 2.0
HYTEC_SOURCE = ("HyTEC re-irradiation: Sahgal 2021 IJROBP doi 10.1016/j.ijrobp.2019.09.038 "
                "abstract [P]; Sahgal 2012 IJROBP 82:107 abstract [P]")
NIEDER_SOURCE = "Nieder 2006 IJROBP 66:1446 (PMID 17084560) abstract [P]"
RECOVERY_SOURCE = ("step recovery 25 % from 6 months, 50 % from 12 months: Doi 2021 "
                   "Strahlenther Onkol 197:463 [P]; SlicerRadReirradiation (after Nieder 2006) [S]")
ESTRO_SOURCE = ("ESTRO-EORTC consensus, Andratschke 2022 Lancet Oncol; definitions as in "
                "Ann Palliat Med 2024 PMID 38859596 [S] and the EORTC page [S]")
FOR_INFORMATION = "report"  # a priority that never decides a verdict (status.PRIORITIES)


class PriorCourseError(RtplanAssistError):
    """A prior course that cannot be used honestly: no RTDOSE, another frame of reference
    without a registration, a non-rigid registration, unknown fractions or interval."""


# ============================================================================ recovery


def parse_recovery(items: list[str] | tuple[str, ...] | None) -> dict[str, float] | str:
    """``--recovery`` values: ``none``, ``nieder2006``, or ``ORGAN=R`` items (R the recovered
    fraction, 0 <= R < 1). Returns ``"none"``, ``"nieder2006"`` or organ → R."""
    items = [x.strip() for x in (items or []) if x.strip()]
    if not items or items == ["none"]:
        return "none"
    if items == ["nieder2006"]:
        return "nieder2006"
    out: dict[str, float] = {}
    for item in items:
        organ, sep, text = item.partition("=")
        if not sep or not organ.strip():
            raise PriorCourseError(
                f"--recovery {item!r}: give none, nieder2006, or ORGAN=R with R the recovered "
                "fraction of the prior dose (e.g. SpinalCord=0.25)")
        try:
            value = float(text)
        except ValueError:
            raise PriorCourseError(f"--recovery {item!r}: {text!r} is not a number") from None
        if not 0.0 <= value < 1.0 or math.isnan(value):
            raise PriorCourseError(
                f"--recovery {item!r}: the recovered fraction must be in [0, 1)")
        out[organ.strip()] = value
    return out


def recovery_fraction(organ: str, policy, interval_days: float | None) -> tuple[float, str]:
    """The recovered fraction ``r`` of the prior EQD2 for ``organ`` and how it was set.

    The prior term is counted as ``(1 - r)``; the current course is never discounted."""
    if policy == "none" or policy is None:
        return 0.0, "no recovery"
    if policy == "nieder2006":
        if organ != CORD:
            return 0.0, "no recovery (nieder2006 steps are for the spinal cord only)"
        if interval_days is None:
            raise PriorCourseError(
                "--recovery nieder2006 needs the interval between the courses: give "
                "--interval-days D (no RTPlanDate found)")
        months = interval_days / DAYS_PER_MONTH
        r = 0.5 if months >= 12 else 0.25 if months >= 6 else 0.0
        return r, f"{r:.0%} recovery at {months:.1f} months ({RECOVERY_SOURCE})"
    r = float(policy.get(organ, 0.0))
    return r, (f"{r:.0%} recovery (user-given)" if organ in policy else "no recovery")


# ============================================================================ loading


@dataclass
class PriorCourse:
    """An earlier course on the current frame of reference.

    Attributes
    ----------
    folder : str
    dose : Dose
        Total physical dose (Gy) of the prior course, in its own frame and grid.
    fractions : int
    fractions_source : str
    prescription_gy : float or None
        From its RTPLAN when given.
    date : datetime.date or None
        RTPlanDate of its plan (else the dose's ContentDate / StudyDate).
    to_current : (4, 4) float array
        Rigid transform of patient coordinates (mm, homogeneous) from the prior frame to the
        current one (identity in the same frame).
    registration : str
        ``same frame of reference`` or the REG file and what it maps.
    plan_uid : str
    """

    folder: str
    dose: object
    fractions: int
    fractions_source: str
    prescription_gy: float | None
    date: _dt.date | None
    to_current: np.ndarray
    registration: str
    plan_uid: str = ""
    notes: list[str] = field(default_factory=list)


def _parse_date(text: str) -> _dt.date | None:
    text = (text or "").strip()
    if len(text) >= 8 and text[:8].isdigit():
        try:
            return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return None
    return None


def _headers(folder: str | os.PathLike):
    import pydicom

    from .dicom._index import index_files, input_paths

    root, paths = input_paths(folder)
    index = index_files(paths, root, light=True)
    out = []
    for entry in index.files:
        if entry.modality in ("RTDOSE", "RTPLAN", "REG"):
            ds = pydicom.dcmread(str(entry.path), stop_before_pixels=True, force=True)
            out.append((entry.modality, entry.path, ds))
    return out


def _rigid_matrix(values, path) -> np.ndarray:
    m = np.asarray([float(v) for v in values], dtype=np.float64)
    if m.size != 16 or not np.all(np.isfinite(m)):
        raise PriorCourseError("FrameOfReferenceTransformationMatrix needs 16 finite numbers",
                               path=path)
    m = m.reshape(4, 4)
    rot = m[:3, :3]
    if (not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6)
            or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4)
            or np.linalg.det(rot) < 0):
        raise PriorCourseError(
            "the registration matrix is not rigid (rotation + translation); only rigid "
            "registrations are supported", path=path)
    return m


def registration_matrices(ds, path) -> tuple[str, dict[str, np.ndarray]]:
    """A REG object's registered frame and, per source frame, the 4×4 matrix that maps its
    coordinates into the registered frame (DICOM PS3.3 C.20.2, Spatial Registration)."""
    registered = str(ds.get("FrameOfReferenceUID", ""))
    out: dict[str, np.ndarray] = {}
    for item in ds.get("RegistrationSequence", []) or []:
        source = str(item.get("FrameOfReferenceUID", ""))
        matrices = []
        for reg in item.get("MatrixRegistrationSequence", []) or []:
            for mat in reg.get("MatrixSequence", []) or []:
                kind = str(mat.get("FrameOfReferenceTransformationMatrixType", "RIGID"))
                if kind.upper() not in ("RIGID",):
                    raise PriorCourseError(
                        f"registration type {kind}: only RIGID registrations are supported",
                        path=path)
                matrices.append(_rigid_matrix(mat.FrameOfReferenceTransformationMatrix, path))
        if not matrices:
            if item.get("DeformableRegistrationSequence") is not None:
                raise PriorCourseError("deformable registration: only rigid is supported",
                                       path=path)
            continue
        total = np.eye(4)
        for m in matrices:  # applied in the order of the sequence
            total = m @ total
        out[source] = total
    return registered, out


def find_registration(headers, prior_for: str, current_for: str) -> tuple[np.ndarray, str] | None:
    """The prior → current transform from the first REG object that relates both frames."""
    for modality, path, ds in headers:
        if modality != "REG":
            continue
        registered, mats = registration_matrices(ds, path)
        to_reg = dict(mats)
        to_reg.setdefault(registered, np.eye(4))
        if prior_for in to_reg and current_for in to_reg:
            transform = np.linalg.inv(to_reg[current_for]) @ to_reg[prior_for]
            shift = transform[:3, 3]
            return transform, (f"rigid registration {Path(path).name} (translation "
                               f"{shift[0]:.1f}, {shift[1]:.1f}, {shift[2]:.1f} mm)")
    return None


def load_prior_course(
    prior_dir: str | os.PathLike,
    case,
    *,
    fractions: int | None = None,
) -> PriorCourse:
    """Read a prior course's RTDOSE (and RTPLAN, REG) and relate it to ``case``'s frame.

    Raises
    ------
    PriorCourseError
        No or several RTDOSEs, no fractions, another frame of reference without a REG that
        relates both frames (searched in ``prior_dir`` and the case folder), a non-rigid REG.
    """
    from .dicom.rtdose import read_dose, referenced_plan_uid
    from .dicom.rtplan import read_plan

    folder = Path(prior_dir)
    if not folder.is_dir():
        raise PriorCourseError("--prior: not a folder", path=folder)
    headers = _headers(folder)
    doses = [(p, ds) for m, p, ds in headers if m == "RTDOSE"]
    if not doses:
        raise PriorCourseError("--prior: no RTDOSE in the prior course folder", path=folder)
    if len(doses) > 1:
        raise PriorCourseError(
            f"--prior: {len(doses)} RTDOSE files; give a folder holding the one dose of the "
            "prior course (sum several in the TPS first)", path=folder)
    dose_path, dose_header = doses[0]
    prior_pid = str(dose_header.get("PatientID", ""))
    if prior_pid and case.patient_id and prior_pid != case.patient_id:
        raise PriorCourseError(
            f"--prior: {Path(dose_path).name} is of another PatientID than the case; not summed",
            path=folder)
    dose = read_dose(dose_path, dose_header)
    plans = {str(ds.get("SOPInstanceUID", "")): (p, ds) for m, p, ds in headers if m == "RTPLAN"}
    ref = referenced_plan_uid(dose_header) or ""
    plan_entry = plans.get(ref) or (next(iter(plans.values())) if len(plans) == 1 else None)
    plan = read_plan(plan_entry[1], plan_entry[0]) if plan_entry else None
    if fractions is not None:
        if int(fractions) != fractions or fractions < 1:
            raise PriorCourseError(f"--prior-fractions {fractions}: a positive whole number")
        n, n_source = int(fractions), "--prior-fractions"
    elif plan is not None and plan.fractions:
        n, n_source = int(plan.fractions), f"{Path(plan.path).name} NumberOfFractionsPlanned"
    else:
        raise PriorCourseError(
            "--prior: the number of fractions of the prior course is unknown (no RTPLAN with "
            "NumberOfFractionsPlanned): give --prior-fractions N", path=folder)
    if dose.is_per_fraction:
        dose = replace(dose, dose_gy=dose.dose_gy * np.float32(n))
    date = None
    if plan_entry is not None:
        date = _parse_date(str(plan_entry[1].get("RTPlanDate", "")))
    if date is None:
        for key in ("ContentDate", "InstanceCreationDate", "StudyDate"):
            date = _parse_date(str(dose_header.get(key, "")))
            if date is not None:
                break
    current_for = case.frame_of_reference_uid
    if dose.frame_of_reference_uid == current_for:
        transform, how = np.eye(4), "same frame of reference"
    else:
        found = find_registration(headers + _headers(case.folder),
                                  dose.frame_of_reference_uid, current_for)
        if found is None:
            raise PriorCourseError(
                f"--prior: the prior dose {Path(dose_path).name} is in frame of reference "
                f"{dose.frame_of_reference_uid}, the case in {current_for}, and no DICOM "
                "registration (REG) in either folder relates them; not summed",
                path=folder)
        transform, how = found
    return PriorCourse(
        folder=str(folder), dose=dose, fractions=n, fractions_source=n_source,
        prescription_gy=plan.prescription_gy if plan is not None else None, date=date,
        to_current=transform, registration=how,
        plan_uid=plan.sop_instance_uid if plan is not None else "",
    )


def current_course_date(case) -> _dt.date | None:
    """The earliest RTPlanDate of the case's plans (the start of the current course)."""
    import pydicom

    dates = []
    for plan in case.plans:
        try:
            ds = pydicom.dcmread(plan.path, stop_before_pixels=True, force=True,
                                 specific_tags=["RTPlanDate"])
        except Exception:  # noqa: BLE001 - a plan without a readable date has none
            continue
        d = _parse_date(str(ds.get("RTPlanDate", "")))
        if d is not None:
            dates.append(d)
    return min(dates) if dates else None


# ============================================================================ geometry


def prior_on_grid(prior: PriorCourse, grid) -> tuple[np.ndarray, np.ndarray]:
    """The prior course's physical dose (Gy) at the voxel centres of a current-frame ``grid``.

    Trilinear interpolation in the prior grid at ``inverse(to_current) · p`` for every voxel
    centre ``p``. Returns ``(dose (nz, ny, nx) float64, outside (nz, ny, nx) bool)``: points
    outside the prior grid's extent get 0 Gy and ``outside`` True (callers say so).
    """
    from scipy.ndimage import map_coordinates

    src = prior.dose.grid
    to_prior = np.linalg.inv(prior.to_current)
    z, y, x = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), z.ravel(), np.ones(x.size)])
    px, py, pz, _ = to_prior @ pts
    ext = src.extent_mm()
    outside = ((px < ext[0, 0]) | (px > ext[0, 1]) | (py < ext[1, 0]) | (py > ext[1, 1])
               | (pz < ext[2, 0]) | (pz > ext[2, 1]))
    ix = (px - src.origin[0]) / src.spacing[0]
    iy = (py - src.origin[1]) / src.spacing[1]
    iz = np.interp(pz, src.z_mm, np.arange(len(src.z_mm), dtype=np.float64))
    values = map_coordinates(np.asarray(prior.dose.dose_gy, dtype=np.float64), [iz, iy, ix],
                             order=1, mode="nearest")
    values[outside] = 0.0
    return values.reshape(grid.shape), outside.reshape(grid.shape)


# ============================================================================ evaluation


@dataclass
class OrganCourses:
    """One organ's EQD2 DVH metrics per course (Gy EQD2, the organ's α/β)."""

    organ: str
    structure: str
    alpha_beta_gy: float
    recovery: float
    recovery_note: str
    metrics: dict[str, dict[str, float]]  # course -> metric -> value
    outside_note: str = ""
    #: course -> DVH (EQD2, the organ's α/β) for the curves
    dvhs: dict = field(default_factory=dict, repr=False)


COURSES = ("prior", "current", "cumulative", "cumulative adjusted")
METRICS = ("Max[Gy]", "D0.035cc[Gy]", "Mean[Gy]")


@dataclass
class PriorResult:
    """The prior-course section of an evaluation (see the module docstring)."""

    prior: PriorCourse
    interval_days: float | None
    interval_source: str
    recovery_policy: object
    organs: list[OrganCourses]
    rows: list  # ResultRow: prior (for information), cumulative vs limits, rules
    reirradiation_type: str
    type_detail: str
    overlap_cc: float
    notes: list[str]

    def counted_rows(self) -> list:
        return [r for r in self.rows if r.priority == "mandatory"]

    def verdict(self) -> str:
        from .evaluation.records import rows_verdict

        # no counted row (no cord, no organ with a cumulative limit): nothing was judged,
        # which is never a pass
        rows = self.counted_rows()
        return rows_verdict(rows) if rows else "not evaluable"


def _metrics(dvh) -> dict[str, float]:
    out = {"Max[Gy]": float(dvh.dmax_gy), "Mean[Gy]": float(dvh.dmean_gy)}
    out["D0.035cc[Gy]"] = float(dvh.metric("D0.035cc[Gy]").value)
    return out


def _rule_row(pid, metric, value, unit, kind, comparator, limit, status_override, reason,
              source, regimen):
    from .evaluation.records import row_status
    from .evaluation.rows import make_row

    status = status_override or row_status(value, comparator, limit, None)
    return make_row(pid, None, regimen, structure="", organ=CORD, role="oar",
                    metric=metric, value=value, unit=unit, kind=kind,
                    model="LQ" if kind in ("EQD2", "BED") else "",
                    alpha_beta_gy=RULE_ALPHA_BETA if kind in ("EQD2", "BED") else None,
                    comparator=comparator, limit=limit, status=status, reason=reason,
                    source=source, priority="mandatory")


def evaluate_prior(
    evaluation,
    choice,
    prior: PriorCourse,
    *,
    interval_days: float | None = None,
    recovery="none",
    organs: list[str] | None = None,
) -> PriorResult:
    """Per-course and cumulative EQD2 of every constrained organ, verdict rows and the
    re-irradiation type for ``choice`` (lesion id → Regimen) of ``evaluation``.

    ``interval_days``: days between the courses (default: current RTPlanDate − prior date);
    ``organs``: TG-263 names to evaluate (default every constrained organ of the case).
    """
    from .evaluation.rows import composite_row
    from .kernels.eqd2 import add_eqd2_box
    from .radiobiology import Model, eqd2_grid

    notes: list[str] = []
    if interval_days is not None:
        if not math.isfinite(interval_days) or interval_days < 0:
            raise PriorCourseError(f"--interval-days {interval_days}: a non-negative number")
        interval_source = "--interval-days"
    else:
        current = current_course_date(evaluation.case)
        if prior.date is not None and current is not None:
            interval_days = float((current - prior.date).days)
            interval_source = (f"RTPlanDate {current.isoformat()} − prior "
                               f"{prior.date.isoformat()} (plan dates, not treatment dates)")
            if interval_days < 0:
                raise PriorCourseError(
                    f"--prior: the prior course ({prior.date}) is dated after the current "
                    f"plans ({current}); give --interval-days")
        else:
            interval_source = "unknown (no plan dates): give --interval-days"
    # validate the policy early (nieder2006 without an interval is refused)
    recovery_fraction(CORD, recovery, interval_days)
    choice = evaluation._check_choice(choice)
    regs = tuple(sorted(choice.items()))
    pid = evaluation.case.patient_id
    label = ", ".join(f"{lid} {r.label}" for lid, r in regs)
    prior_label = f"prior {prior.fractions} fx"
    limits = evaluation.composite_limits(choice)
    found: list[OrganCourses] = []
    rows = []
    cord_rule = None
    for organ, structure in evaluation.oar_structures.items():
        if organs is not None and organ not in organs:
            continue
        ab = evaluation._composite_alpha_beta(organ)
        if ab is None:
            continue
        (sz, sy, sx), sub = evaluation._box(structure)
        sampler = evaluation._sampler(structure, sub)
        prior_phys, outside = prior_on_grid(prior, sub)
        r, r_note = recovery_fraction(organ, recovery, interval_days)

        def arrays(alpha_beta, prior_phys=prior_phys, sub=sub, sz=sz, sy=sy, sx=sx,
                   sampler=sampler):
            current = np.zeros(sub.shape, dtype=np.float64)
            for lid, regimen in evaluation.dose_once(regs):
                lesion = evaluation._by_id[lid]
                add_eqd2_box(current, evaluation._lesion_on_common(lesion),
                             (sz.start, sy.start, sx.start), regimen.scale_from(lesion.planned),
                             regimen.fractions, alpha_beta, runs=sampler.support_runs)
            prior_eqd2 = eqd2_grid(prior_phys, prior.fractions, Model("LQ", float(alpha_beta)))
            return prior_eqd2, current

        prior_eqd2, current = arrays(ab)
        model = f"LQ, α/β = {ab:g} Gy"
        dvhs = {}
        for course, values in (("prior", prior_eqd2), ("current", current),
                               ("cumulative", prior_eqd2 + current),
                               ("cumulative adjusted", (1.0 - r) * prior_eqd2 + current)):
            dvhs[course] = replace(sampler.dvh(values), dose_kind="EQD2", model=model,
                                   warnings=())
        support = sampler.support
        out_frac = float(outside.reshape(-1)[support].mean()) if support.size else 0.0
        outside_note = ""
        if out_frac > 0:
            outside_note = (f"{out_frac:.1%} of the voxels of {structure.name} lie outside the "
                            "prior dose grid: no prior dose is counted there (unknown, not 0 Gy)")
            notes.append(outside_note)
        found.append(OrganCourses(organ, structure.name, ab, r, r_note,
                                   {c: _metrics(d) for c, d in dvhs.items()}, outside_note,
                                   dvhs))
        for lim in limits.get(organ, []):
            if lim.alpha_beta_gy is None:
                continue  # physical-dose limits (low-dose bath) are not summed across courses
            base = composite_row(pid, organ, structure, lim, dvhs["cumulative adjusted"],
                                 f"{prior_label} × {1 - r:.2f} + {label}", "", "")
            cord_superseded = organ == CORD
            rows.append(replace(
                base, lesion_id="cumulative", regimen="prior+current",
                priority=FOR_INFORMATION if cord_superseded else base.priority,
                reason=(f"{r_note}; " + base.reason
                        + "; a single-course tolerance applied to the cumulative dose, not a "
                        "validated cumulative limit"
                        + ("; superseded for the cord by the HyTEC and Nieder re-irradiation "
                           "rows (lesion_id re-irradiation)"
                           if cord_superseded else "")
                        + (f"; {outside_note}" if outside_note else ""))))
            prow = composite_row(pid, organ, structure, lim, dvhs["prior"], prior_label, "", "")
            rows.append(replace(prow, lesion_id="prior", regimen=prior_label,
                                priority=FOR_INFORMATION,
                                reason="prior course alone (delivered; for information); "
                                + prow.reason))
        if organ == CORD:
            if ab == RULE_ALPHA_BETA:
                cord_rule = {c: dvhs[c].dmax_gy for c in ("prior", "current", "cumulative")}
            else:
                p2, c2 = arrays(RULE_ALPHA_BETA)
                cord_rule = {"prior": sampler.dvh(p2).dmax_gy,
                             "current": sampler.dvh(c2).dmax_gy,
                             "cumulative": sampler.dvh(p2 + c2).dmax_gy}
            cord_rule["structure"] = structure.name
    if cord_rule is not None:
        # HyTEC's SBRT-course rules: the lesions whose dose reaches the cord are all 1-5 fx
        near = [lid for lid in evaluation.contributors(CORD) if lid in choice]
        sbrt = bool(near) and all(choice[lid].fractions <= 5 for lid in near)
        rows += cord_rules(pid, cord_rule, sbrt, near, interval_days, interval_source)
    else:
        notes.append("no spinal cord in the case: the HyTEC and Nieder re-irradiation rules "
                     "were not evaluated")
    rtype, detail, overlap_cc = _reirradiation_type(evaluation, choice, prior, found)
    return PriorResult(prior, interval_days, interval_source, recovery, found, rows, rtype,
                       detail, overlap_cc, notes)


def cord_rules(pid: str, cord: dict, sbrt: bool, near: list[str], interval_days: float | None,
               interval_source: str) -> list:
    """The HyTEC and Nieder rows of the spinal cord (module docstring).

    ``cord``: ``prior``, ``current`` and ``cumulative`` EQD2 Dmax (Gy, α/β 2, no recovery) and
    ``structure``; ``sbrt``: the lesions reaching the cord (``near``) are all 1-5 fractions."""
    name = cord["structure"]
    cum, cur, pri = cord["cumulative"], cord["current"], cord["prior"]
    proxy = (f"on {name} as a stand-in for the thecal sac of the source (the thecal sac's "
             "Dmax is at least the cord's: a pass here is not a pass on the thecal sac)")
    rows = [
        _rule_row(pid, "cumulative Max[Gy]", cum, "Gy", "EQD2", "<=", 70.0, None,
                  f"voxel-wise prior + current EQD2 (α/β 2, no recovery) {proxy}",
                  HYTEC_SOURCE, "prior+current"),
    ]
    if sbrt:
        rows.append(_rule_row(pid, "current course Max[Gy]", cur, "Gy", "EQD2", "<=", 25.0,
                              None, f"SBRT course EQD2 (α/β 2) {proxy}", HYTEC_SOURCE,
                              "current"))
        ratio = cur / cum if cum > 0 else math.nan
        rows.append(_rule_row(pid, "SBRT/cumulative Max ratio", ratio, "ratio", "", "<=", 0.5,
                              None, f"current-course EQD2 Dmax / cumulative EQD2 Dmax {proxy}",
                              HYTEC_SOURCE, "prior+current"))
    else:
        rows.append(_rule_row(pid, "current course Max[Gy]", cur, "Gy", "EQD2", "<=", 25.0,
                              "info",
                              "not applicable: HyTEC's SBRT-course and ratio rules are for "
                              "1-5 fraction re-irradiation; a lesion reaching the cord ("
                              + ", ".join(near) + ") has more fractions",
                              HYTEC_SOURCE, "current"))
        rows[-1] = replace(rows[-1], priority=FOR_INFORMATION)
    interval = math.nan if interval_days is None else float(interval_days)
    why = f"interval {interval_source}"
    rows.append(_rule_row(pid, "interval[days]", interval, "days", "", ">=",
                          5 * DAYS_PER_MONTH, None, f"5 months; {why}", HYTEC_SOURCE,
                          "prior+current"))
    nieder = [
        _rule_row(pid, "cumulative BED Max[Gy]", 2 * cum, "Gy", "BED", "<=", 135.5, None,
                  f"BED2 = 2 × EQD2 at α/β 2, voxel-wise prior + current, no recovery, on {name}"
                  " (cervical/thoracic cord: α/β 2 as in the source)", NIEDER_SOURCE,
                  "prior+current"),
        _rule_row(pid, "prior course BED Max[Gy]", 2 * pri, "Gy", "BED", "<=", 98.0, None,
                  f"each course ≤ 98 Gy2; on {name}", NIEDER_SOURCE, "prior"),
        _rule_row(pid, "current course BED Max[Gy]", 2 * cur, "Gy", "BED", "<=", 98.0, None,
                  f"each course ≤ 98 Gy2; on {name}", NIEDER_SOURCE, "current"),
        _rule_row(pid, "interval[days]", interval, "days", "", ">=",
                  6 * DAYS_PER_MONTH, None, f"6 months; {why}", NIEDER_SOURCE,
                  "prior+current"),
    ]
    rows += nieder
    return [replace(r, lesion_id="re-irradiation", structure=name) for r in rows]


def _reirradiation_type(evaluation, choice, prior, organs) -> tuple[str, str, float]:
    grid, _ = evaluation.common_grid()
    prior_phys, _outside = prior_on_grid(prior, grid)
    ref = prior.prescription_gy
    ref_note = "its prescription"
    if not ref:
        ref = float(np.max(prior_phys)) if prior_phys.size else 0.0
        ref_note = "its maximum (no prescription in its RTPLAN)"
    prior_irr = prior_phys >= IRRADIATED_FRACTION * ref if ref > 0 else np.zeros(grid.shape, bool)
    current_irr = np.zeros(grid.shape, dtype=bool)
    for lid, regimen in evaluation.dose_once(tuple(sorted(choice.items()))):
        lesion = evaluation._by_id[lid]
        dose = np.asarray(evaluation._lesion_on_common(lesion), dtype=np.float64)
        current_irr |= dose * regimen.scale_from(lesion.planned) >= (
            IRRADIATED_FRACTION * regimen.total_dose_gy)
    overlap_cc = float(np.count_nonzero(prior_irr & current_irr)) * grid.voxel_volume_cc
    both = [o.structure for o in organs
            if o.metrics["prior"]["Max[Gy]"] > 1.0 and o.metrics["current"]["Max[Gy]"] > 1.0]
    level = (f"irradiated volume: ≥ {IRRADIATED_FRACTION:.0%} of each course's prescription "
             f"(prior: {ref_note}, {ref:g} Gy); an operational choice, the consensus gives no "
             "dose level")
    if overlap_cc > 0:
        return ("type 1 re-irradiation",
                f"the irradiated volumes overlap by {overlap_cc:.2f} cc ({level}); "
                f"{ESTRO_SOURCE}", overlap_cc)
    return ("no geometric overlap: type 2 re-irradiation if the cumulative dose raises "
            "toxicity concern, else repeat organ irradiation or repeat irradiation (clinical "
            "judgement)",
            f"organs reached by both courses (EQD2 Max > 1 Gy each): {', '.join(both) or 'none'}"
            f" ({level}); {ESTRO_SOURCE}", overlap_cc)


# ============================================================================ outputs


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.{digits}f}")


#: what the prior-course verdict is about (said wherever the prior course is shown)
PRIOR_SCOPE_NOTE = (
    "This verdict is of the shown regimens; the per-lesion recommendation does not take the "
    "prior course into account: if the cumulative rows fail, choose other regimens (evaluate "
    "--choose, or the composite page) and check again")


def prior_summary_lines(result: PriorResult) -> list[str]:
    p = result.prior
    interval = ("unknown" if result.interval_days is None
                else f"{result.interval_days:.0f} days ({result.interval_days / DAYS_PER_MONTH:.1f} months)")
    rx = f"{p.prescription_gy:g} Gy" if p.prescription_gy else "prescription not given"
    policy = result.recovery_policy
    policy_text = policy if isinstance(policy, str) else ", ".join(
        f"{k}={v:g}" for k, v in policy.items())
    nieder = [r for r in result.rows
              if r.lesion_id == "re-irradiation" and r.source == NIEDER_SOURCE]
    if nieder:
        met = all(r.status == "pass" for r in nieder)
        unmet = ", ".join(r.metric for r in nieder if r.status != "pass")
        nieder_line = [f"Nieder 2006 low-risk conditions (cumulative BED ≤ 135.5 Gy2, each "
                       f"course ≤ 98 Gy2, interval ≥ 6 months): "
                       + ("all met" if met else f"not met ({unmet})")]
    else:
        nieder_line = []
    return [
        f"Prior course: {Path(p.dose.path).name}, {rx} in {p.fractions} fractions "
        f"({p.fractions_source}); {p.registration}",
        f"Interval: {interval}, from {result.interval_source}",
        f"Recovery: {policy_text} (applied to the prior term only)",
        f"ESTRO-EORTC: {result.reirradiation_type}; {result.type_detail}",
    ] + nieder_line + [PRIOR_SCOPE_NOTE]


def prior_to_dict(result: PriorResult) -> dict:
    from dataclasses import asdict

    p = result.prior
    return {
        "folder": p.folder,
        "dose_file": Path(p.dose.path).name,
        "fractions": p.fractions,
        "fractions_source": p.fractions_source,
        "prescription_gy": p.prescription_gy,
        "date": p.date.isoformat() if p.date else None,
        "registration": p.registration,
        "to_current_mm": p.to_current.tolist(),
        "interval_days": result.interval_days,
        "interval_source": result.interval_source,
        "recovery": result.recovery_policy,
        "reirradiation_type": result.reirradiation_type,
        "reirradiation_type_detail": result.type_detail,
        "overlap_cc": result.overlap_cc,
        "verdict": result.verdict(),
        "verdict_scope": PRIOR_SCOPE_NOTE,
        "organs": [
            {"organ": o.organ, "structure": o.structure, "alpha_beta_gy": o.alpha_beta_gy,
             "model": "LQ", "kind": "EQD2", "unit": "Gy", "recovery": o.recovery,
             "recovery_note": o.recovery_note, "courses": o.metrics, "note": o.outside_note}
            for o in result.organs
        ],
        "rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                  for k, v in asdict(r).items()} for r in result.rows],
        "notes": result.notes,
    }


def prior_text(result: PriorResult) -> str:
    lines = ["", "PRIOR COURSE (re-irradiation; cumulative EQD2 per voxel, each organ's α/β)"]
    lines += ["  " + x for x in prior_summary_lines(result)]
    lines.append("")
    head = f"  {'structure':<16} {'α/β':>4} {'rec.':>5}  " + "  ".join(
        f"{c:>19}" for c in COURSES)
    lines.append(head)
    lines.append(f"  {'':<16} {'Gy':>4} {'':>5}  " + "  ".join(
        f"{'Max/Mean EQD2 Gy':>19}" for _ in COURSES))
    for o in result.organs:
        cells = "  ".join(
            f"{_fmt(o.metrics[c]['Max[Gy]']):>9}/{_fmt(o.metrics[c]['Mean[Gy]']):<9}"
            for c in COURSES)
        lines.append(f"  {o.structure[:16]:<16} {o.alpha_beta_gy:>4g} {o.recovery:>5.0%}  {cells}")
    lines.append("")
    lines.append("  Re-irradiation rules (spinal cord; plain sums at α/β 2) and cumulative limits")
    for r in result.rows:
        if r.lesion_id == "prior":
            continue
        lines.append(f"  {r.status.upper():<15} {r.priority:<15} {r.describe()}")
    for note in result.notes:
        lines.append(f"  note: {note}")
    lines.append(f"  Prior-course verdict: {result.verdict()}")
    return "\n".join(lines) + "\n"


def prior_html(result: PriorResult) -> str:
    from html import escape as E

    from .status import status_style

    summary = "".join(f"<li>{E(x)}</li>" for x in prior_summary_lines(result))
    head = "".join(f"<th>{E(c)} Max / D0.035cc / Mean</th>" for c in COURSES)
    body = []
    for o in result.organs:
        cells = "".join(
            "<td class=num>" + " / ".join(_fmt(o.metrics[c][m], 1) for m in METRICS) + "</td>"
            for c in COURSES)
        body.append(f"<tr><td>{E(o.structure)}</td><td class=num>{o.alpha_beta_gy:g}</td>"
                    f"<td class=num>{o.recovery:.0%}</td>{cells}</tr>")
    rule_rows = []
    for r in result.rows:
        if r.lesion_id == "prior" or (r.lesion_id == "cumulative"
                                      and r.priority != "mandatory"):
            continue
        colour = status_style(r.status).background
        limit = "" if r.limit is None else f"{r.comparator} {r.limit:g} {r.unit}"
        kind = f"{r.kind}, α/β {r.alpha_beta_gy:g} Gy" if r.alpha_beta_gy else r.kind
        rule_rows.append(
            f"<tr><td>{E(r.structure or r.organ)}</td><td>{E(r.metric)}</td>"
            f"<td class=num>{E(_fmt(r.value))} {E(r.unit)}</td><td>{E(kind)}</td>"
            f"<td>{E(limit)}</td><td style=\"background:{colour}\">{E(status_style(r.status).text)}</td>"
            f"<td class=small>{E(r.source)}</td></tr>")
    notes = "".join(f"<li>{E(n)}</li>" for n in result.notes)
    return (
        "<h2>Prior course (re-irradiation): cumulative EQD2, voxel by voxel</h2>"
        f"<ul>{summary}</ul>"
        "<table class=\"prior\"><thead><tr><th>Structure</th><th>α/β (Gy)</th>"
        f"<th>Recovery</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "<p class=small>EQD2 in Gy (LQ, each organ's α/β, no time factor); cumulative = prior + "
        "current; adjusted = prior × (1 − recovery) + current.</p>"
        "<h3>Spinal cord re-irradiation rules (plain sums, α/β 2) and cumulative limits "
        "(adjusted sums; single-course tolerances, not validated cumulative limits)</h3>"
        "<table class=\"prior-rules\"><thead><tr><th>Structure</th><th>Metric</th>"
        "<th>Value</th><th>Kind</th><th>Limit</th><th>Status</th><th>Source</th></tr></thead>"
        f"<tbody>{''.join(rule_rows)}</tbody></table>"
        f"<ul class=small>{notes}</ul>"
        f"<p><b>Prior-course verdict: {E(result.verdict())}</b></p>"
    )


def render_with_prior(text: str, fmt: str, result, prior: PriorResult,
                      drop_not_evaluable: bool = False, scrub=None) -> str:
    """Add the prior-course section to an ``evaluate`` output already rendered in ``fmt``
    (JSON key ``prior_course``; CSV rows with lesion_id ``prior``, ``cumulative`` and
    ``re-irradiation``; a section of the text and of the HTML). ``scrub``
    (:meth:`rtplan_assist.deidentify.Identifiers.scrub`) de-identifies the section; the prior
    folder is then withheld."""
    import json

    if scrub is not None:
        from .deidentify import WITHHELD, scrub_tree

        prior = replace(prior, rows=[replace(r, reason=scrub(r.reason),
                                             structure=scrub(r.structure))
                                     for r in prior.rows])
    if fmt == "json":
        payload = json.loads(text)
        section = prior_to_dict(prior)
        if scrub is not None:
            section = scrub_tree(section, scrub, keys=False)
            section["folder"] = WITHHELD
        payload["prior_course"] = section
        payload["verdict_with_prior"] = combined_verdict(result.verdict(), prior.verdict())
        from .jsontext import json_pieces  # json.dumps(indent=2), C-encoder speed

        return "".join(json_pieces(payload, end="\n"))
    if fmt == "csv":
        from .evaluation import result_to_csv

        extra = result_to_csv(replace(result, rows=list(prior.rows), composite_rows=[]),
                              drop_not_evaluable=drop_not_evaluable)
        body = extra.split("\n", 1)[1] if "\n" in extra else ""
        return text + body
    if fmt == "html":
        section = prior_html(prior)
        return text.replace("</body>", (scrub or str)(section) + "</body>", 1)
    return text + (scrub or str)(prior_text(prior))


def combined_verdict(*verdicts: str) -> str:
    """The worst of several verdicts: fail > not evaluable > pass."""
    if "fail" in verdicts:
        return "fail"
    if any(v not in ("pass",) for v in verdicts):
        return "not evaluable"
    return "pass"


def cumulative_eqd2_grid(evaluation, choice, prior: PriorCourse, alpha_beta_gy: float):
    """Plain cumulative EQD2 (prior + current, one α/β, no recovery) on the composite grid,
    for export as RTDOSE: ``(grid, eqd2_gy)``."""
    from .radiobiology import Model, eqd2_grid

    grid, current = evaluation.composite_eqd2(choice, alpha_beta_gy)
    prior_phys, _ = prior_on_grid(prior, grid)
    return grid, current + eqd2_grid(prior_phys, prior.fractions, Model("LQ", alpha_beta_gy))
