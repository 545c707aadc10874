"""``rtplan-assist dvh`` / ``validate-dvh`` / ``demo``: the JSON contract, CSV, and one-line
errors with non-zero exits. Values: a 20 mm cube (8 cc) in a dose linear in x from 0 to
20 Gy across it, so V(>=D) = 8 cc × (20 − D)/20 and Dmean = 10 Gy by hand."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from rtplan_assist.cli import main
from test_dicom_synthetic import write_dose, write_struct


@pytest.fixture()
def cube_pair(tmp_path):
    z = np.arange(1.0, 20.0, 2.0)
    sq = [[0, 0], [20, 0], [20, 20], [0, 20]]
    contours = [("CLOSED_PLANAR", np.c_[np.array(sq, float), np.full(4, zc)]) for zc in z]
    rs = write_struct(tmp_path / "rs.dcm", [(1, "Cube", "ORGAN", contours)])
    nz, ny, nx, d = 13, 13, 13, 2.5
    x = 0.0 + d * np.arange(nx)
    frames = np.broadcast_to(x, (nz, ny, nx))  # Gy = x in mm × 1 Gy/mm
    rd = write_dose(tmp_path / "rd.dcm", np.round(frames / 0.001).astype(np.uint32),
                    ipp=(0.0, -5.0, -5.0), pixel_spacing=(d, d), offsets=d * np.arange(nz))
    return rs, rd


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_contract(cube_pair, capsys):
    rs, rd = cube_pair
    code, out, err = run(["dvh", str(rs), str(rd), "--metric", "V15Gy[%]", "--metric",
                          "D25%[Gy]", "--metric", "CV15Gy[cc]"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"structures", "warnings"}
    (s,) = doc["structures"]
    for key in ("name", "roi_number", "volume_cc", "dmin_gy", "dmean_gy", "dmax_gy",
                "metrics", "dvh"):
        assert key in s
    assert s["name"] == "Cube" and s["roi_number"] == 1
    assert s["volume_cc"] == pytest.approx(8.0, rel=1e-6)
    assert s["dmean_gy"] == pytest.approx(10.0, abs=0.01)
    assert s["metrics"]["V15Gy[%]"] == pytest.approx(25.0, abs=0.1)
    assert s["metrics"]["D25%[Gy]"] == pytest.approx(15.0, abs=0.02)
    assert s["metrics"]["CV15Gy[cc]"] == pytest.approx(6.0, abs=0.01)
    dose, vol = np.array(s["dvh"]["dose_gy"]), np.array(s["dvh"]["volume_cc"])
    assert np.all(np.diff(dose) > 0) and np.all(np.diff(vol) <= 1e-9)
    assert np.interp(5.0, dose, vol) == pytest.approx(6.0, abs=0.01)


def test_csv_is_tidy(cube_pair, capsys):
    rs, rd = cube_pair
    code, out, _ = run(["dvh", str(rs), str(rd), "--format", "csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["metric"] for r in rows} >= {"dmean_gy", "D95%[Gy]", "Mean[Gy]"}
    assert all(r["structure"] == "Cube" for r in rows)


def test_out_file_is_written_atomically(cube_pair, tmp_path, capsys):
    rs, rd = cube_pair
    target = tmp_path / "out" / "dvh.json"
    code, out, _ = run(["dvh", str(rs), str(rd), "--out", str(target)], capsys)
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["structures"][0]["name"] == "Cube"
    assert [p.name for p in target.parent.iterdir()] == ["dvh.json"]


@pytest.mark.parametrize("argv,needle", [
    (["dvh", "/nonexistent/folder"], "/nonexistent/folder"),
    (["dvh", "{rs}", "{rd}", "--metric", "D95[Gy]"], "not a TG-263 DVH metric"),
    (["dvh", "{rs}", "{rd}", "--structure", "Nope"], "no structure named 'Nope'"),
])
def test_bad_input_is_one_line_and_exit_2(cube_pair, capsys, argv, needle):
    rs, rd = cube_pair
    argv = [a.format(rs=rs, rd=rd) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _subcommands():
    from rtplan_assist.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sorted(sub.choices)


@pytest.mark.parametrize("command", [None] + _subcommands())
def test_every_subcommand_help_runs(command, capsys):
    # 'dvh -h' once ended in a traceback: an unescaped % in its help text (issue 11)
    argv = ["-h"] if command is None else [command, "-h"]
    with pytest.raises(SystemExit) as done:
        main(argv)
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    assert out.out.startswith("usage: rtplan-assist") and "Traceback" not in out.err
    if command == "dvh":
        assert "D98%[Gy]" in out.out


def test_dvh_with_nothing_computed_exits_2(tmp_path, capsys):
    rs = write_struct(tmp_path / "rs.dcm", [(1, "Empty", "ORGAN", None)])
    rd = write_dose(tmp_path / "rd.dcm", np.ones((3, 4, 4), dtype=np.uint32),
                    pixel_spacing=(2.5, 2.5))
    code, out, err = run(["dvh", str(rs), str(rd)], capsys)
    assert code == 2 and out == ""
    assert "no DVH computed" in err and "Empty: no closed contours" in err
    assert "Traceback" not in err


def test_dose_without_frame_of_reference_is_loaded_with_a_warning(cube_pair, capsys):
    rs, rd = cube_pair
    ds = pydicom.dcmread(rd)
    del ds.FrameOfReferenceUID
    ds.save_as(rd)
    code, out, err = run(["dvh", str(rs), str(rd)], capsys)
    assert code == 0, err
    assert json.loads(out)["structures"][0]["name"] == "Cube"
    assert "RTDOSE has no FrameOfReferenceUID" in err


def test_several_doses_need_a_choice(cube_pair, tmp_path, capsys):
    rs, rd = cube_pair
    folder = tmp_path / "patient"
    folder.mkdir()
    (folder / "rs.dcm").write_bytes(rs.read_bytes())
    for name in ("rd1.dcm", "rd2.dcm"):
        write_dose(folder / name, np.ones((3, 4, 4), dtype=np.uint32), pixel_spacing=(2.5, 2.5))
    code, out, err = run(["dvh", str(folder)], capsys)
    assert code == 2 and "choose one with --dose" in err
    code, out, err = run(["dvh", str(folder), "--dose", "all"], capsys)
    assert code == 0
    assert {s["dose_file"] for s in json.loads(out)["structures"]} <= {"rd1.dcm", "rd2.dcm"}


def test_console_script_runs_and_reports_errors_in_one_line(tmp_path):
    exe = [sys.executable, "-m", "rtplan_assist.cli"]
    done = subprocess.run(exe + ["dvh", str(tmp_path / "missing")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("rtplan-assist: error:") and "Traceback" not in done.stderr


def test_validate_dvh_prints_the_nelms_summary(shared_data, tmp_path, capsys):
    """The command on two Nelms rows (Sphere_10_0, both gradients; the 90 rows are checked by
    tests/test_dvh_shared_data.py): the analytical values of Nelms et al. 2015 are met."""
    nelms = shared_data / "nelms-dvh"
    subset = tmp_path / "nelms-subset"
    subset.mkdir()
    lines = (nelms / "analytical.csv").read_text().splitlines()
    rows = [line for line in lines[1:] if line.startswith("Sphere_10_0,")]
    (subset / "analytical.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    for folder in ("structures", "dose"):
        (subset / folder).symlink_to(nelms / folder, target_is_directory=True)
    out = tmp_path / "nelms.txt"
    code, _, _ = run(["validate-dvh", str(subset), "--out", str(out)], capsys)
    assert code == 0 and len(rows) == 2
    text = out.read_text()
    assert "Sphere_10_0" in text and "Dmin, Dmax and Dmean within 0.5 % of analytical: 2/2" in text


def test_end_caps_none_ends_the_solid_at_the_end_contours(cube_pair, capsys):
    """The cube's 10 contours (z = 1 … 19 mm every 2 mm) with half-slice end caps span
    z 0–20 mm: 20 × 20 × 20 mm = 8 cc (the fixture's docstring); without end caps (Eclipse's
    convention) the solid spans z 1–19 mm: 20 × 20 × 18 mm = 7.2 cc. The dose is linear in x
    only, so Dmean stays 10 Gy either way. Both runs state their convention."""
    rs, rd = cube_pair
    for caps, volume in (("half", 8.0), ("none", 7.2)):
        code, out, err = run(["dvh", str(rs), str(rd), "--end-caps", caps], capsys)
        assert code == 0, err
        doc = json.loads(out)
        (s,) = doc["structures"]
        assert s["end_caps"] == caps and doc["dose"]["end_caps"] == caps
        assert s["volume_cc"] == pytest.approx(volume, rel=1e-6)
        assert s["dvh_volume_cc"] == pytest.approx(volume, rel=1e-4)
        assert s["dmean_gy"] == pytest.approx(10.0, abs=0.01)
    code, out, err = run(["dvh", str(rs), str(rd), "--end-caps", "none", "--format", "csv"],
                         capsys)
    assert code == 0 and {r["end_caps"] for r in csv.DictReader(io.StringIO(out))} == {"none"}
