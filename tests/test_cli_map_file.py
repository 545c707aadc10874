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


def test_folder_mapping_file_errors_name_the_file_and_line(tmp_path, capsys):
    """The mapping file kept in a patient folder (names.FOLDER_MAP_FILE): same rule."""
    import shutil

    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.names import FOLDER_MAP_FILE

    folder = tmp_path / "patient"
    shutil.copytree(demo_case_folder(), folder)
    (folder / FOLDER_MAP_FILE).write_text("structure,tg263\nLUNGS-ITV's,Lungs-GTV\nGone,Heart\n")
    code = main(["evaluate", str(folder)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{FOLDER_MAP_FILE}:3: no structure 'Gone' in the case" in err
    assert len(err.strip().splitlines()) == 1
