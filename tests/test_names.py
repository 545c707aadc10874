"""Structure-name matching: TG-263 names (worksheet 2017-08-15), aliases seeded from
``shared/reference/constraints-radiobiology.md`` §7.1, ambiguity and overrides."""

from __future__ import annotations

import pytest

from rtplan_assist.constraints import load_tables
from rtplan_assist.errors import ConstraintTableError, EvaluationError
from rtplan_assist.names import (
    load_mapping_file,
    match_structures,
    normalise_name,
    parse_map_argument,
)


@pytest.fixture(scope="module")
def shipped():
    return load_tables()


@pytest.mark.parametrize(
    ("case_name", "tg263", "rule"),
    [
        ("SpinalCord", "SpinalCord", "tg263"),
        ("spinalcord", "SpinalCord", "tg263"),
        ("CHESTWALL", "Chestwall", "tg263"),
        ("Spinal Cord", "SpinalCord", "alias"),
        ("CORD", "SpinalCord", "alias"),
        ("SPINAL CORD2", "SpinalCord", "alias"),
        ("Spinal_Cord", "SpinalCord", "alias"),
        ("LUNGS-ITV's", "Lungs-ITV", "alias"),
        ("Lung_Total", "Lungs-ITV", "alias"),
        ("GreatVessels", "GreatVes", "alias"),
        ("BrachialPlexus_L", "BrachialPlex_L", "alias"),
        ("Ribs", "Rib", "alias"),
        ("Oesophagus", "Esophagus", "alias"),
        ("Main Bronchus", "Bronchus_Main", "alias"),
        ("L_Lung", "Lung_L", "tg263-reverse"),  # TG-263 Reverse Order name
        ("R_BrachialPlex", "BrachialPlex_R", "tg263-reverse"),
        ("SpinalCord_PRV05", "SpinalCord_PRV05", "tg263-prv"),
        ("spinalcord_prv5", "SpinalCord_PRV05", "tg263-prv"),
    ],
)
def test_single_names(shipped, case_name, tg263, rule):
    needed = [] if rule == "tg263-prv" else [tg263]  # a needed organ counts as a known name
    result = match_structures([case_name], needed, shipped)
    assert result.matched == {case_name: tg263}
    assert result.rule[case_name] == rule
    assert result.missing == ()


def test_normalise_name():
    assert normalise_name("LUNGS-ITV's") == "lungsitvs"
    assert normalise_name(" Spinal_Cord ") == normalise_name("SPINAL-CORD")


def test_unmatched_and_missing_reported(shipped):
    result = match_structures(["PTV_54", "Couch", "Heart"], ["Heart", "Esophagus"], shipped)
    assert result.unmatched == ("PTV_54", "Couch")
    assert result.missing == ("Esophagus",)
    assert result.structure_for("Heart") == "Heart"


def test_two_structures_one_organ_is_ambiguous(shipped):
    result = match_structures(["Spinal Cord", "CORD", "Heart"], ["SpinalCord", "Heart"], shipped)
    assert "SpinalCord" not in result.matched.values()
    (ambiguity,) = result.ambiguous
    assert ambiguity.kind == "organ" and ambiguity.key == "SpinalCord"
    assert set(ambiguity.candidates) == {"Spinal Cord", "CORD"}
    assert result.missing == ("SpinalCord",)
    assert "--map" in ambiguity.describe()


def test_one_name_two_candidates_is_ambiguous():
    aliases = [("Prox Bronch", "AirWay_Prox"), ("ProxBronch", "Bronchus_Main")]
    result = match_structures(["PROX_BRONCH"], ["AirWay_Prox"], aliases)
    (ambiguity,) = result.ambiguous
    assert ambiguity.kind == "name"
    assert ambiguity.candidates == ("AirWay_Prox", "Bronchus_Main")
    assert result.matched == {}


def test_override_wins_and_resolves_ambiguity(shipped):
    result = match_structures(
        ["Spinal Cord", "CORD", "My Cord"],
        ["SpinalCord"],
        shipped,
        overrides={"My Cord": "SpinalCord"},
    )
    assert result.matched == {"My Cord": "SpinalCord"}
    assert result.rule["My Cord"] == "override"
    assert set(result.overridden) == {"Spinal Cord", "CORD"}
    assert result.ambiguous == ()


def test_override_resolves_name_with_two_candidates():
    aliases = {"Prox Bronch": "AirWay_Prox", "ProxBronch": "Bronchus_Main"}
    result = match_structures(
        ["PROX_BRONCH"], [], aliases, overrides={"PROX_BRONCH": "AirWay_Prox"}
    )
    assert result.matched == {"PROX_BRONCH": "AirWay_Prox"}


def test_override_errors(shipped):
    with pytest.raises(EvaluationError, match="no structure 'Nope'"):
        match_structures(["CORD"], [], shipped, overrides={"Nope": "SpinalCord"})
    with pytest.raises(EvaluationError, match="not a known TG-263 name"):
        match_structures(["CORD"], [], shipped, overrides={"CORD": "Cord"})


def test_parse_map_argument():
    assert parse_map_argument("My Cord=SpinalCord") == ("My Cord", "SpinalCord")
    with pytest.raises(EvaluationError, match="expected STRUCTURE=TG263NAME"):
        parse_map_argument("SpinalCord")


def test_load_mapping_file(tmp_path, shipped):
    path = tmp_path / "map.csv"
    path.write_text("structure,tg263\nMy Cord,SpinalCord\nLUNG-R,Lung_R\n", encoding="utf-8")
    mapping = load_mapping_file(path)
    assert mapping == {"My Cord": "SpinalCord", "LUNG-R": "Lung_R"}
    result = match_structures(["My Cord", "LUNG-R"], ["SpinalCord"], shipped, mapping)
    assert result.matched == {"My Cord": "SpinalCord", "LUNG-R": "Lung_R"}


def test_load_mapping_file_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("structure,tg263\nMy Cord,SpinalCord\nMy Cord,SpinalCanal\n", encoding="utf-8")
    with pytest.raises(ConstraintTableError, match="bad.csv:3: 'My Cord' mapped twice"):
        load_mapping_file(bad)
    bad.write_text("name,organ\nx,y\n", encoding="utf-8")
    with pytest.raises(ConstraintTableError, match="bad.csv:1: header"):
        load_mapping_file(bad)
    bad.write_text("structure,tg263\nx\n", encoding="utf-8")
    with pytest.raises(ConstraintTableError, match="bad.csv:2:"):
        load_mapping_file(bad)
