"""Plain-language reasons (issue 14) on constructed evaluations: the value, limit, organ and
source of every sentence come from the constructed rows below, not from a snapshot of the
engine's output. BED10 of n × d: n d (1 + d / 10) (LQ, α/β 10 Gy; Fowler 1989)."""

from __future__ import annotations

import math
from types import SimpleNamespace

from rtplan_assist.evaluation.reasons import (
    all_reasons,
    composite_reason,
    percent_of_limit,
    recommended_reason,
    rejected_reason,
    row_sentence,
    source_name,
    value_and_limit,
)
from rtplan_assist.evaluation.records import EvaluationResult, Recommendation, ResultRow
from rtplan_assist.regimens import parse_regimen

R = parse_regimen


def row(lesion_id="L1", regimen="54 Gy/3", *, organ="Esophagus", structure="Esophagus",
        metric="D0.03cc[Gy]", value=20.0, unit="Gy", kind="physical", comparator="<=",
        limit=30.0, status="pass", priority="mandatory", role="oar",
        source="safron2_2016, Table 2, 48 Gy/4 arm (safron2_4fx.csv:6)", fractions=3,
        converted=None, alpha_beta=None, reason="") -> ResultRow:
    return ResultRow(
        patient_id="P", lesion_id=lesion_id, regimen=regimen, structure=structure, organ=organ,
        role=role, metric=metric, value=value, unit=unit, kind=kind,
        model="LQ" if kind == "EQD2" else "", alpha_beta_gy=alpha_beta, comparator=comparator,
        limit=limit, goal=None, status=status, reason=reason, source=source,
        constraint_fractions=fractions, converted_from_fractions=converted, priority=priority)


def result(lesions, rows, composite_rows, rec, choice=None) -> EvaluationResult:
    return EvaluationResult(
        patient_id="P", folder="(constructed)", lesions=lesions, rows=rows,
        composite_rows=composite_rows, recommendation=rec, choice=dict(choice or rec.choice),
        warnings=[], caveats=[], provenance={})


def lesion(lid, site, planned):
    return SimpleNamespace(lesion_id=lid, site=site, planned=R(planned), label=lid)


def test_per_lesion_binding_names_value_limit_organ_source():
    bad = row("L1", "54 Gy/3", organ="Stomach", structure="Stomach", metric="D0.035cc[Gy]",
              value=23.61, limit=22.2, status="fail", fractions=3,
              source="tg101_2010, serial-tissue table, 3 fx max point dose (tg101_2010_3fx.csv:34)")
    good = row("L1", "45 Gy/3", organ="Stomach", structure="Stomach", metric="D0.035cc[Gy]",
               value=19.7, limit=22.2, fractions=3, source=bad.source)
    rec = Recommendation(choice={"L1": R("45/3")}, binding={"L1": "machine text"},
                         deescalated=["L1"], composite_status="pass", explanation=[],
                         binding_rows={"L1": bad}, feasible={"L1": [R("45/3")]},
                         alternatives={"L1": R("54/3")})
    res = result([lesion("L1", "liver", "50/5")], [bad, good], [], rec)
    text = rejected_reason(res, "L1").text
    # 54 Gy/3: BED10 = 54 (1 + 18/10) = 151.2 Gy, the higher of the two options
    assert text.startswith("54 Gy/3 (BED10 151.2 Gy), the highest-BED10 option, is rejected: ")
    assert "stomach D0.035cc (physical) would be 23.6 Gy, limit 22.2 Gy (TG-101, 3 fx)" in text
    assert "instead of" not in text
    assert "tg101_2010_3fx.csv:34" in rejected_reason(res, "L1").details
    why = recommended_reason(res, "L1").text
    # 45 Gy/3 is the only option passing: the highest-BED10 one that keeps every limit
    assert why.startswith("45 Gy/3 is recommended: the highest-BED10 option that keeps every "
                          "mandatory limit")
    assert "no cited control target for a liver lesion" in why


def test_composite_binding_reads_with_the_other_lesions():
    # the example: total lung V5 95 % against SAFRON II's 66 % (safron2_4fx.csv:2)
    lung = row("composite", "composite", organ="Lungs-GTV", structure="Lungs-GTV",
               metric="V5Gy[%]", value=95.2, unit="%", comparator="<", limit=66.0,
               status="fail", source="safron2_2016, Table 2, 48 Gy/4 arm (safron2_4fx.csv:2)",
               fractions=None)
    rows = [row("L1", "54 Gy/3"), row("L1", "60 Gy/8"), row("L2", "48 Gy/4")]
    rec = Recommendation(choice={"L1": R("60/8"), "L2": R("48/4")}, binding={"L1": "x"},
                         deescalated=["L1"], composite_status="pass", explanation=[],
                         binding_rows={"L1": lung},
                         feasible={"L1": [R("54/3"), R("60/8")], "L2": [R("48/4")]},
                         alternatives={"L1": R("54/3")})
    res = result([lesion("L1", "lung", "54/3"), lesion("L2", "lung", "48/4")], rows, [], rec)
    text = rejected_reason(res, "L1").text
    assert text == ("54 Gy/3 (BED10 151.2 Gy), the highest-BED10 option, is rejected: with the "
                    "other lesions as recommended, lungs minus GTV V5Gy (physical) would be "
                    "95.2 %, limit 66 % (SAFRON II)")
    # 60 Gy/8: BED10 = 60 (1 + 7.5/10) = 105 Gy >= 100 Gy, the lung target (PMC4206062)
    why = recommended_reason(res, "L1").text
    assert "reaches the lung control target (BED10 105 Gy >= 100 Gy" in why
    # not the highest-BED10 feasible option (54 Gy/3 is): the ranking and the composite say
    assert "the first option in the ranking that keeps every mandatory limit" in why
    assert rejected_reason(res, "L2") is None


def test_unjudged_alternative_and_partly_judged_recommendation():
    advisory_reason = (
        "no cited limit at 15 fx for SpinalCord: no table of its sources covers moderately "
        "hypofractionated (6-15 fx); advisory extrapolations shown; the advisory limit "
        "D1.2cc[Gy] <= 20.93 Gy (tg101_2010, serial-tissue table, 5 fx (tg101_2010_5fx.csv:5), "
        "converted from 5 fx) is exceeded (27.15 Gy): this regimen cannot be judged for "
        "SpinalCord without a cited limit")
    stop = row("L5", "60 Gy/15", organ="SpinalCord", structure="Spinal Cord",
               metric="no cited limit", value=math.nan, limit=None, comparator="",
               status="not evaluable", fractions=15, reason=advisory_reason,
               source="no table of tg101_2010 covers 15 fx")
    cord_rows = [
        row("L5", "45 Gy/15", organ="SpinalCord", structure="Spinal Cord", metric="D1.2cc[Gy]",
            value=20.36, limit=20.927, priority="report", fractions=15, converted=5,
            source="tg101_2010, serial-tissue table, 5 fx (tg101_2010_5fx.csv:5)"),
        row("L5", "45 Gy/15", organ="SpinalCord", structure="Spinal Cord", metric="",
            value=math.nan, limit=None, comparator="", status="not evaluable",
            priority="report", fractions=None,
            reason="no cited limit at 15 fx for SpinalCord: advisory extrapolations shown"),
        row("L5", "45 Gy/15", organ="Esophagus", structure="Esophagus", value=10.0, limit=25.0,
            fractions=15),
    ]
    rec = Recommendation(choice={"L5": R("45/15")}, binding={"L5": "x"}, deescalated=["L5"],
                         composite_status="pass", explanation=[], binding_rows={"L5": stop},
                         feasible={"L5": [R("45/15")]}, alternatives={"L5": R("60/15")})
    res = result([lesion("L5", "vertebra", "27/3")], cord_rows + [stop], [], rec)
    text = rejected_reason(res, "L5").text
    # 60 Gy/15: BED10 = 60 (1 + 4/10) = 84 Gy
    assert text.startswith("60 Gy/15 (BED10 84 Gy), the highest-BED10 option, is rejected: it "
                           "cannot be judged for the spinal cord: no cited limit "
                           "at 15 fx")
    assert "advisory D1.2cc limit (TG-101, 5 fx limit converted to 15 fx) would be exceeded: " \
           "27.1 Gy, limit 20.9 Gy" in text
    why = recommended_reason(res, "L5").text
    # 100 × 20.36 / 20.927 = 97.3 % of the advisory limit; the oesophagus has a cited row
    assert ("judged only on advisory (converted) limits at 15 fx for spinal cord "
            "(97 % of its advisory limit) (partly judged)") in why
    assert "oesophagus" not in why


def test_composite_of_a_choice_fails_and_says_as_chosen():
    fail = row("composite", "composite", organ="Esophagus", structure="Esophagus",
               metric="D0.03cc[Gy]", value=72.65, limit=56.67, status="fail", kind="EQD2",
               alpha_beta=3.0, converted=1, fractions=None,
               source="safron2_2016, Table 2, 28 Gy/1 arm (safron2_1fx.csv:6)")
    near = row("composite", "composite", organ="Heart", structure="Heart", metric="Mean[Gy]",
               value=18.0, limit=20.0, kind="EQD2", alpha_beta=3.0, converted=30, fractions=None,
               source="ro2018_ventilation_proton, Table 2 (ro2018_lung_conv_30fx.csv:6)")
    rows = [row("L1", "60 Gy/8"), row("L1", "50 Gy/5", value=31.0, status="fail")]
    rec = Recommendation(choice={"L1": R("60/8")}, binding={}, deescalated=[],
                         composite_status="pass", explanation=[], feasible={"L1": [R("60/8")]})
    chosen = result([lesion("L1", "lung", "60/8")], rows, [fail, near], rec,
                    choice={"L1": R("50/5")})
    text = composite_reason(chosen).text
    assert text == ("With the regimens as chosen, the composite fails: oesophagus D0.03cc "
                    "(EQD2, LQ, α/β 3 Gy) is 72.7 Gy, limit 56.7 Gy (SAFRON II, 1 fx limit as "
                    "EQD2)")
    reasons = {(r.lesion_id, r.kind): r.text for r in all_reasons(chosen)}
    assert reasons[("L1", "chosen")].startswith("50 Gy/5 is chosen (recommended: 60 Gy/8): it "
                                                "fails oesophagus D0.03cc (physical) is 31 Gy, "
                                                "limit 30 Gy (SAFRON II, 3 fx)")
    shown = result([lesion("L1", "lung", "60/8")], rows, [near], rec)
    # 100 × 18 / 20 = 90 % of the limit
    assert composite_reason(shown).text.endswith(
        "heart mean dose (EQD2, LQ, α/β 3 Gy) is 18 Gy, limit 20 Gy (Radiat Oncol 2018 planning "
        "table, 30 fx limit as EQD2), 90 % of its limit")
    assert composite_reason(shown).text.startswith("With the regimens as recommended")


def test_words_of_numbers_and_sources():
    assert value_and_limit(22.24, 22.2) == ("22.24", "22.2")  # never "22.2, limit 22.2"
    assert value_and_limit(95.21, 66.0) == ("95.2", "66")
    assert source_name("hytec_2021_spinalcord, abstract (hytec_2021_spinalcord.csv:2)") == "HyTEC"
    assert source_name("my_clinic_2025, sheet 2 (mine.csv:4)") == "my_clinic_2025"
    # a lower limit: at least 1000 cc below 12.4 Gy with 1250 cc: 100 × 1000 / 1250 = 80 %
    cv = row(metric="CV12.4Gy[cc]", unit="cc", comparator=">=", limit=1000.0, value=1250.0,
             organ="Lungs-GTV", structure="Lungs-GTV")
    assert percent_of_limit(cv) == 80.0
    assert "limit at least 1000 cc" in row_sentence(cv)


def test_planned_only_evaluation_says_so():
    # a batch without a regimen file evaluates the planned regimen only: nothing was chosen
    rows = [row("L1", "60 Gy/8", value=31.0, status="fail")]
    rec = Recommendation(choice={"L1": R("60/8")}, binding={}, deescalated=[],
                         composite_status="pass", explanation=[], feasible={"L1": []})
    res = result([lesion("L1", "lung", "60/8")], rows, [], rec)
    from rtplan_assist.evaluation.reasons import basis_line, shown_basis

    assert shown_basis(res) == "planned"
    assert basis_line(res).startswith("Shown: the planned regimens (only the planned regimens "
                                      "were evaluated")
    text = recommended_reason(res, "L1").text
    assert text.startswith("60 Gy/8 is shown: the only regimen evaluated; it fails oesophagus "
                           "D0.03cc (physical) is 31 Gy, limit 30 Gy (SAFRON II, 3 fx)")
    assert "recommended" not in text
