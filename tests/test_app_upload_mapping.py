"""Uploads and structure mapping (issue 14): an uploaded patient honours its mapping file as
``evaluate`` does, the overview shows the mapping in force, the user can map a structure the
case does not evaluate, and a bad mapping file is a message naming the file and line.

The reference is the command line / library on the same folder (same engine: these tests check
that the app passes the mapping through, not the engine's numbers)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from rtplan_assist.names import FOLDER_MAP_FILE

PREPARE_TIMEOUT_S = 600  # the demo's joint recommendation; a new engine means a new preparation
L1_FILES = ("RS.dcm", "RP.L1.dcm", "RD.L1.dcm")  # one lesion, no CT: prepared in seconds


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _upload(dash_duo, path: Path) -> None:
    """Pick ``path`` in the upload's file input (emptied first: Selenium adds to its files)."""
    field = dash_duo.find_element("#upload input[type=file]")
    dash_duo.driver.execute_script("arguments[0].value = '';", field)
    field.send_keys(str(path))


def _start_on_demo(dash_duo, app_cache):
    """The app on the demo patient (prepared once per run in ``app_cache``), loaded."""
    from rtplan_assist.app import create_app

    app = create_app(None, cache_dir=app_cache)
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    return app


def _click(dash_duo, element) -> None:
    """Scroll ``element`` to the middle at once (the stylesheet scrolls smoothly), click it."""
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    element.click()


def _mapping_row(dash_duo, structure: str, table: str = "#mapping-table") -> str:
    """The text of ``structure``'s row in the mapping table (the rows that need a look; the
    others are in ``#mapping-table-rest``, behind the "Show all N structures" disclosure)."""
    for row in dash_duo.find_elements(f"{table} tbody tr"):
        if row.find_element("css selector", "td").text == structure:
            return row.text
    raise AssertionError(f"no row for {structure} in the mapping table")


# -- the discovery rule, shared by the CLI and the app --------------------------------------------
def test_mapping_file_is_found_beside_the_structure_set_from_the_folder_given(tmp_path):
    """`evaluate OUT` finds the file `demo --out OUT` writes in OUT/<patient>/ as `evaluate
    OUT/<patient>` does (before: only OUT/rtplan-assist-map.csv, so the two differed); a file
    above the folder given is never used."""
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case
    from rtplan_assist.names import folder_map_file, folder_mapping

    patient = tmp_path / "OUT" / "PATIENT"
    (patient / "RT").mkdir(parents=True)
    for name in L1_FILES:
        (patient / "RT" / name).write_bytes((demo_case_folder() / name).read_bytes())
    (tmp_path / FOLDER_MAP_FILE).write_text("structure,tg263\nHeart,Heart\n")  # above OUT
    assert folder_map_file(load_case(tmp_path / "OUT")) is None
    (patient / FOLDER_MAP_FILE).write_text("structure,tg263\nLUNGS-ITV's,Lungs-GTV\n")
    for given in (tmp_path / "OUT", patient, patient / "RT"):
        found = folder_map_file(load_case(given))
        assert found == (patient / FOLDER_MAP_FILE if given != patient / "RT" else None)
    nearer = patient / "RT" / FOLDER_MAP_FILE  # the nearest to the structure set wins
    nearer.write_text("structure,tg263\nLUNGS-ITV's,Lungs\n")
    assert folder_mapping(load_case(tmp_path / "OUT"))[0] == {"LUNGS-ITV's": "Lungs"}
    assert folder_map_file(tmp_path / "OUT") is None  # a folder: the file in that folder only


def test_user_mapping_is_part_of_the_prepared_cache_key(tmp_path):
    from rtplan_assist.app.callbacks.overview import mapping_options
    from rtplan_assist.app.services.patients import PatientEntry
    from rtplan_assist.app.services.prepared import PreparedCache

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "RS.dcm").write_bytes(b"x")
    cache = PreparedCache(tmp_path / "cache")
    current = [["--prescription", "RP.dcm=54/3"], ["--map", "A=Heart"]]
    ids = [{"type": "map-organ", "structure": "B"}, {"type": "map-organ", "structure": "C"}]
    options = mapping_options(current, ["Lungs-GTV", None], ids)
    assert options == [["--prescription", "RP.dcm=54/3"], ["--map", "B=Lungs-GTV"]]
    entries = [PatientEntry("p0", "p", folder, plan_options=tuple(map(tuple, o)))
               for o in ([], [["--map", "B=Lungs-GTV"]], [["--map", "B=Lungs"]], options)]
    assert len({cache.pickle_path(e) for e in entries}) == 4
    assert entries[3].user_mapping == {"B": "Lungs-GTV"}


def test_a_refused_upload_is_said_in_the_uploader_s_terms(tmp_path):
    """A loading error about an upload names its files as uploaded, not the server's folder."""
    from types import SimpleNamespace

    from rtplan_assist.app.callbacks.patient import _in_upload_terms
    from rtplan_assist.app.services.patients import PatientEntry
    from rtplan_assist.errors import DicomInputError

    root = tmp_path / "uploads" / "upload-x1y2"
    entry = PatientEntry("u-x1y2", "Upload: a.zip", root, "s1", root)
    services = SimpleNamespace(uploads=SimpleNamespace(
        find=lambda session, key: entry if (session, key) == ("s1", "u-x1y2") else None))
    exc = DicomInputError(f"2 structure sets found ({root}/a/RS.dcm, {root}/b/RS.dcm)",
                          path=root)
    text = str(_in_upload_terms(exc, {"key": "u-x1y2"}, services, "s1"))
    assert str(tmp_path) not in text and "a/RS.dcm, b/RS.dcm" in text and "the upload" in text
    assert _in_upload_terms(exc, {"key": "u-x1y2"}, services, "s2") is exc  # not its upload


def test_a_mapping_file_the_rule_does_not_use_is_named_in_the_overview(tmp_path):
    """An upload's mapping file beside another folder than the structure set's is not applied
    (as `evaluate` would not apply it) and the overview says so, naming it."""
    from types import SimpleNamespace

    from rtplan_assist.app.callbacks.overview import _unused_map_files

    used = tmp_path / "P" / FOLDER_MAP_FILE
    other = tmp_path / "notes" / FOLDER_MAP_FILE
    for path in (used, other):
        path.parent.mkdir()
        path.write_text("structure,tg263\n")
    loaded = SimpleNamespace(entry=SimpleNamespace(upload_dir=tmp_path))
    assert _unused_map_files(loaded, used) == [f"notes/{FOLDER_MAP_FILE}"]
    assert _unused_map_files(loaded, None) == [f"P/{FOLDER_MAP_FILE}", f"notes/{FOLDER_MAP_FILE}"]
    assert _unused_map_files(SimpleNamespace(entry=SimpleNamespace(upload_dir=None)), None) == []


def _by_id(component, wanted: str):
    """The Dash component with id ``wanted`` in a component tree, or None."""
    if getattr(component, "id", None) == wanted:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = _by_id(child, wanted)
            if found is not None:
                return found
    return None


def _table_structures(table) -> list[str]:
    return [row.children[0].children for row in table.children[1].children]


def test_overview_lists_the_structures_to_look_at_and_the_others_behind_a_disclosure():
    """On the demo (28 structures, its mapping file in force) the mapping table shows the rows
    that need a look: the mapping file's (LUNGS-ITV's), the structures whose organ no table
    constrains (External, Lungs, kidneys); the structures evaluated by their built-in names and
    the targets are behind "Show all 28 structures". Each structure is in exactly one table."""
    from dash import html

    from rtplan_assist.app.callbacks.overview import mapping_rows, mapping_section
    from rtplan_assist.app.services import LoadedPatient, PatientEntry
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.names import folder_mapping
    from rtplan_assist.workflow import evaluate_folder

    evaluation = evaluate_folder(demo=True)
    loaded = LoadedPatient(PatientEntry("demo", "Demo", demo_case_folder()), evaluation)
    section = html.Div(mapping_section(loaded))
    shown = _table_structures(_by_id(section, "mapping-table"))
    disclosure = _by_id(section, "mapping-all")
    assert isinstance(disclosure, html.Details) and not getattr(disclosure, "open", False)
    hidden = _table_structures(_by_id(disclosure, "mapping-table-rest"))
    names = [s.name for s in evaluation.case.structures]
    assert len(names) == 28 and sorted(shown + hidden) == sorted(names)
    assert disclosure.children[0].children.startswith("Show all 28 structures")
    # what each row is, from the engine's name matching and the tables (not from the page)
    constrained = set(evaluation.tables.organs())
    from_file = folder_mapping(evaluation.case)[0]
    targets = {les.target.name for les in evaluation.lesions} | {
        les.gtv.name for les in evaluation.lesions if les.gtv}
    for name in names:
        organ = evaluation.name_match.matched.get(name)
        evaluated = organ in constrained and evaluation.oar_structures[organ].name == name
        quiet = name in targets or (evaluated and name not in from_file)
        assert (name in hidden) == quiet, name
    assert "LUNGS-ITV's" in shown  # from the mapping file: shown although evaluated
    assert {"External", "Kidney_L", "Kidney_R"} <= set(shown)  # not evaluated
    assert {"Heart", "Esophagus", "PTV_1", "GTV_5"} <= set(hidden)
    rows = {r.structure: r for r in mapping_rows(loaded)}
    assert rows["LUNGS-ITV's"].origin == "file" and rows["Heart"].origin == "builtin"


# -- the browser ------------------------------------------------------------------------------
@pytest.mark.browser
def test_uploaded_demo_zip_recommends_as_evaluate_on_the_folder(dash_duo, app_cache, tmp_path,
                                                                demo_evaluation):
    """The demo folder zipped as `demo --out OUT` writes it (OUT/RTPA-DEMO-0000/...), uploaded:
    its rtplan-assist-map.csv is in force and the recommended regimens are those of the library
    on the folder (`evaluate --demo`, which applies the file: checked below)."""
    from rtplan_assist.demo import demo_case_folder

    evaluation, result = demo_evaluation
    assert any(w.startswith(f"structure mapping from {FOLDER_MAP_FILE}")
               for w in evaluation.warnings)
    assert evaluation.name_match.matched["LUNGS-ITV's"] == "Lungs-GTV"
    expected = [result.recommendation.choice[les.lesion_id].label for les in evaluation.lesions]

    folder = demo_case_folder()
    archive = _zip(tmp_path / "demo.zip", {f"RTPA-DEMO-0000/{p.name}": p.read_bytes()
                                           for p in sorted(folder.iterdir()) if p.is_file()})
    _start_on_demo(dash_duo, app_cache)
    _upload(dash_duo, archive)
    dash_duo.wait_for_contains_text("#overview-content", "Upload: demo.zip",
                                    timeout=PREPARE_TIMEOUT_S)
    row = _mapping_row(dash_duo, "LUNGS-ITV's")
    assert "Lungs-GTV" in row and f"{FOLDER_MAP_FILE}, line 2" in row and "yes" in row
    assert FOLDER_MAP_FILE in dash_duo.find_element("#map-file-status").text
    # a structure evaluated by its built-in name is behind "Show all 28 structures"
    with pytest.raises(AssertionError, match="no row for Heart"):
        _mapping_row(dash_duo, "Heart")
    assert not dash_duo.find_element("#mapping-table-rest").is_displayed()
    _click(dash_duo, dash_duo.find_element("#mapping-all summary"))
    row = _mapping_row(dash_duo, "Heart", table="#mapping-table-rest")
    assert "built-in names" in row and row.endswith("yes")
    assert "Lungs-GTV" not in dash_duo.find_element("#absent-organs").text
    rows = dash_duo.find_elements("#lesion-list tbody tr")
    assert [r.find_element("css selector", "td").text for r in rows] == [
        les.lesion_id for les in evaluation.lesions]
    recommended = [r.find_elements("css selector", "td")[6].text for r in rows]
    assert recommended == expected
    assert dash_duo.get_logs() == []


@pytest.mark.browser
def test_bad_mapping_file_is_a_message_and_a_user_mapping_makes_an_absent_organ_evaluated(
        dash_duo, app_cache, tmp_path):
    """A mapping file naming an unknown organ: the page says which file and line (the CLI's
    message), no traceback. Then the same patient without a mapping file: Lungs-GTV is absent
    (LUNGS-ITV's reads as the alias Lungs-ITV, which no table constrains); the user maps
    LUNGS-ITV's to Lungs-GTV in the overview, the patient is prepared again with it, and
    Lungs-GTV is evaluated, said to be the user's mapping; nothing is written into the upload;
    the mapping downloads as a mapping file."""
    from dash.testing.wait import until

    from rtplan_assist.demo import demo_case_folder

    folder = demo_case_folder()
    files = {f"P/{name}": (folder / name).read_bytes() for name in L1_FILES}
    bad = _zip(tmp_path / "bad.zip", {**files, f"P/{FOLDER_MAP_FILE}":
                                      b"structure,tg263\nHeart,Heart\nLUNGS-ITV's,Lung-GTV\n"})
    plain = _zip(tmp_path / "plain.zip", files)
    app = _start_on_demo(dash_duo, app_cache)

    _upload(dash_duo, bad)
    dash_duo.wait_for_contains_text(
        "#load-error", f"{FOLDER_MAP_FILE}:3: 'Lung-GTV' is not a known TG-263 name",
        timeout=120)
    assert "Traceback" not in dash_duo.find_element("#load-error").text

    _upload(dash_duo, plain)
    dash_duo.wait_for_contains_text("#overview-content", "Upload: plain.zip", timeout=120)
    assert "Lungs-GTV" in dash_duo.find_element("#absent-organs").text
    assert "no constraint table constrains Lungs-ITV" in _mapping_row(dash_duo, "LUNGS-ITV's")
    _click(dash_duo, dash_duo.find_element("#map-form-panel summary"))
    for row in dash_duo.find_elements("#map-form tbody tr"):
        if row.find_element("css selector", "td").text == "LUNGS-ITV's":
            _click(dash_duo, row.find_element("css selector", "td:nth-child(3) [id]"))
    dash_duo.wait_for_element("input.dash-dropdown-search", timeout=10).send_keys("Lungs-GTV")
    _click(dash_duo, dash_duo.wait_for_element(
        "label[role=option]:has(input[value='Lungs-GTV'])", timeout=10))
    _click(dash_duo, dash_duo.find_element("#map-submit"))

    dash_duo.wait_for_contains_text("#user-mapping", "LUNGS-ITV's → Lungs-GTV", timeout=120)
    assert "given by you" in dash_duo.find_element("#user-mapping").text.lower()
    row = _mapping_row(dash_duo, "LUNGS-ITV's")
    assert "Lungs-GTV" in row and "given by you" in row and row.endswith("yes")
    assert "Lungs-GTV" not in dash_duo.find_element("#absent-organs").text

    state = app.rtplan_state
    [upload_dir] = list(state.upload_root.glob("upload-*"))
    assert not list(upload_dir.rglob(FOLDER_MAP_FILE))  # inputs read-only
    _click(dash_duo, dash_duo.find_element("#map-download-button"))
    saved = Path(dash_duo.download_path) / FOLDER_MAP_FILE
    until(saved.is_file, timeout=10)
    assert saved.read_text() == "structure,tg263\nLUNGS-ITV's,Lungs-GTV\n"

    assert dash_duo.get_logs() == []
