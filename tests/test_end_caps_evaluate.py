"""``--end-caps`` reaches every DVH of an evaluation, the batch and the provenance (issue 11).

Expected values come from the contour stack, not from the engine: with ``none`` a structure's
volume loses exactly half a plane spacing of its first and last planes' areas (the end caps
``half`` adds), which we compute from the polygons with the shoelace formula.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from rtplan_assist.geometry import plane_area_even_odd
from rtplan_assist.workflow import evaluate_folder


def _end_cap_cc(structure) -> float:
    """Half a plane spacing times the areas of the first and last planes (cm³)."""
    z = np.asarray(structure.plane_z_mm, dtype=float)
    order = np.argsort(z)
    spacing = float(np.median(np.diff(z[order])))
    first = plane_area_even_odd(structure.polygons[order[0]])
    last = plane_area_even_odd(structure.polygons[order[-1]])
    return 0.5 * spacing * (first + last) / 1000.0


@pytest.fixture(scope="module")
def evaluations():
    half = evaluate_folder(demo=True, regimens="planned")
    none = evaluate_folder(demo=True, regimens="planned", end_caps="none")
    return half, none


def test_lesion_dvhs_follow_the_end_caps_option(evaluations):
    half, none = evaluations
    lesion = half.lesions[0]
    regimen = lesion.planned
    dvh_half = half.lesion_dvhs(lesion.lesion_id, regimen)
    dvh_none = none.lesion_dvhs(lesion.lesion_id, regimen)
    target = lesion.target
    a, b = dvh_half[target.name], dvh_none[target.name]
    assert a.end_caps == "half" and b.end_caps == "none"
    # the PTV lies inside its dose grid: the DVH volumes differ by the two end caps exactly
    # (to the engine's integration accuracy, well under 0.5 %)
    expected = _end_cap_cc(target)
    assert a.dvh_volume_cc - b.dvh_volume_cc == pytest.approx(expected, rel=5e-3)


def test_provenance_states_the_end_caps(evaluations):
    half, none = evaluations
    assert half.result("planned").provenance["end_caps"] == "half"
    assert none.result("planned").provenance["end_caps"] == "none"


def test_the_cli_options(capsys, tmp_path):
    from rtplan_assist.batch import _options_key
    from rtplan_assist.cli import build_parser, main

    # evaluate: an unknown convention is one line, exit 2 (argparse)
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--demo", "--end-caps", "flat"])
    assert exc.value.code == 2
    assert "--end-caps" in capsys.readouterr().err
    parser = build_parser()
    for argv in (["evaluate", "--demo"], ["report", "--demo", "--out", "r.pdf"],
                 ["export-dose", "--demo", "--out", "d.dcm"],
                 ["batch", str(tmp_path), "--out", str(tmp_path / "o")]):
        assert parser.parse_args(argv + ["--end-caps", "none"]).end_caps == "none"
        assert parser.parse_args(argv).end_caps == "half"
    # a batch with another convention is not resumed from records of the default one
    assert _options_key(None, None, "pdf") != _options_key(None, None, "pdf", end_caps="none")
    assert "end_caps" not in _options_key(None, None, "pdf")  # older records stay valid
