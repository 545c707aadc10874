"""DVH engine against data other software wrote (``../shared/data``).

* Nelms et al., Med Phys 2015;42(8):4435-48 (dataset MP15-067): analytical values in
  ``nelms-dvh/analytical.csv``; the goals are dvh-accuracy.md §8 (G1) and issue 2.
* dicompyler-core's example export: the TPS's own cumulative DVHs in the RTDOSE
  (DVHSequence; per the data README their dose fields are in % of the 14 Gy prescription).
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from rtplan_assist.dicom import load_case
from rtplan_assist.dvh import compute_dvhs
from rtplan_assist.validation import CLINICAL, run_nelms, summarize

D_METRICS = ("d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy")

# Rows where the contour stack itself cannot represent the analytical solid to 2-3 %
# (dvh-accuracy.md §6.3): every D-metric miss must be one of these.
REPRESENTATION_LIMITED = ("RtCylinder_10", "RtCylinder_20", "RtCylinder_30", "Sphere_30",
                          "RtCone_20", "RtCone_30", "Cone_30")


@pytest.fixture(scope="module")
def nelms(shared_data):
    return run_nelms(shared_data / "nelms-dvh")


def test_nelms_has_90_rows_with_files(nelms):
    assert len(nelms) == 90  # data README: 90 of 100 rows have both files


def test_nelms_dmin_dmax_dmean_within_half_percent(nelms):
    for r in nelms:
        for m in ("dmin_gy", "dmax_gy", "dmean_gy"):
            assert abs(r.error_pct(m)) <= 0.5, (r.structure, r.gradient, m, r.error_pct(m))


def test_nelms_volume_equals_contour_stack_and_analytical_where_stack_can(nelms):
    for r in nelms:
        assert abs(r.error_pct("volume_cc", "stack")) <= 0.2, r.structure
        if abs(r.stack_error_pct("volume_cc")) <= 1.0:
            assert abs(r.error_pct("volume_cc")) <= 1.0, r.structure


def test_nelms_dose_metrics_beyond_3pct(nelms):
    """None on the 0.2 mm contour rows; at most 10 other rows, each explained by the stack."""
    fine = [r for r in nelms if r.contour_spacing_mm == 0.2]
    assert len(fine) == 30
    for r in fine:
        for m in D_METRICS:
            assert abs(r.error_pct(m)) <= 3, (r.structure, r.gradient, m, r.error_pct(m))
    missed_rows = {(r.structure, r.gradient) for r in nelms
                   if any(abs(r.error_pct(m)) > 3 for m in D_METRICS)}
    assert len(missed_rows) <= 10, sorted(missed_rows)
    for r in nelms:
        for m in D_METRICS:
            if abs(r.error_pct(m)) > 3:
                assert r.structure.startswith(REPRESENTATION_LIMITED), r.structure
                # the contour stack itself is off; the engine follows the stack
                assert abs(r.stack_error_pct(m)) > 2.0, (r.structure, m)
                assert abs(r.error_pct(m, "stack")) < 1.0, (r.structure, m)


def test_nelms_engine_matches_contour_stack_truth(nelms):
    """Engine error against the closed-form contour-stack DVH (no engine code in it)."""
    s = summarize(nelms)
    worst = s["worst_engine_error_vs_stack_pct"]
    assert worst["volume_cc"] < 1e-3
    assert worst["dmean_gy"] < 0.05  # % (goal: Dmean within 0.2 %)
    assert worst["dmin_gy"] < 0.01 and worst["dmax_gy"] < 0.01
    for r in nelms:
        for m in CLINICAL[1:]:
            ref = r.stack[m]
            # max(0.5 %, 0.05 Gy): issue 2's contour-exact tolerance, at 1 Gy/mm
            assert abs(r.engine[m] - ref) <= max(0.005 * abs(ref), 0.05), (r.structure, m)


DICOMPYLER_RX_GY = 14.0


def test_dicompyler_example_matches_its_tps_dvhs(shared_data):
    """Volumes, mean and max dose of the 14 Gy breast boost against the TPS's embedded
    DVHs. Tolerances are those of TPS-to-TPS comparisons for structures >= 10 cc
    (volume 3 %, mean and max 2 %; dvh-accuracy.md §5). The small ones (< 2 cc: Borders,
    Nodes, Scar) are where TPS voxel counting is known to disagree; they are reported, not
    asserted."""
    base = shared_data / "dicompyler-core-example"
    case = load_case([base / "rtss.dcm", base / "rtdose.dcm"])
    dvhs = compute_dvhs(case.structures, case.doses[0])
    names = {s.roi_number: s.name for s in case.structures}
    ds = pydicom.dcmread(base / "rtdose.dcm")
    checked = 0
    for item in ds.DVHSequence:
        h = dvhs[names[item.DVHReferencedROISequence[0].ReferencedROINumber]]
        tps_volume = float(item.DVHData[1])
        tps_mean = float(item.DVHMeanDose) / 100 * DICOMPYLER_RX_GY
        tps_max = float(item.DVHMaximumDose) / 100 * DICOMPYLER_RX_GY
        if h.name == "BODY":
            assert h.dmean_gy == pytest.approx(tps_mean, rel=0.02)
            continue
        if tps_volume < 10:
            continue
        assert h.volume_cc == pytest.approx(tps_volume, rel=0.03), h.name
        assert h.dmean_gy == pytest.approx(tps_mean, rel=0.02), h.name
        assert h.dmax_gy == pytest.approx(tps_max, rel=0.02), h.name
        checked += 1
    assert checked == 5  # Breast, Heart, Lt Lung, Tumor Bed, Tumor Bed Block


def test_every_nelms_clinical_value_is_finite(nelms):
    for r in nelms:
        for m in CLINICAL:
            assert math.isfinite(r.engine[m]), (r.structure, m)
            assert not np.isnan(r.stack[m]), (r.structure, m)
