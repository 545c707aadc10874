"""Targets and prescriptions from the user, plans with several targets, clear reasons when
no lesion is found (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluation import GRID, box, dose, plan

from rtplan_assist.cli import main
from rtplan_assist.errors import EvaluationError
from rtplan_assist.evaluation import CaseEvaluator
from rtplan_assist.evaluation.lesions import find_lesions
from rtplan_assist.model import Case
from rtplan_assist.regimens import Regimen


def eqd2(total, n, ab):
    """LQ EQD2 by hand (reference §6.1)."""
    return total * (total / n + ab) / (2 + ab)


def two_target_case(d_a: float = 12.0, d_b: float = 8.0, *, referenced: bool = True) -> Case:
    """One RTPLAN (5 fractions, 40 Gy) prescribing to PTV_A and PTV_B, one RTDOSE; an
    oesophagus box where target A's dose contributes ``d_a`` Gy and B's ``d_b`` Gy, each
    uniform (the uniform-overlap case): the plan's dose there is ``d_a + d_b``. A second plan
    (P2, 10 fractions) puts nothing in the oesophagus."""
    structures = [
        box(1, "PTV_A", (4, 4, 4), (12, 12, 12), "PTV"),
        box(2, "PTV_B", (38, 38, 38), (46, 46, 46), "PTV"),
        box(3, "Esophagus", (16, 20, 20), (34, 30, 30)),
        box(4, "PTV_C", (4, 38, 38), (12, 46, 46), "PTV"),
    ]
    values = np.zeros(GRID.shape)
    values[:, :, :] = d_a + d_b  # A's and B's doses overlap uniformly
    p1 = plan("P1", "Two mets", 5, 40.0, 1 if referenced else None)
    if referenced:
        p1.target_roi_numbers = (1, 2)
    else:
        p1.prescription_gy = None
    p2 = plan("P2", "Third", 10, 30.0, 4)
    third = np.zeros(GRID.shape)
    third[20:, 20:, :8] = 30.0
    doses = [dose("D1", values, "P1"), dose("D2", third, "P2")]
    return Case("/two", "SYN-2T", "Syn^Two", "1.4", "FOR", structures, doses, [p1, p2])


def test_a_plan_with_two_targets_is_two_lesions_one_regimen_same_session_composite():
    """Hand calculation: the oesophagus gets d = 12 + 8 = 20 Gy in 5 fractions from the one
    plan, delivered in the same session: EQD2 = 20 (20/5 + 3) / 5 = 28 Gy (α/β 3). Adding the
    targets' EQD2s as separate courses would give 12 (12/5 + 3)/5 + 8 (8/5 + 3)/5 = 12.96 +
    7.36 = 20.32 Gy (an underestimate, reference §6.6), and counting the plan's dose once
    per target 2 × 28 = 56 Gy (double counting)."""
    ev = CaseEvaluator(two_target_case(), regimens={"*": [Regimen(5, 40.0), Regimen(5, 30.0)]})
    assert [(x.lesion_id, x.target.name) for x in ev.lesions] == [
        ("L1", "PTV_A"), ("L2", "PTV_B"), ("L3", "PTV_C")]
    assert ev.lesions[0].plan is ev.lesions[1].plan and ev.plan_units() == [["L1", "L2"], ["L3"]]
    choice = {"L1": Regimen(5, 40.0), "L2": Regimen(5, 40.0), "L3": Regimen(10, 30.0)}
    dvh = ev.composite_dvhs(choice)["Esophagus"]
    assert dvh.dmean_gy == pytest.approx(eqd2(20, 5, 3), rel=1e-4)  # 28 Gy
    assert eqd2(20, 5, 3) == pytest.approx(28.0)
    assert eqd2(12, 5, 3) + eqd2(8, 5, 3) == pytest.approx(20.32)
    # scaled together: 30 Gy/5 is a factor 0.75 on the plan: 15 Gy in 5 fx -> 15 (3 + 3)/5
    half = dict(choice, L1=Regimen(5, 30.0), L2=Regimen(5, 30.0))
    assert ev.composite_dvhs(half)["Esophagus"].dmean_gy == pytest.approx(18.0, rel=1e-4)
    rec = ev.recommend()
    assert rec.choice["L1"] == rec.choice["L2"]  # one regimen per plan
    # the per-target rows are per target
    rows = ev.lesion_rows("L2", Regimen(5, 40.0))
    assert {r.structure for r in rows if r.role == "target" and r.metric == "D95%[Gy]"} == {"PTV_B"}


def test_targets_and_prescriptions_from_the_user_and_the_reasons():
    case = two_target_case(referenced=False)
    reasons: list[str] = []
    lesions = find_lesions(case, [], reasons=reasons)
    assert [x.plan.label for x in lesions] == ["Third"]
    (why,) = reasons
    assert "RTPLAN 'Two mets'" in why and "no target prescription dose" in why
    assert "--prescription 'Two mets=DOSE/FRACTIONS'" in why
    assert "several PTVs (PTV_A, PTV_B, PTV_C)" in why and "--target 'Two mets=ROI" in why
    lesions = find_lesions(case, [], targets={"two mets": ["PTV_A", "ptv_b"]},
                           prescriptions={"P1.dcm": Regimen(4, 48.0)})
    assert [(x.target.name, x.planned) for x in lesions[:2]] == [
        ("PTV_A", Regimen(4, 48.0)), ("PTV_B", Regimen(4, 48.0))]
    with pytest.raises(EvaluationError, match="no RTPLAN of the case is called 'Nope'.*Two mets"):
        find_lesions(case, [], targets={"Nope": ["PTV_A"]})
    with pytest.raises(EvaluationError, match="no structure 'PTV_X'.*PTV_A"):
        find_lesions(case, [], targets={"Two mets": ["PTV_X"]},
                     prescriptions={"Two mets": Regimen(5, 40.0)})


@pytest.fixture(scope="module")
def no_prescription_demo(tmp_path_factory):
    from rtplan_assist.demo import write_demo_patient

    return write_demo_patient(tmp_path_factory.mktemp("noprx"), variant="no-prescription")


def test_demo_without_prescriptions_lists_each_plan_and_the_fix(no_prescription_demo, capsys):
    folder = str(no_prescription_demo)
    assert main(["evaluate", folder, "--format", "text"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no lesion to evaluate" in err
    for label, file in (("L1 RUL", "RP.L1.dcm"), ("L4 liver", "RP.L4.dcm"),
                        ("L5 T8 vertebra", "RP.L5.dcm")):
        assert f"RTPLAN '{label}' ({file})" in err
        assert f"--prescription '{label}=DOSE/FRACTIONS'" in err
    # with the prescriptions (by label or file name) and a target it evaluates
    args = ["evaluate", folder, "--format", "json", "--out", str(no_prescription_demo / "o.json"),
            "--prescription", "L1 RUL=54/3", "--prescription", "L2 LUL central=60/8",
            "--prescription", "RP.L3.dcm=50/5", "--prescription", "L4 liver=50 Gy/5",
            "--prescription", "L5 T8 vertebra=27/3", "--target", "RP.L4=PTV_4"]
    assert main(args) in (0, 1)
    import json

    data = json.loads((no_prescription_demo / "o.json").read_text())
    assert [x["planned"] for x in data["lesions"]] == [
        "54 Gy/3", "60 Gy/8", "50 Gy/5", "50 Gy/5", "27 Gy/3"]
    assert set(data["recommendation"]["reasons"]) == {"L1", "L2", "L3", "L4", "L5"}
    assert main(["evaluate", folder, "--target", "L1 RUL"]) == 2
    assert "expected PLAN=ROI" in capsys.readouterr().err


def test_demo_variant_with_one_plan_of_two_targets(tmp_path):
    """``demo --variant two-targets``: L3 (subcarinal node) and L4 (liver), both 50 Gy/5, in
    one RTPLAN with two TARGET dose references and one RTDOSE: two lesions sharing the plan
    (its dose and its regimen), the composite counting the plan once."""
    from rtplan_assist.demo import write_demo_patient
    from rtplan_assist.dicom import load_case

    folder = write_demo_patient(tmp_path, variant="two-targets")
    assert not (folder / "RP.L4.dcm").exists()
    case = load_case(folder)
    lesions = find_lesions(case, [])
    assert [(x.lesion_id, x.target.name) for x in lesions] == [
        ("L1", "PTV_1"), ("L2", "PTV_2"), ("L3", "PTV_3"), ("L4", "PTV_4"), ("L5", "PTV_5")]
    assert lesions[2].plan is lesions[3].plan and lesions[2].dose is lesions[3].dose
    assert lesions[2].planned == lesions[3].planned == Regimen(5, 50.0)
    assert lesions[3].site == "liver"  # from the liver contour, not the shared plan label


@pytest.fixture(scope="module")
def renamed_demo(tmp_path_factory):
    """The demo with L5's RTPLAN and RTDOSE under another PatientID (as after anonymising
    the planning export separately) and L4's RTDOSE in another frame of reference."""
    import shutil

    import pydicom

    from rtplan_assist.demo import demo_case_folder

    folder = shutil.copytree(demo_case_folder(), tmp_path_factory.mktemp("mismatch") / "p")
    for name in ("RP.L5.dcm", "RD.L5.dcm"):
        ds = pydicom.dcmread(folder / name)
        ds.PatientID = "ANON-0001"
        ds.save_as(folder / name)
    ds = pydicom.dcmread(folder / "RD.L4.dcm")
    ds.FrameOfReferenceUID = "1.2.3.4.5"
    ds.save_as(folder / "RD.L4.dcm")
    return folder


def test_patient_mismatch_is_refused_then_accepted_with_the_option(renamed_demo, capsys):
    from rtplan_assist.dicom import load_case
    from rtplan_assist.workflow import evaluate_folder

    assert main(["evaluate", str(renamed_demo)]) == 2
    assert "2 patients" in capsys.readouterr().err
    case = load_case(renamed_demo, allow_patient_mismatch=True)
    accepted = [w for w in case.warnings if "accepted by --allow-patient-mismatch" in w]
    assert len(accepted) == 2 and all("same frame of reference" in w for w in accepted)
    assert "RD.L5.dcm" in " ".join(accepted) and "ANON-0001" not in " ".join(accepted)
    # the frame-of-reference mismatch names both UIDs
    (moved,) = [w for w in case.warnings if w.startswith("RD.L4.dcm")]
    assert "1.2.3.4.5" in moved and case.frame_of_reference_uid in moved
    ev = evaluate_folder(renamed_demo, allow_patient_mismatch=True)
    assert [x.lesion_id for x in ev.lesions] == ["L1", "L2", "L3", "L4"]  # L4's dose refused
    assert ev.lesions[-1].label == "L5 T8 vertebra"


def test_targets_and_prescriptions_from_the_mapping_files(no_prescription_demo, tmp_path):
    """The patient folder's mapping file (and a --map-file) may carry --target and
    --prescription rows; an option given explicitly wins over the file."""
    import shutil

    from rtplan_assist.workflow import evaluate_folder

    folder = shutil.copytree(no_prescription_demo, tmp_path / "p", ignore=shutil.ignore_patterns("o.json"))
    rows = "".join(f"--prescription,{label}={rx}\n" for label, rx in (
        ("L1 RUL", "54/3"), ("L2 LUL central", "60/8"), ("L3 subcarinal", "50/5"),
        ("L4 liver", "50/5")))
    with open(folder / "rtplan-assist-map.csv", "a", encoding="utf-8") as handle:
        handle.write(rows + '--target,"L4 liver=PTV_4"\n')
    extra = tmp_path / "extra.csv"
    extra.write_text("structure,tg263\n--prescription,L5 T8 vertebra=24/2\n", encoding="utf-8")
    ev = evaluate_folder(folder, map_file=extra,
                         prescriptions={"L1 RUL": Regimen(5, 55.0)})
    assert [x.planned.label for x in ev.lesions] == [
        "55 Gy/5", "60 Gy/8", "50 Gy/5", "50 Gy/5", "24 Gy/2"]
    assert ev.lesions[3].target.name == "PTV_4"
    extra.write_text("structure,tg263\n--prescription,L5 T8 vertebra\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match="extra.csv:2: --prescription"):
        evaluate_folder(folder, map_file=extra)
