"""Issue 12: constraint sets by fractionation regime, the audit's encoding fixes, and composite
limits independent of the regimens chosen.

Every expected value names its source: the clinical audit (shared/reference/clinical-audit.md,
"audit"), the reference (shared/reference/constraints-radiobiology.md, "ref §x") or the
publication read for this change; conversions are worked by hand in the comments."""

from __future__ import annotations

import pytest

from rtplan_assist.constraints import (
    REGIMES,
    composite_limits,
    constraints_at,
    load_tables,
    regime_of,
)
from rtplan_assist.errors import RadiobiologyError
from rtplan_assist.names import is_helper_name, unmatched_report
from rtplan_assist.radiobiology import Model, eqd2, usc_park2008_nsclc


@pytest.fixture(scope="module")
def tables():
    return load_tables()


def _rows(tables, source_id, fractions, organ, metric=None):
    return [
        c for c in tables.constraints
        if (c.source_id, c.fractions, c.organ) == (source_id, fractions, organ)
        and (metric is None or c.metric == metric)
    ]


# ------------------------------------------------------------------ encoding fixes (audit (a))


def test_safron_chest_wall_d70cc_is_optional(tables):
    # SAFRON II Table 2 footnote a: "Chest wall dose limit may be exceeded if rib structure lies
    # close to or in contact with the PTV" (audit (a) #1)
    (row,) = _rows(tables, "safron2_2016", 4, "Chestwall", "D70cc[Gy]")
    assert row.limit == 30 and row.priority == "optimal"
    assert "footnote a" in row.notes


def test_hytec_1fx_is_12_4_gy_with_14_as_cited_upper_bound(tables):
    # HyTEC abstract: "12.4 to 14.0 Gy in 1 fraction"; at α/β 2 the 2-5 fx limits are EQD2
    # 44.5-44.65 Gy and 12.4 Gy/1 = 12.4 (12.4 + 2)/4 = 44.64 Gy, 14.0 Gy/1 = 56 Gy (audit (a) #4)
    (row,) = _rows(tables, "hytec_2021_spinalcord", 1, "SpinalCord")
    assert row.limit == 12.4 and row.goal is None
    assert "14.0" in row.notes and "upper bound" in row.notes
    assert eqd2(12.4, 1, Model('LQ', 2.0)) == pytest.approx(44.64, abs=0.005)
    assert eqd2(25.3, 5, Model('LQ', 2.0)) == pytest.approx(44.65, abs=0.005)
    assert eqd2(14.0, 1, Model('LQ', 2.0)) == pytest.approx(56.0, abs=1e-9)


def test_tg101_single_fraction_liver_row_is_on_liver(tables):
    # RO11 (Radiat Oncol 2011;6:146 Table 1): "Liver 700 cc 9.1 Gy" (audit (a) #5)
    (row,) = _rows(tables, "tg101_2010", 1, "Liver", "CV9.1Gy[cc]")
    assert row.limit == 700 and row.comparator == ">="
    assert not _rows(tables, "tg101_2010", 1, "Liver-GTV")


def test_rib_cells_on_chest_wall_are_marked_extrapolation(tables):
    # DVHA and QTP-md list the 28.8/36.9 Gy (3 fx) and 35/43 Gy (5 fx) cells under rib only
    # (audit (a) #6): on the chest wall they are an organ extrapolation, never mandatory
    rows = [c for c in tables.constraints if c.organ == "Chestwall" and c.source_id == "tg101_2010"]
    assert {(c.fractions, c.metric, c.limit) for c in rows} == {
        (3, "D1cc[Gy]", 28.8), (3, "D0.035cc[Gy]", 36.9), (5, "D1cc[Gy]", 35), (5, "D0.035cc[Gy]", 43),
    }
    assert all(c.priority == "optimal" and "EXTRAPOLATED to Chestwall" in c.notes for c in rows)


def test_proximal_bronchial_tree_has_tg101_trachea_large_bronchus_cells(tables):
    # TG-101 "trachea & large bronchi" < 4 cc: 15 / 30 Gy (3 fx, WB + DVHA), 16.5 / 40 Gy (5 fx,
    # WB + QTP-md) (audit (b) gap 4: AirWay_Prox had no row and was silently unconstrained)
    three = constraints_at("AirWay_Prox", 3, tables)
    assert {(c.metric, c.limit) for c in three.rows if c.applicability == "tabulated"} == {
        ("D4cc[Gy]", 15), ("D0.035cc[Gy]", 30),
    }
    five = constraints_at("AirWay_Prox", 5, tables)
    assert {(c.metric, c.limit) for c in five.rows if c.applicability == "tabulated"} == {
        ("D4cc[Gy]", 16.5), ("D0.035cc[Gy]", 40),
    }
    assert all(c.priority == "mandatory" for c in three.rows + five.rows)


@pytest.mark.parametrize(
    ("organ", "metric", "limit"),
    [  # TG-101 5 fx serial table, audit (a): WB + QTP-md agree
        ("SpinalCord", "D0.35cc[Gy]", 23), ("SpinalCord", "D1.2cc[Gy]", 14.5),
        ("SpinalCord", "D0.035cc[Gy]", 30), ("Esophagus", "D5cc[Gy]", 19.5),
        ("Esophagus", "D0.035cc[Gy]", 35), ("BrachialPlex_L", "D3cc[Gy]", 27),
        ("BrachialPlex_R", "D0.035cc[Gy]", 30.5), ("Heart", "D15cc[Gy]", 32),
        ("Heart", "D0.035cc[Gy]", 38), ("GreatVes", "D10cc[Gy]", 47), ("GreatVes", "D0.035cc[Gy]", 53),
        ("Trachea", "D4cc[Gy]", 16.5), ("Trachea", "D0.035cc[Gy]", 40), ("Bronchus_L", "D0.5cc[Gy]", 21),
        ("Bronchus_R", "D0.035cc[Gy]", 33), ("Rib", "D1cc[Gy]", 35), ("Rib", "D0.035cc[Gy]", 43),
        ("Skin", "D10cc[Gy]", 36.5), ("Skin", "D0.035cc[Gy]", 39.5), ("Stomach", "D10cc[Gy]", 18),
        ("Stomach", "D0.035cc[Gy]", 32), ("Duodenum", "D5cc[Gy]", 18), ("Duodenum", "D10cc[Gy]", 12.5),
        ("Duodenum", "D0.035cc[Gy]", 32), ("Jejunum_Ileum", "D5cc[Gy]", 19.5),
        ("Jejunum_Ileum", "D0.035cc[Gy]", 35), ("Colon", "D20cc[Gy]", 25), ("Colon", "D0.035cc[Gy]", 38),
        ("CaudaEquina", "D5cc[Gy]", 30), ("CaudaEquina", "D0.035cc[Gy]", 32),
        ("SacralPlex", "D5cc[Gy]", 30), ("SacralPlex", "D0.035cc[Gy]", 32),
    ],
)
def test_tg101_5fx_serial_rows(tables, organ, metric, limit):
    (row,) = _rows(tables, "tg101_2010", 5, organ, metric)
    assert row.limit == limit and row.evidence == "S2" and row.priority == "mandatory"


@pytest.mark.parametrize(
    ("organ", "metric", "limit"),
    [  # TG-101 3 fx cells the audit found in DVHA + QTP-md (audit (a), README contradiction)
        ("Duodenum", "D5cc[Gy]", 16.5), ("Duodenum", "D10cc[Gy]", 11.4), ("Duodenum", "D0.035cc[Gy]", 22.2),
        ("Jejunum_Ileum", "D5cc[Gy]", 17.7), ("Jejunum_Ileum", "D0.035cc[Gy]", 25.2),
        ("Colon", "D20cc[Gy]", 24), ("Colon", "D0.035cc[Gy]", 28.2), ("Rib", "D30cc[Gy]", 30),
        ("Lungs-GTV", "CV11.6Gy[cc]", 1500), ("Lungs-GTV", "CV12.4Gy[cc]", 1000),
        ("Liver", "CV19.2Gy[cc]", 700), ("Kidney_Cortex", "CV16Gy[cc]", 200),
    ],
)
def test_tg101_3fx_cells_added(tables, organ, metric, limit):
    (row,) = _rows(tables, "tg101_2010", 3, organ, metric)
    assert row.limit == limit and row.evidence == "S2"


def test_conventional_limits_from_the_primary_planning_table(tables):
    # Radiat Oncol 2018, doi 10.1186/s13014-018-1018-x, Table 2: total normal lung V20 <= 37 %,
    # V5 <= 60 %, MLD <= 20 Gy; spinal cord Dmax < 50 Gy; heart Dmean < 26 Gy; oesophagus
    # Dmean < 34 Gy (read in the table page)
    rows = {(c.organ, c.metric): c for c in tables.constraints
            if c.source_id == "ro2018_ventilation_proton"}
    assert {k: (c.comparator, c.limit) for k, c in rows.items()} == {
        ("Lungs-GTV", "V20Gy[%]"): ("<=", 37), ("Lungs-GTV", "V5Gy[%]"): ("<=", 60),
        ("Lungs-GTV", "Mean[Gy]"): ("<=", 20), ("SpinalCord", "Max[Gy]"): ("<", 50),
        ("Heart", "Mean[Gy]"): ("<", 26), ("Esophagus", "Mean[Gy]"): ("<", 34),
    }
    assert all(c.priority == "mandatory" and c.evidence == "P" and c.fractions_range == (16, 35)
               for c in rows.values())


def test_alpha_beta_cord_primary_citation_and_range(tables):
    # HyTEC (P) states its re-irradiation limits at α/β 2; QUANTEC cord (P) gives 0.87 Gy
    entry = tables.alpha_beta["SpinalCord"]
    assert entry.alpha_beta_gy == 2 and entry.evidence == "P"
    assert entry.source_id == "hytec_2021_spinalcord"
    assert tables.alpha_beta_range("SpinalCord") == (0.87, 2.0)
    for organ, ab in tables.alpha_beta.items():
        low, high = ab.range_gy
        assert low <= ab.alpha_beta_gy <= high and ab.range_source, organ


def test_usc_refuses_an_alpha_beta_other_than_its_fit():
    # Park 2008 fit (ref §6.4): β = (1 - 0.33·1.25)² / (4·1.25·1.8) = 0.038351 Gy⁻²,
    # α/β = 0.33 / 0.038351 = 8.605 Gy (audit (c) 3: α/β 10 with D_T 6.13 Gy was LQ-L, not USC)
    fit = usc_park2008_nsclc()
    assert fit.alpha_beta_gy == pytest.approx(0.33 / ((1 - 0.4125) ** 2 / 9.0), rel=1e-12)
    with pytest.raises(RadiobiologyError, match="own survival fit"):
        Model("USC", 10.0, fit.transition_dose_gy, provenance=fit.provenance)
    rounded = Model("USC", 8.6, fit.transition_dose_gy, provenance=fit.provenance)
    assert rounded.alpha_beta_gy == pytest.approx(fit.alpha_beta_gy, rel=1e-12)
    assert {p.name: p.value for p in rounded.parameters}["alpha_beta"] == rounded.alpha_beta_gy


def test_usc_cli_refuses_a_user_alpha_beta(capsys):
    from rtplan_assist.cli import main

    assert main(["bed", "34", "1", "--alpha-beta", "10", "--model", "usc"]) == 2
    err = capsys.readouterr().err
    assert "own survival fit" in err and "Traceback" not in err


def test_helper_prefixes_are_whole_words():
    # audit (b)/(issue 12): "OPTIC STRUCTURES" was hidden because it starts with "opt"
    assert not is_helper_name("OPTIC STRUCTURES") and not is_helper_name("Zygoma")
    assert is_helper_name("z_Ring") and is_helper_name("opt PTV") and is_helper_name("Ring 2")
    listed, helpers = unmatched_report(["OPTIC STRUCTURES", "z_help", "Bowel bag"])
    assert listed == ("OPTIC STRUCTURES", "Bowel bag") and helpers == ("z_help",)


# ------------------------------------------------------------------ regimes


def test_regimes():
    assert REGIMES == (("SBRT", 1, 5), ("moderately hypofractionated", 6, 15), ("conventional", 16, 35))
    assert regime_of(5)[0] == "SBRT" and regime_of(8)[0].startswith("moderately")
    assert regime_of(30)[0] == "conventional" and regime_of(40) is None


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 10, 12, 15, 20, 30])
def test_every_organ_regime_cell_has_cited_rows_or_says_no_cited_limit(tables, n):
    for organ in tables.organs():
        limits = constraints_at(organ, n, tables)
        cited = [c for c in limits.rows if not c.extrapolated]
        if limits.no_cited_limit:
            assert not cited and f"no cited limit at {n} fx for {organ}" in limits.note
        else:
            assert cited and not limits.note.startswith("no cited limit")
        for c in cited:
            table_rows = [t for t in tables.constraints
                          if t.source_id == c.source_id and t.organ == organ]
            assert any(t.fractions_range[0] <= n <= t.fractions_range[1] for t in table_rows)
        for c in limits.rows:
            if c.extrapolated:
                assert c.priority == "report" and "extrapolated outside" in c.reason
            assert c.fractions == n and c.reason


def test_lungs_oesophagus_heart_cord_mandatory_cited_at_30fx(tables):
    for organ, metric in (("Lungs-GTV", "Mean[Gy]"), ("Lungs-GTV", "V20Gy[%]"),
                          ("Esophagus", "Mean[Gy]"), ("Heart", "Mean[Gy]"), ("SpinalCord", "Max[Gy]")):
        limits = constraints_at(organ, 30, tables)
        assert any(c.metric == metric and c.priority == "mandatory" and not c.extrapolated
                   for c in limits.rows), (organ, metric)


# ------------------------------------------------------------------ composite


def test_composite_limits_fixed_per_organ(tables):
    lungs = {(l.row.metric, l.kind): l for l in composite_limits("Lungs-GTV", tables)}
    # MLD <= 20 Gy in 30 fx at α/β 3: EQD2 = 20 (20/30 + 3)/5 = 14.667 Gy (Radiat Oncol 2018 T2)
    mld = lungs[("Mean[Gy]", "EQD2")]
    assert mld.priority == "mandatory" and mld.row.limit == pytest.approx(20 * (20 / 30 + 3) / 5)
    # a mean converted as if uniform is approximate and conservative (constraints-radiobiology
    # §6.5 "mean dose cannot be converted"; clinical audit (c) 5): the row says so
    assert "APPROXIMATE, conservative" in mld.reason
    # V20 <= 37 %: threshold 20 Gy in 30 fx -> EQD2 14.667, rounded down: V14.66Gy[%] <= 37
    v20 = lungs[("V14.66Gy[%]", "EQD2")]
    assert v20.priority == "mandatory" and v20.row.limit == 37
    assert "APPROXIMATE" not in v20.reason  # a volume threshold converts exactly (§6.5)
    # V5: physical sum, never converted; the most conservative of SAFRON 66 %, PMC3885113
    # 65 %, Radiat Oncol 2018 60 % -> 60 %
    v5 = lungs[("V5Gy[%]", "physical")]
    assert v5.row.limit == 60 and v5.alpha_beta is None and "PHYSICAL" in v5.reason
    # cord: HyTEC cumulative thecal-sac EQD2 Dmax <= 70 Gy at α/β 2 (abstract, P)
    (cord,) = composite_limits("SpinalCord", tables)
    assert (cord.row.metric, cord.row.limit, cord.alpha_beta, cord.kind) == ("Max[Gy]", 70, 2, "EQD2")
    # oesophagus: the most conservative re-expressed max-point row: SAFRON 15.4 Gy/1 at α/β 3
    # = 15.4 (15.4 + 3)/5 = 56.67 Gy EQD2 (audit (d) 1)
    oes = {l.row.metric: l for l in composite_limits("Esophagus", tables)}
    assert oes["D0.03cc[Gy]"].row.limit == pytest.approx(15.4 * 18.4 / 5)
    assert "single-course tolerance" in oes["D0.03cc[Gy]"].reason


def test_every_sbrt_source_is_used_at_4fx(tables):
    """Clinical audit (b): the nearest-n rule used SAFRON's 4 fx oesophagus rows only at 4 fx
    and dropped TG-101's D5cc; constraints_at uses every source of the regime."""
    rows = constraints_at("Esophagus", 4, tables).rows
    # TG-101 from its nearest table of the regime, 5 fx: D5cc 19.5 Gy at α/β 3: EQD2 =
    # 19.5 (3.9 + 3)/5 = 26.91 Gy; 4 fx: D (D/4 + 3)/5 = 26.91 -> D² + 12 D - 538.2 = 0
    # -> D = (-12 + sqrt(144 + 2152.8))/2 = 17.96 Gy
    (d5,) = [r for r in rows if r.metric == "D5cc[Gy]"]
    assert d5.applicability == "converted within regime" and d5.priority == "mandatory"
    assert d5.converted_from_fractions == 5
    assert d5.limit == pytest.approx(17.96, abs=0.01)
    assert {r.source_id for r in rows if not r.extrapolated} == {"safron2_2016", "tg101_2010"}
    # QUANTEC's conventional oesophagus mean is only advisory at 4 fx (another regime)
    assert all(r.priority == "report" for r in rows if r.source_id == "quantec_2010")


# ------------------------------------------------------------------ moderately hypofractionated
# and conventional sources added after the first issue-12 landing


def test_renal_sbrt_10fx_table_rows(tables):
    # Yamamoto et al., Radiat Oncol 2016;11:72, Table 2 "Dose constraints for planning organ at
    # risk volume of 10-fraction SBRT" (read in the table page): spinal cord 35 Gy any point;
    # lung 20 Gy <= 20 % of total volume; stomach, intestine 52 Gy <= 10 cc, 43 Gy <= 100 cc
    rows = {(c.organ, c.metric): c for c in tables.constraints
            if c.source_id == "ro2016_renal_sbrt_10fx"}
    expected = {("SpinalCord", "Max[Gy]"): 35, ("Lungs-GTV", "V20Gy[%]"): 20}
    for organ in ("Stomach", "Duodenum", "Bowel_Small", "Colon"):
        expected[(organ, "D10cc[Gy]")] = 52
        expected[(organ, "D100cc[Gy]")] = 43
    assert {k: c.limit for k, c in rows.items()} == expected
    for c in rows.values():
        assert (c.fractions, c.fractions_range, c.evidence, c.priority, c.comparator) == (
            10, (6, 15), "P", "mandatory", "<=")
        # the source's limits are on the PRV: evaluated on the organ they are less strict
        assert "PRV" in c.notes and "LESS strict" in c.notes


@pytest.mark.parametrize(
    ("n", "cord", "lung_metric"),
    [
        # cord 35 Gy/10 at α/β 2: EQD2 = 35 (3.5 + 2)/4 = 48.125 Gy;
        # 12 fx: D²/12 + 2 D = 192.5 -> D² + 24 D - 2310 = 0 -> D = (-24 + sqrt(9816))/2 = 37.54
        # 15 fx: D² + 30 D - 2887.5 = 0 -> D = (-30 + sqrt(12450))/2 = 40.79
        # lung V20 at α/β 3: EQD2 = 20 (2 + 3)/5 = 20 Gy; 12 fx: D² + 36 D - 1200 = 0 ->
        # D = (-36 + sqrt(6096))/2 = 21.038 -> V21.03Gy (rounded to the stricter side);
        # 15 fx: D² + 45 D - 1500 = 0 -> D = (-45 + sqrt(8025))/2 = 22.291 -> V22.29Gy
        (10, 35.0, "V20Gy[%]"),
        (12, 37.54, "V21.03Gy[%]"),
        (15, 40.79, "V22.29Gy[%]"),
    ],
)
def test_cord_and_lung_v20_have_mandatory_cited_rows_at_10_12_15fx(tables, n, cord, lung_metric):
    (c,) = [r for r in constraints_at("SpinalCord", n, tables).rows
            if r.source_id == "ro2016_renal_sbrt_10fx"]
    assert c.limit == pytest.approx(cord, abs=0.005) and c.priority == "mandatory"
    assert not c.extrapolated
    assert c.applicability == ("tabulated" if n == 10 else "converted within regime")
    (v20,) = [r for r in constraints_at("Lungs-GTV", n, tables).rows
              if r.source_id == "ro2016_renal_sbrt_10fx"]
    assert (v20.metric, v20.limit, v20.priority) == (lung_metric, 20, "mandatory")
    assert not v20.extrapolated


@pytest.mark.parametrize("n", [10, 12, 15])
def test_oesophagus_heart_and_lung_mean_still_have_no_cited_6_15fx_limit(tables, n):
    # No readable 6-15 fx source for these (constraints/README.md, "Not shipped"): the rows must
    # say so, never borrow an SBRT or conventional limit as mandatory
    for organ in ("Esophagus", "Heart"):
        limits = constraints_at(organ, n, tables)
        assert limits.no_cited_limit and f"no cited limit at {n} fx for {organ}" in limits.note
    lung = constraints_at("Lungs-GTV", n, tables)
    assert not any(r.metric == "Mean[Gy]" and not r.extrapolated for r in lung.rows)


def test_brachial_plexus_conventional_rtog_limit(tables):
    # Radiat Oncol 2013;8:173, Table 1: RTOG 0615 and 0619 brachial plexus Dmax <= 66 Gy
    # (0912: <= 66 Gy to a point of at least 0.03 cm3), read in the table page
    for organ in ("BrachialPlex_L", "BrachialPlex_R"):
        (row,) = [c for c in constraints_at(organ, 30, tables).rows if not c.extrapolated]
        assert (row.source_id, row.metric, row.comparator, row.limit, row.priority) == (
            "ro2013_rtog_plexus", "Max[Gy]", "<=", 66, "mandatory")
        assert row.fractions_range == (16, 35) and row.evidence == "P"
    # composite: 66 Gy in 30 fx at α/β 2 (alpha_beta.csv) = 66 (2.2 + 2)/4 = 69.3 Gy EQD2
    (mx,) = [l for l in composite_limits("BrachialPlex_R", tables) if l.row.metric == "Max[Gy]"]
    assert mx.row.limit == pytest.approx(69.3) and mx.priority == "mandatory"


def test_quantec_kidney_rows(tables):
    # QUANTEC kidneys (bilateral): mean < 15-18 Gy, V12 < 55 %, V20 < 32 %, V23 < 30 %,
    # V28 < 20 % for < 5 % clinically relevant dysfunction; UWX QUANTEC.xml and the
    # solutioinsilico QUANTEC page agree (S2); QUANTEC rows are report-only with their risk
    rows = {c.metric: c for c in tables.constraints
            if c.source_id == "quantec_2010" and c.organ == "Kidneys"}
    assert {m: (c.comparator, c.limit) for m, c in rows.items()} == {
        "Mean[Gy]": ("<", 15), "V12Gy[%]": ("<", 55), "V20Gy[%]": ("<", 32),
        "V23Gy[%]": ("<", 30), "V28Gy[%]": ("<", 20),
    }
    assert all(c.priority == "report" and c.evidence == "S2" and c.risk == "< 5 %"
               for c in rows.values())
    assert "15-18" in rows["Mean[Gy]"].notes


def test_liver_alpha_beta_range_cites_the_normal_liver_estimate(tables):
    # Radiat Oncol 2013;8:61 (abstract): "the α/β ratio of the normal liver with hepatitis is 8"
    for organ in ("Liver", "Liver-GTV"):
        assert tables.alpha_beta_range(organ) == (2.0, 8.0)
        assert "ro2013_liver_alpha_beta" in tables.alpha_beta[organ].range_source
    assert "1748-717X-8-61" in tables.sources["ro2013_liver_alpha_beta"].citation


def test_demo_vertebra_at_15fx_is_judged_on_the_cited_cord_limit(demo_evaluation):
    # L5 (T8 vertebra next to the cord): at 60 Gy/15 and 45 Gy/15 the cord is now judged on the
    # Radiat Oncol 2016 10 fx limit converted within its regime (35 Gy/10 -> 40.79 Gy/15 at
    # α/β 2, worked above), no longer "no cited limit at 15 fx"
    _, result = demo_evaluation
    for regimen in ("60 Gy/15", "45 Gy/15"):
        (row,) = [r for r in result.rows
                  if (r.lesion_id, r.regimen, r.organ) == ("L5", regimen, "SpinalCord")
                  and r.source.startswith("ro2016_renal_sbrt_10fx")]
        assert row.limit == pytest.approx(40.79, abs=0.005) and row.priority == "mandatory"
        assert row.converted_from_fractions == 10
        assert row.status == ("fail" if regimen == "60 Gy/15" else "pass")
    # 60 Gy/15 scales the planned 27 Gy/3 by 60/27: the cord maximum exceeds the limit, so the
    # recommendation keeps 45 Gy/15 for L5 on a cited row
    assert result.recommendation.choice["L5"].label == "45 Gy/15"
