"""BED and EQD2 for uniform doses, dose grids and DVH dose axes (LQ, LQ-L, USC).

Every number this module returns belongs to a :class:`Model` (name, α/β and parameters); print
:meth:`Model.describe` next to it. Sources and derivations are those of
``shared/reference/constraints-radiobiology.md`` §6 (cited below as "reference §6.x").

Formulas
--------
With ``n`` fractions of ``d = D / n`` Gy (total physical dose ``D``), α/β in Gy:

* LQ (Fowler 2010; Dale 1985; reference §6.1)::

      BED  = n d (1 + d / (α/β)) = D (1 + d / (α/β))
      EQD2 = BED / (1 + 2 / (α/β))

  Inverse (reference §6.1): the positive root of ``D + D² / (n α/β) = BED``,
  ``D = (n α/β / 2) (−1 + sqrt(1 + 4 BED / (n α/β)))``, computed here in the equivalent,
  cancellation-free form ``D = 2 BED / (1 + sqrt(1 + 4 BED / (n α/β)))``.

* LQ-L (Astrahan, Med Phys 2008;35:4161; reference §6.4): LQ up to a transition dose per
  fraction ``d_T``, then the tangent line (continuous value and slope)::

      BED = n [d_T (1 + d_T / (α/β)) + (1 + 2 d_T / (α/β)) (d − d_T)]     for d > d_T

  ``d_T`` has no verified default (reference §6.4, §9.6): it is a required argument.

* USC (Park, Papiez, Zhang, Story, Timmerman, IJROBP 2008;70:847, PMID 18262098; reference
  §6.4): LQ below the transition dose ``D_T``, the multi-target single-hit final slope above it,
  ``BED = n (d − Dq) / (α D0)``. Continuity of value and slope at ``D_T`` gives
  ``D_T = 2 Dq / (1 − α D0)`` and ``β = (1 − α D0)² / (4 D0 Dq)``; substituting,
  ``1 / (α D0) = 1 + 2 D_T / (α/β)``, so the USC BED above ``D_T`` is the same tangent line as
  LQ-L with ``d_T = D_T``. The two models differ in where the transition comes from (a
  cell-survival fit for USC, a chosen dose for LQ-L), not in the BED formula. The NSCLC (H460)
  fit α = 0.33 Gy⁻¹, D0 = 1.25 Gy, Dq = 1.8 Gy is *unverified* in the reference (§6.4 [U]):
  :func:`usc_park2008_nsclc` returns it with ``verified=False`` on every parameter.

* Repopulation (optional, off by default; reference §6.3)::

      BED_T = BED − Dprolif (T − Tk)     for T > Tk,   Dprolif = ln 2 / (α Tpot)  (Gy/day)

  No default for Tk, Tpot, α or Dprolif is verified in the reference (Tk 21–32 d [S]; NSCLC
  Tk 28 d, Tpot 3 d, α 0.3 Gy⁻¹ [U]), so :class:`TimeFactor` has none.

Validity: LQ is reasonable up to ~10 Gy per fraction and usable up to ~18 Gy (Brenner 2008,
reference §6.4); single-fraction SBRT lies beyond, where the model choice changes BED rankings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np

from .errors import RadiobiologyError

__all__ = [
    "COMPOSITE_CAVEATS",
    "DoseTransform",
    "Model",
    "Parameter",
    "TimeFactor",
    "bed",
    "bed_grid",
    "bed_transform",
    "dose_for_bed",
    "dose_for_eqd2",
    "eqd2",
    "eqd2_grid",
    "eqd2_transform",
    "usc_park2008_nsclc",
]

MODEL_NAMES = ("LQ", "LQ-L", "USC")

COMPOSITE_CAVEATS: list[str] = [
    (
        "Summed EQD2 assumes full repair between fractions of different plans (>= ~6 h apart). "
        "If lesions are treated in the same session, a voxel's per-session dose is d_A + d_B and "
        "its true BED contains (d_A + d_B)^2/(α/β) > (d_A^2 + d_B^2)/(α/β): the sum underestimates "
        "OAR EQD2 where plans overlap (reference §6.6)."
    ),
    (
        "Time between courses and recovery are not in the LQ sum; for re-irradiation of the cord "
        "use the HyTEC cumulative limits (reference §3, §6.6)."
    ),
    (
        "All lesion doses must be resampled to one grid in one frame of reference; registration "
        "error inflates accumulated maxima, and a lesion dose grid that does not cover an OAR is "
        "reported, not assumed to be 0 Gy (reference §6.6)."
    ),
    (
        "LQ at high dose per fraction is model-dependent: composite EQD2 in SBRT hot spots changes "
        "with the model (LQ, LQ-L, USC) (reference §6.4)."
    ),
    (
        "Composite limits must be in EQD2 (or BED) at the OAR's α/β: each table limit is converted "
        "from its fraction number and marked as converted (reference §6.6)."
    ),
    (
        "Mean doses of a composite are means of voxel EQD2, never the EQD2 of a mean physical dose "
        "(reference §6.5)."
    ),
]


@dataclass(frozen=True)
class Parameter:
    """One model parameter with its provenance, for output labels and reports.

    Attributes
    ----------
    name : str
        ``alpha_beta``, ``transition_dose``, ``alpha``, ``D0``, ``Dq``, ``Tk``, ``Dprolif``.
    value : float
    unit : str
        ``Gy``, ``Gy^-1``, ``d`` or ``Gy/d``.
    source : str
        ``"user"`` or a citation with the reference section.
    verified : bool
        False for a default the project could not verify in a source (reference tag [U]).
    """

    name: str
    value: float
    unit: str
    source: str = "user"
    verified: bool = True

    def describe(self) -> str:
        flag = "" if self.verified else " (UNVERIFIED)"
        return f"{self.name} = {self.value:g} {self.unit}{flag}"


@dataclass(frozen=True)
class TimeFactor:
    """Repopulation correction ``BED − Dprolif (T − Tk)`` for ``T > Tk`` (reference §6.3).

    Attributes
    ----------
    kickoff_days : float
        Tk, the time after the start of treatment when accelerated repopulation begins (days).
    dprolif_gy_per_day : float
        BED lost per day beyond Tk (Gy/day), ``ln 2 / (α Tpot)``.
    source : str
        Where the values come from (``"user"`` unless stated).
    verified : bool
        False when the values are unverified literature defaults.
    """

    kickoff_days: float
    dprolif_gy_per_day: float
    source: str = "user"
    verified: bool = True

    def __post_init__(self) -> None:
        for name in ("kickoff_days", "dprolif_gy_per_day"):
            value = getattr(self, name)
            if not (isinstance(value, Real) and math.isfinite(value) and value >= 0):
                raise RadiobiologyError(f"TimeFactor.{name} must be a finite number >= 0")

    @classmethod
    def from_tpot(
        cls,
        kickoff_days: float,
        tpot_days: float,
        alpha_per_gy: float,
        *,
        source: str = "user",
        verified: bool = True,
    ) -> TimeFactor:
        """Build from Tk, the potential doubling time Tpot (days) and α (Gy⁻¹).

        ``Dprolif = ln 2 / (α Tpot)`` (reference §6.3).
        """
        if not (tpot_days > 0 and alpha_per_gy > 0):
            raise RadiobiologyError("Tpot and α must be > 0 for a repopulation correction")
        return cls(kickoff_days, math.log(2.0) / (alpha_per_gy * tpot_days), source, verified)

    def bed_loss_gy(self, overall_time_days: float) -> float:
        """BED lost to repopulation (Gy) for an overall treatment time ``T`` (days)."""
        if not (math.isfinite(overall_time_days) and overall_time_days >= 0):
            raise RadiobiologyError(f"overall time must be >= 0 days, got {overall_time_days}")
        return self.dprolif_gy_per_day * max(0.0, overall_time_days - self.kickoff_days)


@dataclass(frozen=True)
class Model:
    """A radiobiological model: name, α/β and the parameters the name needs.

    Attributes
    ----------
    name : {"LQ", "LQ-L", "USC"}
    alpha_beta_gy : float
        α/β (Gy), > 0.
    transition_dose_gy : float or None
        Dose per fraction (Gy) where the curve turns linear: ``d_T`` of LQ-L (required), ``D_T``
        of USC (required; derived from α, D0, Dq by :meth:`usc_from_survival_fit`). ``None`` for
        LQ.
    alpha_per_gy, d0_gy, dq_gy : float or None
        USC cell-survival parameters, kept for the label when known; the BED formula needs only
        α/β and ``D_T`` (module docstring).
    time_factor : TimeFactor or None
        Repopulation correction; ``None`` (default) = no time factor.
    provenance : tuple of Parameter
        Source and verification status of parameters that are not plain user input; any
        parameter not listed is reported as ``source="user"``.

    Examples
    --------
    >>> Model("LQ", 3.0).describe()
    'LQ, α/β = 3 Gy'
    """

    name: str
    alpha_beta_gy: float
    transition_dose_gy: float | None = None
    alpha_per_gy: float | None = None
    d0_gy: float | None = None
    dq_gy: float | None = None
    time_factor: TimeFactor | None = None
    provenance: tuple[Parameter, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise RadiobiologyError(f"unknown model '{self.name}'; use one of {MODEL_NAMES}")
        _check_alpha_beta(self.alpha_beta_gy)
        if self.name == "LQ":
            if self.transition_dose_gy is not None:
                raise RadiobiologyError("LQ takes no transition dose; use 'LQ-L' or 'USC'")
        else:
            t = self.transition_dose_gy
            if t is None:
                raise RadiobiologyError(
                    f"{self.name} needs transition_dose_gy (dose per fraction, Gy): no default is "
                    "verified (reference §6.4); give it explicitly"
                )
            if not (isinstance(t, Real) and math.isfinite(t) and t > 0):
                raise RadiobiologyError(f"transition_dose_gy must be finite and > 0, got {t}")
        for name in ("alpha_per_gy", "d0_gy", "dq_gy"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise RadiobiologyError(f"{name} must be finite and > 0, got {value}")
        if self.name == "USC":
            self._check_usc_fit()

    def _check_usc_fit(self) -> None:
        """USC takes α/β from its own cell-survival fit (D_T and the final slope come from the
        same α, D0, Dq): a different α/β is refused, never mixed with the fit's D_T (clinical
        audit (c) 3). α/β within 0.01 Gy of the fit's (a rounded entry such as 8.6) is
        replaced by the fit's exact value."""
        fit_ab = None
        if None not in (self.alpha_per_gy, self.d0_gy, self.dq_gy):
            beta = (1.0 - self.alpha_per_gy * self.d0_gy) ** 2 / (4.0 * self.d0_gy * self.dq_gy)
            fit_ab = self.alpha_per_gy / beta
        else:
            for p in self.provenance:
                if p.name == "alpha_beta":
                    fit_ab = float(p.value)
        if fit_ab is None:
            return
        if abs(self.alpha_beta_gy - fit_ab) > 0.01:
            source = next((p.source for p in self.provenance if p.name == "alpha_beta"), "the fit")
            raise RadiobiologyError(
                f"USC uses the α/β of its own survival fit ({fit_ab:.2f} Gy, {source}); "
                f"α/β = {self.alpha_beta_gy:g} Gy would mix the fit's transition dose "
                f"D_T = {self.transition_dose_gy:.3g} Gy with another α/β: give "
                f"--alpha-beta {fit_ab:.2f}, or a transition dose of your own"
            )
        object.__setattr__(self, "alpha_beta_gy", fit_ab)

    @classmethod
    def usc_from_survival_fit(
        cls,
        alpha_per_gy: float,
        d0_gy: float,
        dq_gy: float,
        *,
        source: str = "user",
        verified: bool = True,
    ) -> Model:
        """USC from its cell-survival parameters (Park et al. 2008).

        ``D_T = 2 Dq / (1 − α D0)``, ``β = (1 − α D0)² / (4 D0 Dq)`` (reference §6.4 [C]).

        Raises
        ------
        RadiobiologyError
            When ``α D0 >= 1`` (no transition exists).
        """
        for name, value in (("alpha_per_gy", alpha_per_gy), ("d0_gy", d0_gy), ("dq_gy", dq_gy)):
            if not (math.isfinite(value) and value > 0):
                raise RadiobiologyError(f"{name} must be finite and > 0, got {value}")
        if alpha_per_gy * d0_gy >= 1.0:
            raise RadiobiologyError("USC needs α·D0 < 1 (the final slope must exceed α)")
        transition = 2.0 * dq_gy / (1.0 - alpha_per_gy * d0_gy)
        beta = (1.0 - alpha_per_gy * d0_gy) ** 2 / (4.0 * d0_gy * dq_gy)
        records = tuple(
            Parameter(name, value, unit, source, verified)
            for name, value, unit in (
                ("alpha", alpha_per_gy, "Gy^-1"),
                ("D0", d0_gy, "Gy"),
                ("Dq", dq_gy, "Gy"),
                ("alpha_beta", alpha_per_gy / beta, "Gy"),
                ("transition_dose", transition, "Gy"),
            )
        )
        return cls(
            "USC",
            alpha_per_gy / beta,
            transition,
            alpha_per_gy=alpha_per_gy,
            d0_gy=d0_gy,
            dq_gy=dq_gy,
            provenance=records,
        )

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter of the model as a :class:`Parameter` record."""
        known = {p.name: p for p in self.provenance}
        values = [("alpha_beta", self.alpha_beta_gy, "Gy")]
        if self.transition_dose_gy is not None:
            values.append(("transition_dose", self.transition_dose_gy, "Gy"))
        for name, value, unit in (
            ("alpha", self.alpha_per_gy, "Gy^-1"),
            ("D0", self.d0_gy, "Gy"),
            ("Dq", self.dq_gy, "Gy"),
        ):
            if value is not None:
                values.append((name, value, unit))
        records = [known.get(name, Parameter(name, value, unit)) for name, value, unit in values]
        if self.time_factor is not None:
            tf = self.time_factor
            records.append(Parameter("Tk", tf.kickoff_days, "d", tf.source, tf.verified))
            records.append(
                Parameter("Dprolif", tf.dprolif_gy_per_day, "Gy/d", tf.source, tf.verified)
            )
        return tuple(records)

    @property
    def verified(self) -> bool:
        """False when any parameter is an unverified default."""
        return all(p.verified for p in self.parameters)

    def describe(self) -> str:
        """Label for outputs, e.g. ``"LQ, α/β = 3 Gy"`` or ``"LQ-L, α/β = 10 Gy, d_T = 6 Gy"``."""
        text = f"{self.name}, α/β = {self.alpha_beta_gy:g} Gy"
        if self.name == "LQ-L":
            text += f", d_T = {self.transition_dose_gy:g} Gy"
        elif self.name == "USC":
            text += f", D_T = {self.transition_dose_gy:.3g} Gy"
        if self.time_factor is not None:
            tf = self.time_factor
            text += (
                f", repopulation Tk = {tf.kickoff_days:g} d, "
                f"Dprolif = {tf.dprolif_gy_per_day:.3g} Gy/d"
            )
        unverified = [p.name for p in self.parameters if not p.verified]
        if unverified:
            text += f" [UNVERIFIED: {', '.join(unverified)}]"
        return text


def usc_park2008_nsclc() -> Model:
    """USC with the NSCLC (H460) fit of Park et al. 2008 *as remembered*, marked unverified.

    α = 0.33 Gy⁻¹, D0 = 1.25 Gy, Dq = 1.8 Gy, giving D_T = 6.13 Gy and α/β = 8.60 Gy. The
    reference (§6.4) grades these values [U]: they are internally consistent but were not read
    in the paper. Every parameter carries ``verified=False`` and :meth:`Model.describe` says so.
    """
    return Model.usc_from_survival_fit(
        0.33,
        1.25,
        1.8,
        source="Park et al. IJROBP 2008;70:847 (H460 fit; reference §6.4 [U])",
        verified=False,
    )


# --------------------------------------------------------------------------- validation


def _check_alpha_beta(alpha_beta_gy: float) -> None:
    if type(alpha_beta_gy) is float and math.isfinite(alpha_beta_gy) and alpha_beta_gy > 0:
        return  # the common case, without the abstract-class isinstance below
    if isinstance(alpha_beta_gy, bool) or not isinstance(alpha_beta_gy, Real):
        raise RadiobiologyError(f"α/β must be a number in Gy, got {alpha_beta_gy!r}")
    if not (math.isfinite(alpha_beta_gy) and alpha_beta_gy > 0):
        raise RadiobiologyError(f"α/β must be finite and > 0 Gy, got {alpha_beta_gy}")


def _check_fractions(fractions: int) -> int:
    if type(fractions) is int and fractions >= 1:
        return fractions  # the common case, without the abstract-class isinstance below
    if isinstance(fractions, bool) or not isinstance(fractions, (Integral, Real)):
        raise RadiobiologyError(f"fractions must be an integer >= 1, got {fractions!r}")
    if not math.isfinite(fractions) or int(fractions) != fractions or fractions < 1:
        raise RadiobiologyError(f"fractions must be an integer >= 1, got {fractions}")
    return int(fractions)


def _check_model(model: Model) -> None:
    if not isinstance(model, Model):
        raise RadiobiologyError(
            f"model must be a radiobiology.Model (e.g. Model('LQ', 3.0)), got {model!r}"
        )


_SCALAR_TYPES = (float, int, np.float64)


def _as_nonnegative(values, what: str) -> tuple[np.ndarray, bool]:
    if type(values) in _SCALAR_TYPES:  # a plain number: the same checks without array calls
        value = np.float64(values)  # (thousands per evaluation; float64 arithmetic either way)
        if value != value:
            raise RadiobiologyError(f"{what} contains NaN")
        if value in (math.inf, -math.inf):
            raise RadiobiologyError(f"{what} contains an infinite value")
        if value < 0:
            raise RadiobiologyError(f"{what} must be >= 0 Gy, got {value:g}")
        return value, True
    array = np.asarray(values, dtype=np.float64)
    if np.isnan(array).any():
        raise RadiobiologyError(f"{what} contains NaN")
    if np.isinf(array).any():
        raise RadiobiologyError(f"{what} contains an infinite value")
    if (array < 0).any():
        raise RadiobiologyError(f"{what} must be >= 0 Gy, got {array[array < 0].flat[0]:g}")
    return array, array.ndim == 0


def _result(array: np.ndarray, scalar: bool):
    return float(array) if scalar else array


def _time_loss(model: Model, overall_time_days: float | None) -> float:
    if model.time_factor is None:
        if overall_time_days is not None:
            raise RadiobiologyError(
                "overall_time_days given but the model has no time factor; add a TimeFactor "
                "to the model or leave the time out"
            )
        return 0.0
    if overall_time_days is None:
        raise RadiobiologyError(
            "the model has a repopulation time factor: give overall_time_days (days)"
        )
    return model.time_factor.bed_loss_gy(overall_time_days)


# --------------------------------------------------------------------------- uniform dose


def _lq_scalar(value, fractions, model, overall_time_days) -> tuple | None:
    """``(value, n, α/β)`` as plain floats and an int when a uniform-dose formula can take the
    scalar path: one finite, non-negative number (float, int or numpy float64), an integer
    fraction number >= 1, an LQ model without time factor and no time. The formulas then
    give the same IEEE double arithmetic as on numpy scalars (thousands of calls an
    evaluation); anything else (and every error) takes the general path."""
    kind = type(value)
    if (
        (kind is float or kind is int or kind is np.float64)
        and type(fractions) is int
        and fractions >= 1
        and overall_time_days is None
        and type(model) is Model
        and model.name == "LQ"
        and model.time_factor is None
    ):
        number = float(value)
        if math.isfinite(number) and number >= 0:
            return number, fractions, model.alpha_beta_gy
    return None


def _bed_no_time(total: np.ndarray, n: int, model: Model) -> np.ndarray:
    ab = model.alpha_beta_gy
    per_fraction = total / n
    lq = total * (1.0 + per_fraction / ab)
    if model.name == "LQ":
        return lq
    dt = model.transition_dose_gy
    linear = n * (dt * (1.0 + dt / ab) + (1.0 + 2.0 * dt / ab) * (per_fraction - dt))
    return np.where(per_fraction <= dt, lq, linear)


def bed(total_dose_gy, fractions: int, model: Model, overall_time_days: float | None = None):
    """Biologically effective dose of a uniform dose.

    Parameters
    ----------
    total_dose_gy : float or array_like
        Total physical dose ``D`` (Gy), >= 0, delivered in ``fractions`` equal fractions.
    fractions : int
        ``n`` >= 1.
    model : Model
    overall_time_days : float, optional
        Overall treatment time ``T`` (days); required when the model has a time factor and
        refused otherwise.

    Returns
    -------
    float or ndarray
        BED (Gy), same shape as ``total_dose_gy``.

    Raises
    ------
    RadiobiologyError
        Negative, NaN or infinite dose; ``fractions`` < 1 or not an integer; α/β <= 0.

    Examples
    --------
    50 Gy in 5 fractions, α/β = 10 Gy: BED = 50 (1 + 10/10) = 100 Gy (reference §6.1).

    >>> bed(50.0, 5, Model("LQ", 10.0))
    100.0
    """
    quick = _lq_scalar(total_dose_gy, fractions, model, overall_time_days)
    if quick is not None:
        total, n, ab = quick
        return total * (1.0 + (total / n) / ab)
    _check_model(model)
    n = _check_fractions(fractions)
    total, scalar = _as_nonnegative(total_dose_gy, "total_dose_gy")
    return _result(_bed_no_time(total, n, model) - _time_loss(model, overall_time_days), scalar)


def eqd2(total_dose_gy, fractions: int, model: Model, overall_time_days: float | None = None):
    """Equivalent dose in 2-Gy fractions, ``EQD2 = BED / (1 + 2 / (α/β))`` (Gy).

    Parameters and errors as :func:`bed`.

    Examples
    --------
    60 Gy in 8 fractions, α/β = 3 Gy: BED = 60 (1 + 7.5/3) = 210 Gy, EQD2 = 210 / (5/3) = 126 Gy
    (reference §6.1).

    >>> round(eqd2(60.0, 8, Model("LQ", 3.0)), 6)
    126.0
    """
    value = bed(total_dose_gy, fractions, model, overall_time_days)
    return value / (1.0 + 2.0 / model.alpha_beta_gy)


def dose_for_bed(bed_gy, fractions: int, model: Model, overall_time_days: float | None = None):
    """Total physical dose (Gy) in ``fractions`` fractions that gives ``bed_gy``.

    LQ: the positive root ``D = 2 B / (1 + sqrt(1 + 4 B / (n α/β)))`` of ``D + D²/(n α/β) = B``
    (reference §6.1). LQ-L/USC: the LQ root while the dose per fraction stays <= the
    transition dose, the inverse of the tangent line beyond it. With a time factor the lost BED
    is added to the target first.

    Parameters
    ----------
    bed_gy : float or array_like
        Target BED (Gy), >= 0.
    fractions : int
    model : Model
    overall_time_days : float, optional
        As for :func:`bed`.

    Returns
    -------
    float or ndarray
        Total physical dose (Gy).
    """
    quick = _lq_scalar(bed_gy, fractions, model, overall_time_days)
    if quick is not None:
        target, n, ab = quick
        per_fraction_bed = target / n
        return n * (2.0 * per_fraction_bed / (1.0 + math.sqrt(1.0 + 4.0 * per_fraction_bed / ab)))
    _check_model(model)
    n = _check_fractions(fractions)
    target, scalar = _as_nonnegative(bed_gy, "bed_gy")
    target = target + _time_loss(model, overall_time_days)
    ab = model.alpha_beta_gy
    per_fraction_bed = target / n
    lq_d = 2.0 * per_fraction_bed / (1.0 + np.sqrt(1.0 + 4.0 * per_fraction_bed / ab))
    if model.name == "LQ":
        return _result(n * lq_d, scalar)
    dt = model.transition_dose_gy
    bed_at_dt = dt * (1.0 + dt / ab)
    linear_d = dt + (per_fraction_bed - bed_at_dt) / (1.0 + 2.0 * dt / ab)
    return _result(n * np.where(per_fraction_bed <= bed_at_dt, lq_d, linear_d), scalar)


def dose_for_eqd2(eqd2_gy, fractions: int, model: Model, overall_time_days: float | None = None):
    """Total physical dose (Gy) in ``fractions`` fractions that gives ``eqd2_gy``.

    ``BED = EQD2 (1 + 2 / (α/β))``, then :func:`dose_for_bed`.

    Examples
    --------
    EQD2 36 Gy at α/β = 2 Gy in 3 fractions: BED 72 Gy; ``D + D²/6 = 72`` gives D = 18 Gy
    (reference §10.3 example, solved by hand).

    >>> round(dose_for_eqd2(36.0, 3, Model("LQ", 2.0)), 9)
    18.0
    """
    quick = _lq_scalar(eqd2_gy, fractions, model, overall_time_days)
    if quick is not None:
        target, n, ab = quick
        return dose_for_bed(target * (1.0 + 2.0 / ab), n, model)
    _check_model(model)
    target, scalar = _as_nonnegative(eqd2_gy, "eqd2_gy")
    value = dose_for_bed(
        target * (1.0 + 2.0 / model.alpha_beta_gy), fractions, model, overall_time_days
    )
    return _result(np.asarray(value), scalar)


# --------------------------------------------------------------------------- dose grids


def _grid_call(dose_gy: np.ndarray, fractions: int, model: Model, to_eqd2: bool) -> np.ndarray:
    _check_model(model)
    n = _check_fractions(fractions)
    if model.time_factor is not None:
        raise RadiobiologyError(
            "a repopulation time factor is a tumour-control correction of a uniform dose; it is "
            "not applied voxel-wise. Use bed()/eqd2() for the target dose."
        )
    if not isinstance(dose_gy, np.ndarray):
        raise RadiobiologyError(f"dose_gy must be a numpy array, got {type(dose_gy).__name__}")
    if not np.issubdtype(dose_gy.dtype, np.floating) and not np.issubdtype(
        dose_gy.dtype, np.integer
    ):
        raise RadiobiologyError(f"dose_gy must be numeric, got dtype {dose_gy.dtype}")
    # the Numba kernels (and numba itself) load only when a voxel grid is converted: the
    # scalar calculator (`rtplan-assist bed`) starts without them
    from .kernels import eqd2 as _eqd2_kernels

    grid = np.ascontiguousarray(dose_gy, dtype=np.float64)
    bad = _eqd2_kernels.first_invalid_voxel(grid)
    if bad is not None:
        raise RadiobiologyError(
            f"dose_gy has an invalid value {grid[bad]!r} at voxel {bad}: doses must be finite "
            "and >= 0 Gy"
        )
    transition = None if model.name == "LQ" else model.transition_dose_gy
    return _eqd2_kernels.bed_voxels(grid, n, model.alpha_beta_gy, transition, to_eqd2=to_eqd2)


def bed_grid(dose_gy: np.ndarray, fractions: int, model: Model) -> np.ndarray:
    """Voxel-wise BED (Gy) of a plan's total-dose grid.

    Parameters
    ----------
    dose_gy : ndarray, any shape (a dose grid is ``(nz, ny, nx)``)
        Total physical dose per voxel (Gy) of one plan, finite and >= 0. Any real dtype and
        memory layout; converted to C-contiguous float64 (a copy when needed).
    fractions : int
        The plan's number of fractions; each voxel gets ``dose / fractions`` per fraction.
    model : Model
        Without a time factor.

    Returns
    -------
    ndarray of float64, same shape

    Raises
    ------
    RadiobiologyError
        NaN, infinite or negative voxel (the message gives its index), invalid fractions or
        model, or a model with a time factor.

    See Also
    --------
    eqd2_grid, bed
    """
    return _grid_call(dose_gy, fractions, model, to_eqd2=False)


def eqd2_grid(dose_gy: np.ndarray, fractions: int, model: Model) -> np.ndarray:
    """Voxel-wise EQD2 (Gy) of a plan's total-dose grid (reference §6.5).

    ``EQD2_i = D_i (D_i / n + α/β) / (2 + α/β)`` for LQ; LQ-L/USC continue linearly above the
    transition dose per fraction. Parameters, returns and errors as :func:`bed_grid`.

    Notes
    -----
    Per-voxel EQD2 of *one* plan. For a composite of plans, sum the per-plan grids (each with
    its own ``fractions``) and print :data:`COMPOSITE_CAVEATS`. The mean of voxel EQD2 is not
    the EQD2 of the mean dose: average the returned grid, never convert a mean.
    """
    return _grid_call(dose_gy, fractions, model, to_eqd2=True)


# --------------------------------------------------------------------------- DVH dose axes


@dataclass(frozen=True)
class DoseTransform:
    """A strictly increasing map physical total dose (Gy) → BED or EQD2 (Gy) for one plan.

    Call it on a DVH dose axis (scalar or array) to relabel the axis; :meth:`inverse` maps back.

    Why this is exact for one plan: all voxels of a plan share the fraction number ``n``, and
    for fixed ``n`` BED/EQD2 is a strictly increasing function ``f`` of the voxel's total dose.
    So the volume receiving at least ``x`` Gy is the volume receiving at least ``f(x)`` Gy EQD2:
    the cumulative DVH in EQD2 is the physical cumulative DVH with its dose axis replaced by
    ``f(dose)``, and D-metrics (``D0.03cc``) and V-metrics (``V20Gy``) convert exactly.

    Why it is not exact for a sum of plans: a voxel's EQD2 depends on how its total dose splits
    between plans of different ``n`` (``Σ_p f_p(D_p)``), which a summed DVH does not record. The
    composite must be computed voxel-wise (:func:`eqd2_grid` per plan, then summed).

    Means are not preserved by any non-linear ``f``: the EQD2 mean dose is the mean of ``f``
    over the differential DVH (or the voxels), not ``f(mean dose)`` (reference §6.5).

    Attributes
    ----------
    fractions : int
    model : Model
    quantity : {"EQD2", "BED"}
    overall_time_days : float or None
    """

    fractions: int
    model: Model
    quantity: str = "EQD2"
    overall_time_days: float | None = None

    def __post_init__(self) -> None:
        _check_model(self.model)
        _check_fractions(self.fractions)
        if self.quantity not in ("EQD2", "BED"):
            raise RadiobiologyError(f"quantity must be 'EQD2' or 'BED', got {self.quantity!r}")
        _time_loss(self.model, self.overall_time_days)

    def __call__(self, dose_gy):
        function: Callable = eqd2 if self.quantity == "EQD2" else bed
        return function(dose_gy, self.fractions, self.model, self.overall_time_days)

    def inverse(self, value_gy):
        """Physical total dose (Gy) for a BED/EQD2 value (Gy)."""
        function: Callable = dose_for_eqd2 if self.quantity == "EQD2" else dose_for_bed
        return function(value_gy, self.fractions, self.model, self.overall_time_days)

    @property
    def label(self) -> str:
        """Axis label, e.g. ``"EQD2 (Gy); LQ, α/β = 3 Gy; n = 5"``."""
        return f"{self.quantity} (Gy); {self.model.describe()}; n = {self.fractions}"


def eqd2_transform(
    fractions: int, model: Model, overall_time_days: float | None = None
) -> DoseTransform:
    """Monotone map physical total dose (Gy) → EQD2 (Gy) for a plan of ``fractions`` fractions.

    Use it to relabel the dose axis of a single plan's DVH; see :class:`DoseTransform` for why
    that is exact for one plan and not for a sum of plans.

    >>> round(eqd2_transform(8, Model("LQ", 3.0))(60.0), 6)
    126.0
    """
    return DoseTransform(fractions, model, "EQD2", overall_time_days)


def bed_transform(
    fractions: int, model: Model, overall_time_days: float | None = None
) -> DoseTransform:
    """Monotone map physical total dose (Gy) → BED (Gy); see :func:`eqd2_transform`."""
    return DoseTransform(fractions, model, "BED", overall_time_days)
