"""Radiobiology checks. Expected numbers come from outside the code: the issue text, the
reference ``shared/reference/constraints-radiobiology.md`` (cited as "ref §x") or a hand
calculation written next to the assertion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rtplan_assist.kernels import eqd2 as kernels

from rtplan_assist.errors import RadiobiologyError
from rtplan_assist.radiobiology import (
    COMPOSITE_CAVEATS,
    Model,
    TimeFactor,
    bed,
    bed_grid,
    dose_for_bed,
    dose_for_eqd2,
    eqd2,
    eqd2_grid,
    eqd2_transform,
    usc_park2008_nsclc,
)

LQ10 = Model("LQ", 10.0)
LQ3 = Model("LQ", 3.0)
LQ2 = Model("LQ", 2.0)


# ----------------------------------------------------------------------------- LQ, uniform


def test_issue_values_50gy_5fx_ab10():
    # issue + ref §6.1: BED = 50 (1 + 10/10) = 100 Gy; EQD2 = 100 / 1.2 = 83.33 Gy
    assert bed(50.0, 5, LQ10) == pytest.approx(100.0)
    assert eqd2(50.0, 5, LQ10) == pytest.approx(83.3333, abs=1e-4)


def test_issue_values_60gy_8fx_ab3():
    # issue + ref §6.1: BED = 60 (1 + 7.5/3) = 210 Gy; EQD2 = 210 / (5/3) = 126 Gy
    assert bed(60.0, 8, LQ3) == pytest.approx(210.0)
    assert eqd2(60.0, 8, LQ3) == pytest.approx(126.0)


@pytest.mark.parametrize(
    ("total", "n", "bed10", "eqd2_10", "bed3", "eqd2_3"),
    [
        # ref §6.1 "Default regimen catalogue" (rounded to 0.1 Gy there)
        (34.0, 1, 149.6, 124.7, 419.3, 251.6),
        (54.0, 3, 151.2, 126.0, 378.0, 226.8),
        (48.0, 4, 105.6, 88.0, 240.0, 144.0),
        (55.0, 5, 115.5, 96.2, 256.7, 154.0),
        (50.0, 10, 75.0, 62.5, 133.3, 80.0),
        (45.0, 15, 58.5, 48.8, 90.0, 54.0),
        (60.0, 15, 84.0, 70.0, 140.0, 84.0),
        (60.0, 30, 72.0, 60.0, 100.0, 60.0),
    ],
)
def test_regimen_catalogue(total, n, bed10, eqd2_10, bed3, eqd2_3):
    assert bed(total, n, LQ10) == pytest.approx(bed10, abs=0.051)
    assert eqd2(total, n, LQ10) == pytest.approx(eqd2_10, abs=0.051)
    assert bed(total, n, LQ3) == pytest.approx(bed3, abs=0.051)
    assert eqd2(total, n, LQ3) == pytest.approx(eqd2_3, abs=0.051)


def test_hand_computed_values():
    # 2 Gy fractions: EQD2 equals the physical dose at any α/β
    assert eqd2(70.0, 35, Model("LQ", 0.87)) == pytest.approx(70.0)
    # 18 Gy / 3 at α/β 2: BED = 18 (1 + 6/2) = 72; EQD2 = 72 / 2 = 36 (ref §10.3 example)
    assert eqd2(18.0, 3, LQ2) == pytest.approx(36.0)
    # 30 Gy / 5 at α/β 2: BED = 30 (1 + 3) = 120; EQD2 = 60
    assert eqd2(30.0, 5, LQ2) == pytest.approx(60.0)
    # zero dose: zero effect
    assert bed(0.0, 1, LQ3) == 0.0


def test_array_in_array_out_and_scalar_in_float_out():
    values = bed(np.array([50.0, 60.0]), 5, LQ10)
    assert isinstance(values, np.ndarray)
    np.testing.assert_allclose(values, [100.0, 60.0 * (1 + 12 / 10)])
    assert isinstance(bed(50.0, 5, LQ10), float)


# ----------------------------------------------------------------------------- inverse


def test_inverse_hand_solved():
    # EQD2 36 Gy, α/β 2, 3 fx: D + D²/6 = 72 -> D² + 6 D - 432 = 0 -> D = 18 Gy
    assert dose_for_eqd2(36.0, 3, LQ2) == pytest.approx(18.0)
    # ref §10.3: D0.035cc <= 30 Gy in 5 fx at α/β 2 "becomes 36.5 Gy in 8 fx"
    # EQD2 = 30 (6 + 2)/4 = 60; D²/32 + D/2 - 60 = 0 -> D = 16 (-0.5 + sqrt(7.75)) = 36.54
    assert dose_for_eqd2(60.0, 8, LQ2) == pytest.approx(36.54, abs=0.005)


@pytest.mark.parametrize(
    ("source_dose", "target_n", "expected"),
    [
        # ref §2 "Reading of HMR": TG-101 5-fx maxima converted to 8 fx at α/β 3
        (53.0, 8, 64.9),
        (38.0, 8, 46.0),
        (43.0, 8, 52.3),
    ],
)
def test_inverse_reproduces_hmr_8fx_conversions(source_dose, target_n, expected):
    assert dose_for_eqd2(eqd2(source_dose, 5, LQ3), target_n, LQ3) == pytest.approx(
        expected, abs=0.051
    )


@pytest.mark.parametrize(
    ("target_n", "expected"),
    # ref §5.3: cord Dmax 50 Gy / 25 fx (EQD2 50) at α/β 2 in n fractions
    [(1, 13.2), (3, 21.7), (5, 27.0), (8, 32.8), (10, 35.8), (15, 41.8)],
)
def test_inverse_reproduces_reference_cord_conversions(target_n, expected):
    assert dose_for_eqd2(eqd2(50.0, 25, LQ2), target_n, LQ2) == pytest.approx(expected, abs=0.051)


@pytest.mark.parametrize(
    "model", [LQ10, LQ3, Model("LQ-L", 10.0, 6.0), Model("USC", 8.6, 6.13), usc_park2008_nsclc()]
)
@pytest.mark.parametrize("n", [1, 3, 5, 8, 30])
def test_inverse_round_trip(model, n):
    doses = np.array([0.0, 1.0, 12.0, 34.0, 60.0, 120.0])
    np.testing.assert_allclose(dose_for_bed(bed(doses, n, model), n, model), doses, atol=1e-9)
    np.testing.assert_allclose(dose_for_eqd2(eqd2(doses, n, model), n, model), doses, atol=1e-9)


# ----------------------------------------------------------------------------- LQ-L / USC


def test_lql_equals_lq_at_or_below_transition():
    lql = Model("LQ-L", 10.0, 8.0)
    doses = np.linspace(0.0, 8.0 * 5, 41)  # d <= 8 Gy in 5 fx
    np.testing.assert_allclose(bed(doses, 5, lql), bed(doses, 5, LQ10))


def test_lql_continuity_of_value_and_slope_at_transition():
    dt, ab, eps = 6.0, 10.0, 1e-6
    lql = Model("LQ-L", ab, dt)
    below, at, above = bed([dt - eps, dt, dt + eps], 1, lql)
    assert above - at == pytest.approx(at - below, rel=1e-5)  # slope continuous
    assert at == pytest.approx(dt * (1 + dt / ab))  # value equals LQ at d_T
    # slope beyond d_T is the LQ derivative 1 + 2 d_T/(α/β) = 2.2 (ref §6.4)
    assert (bed(20.0, 1, lql) - bed(10.0, 1, lql)) / 10.0 == pytest.approx(2.2)


def test_usc_continuity_and_lq_limit():
    usc = usc_park2008_nsclc()
    dt = usc.transition_dose_gy
    lq = Model("LQ", usc.alpha_beta_gy)
    assert bed(dt * 0.9, 1, usc) == pytest.approx(bed(dt * 0.9, 1, lq))
    eps = 1e-6
    below, at, above = bed([dt - eps, dt, dt + eps], 1, usc)
    assert above - at == pytest.approx(at - below, rel=1e-5)
    # Park 2008 linear part: BED/fx = (d - Dq)/(α D0) above D_T
    d = 20.0
    assert bed(d, 1, usc) == pytest.approx((d - usc.dq_gy) / (usc.alpha_per_gy * usc.d0_gy))


def test_usc_derived_parameters_match_reference():
    # ref §6.4 [C]: α 0.33, D0 1.25, Dq 1.8 give D_T = 6.13 Gy and α/β = 8.60 Gy
    usc = usc_park2008_nsclc()
    assert usc.transition_dose_gy == pytest.approx(6.13, abs=0.005)
    assert usc.alpha_beta_gy == pytest.approx(8.60, abs=0.01)
    assert not usc.verified
    assert "UNVERIFIED" in usc.describe()


@pytest.mark.parametrize(
    ("total", "n", "usc_bed", "lql6", "lql8"),
    # ref §6.4 worked comparison [C]: USC (α/β 8.6, D_T 6.13), LQ-L BED10 with d_T 6 and 8 Gy
    [(34.0, 1, 78.1, 71.2, 82.0), (54.0, 3, 117.8, 108.0, 121.2), (50.0, 5, 99.4, 92.0, 98.0)],
)
def test_reference_worked_comparison(total, n, usc_bed, lql6, lql8):
    assert bed(total, n, usc_park2008_nsclc()) == pytest.approx(usc_bed, abs=0.051)
    assert bed(total, n, Model("LQ-L", 10.0, 6.0)) == pytest.approx(lql6, abs=0.051)
    assert bed(total, n, Model("LQ-L", 10.0, 8.0)) == pytest.approx(lql8, abs=0.051)


def test_usc_60gy_8fx_reference():
    # ref §6.4: 60 Gy / 8 under USC 110.5 Gy (d = 7.5 Gy is above D_T = 6.13 Gy)
    assert bed(60.0, 8, usc_park2008_nsclc()) == pytest.approx(110.5, abs=0.1)


def test_transition_dose_is_required():
    with pytest.raises(RadiobiologyError, match="transition_dose_gy"):
        Model("LQ-L", 10.0)
    with pytest.raises(RadiobiologyError, match="transition_dose_gy"):
        Model("USC", 10.0)


# ----------------------------------------------------------------------------- time factor


def test_time_factor_off_by_default_and_required_time():
    assert LQ10.time_factor is None
    with pytest.raises(RadiobiologyError, match="no time factor"):
        bed(60.0, 30, LQ10, overall_time_days=39)
    with_time = Model("LQ", 10.0, time_factor=TimeFactor(28.0, 0.77))
    with pytest.raises(RadiobiologyError, match="overall_time_days"):
        bed(60.0, 30, with_time)


def test_time_factor_reference_illustration():
    # ref §6.3 [C] with illustrative (unverified) Tk 28 d, Tpot 3 d, α 0.3/Gy:
    # 60 Gy/30 over 39 days loses (0.693/0.3)(39 - 28)/3 ≈ 8.5 Gy of BED10
    tf = TimeFactor.from_tpot(28.0, 3.0, 0.3, source="ref §6.3 illustration [U]", verified=False)
    model = Model("LQ", 10.0, time_factor=tf)
    assert bed(60.0, 30, LQ10) - bed(60.0, 30, model, overall_time_days=39) == pytest.approx(
        math.log(2) / 0.3 * 11 / 3
    )
    assert bed(60.0, 30, LQ10) - bed(60.0, 30, model, 39) == pytest.approx(8.5, abs=0.05)
    # SBRT shorter than Tk: no loss
    assert bed(50.0, 5, model, overall_time_days=12) == pytest.approx(100.0)
    assert "UNVERIFIED" in model.describe()
    # inverse with time factor
    assert dose_for_bed(bed(60.0, 30, model, 39), 30, model, 39) == pytest.approx(60.0)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1.0, 5, LQ10), ">= 0"),
        ((float("nan"), 5, LQ10), "NaN"),
        ((50.0, 0, LQ10), "fractions"),
        ((50.0, 2.5, LQ10), "fractions"),
        ((50.0, -3, LQ10), "fractions"),
        ((50.0, 5, 10.0), "Model"),
    ],
)
def test_invalid_input(args, message):
    with pytest.raises(RadiobiologyError, match=message):
        bed(*args)


@pytest.mark.parametrize("alpha_beta", [0.0, -3.0, float("nan"), float("inf")])
def test_invalid_alpha_beta(alpha_beta):
    with pytest.raises(RadiobiologyError, match="α/β"):
        Model("LQ", alpha_beta)


def test_unknown_model_name():
    with pytest.raises(RadiobiologyError, match="unknown model"):
        Model("LQL", 3.0)


def test_describe_labels():
    assert LQ3.describe() == "LQ, α/β = 3 Gy"
    assert Model("LQ-L", 10.0, 6.0).describe() == "LQ-L, α/β = 10 Gy, d_T = 6 Gy"
    assert Model("LQ", 0.87).describe() == "LQ, α/β = 0.87 Gy"


# ----------------------------------------------------------------------------- grids


def test_grid_hand_computed_2x2x2():
    # EQD2 = D (D/5 + 3)/5 at n = 5, α/β = 3, each voxel by hand:
    # 0 -> 0; 10 -> 10*5/5 = 10; 20 -> 20*7/5 = 28; 30 -> 30*9/5 = 54;
    # 40 -> 40*11/5 = 88; 50 -> 50*13/5 = 130; 60 -> 60*15/5 = 180; 5 -> 5*4/5 = 4
    dose = np.array([[[0, 10], [20, 30]], [[40, 50], [60, 5]]], dtype=np.float64)
    expected = np.array([[[0, 10], [28, 54]], [[88, 130], [180, 4]]], dtype=np.float64)
    np.testing.assert_allclose(eqd2_grid(dose, 5, LQ3), expected, rtol=0, atol=1e-12)
    # BED = EQD2 (1 + 2/3)
    np.testing.assert_allclose(bed_grid(dose, 5, LQ3), expected * 5 / 3, atol=1e-12)


@pytest.mark.parametrize(
    "model", [LQ3, LQ10, Model("LQ", 0.87), Model("LQ-L", 10.0, 6.0), usc_park2008_nsclc()]
)
@pytest.mark.parametrize("n", [1, 5, 30])
def test_grid_equals_scalar_formula(model, n):
    rng = np.random.default_rng(263)
    dose = rng.uniform(0.0, 70.0, size=(7, 11, 13))
    np.testing.assert_allclose(eqd2_grid(dose, n, model), eqd2(dose, n, model), rtol=1e-13)
    np.testing.assert_allclose(bed_grid(dose, n, model), bed(dose, n, model), rtol=1e-13)


def test_grid_accepts_float32_and_non_contiguous():
    rng = np.random.default_rng(1)
    dose = rng.uniform(0, 40, size=(4, 6, 8))
    strided = dose[:, ::2, :]
    np.testing.assert_allclose(eqd2_grid(strided, 3, LQ3), eqd2(strided, 3, LQ3))
    as32 = dose.astype(np.float32)
    np.testing.assert_allclose(eqd2_grid(as32, 3, LQ3), eqd2(as32.astype(np.float64), 3, LQ3))


def test_grid_rejects_nan_and_negative_with_voxel_index():
    dose = np.zeros((2, 3, 4))
    dose[1, 2, 3] = np.nan
    with pytest.raises(RadiobiologyError, match=r"\(1, 2, 3\)"):
        eqd2_grid(dose, 5, LQ3)
    dose[1, 2, 3] = -0.5
    with pytest.raises(RadiobiologyError, match="invalid value"):
        bed_grid(dose, 5, LQ3)
    with pytest.raises(RadiobiologyError, match="fractions"):
        eqd2_grid(np.zeros((2, 2, 2)), 0, LQ3)


def test_kernel_wrapper_checks_dtype_and_contiguity():
    with pytest.raises(TypeError):
        kernels.bed_voxels(np.zeros(4, dtype=np.float32), 1, 3.0)
    with pytest.raises(ValueError):
        kernels.bed_voxels(np.zeros((4, 4))[:, ::2], 1, 3.0)


def test_grid_refuses_time_factor():
    model = Model("LQ", 10.0, time_factor=TimeFactor(28.0, 0.77))
    with pytest.raises(RadiobiologyError, match="time factor"):
        eqd2_grid(np.zeros((1, 1, 1)), 30, model)


def test_mean_of_voxel_eqd2_differs_from_eqd2_of_mean_dose():
    # Two equal voxels, 10 Gy and 30 Gy in 5 fx, α/β 3 (ref §6.5):
    # voxel EQD2: 10 (2 + 3)/5 = 10 and 30 (6 + 3)/5 = 54 -> mean 32 Gy
    # mean dose 20 Gy -> EQD2 20 (4 + 3)/5 = 28 Gy
    voxels = np.array([10.0, 30.0])
    assert eqd2_grid(voxels, 5, LQ3).mean() == pytest.approx(32.0)
    assert eqd2(voxels.mean(), 5, LQ3) == pytest.approx(28.0)


# ----------------------------------------------------------------------------- DVH axis


def test_transform_maps_dvh_axis_exactly_for_one_plan():
    transform = eqd2_transform(5, LQ3)
    rng = np.random.default_rng(7)
    voxel_dose = rng.uniform(0.0, 60.0, 5000)
    voxel_eqd2 = eqd2_grid(voxel_dose, 5, LQ3)
    for threshold in (5.0, 20.0, 33.3):
        # V_x (physical) == V_{f(x)} (EQD2): volume fractions are equal, voxel by voxel
        assert np.mean(voxel_dose >= threshold) == np.mean(voxel_eqd2 >= transform(threshold))
    axis = np.linspace(0, 60, 13)
    np.testing.assert_allclose(transform.inverse(transform(axis)), axis, atol=1e-9)
    assert np.all(np.diff(transform(axis)) > 0)
    assert transform.label == "EQD2 (Gy); LQ, α/β = 3 Gy; n = 5"


def test_transform_not_exact_for_sum_of_plans():
    # Two voxels with the same summed physical dose 40 Gy from plans of 5 fx and 30 fx:
    # voxel A: 40 Gy all from the 5-fx plan -> EQD2 40 (8 + 3)/5 = 88 Gy
    # voxel B: 20 Gy (5 fx) + 20 Gy (30 fx) -> 20*7/5 + 20 (2/3 + 3)/5 = 28 + 14.67 = 42.67 Gy
    a = eqd2(40.0, 5, LQ3)
    b = eqd2(20.0, 5, LQ3) + eqd2(20.0, 30, LQ3)
    assert a == pytest.approx(88.0)
    assert b == pytest.approx(42.6667, abs=1e-4)


def test_composite_caveats_present():
    text = " ".join(COMPOSITE_CAVEATS)
    assert "same session" in text
    assert "registration" in text
    assert all(isinstance(item, str) and item for item in COMPOSITE_CAVEATS)
