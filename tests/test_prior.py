"""Prior courses (re-irradiation, issue 17): cumulative EQD2, recovery, registration, rules.

Expected values are computed by hand from the LQ model (reference §6.5-6.6,
EQD2 = D (d + α/β) / (2 + α/β)) and the published thresholds the rules cite; never from
the code's own output.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtplan_assist.prior import (
    DAYS_PER_MONTH,
    PriorCourse,
    PriorCourseError,
    cord_rules,
    evaluate_prior,
    load_prior_course,
    parse_recovery,
    recovery_fraction,
)

# cord α/β 2 (constraints/alpha_beta.csv), heart α/β 3
# prior 30 Gy/10 (d = 3):  cord 30 (3 + 2) / 4 = 37.5 Gy;  heart 30 (3 + 3) / 5 = 36 Gy
# current 50 Gy/5 (d = 10): cord 50 (10 + 2) / 4 = 150 Gy; heart 50 (10 + 3) / 5 = 130 Gy
CORD_PRIOR, CORD_CURRENT = 37.5, 150.0
HEART_PRIOR, HEART_CURRENT = 36.0, 130.0


@pytest.fixture(scope="module")
def uniform_case():
    """The demo case reduced to one plan (L1) given 50 Gy/5 with a uniform 50 Gy dose over its
    grid, and a uniform prior 30 Gy/10 on the same grid and frame."""
    from rtplan_assist.dicom import load_case
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.workflow import evaluate_folder

    case = load_case(demo_case_folder())
    plan = replace(case.plans[0], fractions=5, prescription_gy=50.0)
    dose = next(d for d in case.doses if d.referenced_plan_uid == plan.sop_instance_uid)
    dose = replace(dose, dose_gy=np.full(dose.grid.shape, 50.0, dtype=np.float32))
    case = replace(case, plans=[plan], doses=[dose])
    evaluation = evaluate_folder(case, regimens="planned")
    lesion = evaluation.lesions[0]
    prior = PriorCourse(folder="synthetic", dose=replace(dose, dose_gy=np.full(
        dose.grid.shape, 30.0, dtype=np.float32)), fractions=10, fractions_source="test",
        prescription_gy=30.0, date=None, to_current=np.eye(4), registration="same frame")
    return evaluation, {lesion.lesion_id: lesion.planned}, prior


def _organ(result, name):
    return next(o for o in result.organs if o.organ == name)


def test_uniform_prior_plus_current_is_the_analytic_cumulative_eqd2(uniform_case):
    evaluation, choice, prior = uniform_case
    result = evaluate_prior(evaluation, choice, prior, interval_days=400.0,
                            organs=["SpinalCord", "Heart"])
    cord, heart = _organ(result, "SpinalCord"), _organ(result, "Heart")
    assert cord.alpha_beta_gy == 2 and heart.alpha_beta_gy == 3
    for organ, prior_eqd2, current in ((cord, CORD_PRIOR, CORD_CURRENT),
                                       (heart, HEART_PRIOR, HEART_CURRENT)):
        for metric in ("Mean[Gy]", "Max[Gy]"):
            assert organ.metrics["prior"][metric] == pytest.approx(prior_eqd2, abs=0.01)
            assert organ.metrics["current"][metric] == pytest.approx(current, abs=0.01)
            # 37.5 + 150 = 187.5 Gy (cord), 36 + 130 = 166 Gy (heart)
            assert organ.metrics["cumulative"][metric] == pytest.approx(
                prior_eqd2 + current, abs=0.01)
    # Nieder: cumulative cord BED = 2 x 187.5 = 375 Gy2 > 135.5; HyTEC 187.5 > 70 Gy
    rules = {(r.source[:6], r.metric): r for r in result.rows if r.lesion_id == "re-irradiation"}
    assert rules[("Nieder", "cumulative BED Max[Gy]")].value == pytest.approx(375.0, abs=0.02)
    assert rules[("HyTEC ", "cumulative Max[Gy]")].status == "fail"
    assert result.verdict() == "fail"


@settings(max_examples=5, deadline=None)
@given(r=st.floats(min_value=0.0, max_value=0.95))
def test_recovery_discounts_only_the_prior_term(uniform_case, r):
    evaluation, choice, prior = uniform_case
    result = evaluate_prior(evaluation, choice, prior, interval_days=400.0,
                            recovery={"SpinalCord": r}, organs=["SpinalCord", "Heart"])
    cord, heart = _organ(result, "SpinalCord"), _organ(result, "Heart")
    assert cord.recovery == r and heart.recovery == 0.0
    # adjusted = (1 - r) * prior + current; the prior and current columns are untouched
    assert cord.metrics["cumulative adjusted"]["Mean[Gy]"] == pytest.approx(
        (1 - r) * CORD_PRIOR + CORD_CURRENT, abs=0.01)
    assert cord.metrics["current"]["Mean[Gy]"] == pytest.approx(CORD_CURRENT, abs=0.01)
    assert cord.metrics["prior"]["Mean[Gy]"] == pytest.approx(CORD_PRIOR, abs=0.01)
    assert cord.metrics["cumulative"]["Mean[Gy]"] == pytest.approx(CORD_PRIOR + CORD_CURRENT,
                                                                   abs=0.01)
    # an organ without recovery: adjusted = plain cumulative, 36 + 130 Gy
    assert heart.metrics["cumulative adjusted"]["Mean[Gy]"] == pytest.approx(166.0, abs=0.01)
    # the rules use the plain sums whatever the recovery (both were derived on plain sums)
    rules = {r.metric: r for r in result.rows if r.lesion_id == "re-irradiation"}
    assert rules["cumulative Max[Gy]"].value == pytest.approx(187.5, abs=0.01)


def test_recovery_policies():
    # nieder2006 steps (Doi 2021 [P], SlicerRadReirradiation [S]): 0 < 6 mo, 25 % >= 6, 50 % >= 12
    assert recovery_fraction("SpinalCord", "nieder2006", 5.9 * DAYS_PER_MONTH)[0] == 0.0
    assert recovery_fraction("SpinalCord", "nieder2006", 6 * DAYS_PER_MONTH)[0] == 0.25
    assert recovery_fraction("SpinalCord", "nieder2006", 12 * DAYS_PER_MONTH)[0] == 0.5
    assert recovery_fraction("SpinalCord", "nieder2006", 40 * DAYS_PER_MONTH)[0] == 0.5
    assert recovery_fraction("Esophagus", "nieder2006", 40 * DAYS_PER_MONTH)[0] == 0.0
    with pytest.raises(PriorCourseError, match="interval"):
        recovery_fraction("SpinalCord", "nieder2006", None)
    assert parse_recovery(["SpinalCord=0.25"]) == {"SpinalCord": 0.25}
    with pytest.raises(PriorCourseError):
        parse_recovery(["SpinalCord=1.5"])


def test_nieder_thresholds_and_hytec_rules():
    # Nieder 2006 abstract: small risk at cumulative BED <= 135.5 Gy2, interval >= 6 months,
    # each course <= 98 Gy2. 98 + 37.5 Gy2 = EQD2 (α/β 2) 49 + 18.75 = 67.75 Gy.
    cord = {"prior": 49.0, "current": 18.75, "cumulative": 67.75, "structure": "SpinalCord"}

    def nieder(days):
        rows = cord_rules("p", cord, True, ["L5"], days, "test")
        return {r.metric: r.status for r in rows if r.source.startswith("Nieder")}

    assert set(nieder(7 * DAYS_PER_MONTH).values()) == {"pass"}
    at5 = nieder(5 * DAYS_PER_MONTH)
    assert at5["interval[days]"] == "fail" and at5["cumulative BED Max[Gy]"] == "pass"
    # HyTEC (abstract): cumulative EQD2 <= 70 (67.75 passes); SBRT course <= 25 (18.75 passes);
    # ratio 18.75 / 67.75 = 0.277 <= 0.5; interval >= 5 months
    hytec = {r.metric: r for r in cord_rules("p", cord, True, ["L5"], 5 * DAYS_PER_MONTH, "t")
             if r.source.startswith("HyTEC")}
    assert hytec["SBRT/cumulative Max ratio"].value == pytest.approx(18.75 / 67.75)
    assert {r.status for r in hytec.values()} == {"pass"}
    assert not cord_rules("p", cord, True, ["L5"], None, "t")[-1].status == "pass"


@pytest.fixture(scope="module")
def prior_folders(tmp_path_factory):
    """The demo's prior course in its frame (pre-shifted) and in a frame shifted by a
    translation that is no multiple of the 2.5 mm grid, with its REG."""
    from rtplan_assist.demo import write_prior_course

    root = tmp_path_factory.mktemp("prior")
    shift = (3.7, -6.2, 11.3)
    same = write_prior_course(root / "same", patient_id="RTPA-DEMO-0000")
    shifted = write_prior_course(root / "shifted", patient_id="RTPA-DEMO-0000", registered=True,
                                 shift_mm=shift)
    return same, shifted, shift


def test_registration_with_a_known_translation_matches_the_preshifted_dose(
        demo_evaluation, prior_folders):
    evaluation, result = demo_evaluation
    same_dir, shifted_dir, shift = prior_folders
    same = load_prior_course(same_dir, evaluation.case)
    shifted = load_prior_course(shifted_dir, evaluation.case)
    assert same.registration == "same frame of reference"
    assert "REG.prior.dcm" in shifted.registration
    # the REG maps prior -> current coordinates: p_current = p_prior - shift
    assert np.allclose(shifted.to_current[:3, 3], -np.array(shift), atol=1e-9)
    assert shifted.fractions == 10 and shifted.prescription_gy == 30.0
    organs = ["Heart", "Liver"]  # inside both prior grids
    a = evaluate_prior(evaluation, result.choice, same, organs=organs)
    b = evaluate_prior(evaluation, result.choice, shifted, organs=organs)
    for oa, ob in zip(a.organs, b.organs):
        mean_a, mean_b = oa.metrics["prior"]["Mean[Gy]"], ob.metrics["prior"]["Mean[Gy]"]
        assert mean_a > 1.0  # the field reaches the organ
        assert mean_b == pytest.approx(mean_a, rel=0.005)
        assert not ob.outside_note
    # the interval from the RTPlanDates: 2024-01-05 -> 2025-01-10 = 371 days
    assert a.interval_days == 371.0
    assert a.reirradiation_type == "type 1 re-irradiation" and a.overlap_cc > 0


def test_missing_registration_exits_2_with_one_line(demo_evaluation, prior_folders, tmp_path,
                                                     capsys):
    from rtplan_assist.cli import main

    evaluation, _ = demo_evaluation
    _, shifted_dir, _ = prior_folders
    bare = tmp_path / "no-reg"
    shutil.copytree(shifted_dir, bare)
    (bare / "REG.prior.dcm").unlink()
    capsys.readouterr()
    code = main(["evaluate", evaluation.case.folder, "--prior", str(bare), "--format", "text"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "no DICOM registration (REG)" in err[0] and "not summed" in err[0]


def test_prior_outputs_json_csv_text(demo_evaluation, prior_folders):
    import csv
    import io
    import json

    from rtplan_assist.evaluation import result_to_csv, result_to_dict
    from rtplan_assist.prior import render_with_prior

    evaluation, result = demo_evaluation
    same_dir, _, _ = prior_folders
    prior = evaluate_prior(evaluation, result.choice, load_prior_course(same_dir, evaluation.case),
                           recovery="nieder2006", organs=["SpinalCord", "Heart"])
    payload = json.loads(render_with_prior(json.dumps(result_to_dict(result)), "json", result,
                                           prior))
    section = payload["prior_course"]
    assert section["fractions"] == 10 and section["interval_days"] == 371.0
    cord = next(o for o in section["organs"] if o["organ"] == "SpinalCord")
    assert cord["recovery"] == 0.5 and cord["alpha_beta_gy"] == 2 and cord["unit"] == "Gy"
    # the cord inside the 30 Gy/10 field: prior EQD2 Max 37.5 Gy (α/β 2), to the dose's
    # quantisation (DoseGridScaling ~ 30 Gy / 65000)
    assert cord["courses"]["prior"]["Max[Gy]"] == pytest.approx(37.5, abs=0.05)
    assert payload["verdict_with_prior"] in ("fail", "not evaluable", "pass")
    text = render_with_prior(result_to_csv(result), "csv", result, prior)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {"prior", "cumulative", "re-irradiation"} <= {r["lesion_id"] for r in rows}
    assert "PRIOR COURSE" in render_with_prior("", "text", result, prior)


def test_cumulative_eqd2_exported_as_rtdose_reads_back(uniform_case, tmp_path):
    from rtplan_assist.dicom.rtdose import read_dose
    from rtplan_assist.export import write_eqd2_rtdose
    from rtplan_assist.prior import cumulative_eqd2_grid

    evaluation, choice, prior = uniform_case
    grid, eqd2 = cumulative_eqd2_grid(evaluation, choice, prior, 2.0)
    out = tmp_path / "RD.cumulative.dcm"
    write_eqd2_rtdose(evaluation.case, grid, eqd2, out, model_note="EQD2 prior+current a/b=2",
                      referenced_plans=[evaluation.lesions[0].plan.sop_instance_uid])
    back = read_dose(out)
    # 37.5 + 150 = 187.5 Gy EQD2 (α/β 2) in every voxel, to the uint32 quantisation
    assert back.dose_type == "EFFECTIVE"
    assert np.allclose(back.dose_gy, 187.5, atol=1e-4)


def test_prior_html_sections(demo_evaluation, prior_folders):
    from rtplan_assist.app.callbacks.prior import prior_page
    from rtplan_assist.prior import prior_html

    evaluation, result = demo_evaluation
    same_dir, _, _ = prior_folders
    prior = evaluate_prior(evaluation, result.choice, load_prior_course(same_dir, evaluation.case),
                           interval_days=100.0, organs=["SpinalCord"])
    page = prior_html(prior)
    assert "Nieder 2006" in page and "HyTEC" in page and "α/β" in page
    # 100 days < 5 months (HyTEC) and < 6 months (Nieder): both interval rows fail
    intervals = [r for r in prior.rows if r.metric == "interval[days]"]
    assert len(intervals) == 2 and {r.status for r in intervals} == {"fail"}
    assert prior.verdict() == "fail"
    ids = {getattr(c, "id", None) for c in prior_page(prior)}
    assert {"prior-verdict", "prior-table", "prior-rules"} <= ids
    # the Nieder summary line names the interval among the unmet conditions
    line = next(x for x in page.split("<li>") if x.startswith("Nieder 2006 low-risk"))
    assert "not met (" in line and "interval[days]" in line
    from rtplan_assist.report import _prior_section

    section = _prior_section(prior, evaluation.case, result, True)  # the MDT report's
    assert "Prior course (re-irradiation)" in section and "RTPA-DEMO-0000" not in section


def test_demo_prior_course_end_to_end_in_the_cli(demo_evaluation, prior_folders, tmp_path):
    import json

    from rtplan_assist.cli import main
    from rtplan_assist.dicom.rtdose import read_dose

    evaluation, _ = demo_evaluation
    _, shifted_dir, _ = prior_folders
    regimens = tmp_path / "regimens.csv"
    regimens.write_text("lesion,total_dose_gy,fractions\n*,30,5\n", encoding="utf-8")
    out, dose = tmp_path / "e.json", tmp_path / "RD.cum.dcm"
    code = main(["evaluate", evaluation.case.folder, "--prior", str(shifted_dir),
                 "--regimens", str(regimens), "--format", "json", "--out", str(out),
                 "--recovery", "nieder2006", "--prior-export", str(dose), "--deidentify"])
    payload = json.loads(out.read_text(encoding="utf-8"))
    section = payload["prior_course"]
    assert "REG.prior.dcm" in section["registration"]
    assert section["reirradiation_type"] == "type 1 re-irradiation"
    assert section["interval_days"] == 371.0  # 2024-01-05 -> 2025-01-10
    cord = next(o for o in section["organs"] if o["organ"] == "SpinalCord")
    assert cord["recovery"] == 0.5  # nieder2006 at 12.2 months
    assert section["folder"] == "(withheld)" and "RTPA-DEMO-0000" not in out.read_text()
    # the exit code follows the verdict with the prior course
    assert code == {"pass": 0, "fail": 1}.get(payload["verdict_with_prior"], 2)
    back = read_dose(dose)
    assert back.dose_type == "EFFECTIVE" and float(back.dose_gy.max()) > 37.5


def test_a_prior_course_with_nothing_judged_is_not_a_pass(demo_evaluation, prior_folders):
    # organs without a cumulative limit or re-irradiation rule (here only the heart's and
    # liver's advisory rows, if any): no mandatory row counts, so the prior-course verdict is
    # "not evaluable", never "pass" (the project's rule: nothing evaluated is never a pass)
    from dataclasses import replace

    evaluation, result = demo_evaluation
    prior = load_prior_course(prior_folders[0], evaluation.case)
    judged = evaluate_prior(evaluation, result.choice, prior, organs=["Heart", "Liver"])
    nothing = replace(judged, rows=[r for r in judged.rows if r.priority != "mandatory"])
    assert nothing.verdict() == "not evaluable"


def test_the_prior_summary_says_the_recommendation_ignores_the_prior_course(
        demo_evaluation, prior_folders):
    # not done (issue 17): the recommendation search does not use the cumulative rows; every
    # output that shows the prior course says its verdict is of the shown regimens
    from rtplan_assist.prior import (PRIOR_SCOPE_NOTE, prior_summary_lines, prior_text,
                                     prior_to_dict)

    evaluation, result = demo_evaluation
    prior = load_prior_course(prior_folders[0], evaluation.case)
    judged = evaluate_prior(evaluation, result.choice, prior, organs=["SpinalCord"])
    assert prior_summary_lines(judged)[-1] == PRIOR_SCOPE_NOTE
    assert "does not take the prior course into account" in prior_text(judged)
    assert prior_to_dict(judged)["verdict_scope"] == PRIOR_SCOPE_NOTE
