"""``evaluate --map-file``: an entry the case cannot use is refused naming the file and the
line (issue 11: the error named ``--map`` instead of the file)."""

from __future__ import annotations

import pytest

from rtplan_assist.cli import main


@pytest.mark.parametrize("rows,needle", [
    (["Spinal Cord,SpinalCord", "Nope,SpinalCord"], "map.csv:3: no structure 'Nope' in the case"),
    (["Esophagus,NotAnOrgan"], "map.csv:2: 'NotAnOrgan' is not a known TG-263 name"),
    (["Esophagus"], "map.csv:2: expected 'structure,tg263'"),
])
def test_map_file_errors_name_the_file_and_line(tmp_path, capsys, rows, needle):
    mapping = tmp_path / "map.csv"
    mapping.write_text("structure,tg263\n" + "\n".join(rows) + "\n")
    code = main(["evaluate", "--demo", "--map-file", str(mapping)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and "--map " not in err
    assert len(err.strip().splitlines()) == 1
