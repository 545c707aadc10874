"""Issue 14 CLI papercuts: Dmax/Dmean accepted, ``dvh --structure`` by TG-263 name and
case-insensitively, ``bed 54/3``, ``report``/``export-*`` ``--out`` checks, rt-utils a plain
dependency. Values by hand: a 20 mm cube (8 cc) in a dose linear in x, 1 Gy/mm from 0 to
20 Gy across it, so Dmean = 10 Gy and Dmax = 20 Gy (the face at x = 20 mm)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from rtplan_assist.cli import main
from rtplan_assist.metrics import parse_metric
from test_dicom_synthetic import write_dose, write_struct

ROOT = Path(__file__).resolve().parents[1]


def _cube(z0: float, z1: float, x0: float = 0.0):
    sq = np.array([[x0, 0], [x0 + 20, 0], [x0 + 20, 20], [x0, 20]], float)
    return [("CLOSED_PLANAR", np.c_[sq, np.full(4, zc)]) for zc in np.arange(z0, z1, 2.0)]


@pytest.fixture()
def pair(tmp_path):
    """'CORD' (TG-263 SpinalCord by the shipped alias), 'Oesophagus' (Esophagus), 'cube' and
    'CUBE' (the same name but for case), all the same 20 mm cube."""
    rois = [(1, "CORD", "ORGAN", _cube(1.0, 20.0)), (2, "Oesophagus", "ORGAN", _cube(1.0, 20.0)),
            (3, "cube", "ORGAN", _cube(1.0, 20.0)), (4, "CUBE", "ORGAN", _cube(1.0, 20.0))]
    rs = write_struct(tmp_path / "rs.dcm", rois)
    n, d = 13, 2.5
    x = d * np.arange(n)
    frames = np.broadcast_to(x, (n, n, n))  # Gy = x in mm
    rd = write_dose(tmp_path / "rd.dcm", np.round(frames / 0.001).astype(np.uint32),
                    ipp=(0.0, -5.0, -5.0), pixel_spacing=(d, d), offsets=d * np.arange(n))
    return str(rs), str(rd)


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("text,canonical", [("Dmax", "Max[Gy]"), ("Dmean", "Mean[Gy]"),
                                            ("dmin", "Min[Gy]"), ("Dmax[Gy]", "Max[Gy]"),
                                            (" Mean ", "Mean[Gy]")])
def test_short_dose_statistics_are_tg263_aliases(text, canonical):
    assert str(parse_metric(text)) == canonical


def test_dvh_accepts_dmax_dmean_and_tg263_structure_name(pair, capsys):
    code, out, err = run(["dvh", *pair, "--structure", "spinalcord", "--metric", "Dmax",
                          "--metric", "Dmean"], capsys)
    assert code == 0, err
    (s,) = json.loads(out)["structures"]
    assert s["name"] == "CORD"  # TG-263 'SpinalCord' ← alias CORD (constraints/aliases.csv)
    assert s["metrics"]["Mean[Gy]"] == pytest.approx(10.0, abs=0.01)  # by hand, see docstring
    assert s["metrics"]["Max[Gy]"] == pytest.approx(20.0, abs=0.01)


def test_dvh_structure_is_case_insensitive(pair, capsys):
    code, out, err = run(["dvh", *pair, "--structure", "ESOPHAGUS", "--structure",
                          "oesophagus"], capsys)
    assert code == 0, err
    assert [s["name"] for s in json.loads(out)["structures"]] == ["Oesophagus"]


def test_dvh_ambiguous_structure_lists_candidates(pair, capsys):
    code, out, err = run(["dvh", *pair, "--structure", "Cube"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "ambiguous" in err and "'CUBE'" not in err and "CUBE, cube" in err
    code, _, err = run(["dvh", *pair, "--structure", "cube"], capsys)  # exact name wins
    assert code == 0, err
    code, _, err = run(["dvh", *pair, "--structure", "Heart"], capsys)
    assert code == 2 and "no structure named 'Heart'" in err


@pytest.mark.parametrize("argv", [["bed", "54/3"], ["bed", "54", "3"]])
def test_bed_accepts_dose_slash_fractions(argv, capsys):
    code, out, err = run(argv + ["--alpha-beta", "10", "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    # BED = 54 (1 + 18/10) = 151.2 Gy; EQD2 = 151.2 / 1.2 = 126 Gy (by hand)
    assert doc["bed_gy"] == pytest.approx(151.2) and doc["eqd2_gy"] == pytest.approx(126.0)


@pytest.mark.parametrize("argv,needle", [(["bed", "54/x"], "not a whole number"),
                                         (["bed", "a/3"], "not a number"),
                                         (["bed", "54"], "DOSE/FRACTIONS"),
                                         (["bed", "54/3", "3"], "DOSE/FRACTIONS")])
def test_bed_bad_input_is_one_line(argv, needle, capsys):
    code, out, err = run(argv + ["--alpha-beta", "10"], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command,name", [("export-dose", "x.dcm"), ("export-structures", "x.dcm"),
                                          ("report", "x.pdf")])
def test_out_directory_or_missing_folder_is_refused_before_work(command, name, tmp_path, capsys):
    code, out, err = run([command, "--demo", "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err and len(err.strip().splitlines()) == 1
    missing = tmp_path / "no" / "such" / name
    code, out, err = run([command, "--demo", "--out", str(missing)], capsys)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()  # nothing created


def test_rt_utils_is_a_plain_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("rt-utils") for d in project["dependencies"])
