"""Constraint tables: shipped data against the reference, loader errors, lookup and conversion.

Expected values are hard-coded from ``shared/reference/constraints-radiobiology.md`` (cited as
"ref §x", with the original source) or computed by hand in the comment next to them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rtplan_assist.constraints import (
    TABLE_COLUMNS,
    composite_limits,
    constraints_at,
    constraints_for,
    convert_constraint,
    regime_of,
    load_tables,
    shipped_folder,
)
from rtplan_assist.errors import ConstraintTableError
from rtplan_assist.metrics import parse_metric


@pytest.fixture(scope="module")
def shipped():
    return load_tables()


def _row(constraint_set, source_id, fractions, organ, metric):
    canonical = str(parse_metric(metric))
    rows = [
        c
        for c in constraint_set.constraints
        if (c.source_id, c.fractions, c.organ, c.metric) == (source_id, fractions, organ, canonical)
    ]
    assert len(rows) == 1, (source_id, fractions, organ, metric)
    return rows[0]


# ----------------------------------------------------------------------------- shipped data


def test_every_shipped_table_loads(shipped):
    tables = sorted(
        p.name
        for p in shipped_folder().glob("*.csv")
        if p.name not in ("alpha_beta.csv", "aliases.csv", "tg263_names.csv")
    )
    assert tables == sorted(shipped.files)
    for name in tables:
        one = load_tables([name[:-4]])
        assert one.constraints or one.cumulative, name
        assert all(c.file == name for c in one.constraints + one.cumulative)


def test_shipped_rows_obey_the_evidence_rule(shipped):
    for c in shipped.constraints:
        assert c.evidence in ("P", "S2"), c.where
        assert shipped.sources[c.source_id].status in ("primary-verified", "secondary-verified")
        assert shipped.sources[c.source_id].citation
        assert c.converted_from_fractions is None
    text = "\n".join((shipped_folder() / name).read_text() for name in shipped.files)
    assert ",U," not in text and ",S," not in text


def test_shipped_row_counts(shipped):
    counts = {}
    for c in shipped.constraints + shipped.cumulative:
        counts[c.file] = counts.get(c.file, 0) + 1
    assert counts == {
        "tg101_2010_1fx.csv": 17,
        # 33 + 14 cells the clinical audit (a) found in two agreeing transcriptions (DVHA +
        # QTP-md): duodenum 3, jejunum/ileum 2, colon 2, rib D30cc, lung CV 1500/1000, liver
        # 700 cc, renal cortex 200 cc, and AirWay_Prox D4cc/max (TG-101 trachea & large bronchus)
        "tg101_2010_3fx.csv": 47,
        # 2 lung CV rows + the TG-101 5 fx serial table (audit (a): WB + QTP-md agree): cord 3,
        # cauda 2, sacral plexus 2, oesophagus 2, plexus 2 x 2, heart 2, great vessels 2,
        # trachea/main bronchus/AirWay_Prox 2 x 3, smaller bronchi 2 x 2, rib 2, skin 2,
        # stomach 2, duodenum 3, jejunum/ileum 2, colon 2, rib cells on chest wall 2 (optional)
        "tg101_2010_5fx.csv": 44,
        "hytec_2021_spinalcord.csv": 5,
        "hytec_2021_spinalcord_cumulative.csv": 1,
        "lung_v5_hypo_10fx.csv": 1,
        "ro2018_lung_conv_30fx.csv": 6,
        "safron2_1fx.csv": 11,
        "safron2_4fx.csv": 12,
        "fastrack2_3fx.csv": 1,
        # + 5 QUANTEC kidney rows (UWX QUANTEC.xml + solutioinsilico QUANTEC page agree)
        "quantec_2010.csv": 14,
        "quantec_2010_cord_1fx.csv": 1,
        "quantec_2010_cord_3fx.csv": 1,
        # Radiat Oncol 2016;11:72 Table 2 (10 fx): cord, lung V20, stomach/intestine 2 x 4
        "ro2016_renal_sbrt_10fx.csv": 10,
        # Radiat Oncol 2013;8:173 Table 1: RTOG brachial plexus Dmax <= 66 Gy, L and R
        "rtog_plexus_conv_30fx.csv": 2,
    }


@pytest.mark.parametrize(
    ("source_id", "fractions", "organ", "metric", "limit"),
    [
        # ref §1.1, TG-101 serial tissues (Benedict et al. 2010), 3 fx [S2: WB, DVHA-TG101]
        ("tg101_2010", 3, "SpinalCord", "D0.35cc[Gy]", 18),
        ("tg101_2010", 3, "SpinalCord", "D1.2cc[Gy]", 12.3),
        ("tg101_2010", 3, "SpinalCord", "D0.035cc[Gy]", 21.9),
        ("tg101_2010", 3, "CaudaEquina", "D5cc[Gy]", 21.9),
        ("tg101_2010", 3, "SacralPlex", "D5cc[Gy]", 22.5),
        ("tg101_2010", 3, "Esophagus", "D5cc[Gy]", 17.7),
        ("tg101_2010", 3, "Esophagus", "D0.035cc[Gy]", 25.2),
        ("tg101_2010", 3, "BrachialPlex_R", "D3cc[Gy]", 20.4),
        ("tg101_2010", 3, "BrachialPlex_L", "D0.035cc[Gy]", 24),
        ("tg101_2010", 3, "Heart", "D15cc[Gy]", 24),
        ("tg101_2010", 3, "Heart", "D0.035cc[Gy]", 30),
        ("tg101_2010", 3, "GreatVes", "D10cc[Gy]", 39),
        ("tg101_2010", 3, "GreatVes", "D0.035cc[Gy]", 45),
        ("tg101_2010", 3, "Trachea", "D4cc[Gy]", 15),
        ("tg101_2010", 3, "Bronchus_L", "D0.5cc[Gy]", 18.9),
        ("tg101_2010", 3, "Bronchus_R", "D0.035cc[Gy]", 23.1),
        ("tg101_2010", 3, "Rib", "D1cc[Gy]", 28.8),
        ("tg101_2010", 3, "Chestwall", "D0.035cc[Gy]", 36.9),
        ("tg101_2010", 3, "Skin", "D10cc[Gy]", 30),
        ("tg101_2010", 3, "Stomach", "D0.035cc[Gy]", 22.2),
        # ref §1.1, TG-101 1 fx [S2: WB, RO11]
        ("tg101_2010", 1, "SpinalCord", "D0.35cc[Gy]", 10),
        ("tg101_2010", 1, "SpinalCord", "D1.2cc[Gy]", 7),
        ("tg101_2010", 1, "SpinalCord", "D0.035cc[Gy]", 14),
        ("tg101_2010", 1, "Duodenum", "D10cc[Gy]", 9),
        ("tg101_2010", 1, "Jejunum_Ileum", "D5cc[Gy]", 11.9),
        ("tg101_2010", 1, "Colon", "D0.035cc[Gy]", 18.4),
        ("tg101_2010", 1, "Skin", "D10cc[Gy]", 23),
        # ref §1.2, TG-101 parallel tissues (critical volume, cc spared)
        ("tg101_2010", 1, "Lungs-GTV", "CV7.4Gy[cc]", 1000),
        ("tg101_2010", 1, "Liver", "CV9.1Gy[cc]", 700),
        ("tg101_2010", 1, "Kidney_Cortex", "CV8.4Gy[cc]", 200),
        ("tg101_2010", 5, "Lungs-GTV", "CV12.5Gy[cc]", 1500),
        ("tg101_2010", 5, "Lungs-GTV", "CV13.5Gy[cc]", 1000),
        # ref §3, HyTEC spinal cord (Sahgal et al. 2021, abstract) Dmax
        ("hytec_2021_spinalcord", 1, "SpinalCord", "Max[Gy]", 12.4),
        ("hytec_2021_spinalcord", 2, "SpinalCord", "Max[Gy]", 17.0),
        ("hytec_2021_spinalcord", 3, "SpinalCord", "Max[Gy]", 20.3),
        ("hytec_2021_spinalcord", 4, "SpinalCord", "Max[Gy]", 23.0),
        ("hytec_2021_spinalcord", 5, "SpinalCord", "Max[Gy]", 25.3),
        # ref §4, SAFRON II Table 2 (BMC Cancer 2016), maxima = D0.03cc
        ("safron2_2016", 1, "Lungs-GTV", "V5Gy[%]", 66),
        ("safron2_2016", 1, "Heart", "D0.03cc[Gy]", 22),
        ("safron2_2016", 1, "Heart", "D15cc[Gy]", 16),
        ("safron2_2016", 1, "Esophagus", "D0.03cc[Gy]", 15.4),
        ("safron2_2016", 1, "SpinalCord", "D0.03cc[Gy]", 12),
        ("safron2_2016", 1, "BrachialPlex_L", "D0.03cc[Gy]", 15),
        ("safron2_2016", 1, "GreatVes", "D0.03cc[Gy]", 30),
        ("safron2_2016", 4, "Lungs-GTV", "CV12.4Gy[cc]", 1000),
        ("safron2_2016", 4, "Heart", "D15cc[Gy]", 28),
        ("safron2_2016", 4, "SpinalCord", "D0.03cc[Gy]", 20.8),
        ("safron2_2016", 4, "Skin", "D10cc[Gy]", 33.2),
        ("safron2_2016", 4, "Chestwall", "D70cc[Gy]", 30),
        ("safron2_2016", 4, "GreatVes", "D0.03cc[Gy]", 49),
        # ref §3/§4, FASTRACK II Table 3 (BMC Cancer 2018)
        ("fastrack2_2018", 3, "Liver", "CV15Gy[cc]", 700),
        # ref §5.1, QUANTEC (Marks et al. 2010) [S2]
        ("quantec_2010", 30, "SpinalCord", "Max[Gy]", 50),
        ("quantec_2010", 30, "Lungs-GTV", "V20Gy[%]", 30),
        ("quantec_2010", 30, "Lungs-GTV", "Mean[Gy]", 20),  # audit (a) #7: was Lungs
        ("quantec_2010", 30, "Esophagus", "Mean[Gy]", 34),
        ("quantec_2010", 30, "Pericardium", "Mean[Gy]", 26),
        ("quantec_2010", 30, "Pericardium", "V30Gy[%]", 46),
        ("quantec_2010", 30, "Heart", "V25Gy[%]", 10),
        ("quantec_2010", 30, "Liver-GTV", "Mean[Gy]", 30),
        ("quantec_2010", 30, "Stomach", "D100%[Gy]", 45),
        # ref §5.1, QUANTEC cord paper (Kirkpatrick et al. 2010) partial cord SRS
        ("quantec_2010_cord", 1, "SpinalCord", "Max[Gy]", 13),
        ("quantec_2010_cord", 3, "SpinalCord", "Max[Gy]", 20),
    ],
)
def test_rows_match_reference(shipped, source_id, fractions, organ, metric, limit):
    row = _row(shipped, source_id, fractions, organ, metric)
    assert row.limit == limit
    assert row.dose_kind == "physical"


def test_critical_volume_rows_use_greater_equal(shipped):
    for c in shipped.constraints:
        if c.parsed_metric.kind == "CV":
            assert c.comparator == ">=" and c.unit == "cc"


def test_uk_sabr_reported_as_skipped(shipped):
    notes = "\n".join(shipped.notes)
    assert "uk_sabr_2022: skipped (status untranscribed)" in notes
    assert "nccn_nsclc: skipped (status single-secondary)" in notes
    assert not any(c.source_id.startswith("uk_sabr") for c in shipped.constraints)


def test_alpha_beta_defaults(shipped):
    # ref §6.2: cord 2 (HMR; HyTEC re-irradiation), lung 3, liver 2, brachial plexus 2
    assert shipped.alpha_beta_for("SpinalCord") == 2
    assert shipped.alpha_beta_for("Lungs-GTV") == 3
    assert shipped.alpha_beta_for("Liver") == 2
    assert shipped.alpha_beta_for("BrachialPlex_L") == 2
    assert shipped.alpha_beta_for("Unknown") is None


# ----------------------------------------------------------------------------- loader errors

HEADER = ",".join(TABLE_COLUMNS)
GOOD = "tg101_2010,T,3,SpinalCord,cord,D0.35cc[Gy],<=,18,,Gy,,physical,,mandatory,,,I,test,,,"


def _write(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "user_3fx.csv") -> Path:
    (tmp_path / name).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return tmp_path


def _replace(field: str, value: str) -> str:
    cells = GOOD.split(",")
    cells[TABLE_COLUMNS.index(field)] = value
    return ",".join(cells)


def test_user_table_loads(tmp_path):
    loaded = load_tables(folder=_write(tmp_path, GOOD))
    assert len(loaded.constraints) == 1
    assert loaded.constraints[0].where == "user_3fx.csv:2"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_replace("metric", "D0.35ccGy"), "user_3fx.csv:3: 'D0.35ccGy' is not a TG-263"),
        (_replace("limit", "abc"), "user_3fx.csv:3: limit 'abc' is not a number"),
        (_replace("comparator", "=<"), "user_3fx.csv:3: comparator '=<'"),
        (_replace("fractions", "0"), "user_3fx.csv:3: fractions must be an integer >= 1"),
        (_replace("fractions", "2.5"), "user_3fx.csv:3: fractions must be an integer >= 1"),
        (_replace("source_id", "nobody_2030"), "user_3fx.csv:3: unknown source_id 'nobody_2030'"),
        (_replace("evidence", "U"), "user_3fx.csv:3: evidence 'U' (unverified)"),
        (_replace("evidence", "S"), "user_3fx.csv:3: evidence 'S' (single-secondary)"),
        (_replace("organ", "CORD"), "user_3fx.csv:3: organ 'CORD' is an alias"),
        (_replace("organ", "Spleeen"), "user_3fx.csv:3: organ 'Spleeen' is not a TG-263"),
        (_replace("unit", "cc"), "user_3fx.csv:3: unit 'cc' does not match"),
        (_replace("dose_kind", "EQD2"), "user_3fx.csv:3: a EQD2 limit needs its alpha_beta"),
        (_replace("comparator", ">="), "user_3fx.csv:3: D0.35cc[Gy] is an OAR upper limit"),
        (_replace("priority", "must"), "user_3fx.csv:3: priority 'must'"),
        (_replace("limit", ""), "user_3fx.csv:3: empty required column 'limit'"),
        (GOOD, "user_3fx.csv:3: duplicate of user_3fx.csv:2"),
    ],
)
def test_malformed_rows_give_file_line(tmp_path, row, message):
    # the first data row (line 2) is valid, the faulty one is on line 3
    folder = _write(tmp_path, GOOD, row)
    with pytest.raises(ConstraintTableError) as info:
        load_tables(folder=folder)
    assert message in str(info.value)


def test_unknown_column(tmp_path):
    folder = _write(tmp_path, GOOD + ",x", header=HEADER + ",colour")
    with pytest.raises(ConstraintTableError, match=r"user_3fx.csv:1: unknown column\(s\) 'colour'"):
        load_tables(folder=folder)


def test_missing_column(tmp_path):
    header = HEADER.replace("comparator,", "")
    folder = _write(tmp_path, _replace("comparator", "DROP").replace("DROP,", ""), header=header)
    with pytest.raises(ConstraintTableError, match="user_3fx.csv:1: missing required column"):
        load_tables(folder=folder)


def test_missing_citation(tmp_path):
    (tmp_path / "sources.yaml").write_text(
        "clinic_2030:\n  status: institutional\n  note: no citation\n", encoding="utf-8"
    )
    folder = _write(tmp_path, _replace("source_id", "clinic_2030"))
    with pytest.raises(ConstraintTableError, match="sources.yaml:1: source 'clinic_2030' has no"):
        load_tables(folder=folder)


def test_untranscribed_source_rows_are_skipped_not_errors(tmp_path):
    folder = _write(tmp_path, GOOD, _replace("source_id", "uk_sabr_2022"))
    loaded = load_tables(folder=folder)
    assert len(loaded.constraints) == 1
    assert any("user_3fx.csv: 1 row(s) skipped" in note for note in loaded.notes)


def test_unknown_table_name():
    with pytest.raises(ConstraintTableError, match="unknown table"):
        load_tables(["uk_sabr_2022_8fx"])


# ----------------------------------------------------------------------------- lookup


def test_every_source_of_the_regime_is_used_at_4fx(shipped):
    """Issue 12 / clinical audit (b): at 4 fx the old nearest-n rule used SAFRON's 4 fx rows
    only and dropped TG-101's; now every SBRT source is used (tabulated or converted within
    the regime) and all rows are shown."""
    rows = constraints_for("SpinalCord", 4, shipped)
    tabulated = {(r.source_id, r.limit) for r in rows if r.applicability == "tabulated"}
    # HyTEC 23.0 Gy / 4 fx (abstract, P); SAFRON II 20.8 Gy / 4 fx (Table 2, P)
    assert tabulated == {("hytec_2021_spinalcord", 23.0), ("safron2_2016", 20.8)}
    converted = {r.source_id: r for r in rows if r.applicability == "converted within regime"}
    # TG-101 from its nearest table (5 fx: |ln 5/4| < |ln 3/4|); QUANTEC cord from 3 fx
    assert {r.converted_from_fractions for r in rows if r.source_id == "tg101_2010"} == {5}
    assert converted["quantec_2010_cord"].converted_from_fractions == 3
    assert all(r.priority == "mandatory" for r in rows)
    # QUANTEC 20 Gy/3 at α/β 2: EQD2 = 20 (6.67 + 2)/4 = 43.33 Gy; 4 fx: D²/8 + D = 86.67
    # -> D = 4 (-1 + sqrt(1 + 86.67/2)) = 22.63 Gy; the most conservative Max row decides
    (decisive,) = [r for r in rows if r.metric == "Max[Gy]" and r.decides]
    assert decisive.source_id == "hytec_2021_spinalcord" or decisive.limit < 23.0
    assert converted["quantec_2010_cord"].limit == pytest.approx(22.63, abs=0.01)
    assert decisive.source_id == "quantec_2010_cord" and "most conservative" in decisive.reason


def test_across_regimes_a_converted_limit_is_only_advisory(shipped):
    """Issue 12: at 8 fx (moderately hypofractionated) SBRT tables give only advisory rows,
    labelled as extrapolated; an organ with no cited 6-15 fx table says 'no cited limit'."""
    oes = constraints_at("Esophagus", 8, shipped)
    assert oes.no_cited_limit and "no cited limit at 8 fx" in oes.note
    assert oes.rows and all(r.priority == "report" and r.extrapolated for r in oes.rows)
    limits = constraints_at("SpinalCord", 8, shipped)
    assert all("extrapolated outside the source's fractionation range" in r.reason
               for r in limits.rows if r.extrapolated)
    assert all(r.priority == "report" for r in limits.rows if r.extrapolated)
    (tg,) = [r for r in limits.rows
             if r.source_id == "tg101_2010" and r.metric == "D0.035cc[Gy]"]
    # TG-101 max point 30 Gy / 5 fx at α/β 2: EQD2 = 30 (6 + 2)/4 = 60 Gy; 8 fx:
    # D²/8 + 2 D = 120 -> D² + 16 D - 1920 = 0 -> D = (-16 + sqrt(7936))/2 = 36.54 Gy
    assert tg.limit == pytest.approx(36.54, abs=0.005) and tg.source_priority == "mandatory"
    assert tg.extrapolated
    assert "converted from n=5" in tg.describe() and "extrapolated" in tg.describe()
    assert "α/β = 2 Gy" in tg.conversion_note
    # a metric a table of the regime covers (Max) is not duplicated by an SBRT extrapolation
    assert not [r for r in limits.rows if r.source_id == "hytec_2021_spinalcord"]
    # the cord has a cited table of the regime (Radiat Oncol 2016;11:72, 35 Gy any point in
    # 10 fx): converted within the regime and mandatory. EQD2 = 35 (3.5 + 2)/4 = 48.125 Gy;
    # 8 fx: D²/8 + 2 D = 192.5 -> D² + 16 D - 1540 = 0 -> D = (-16 + sqrt(6416))/2 = 32.05 Gy
    assert not limits.no_cited_limit
    (cited,) = [r for r in limits.rows if not r.extrapolated]
    assert cited.source_id == "ro2016_renal_sbrt_10fx" and cited.priority == "mandatory"
    assert cited.applicability == "converted within regime" and cited.converted_from_fractions == 10
    assert cited.limit == pytest.approx(32.05, abs=0.005)


def test_trachea_at_15fx_is_not_a_mandatory_sbrt_extrapolation(shipped):
    """Clinical audit (c) 7: TG-101 trachea max 30 Gy / 3 fx became a mandatory 57.2 Gy at
    15 fx and failed a 60 Gy/15 mediastinal node; now it is advisory only."""
    limits = constraints_at("Trachea", 15, shipped)
    assert not any(r.priority == "mandatory" for r in limits.rows)
    assert limits.no_cited_limit


def test_15fx_lung_v5_and_v20_within_regime(shipped):
    rows = constraints_for("Lungs-GTV", 15, shipped)
    (v5,) = [r for r in rows if r.source_id == "jrr2014_lung_v5"]
    # PMC3885113 (abstract): V5 < 65 % at 50 Gy/10 fx; same regime (6-15 fx) -> converted:
    # EQD2 of 5 Gy in 10 fx at α/β 3 = 5 (0.5 + 3)/5 = 3.5 Gy; 15 fx: D + D²/45 = 3.5 · 5/3
    # -> D = 22.5 (-1 + sqrt(1 + 4 · 5.8333/45)) = 5.2263 Gy, rounded down: V5.22Gy
    assert v5.priority == "mandatory" and v5.applicability == "converted within regime"
    assert v5.metric == "V5.22Gy[%]" and v5.limit == 65
    # V20: the regime's own table (Radiat Oncol 2016;11:72, V20 <= 20 % in 10 fx) decides;
    # the conventional V20 <= 37 % is not added as an extrapolation of a covered metric
    assert not [r for r in rows if r.source_id == "ro2018_ventilation_proton" and r.metric.startswith("V")]
    (v20,) = [r for r in rows if r.source_id == "ro2016_renal_sbrt_10fx"]
    assert v20.metric == "V22.29Gy[%]" and v20.priority == "mandatory"
    conventional = next(c for c in shipped.constraints if c.source_id == "ro2018_ventilation_proton"
                        and c.metric == "V20Gy[%]")
    v20 = convert_constraint(conventional, 15, 3.0)
    # V20Gy in 30 fx at α/β 3: EQD2 = 20 (0.667 + 3)/5 = 14.667 Gy; in 15 fx:
    # D + D²/45 = 14.667 · 5/3 -> D = 22.5 (-1 + sqrt(1 + 4 · 24.444/45)) = 17.578 Gy
    # ... rounded down to 0.01 Gy: a lower threshold counts more volume (stricter)
    assert v20.parsed_metric.value == 17.57 and v20.metric == "V17.57Gy[%]"
    assert "17.5780" in v20.conversion_note and "stricter" in v20.conversion_note
    assert v20.limit == 37


@pytest.mark.parametrize(
    "value,kind,comparator,expected",
    [
        (17.578, "V", "<=", 17.57),  # V upper limit: lower threshold = more volume counted
        (17.571, "V", ">=", 17.58),  # V lower limit (coverage-like): higher threshold
        (14.344, "CV", ">=", 14.34),  # CV (volume below t) kept >= L: lower t = less volume
        (14.341, "CV", "<", 14.35),
        (17.57, "V", "<=", 17.57),  # already on the 0.01 Gy grid: unchanged
    ],
)
def test_converted_thresholds_round_to_the_stricter_side(value, kind, comparator, expected):
    from rtplan_assist.constraints import conservative_threshold

    assert conservative_threshold(value, kind, comparator) == expected


def test_critical_volume_conversion(shipped):
    row = _row(shipped, "tg101_2010", 5, "Lungs-GTV", "CV12.5Gy[cc]")
    converted = convert_constraint(row, 8, 3.0)
    # EQD2 = 12.5 (2.5 + 3)/5 = 13.75 Gy; 8 fx: D²/40 + 0.6 D = 13.75
    # -> D = 20 (-0.6 + sqrt(0.36 + 1.375)) = 14.344 Gy
    # rounded down to 0.01 Gy: CV >= L is stricter at a lower threshold
    assert converted.parsed_metric.value == 14.34 and converted.metric == "CV14.34Gy[cc]"
    assert converted.limit == 1500 and converted.comparator == ">="


def _user_row(tmp_path, fractions, metric, limit, *, organ="SpinalCord", relative=""):
    row = GOOD
    for field, value in (
        ("fractions", str(fractions)),
        ("metric", metric),
        ("limit", str(limit)),
        ("organ", organ),
    ):
        row = _replace_in(row, field, value)
    if relative:
        row = _replace_in(_replace_in(row, "limit_relative_to", relative), "unit", "%")
    return row


def _replace_in(row: str, field: str, value: str) -> str:
    cells = row.split(",")
    cells[TABLE_COLUMNS.index(field)] = value
    return ",".join(cells)


def test_reference_worked_conversion_30gy_5fx_to_8fx(tmp_path):
    # ref §10.3: "D0.035cc[Gy] <= 30 at α/β 2 becomes 36.5 Gy in 8 fx" (converted from n=5)
    folder = _write(tmp_path, _user_row(tmp_path, 5, "D0.035cc[Gy]", 30), name="user_5fx.csv")
    (row,) = load_tables(folder=folder).constraints
    converted = convert_constraint(row, 8, 2.0)
    assert converted.limit == pytest.approx(36.5, abs=0.05)
    assert converted.converted_from_fractions == 5 and converted.fractions == 8


def test_reference_hmr_great_vessels_conversion(tmp_path):
    # ref §2: TG-101 GreatVes 5 fx max 53 Gy converted (α/β 3) to 8 fx gives 64.9 Gy
    folder = _write(
        tmp_path, _user_row(tmp_path, 5, "D0.035cc[Gy]", 53, organ="GreatVes"), name="u.csv"
    )
    (row,) = load_tables(folder=folder).constraints
    assert convert_constraint(row, 8, 3.0).limit == pytest.approx(64.9, abs=0.05)


def test_conversion_needs_alpha_beta_and_refuses_relative_limits(tmp_path):
    folder = _write(
        tmp_path,
        _user_row(tmp_path, 5, "D0.035cc[Gy]", 30),
        _user_row(tmp_path, 5, "Max[%]", 105, organ="Esophagus", relative="rx"),
        name="u.csv",
    )
    absolute, relative = load_tables(folder=folder).constraints
    with pytest.raises(ConstraintTableError, match="u.csv:2: no α/β"):
        convert_constraint(absolute, 8)
    with pytest.raises(ConstraintTableError, match="relative to the prescription"):
        convert_constraint(relative, 8, 3.0)


def test_tie_goes_to_smaller_fraction_number(tmp_path):
    # 4 fx lies at equal log distance from 2 and 8 fx (ratio 2 each way)
    folder = _write(
        tmp_path,
        _user_row(tmp_path, 2, "D0.035cc[Gy]", 17),
        _user_row(tmp_path, 8, "D0.035cc[Gy]", 32),
        name="u.csv",
    )
    # issue 12: 2 fx is in the SBRT regime (1-5), 8 fx is not: the 2 fx row is converted
    # within the regime and, since it covers the metric, the 8 fx row is not extrapolated
    rows = constraints_for("SpinalCord", 4, load_tables(folder=folder))
    assert [r.converted_from_fractions for r in rows] == [2]
    assert math.isclose(abs(math.log(4 / 2)), abs(math.log(8 / 4)))


def test_no_rows_for_unknown_organ(shipped):
    assert constraints_for("Spleen", 5, shipped) == []
