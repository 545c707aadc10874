"""Unit tests of the app without a browser: upload checks, tables, figures, state."""

from __future__ import annotations

import base64
import io
import html as html_lib
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
from rtplan_assist.app.figures import (
    constraint_points,
    dose_slice_figure,
    dvh_figure,
    structure_outline,
)
from rtplan_assist.app.upload import (
    UploadLimits,
    check_zip,
    decoded_size,
    extract_zip,
    safe_relative_path,
    save_upload,
)
from rtplan_assist.app.lesion_view import ColumnVerdict, comparison_table
from rtplan_assist.app.views import (
    kind_text,
    status_badge,
    worst_first,
    worst_status,
)

from rtplan_assist.dvh import DVH
from rtplan_assist.errors import UploadError
from rtplan_assist.model import Grid, Structure

MB = 1024 * 1024


def _zip(members: dict[str, bytes], *, symlink: str | None = None,
         compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _data_url(data: bytes) -> str:
    return "data:application/zip;base64," + base64.b64encode(data).decode()


# -- upload -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../evil.dcm", "a/../../evil.dcm", "/etc/passwd",
                                  "\\\\server\\share\\x", "C:\\Windows\\x.dcm", "c:x.dcm",
                                  "a/\x00b", "", "CON", "dir/aux.txt"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(UploadError):
        safe_relative_path(name)


def test_safe_names_are_normalised():
    assert str(safe_relative_path("pat1\\CT\\./CT.1.dcm")) == "pat1/CT/CT.1.dcm"


def test_zip_slip_member_refused_before_anything_is_written(tmp_path):
    data = _zip({"ok.dcm": b"x" * 10, "../../outside.dcm": b"y"})
    with pytest.raises(UploadError, match="outside the upload folder"):
        extract_zip(data, tmp_path / "dest", UploadLimits())
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "outside.dcm").exists()


def test_absolute_member_and_symlink_refused(tmp_path):
    with pytest.raises(UploadError, match="absolute"):
        extract_zip(_zip({"/abs.dcm": b"x"}), tmp_path, UploadLimits())
    with pytest.raises(UploadError, match="symbolic link"):
        extract_zip(_zip({"a.dcm": b"x"}, symlink="link"), tmp_path, UploadLimits())
    assert list(tmp_path.iterdir()) == []


def test_zip_bomb_refused_by_ratio(tmp_path):
    # 20 MB of zeros deflate to ~20 kB: a ratio near 1000 (DICOM compresses 2-20x)
    data = _zip({"bomb.dcm": bytes(20 * MB)})
    assert len(data) < 100_000
    with pytest.raises(UploadError, match="zip bomb"):
        extract_zip(data, tmp_path, UploadLimits())
    assert list(tmp_path.iterdir()) == []


def test_zip_refused_by_total_uncompressed_size_and_file_count(tmp_path):
    limits = UploadLimits(max_uncompressed_bytes=1000, max_files=3)
    with pytest.raises(UploadError, match="unpacks to more than"):
        check_zip(zipfile.ZipFile(io.BytesIO(_zip({"a": b"x" * 600, "b": b"y" * 600}))),
                  limits)
    with pytest.raises(UploadError, match="more than 3 files"):
        check_zip(zipfile.ZipFile(io.BytesIO(_zip({f"f{i}": b"x" for i in range(4)}))),
                  limits)


def test_upload_over_the_cap_is_refused_with_sizes(tmp_path):
    limits = UploadLimits(max_upload_bytes=1 * MB)
    url = _data_url(b"x" * (2 * MB))
    assert decoded_size(url) == 2 * MB
    with pytest.raises(UploadError, match=r"2\.0 MB, more than the 1\.0 MB cap") as refused:
        save_upload([url], ["big.zip"], tmp_path, limits)
    assert list(tmp_path.iterdir()) == []
    # the app's message says "refused" once (it used to read "Upload refused: refused: ...")
    from rtplan_assist.app.callbacks.patient import upload_refusal

    assert upload_refusal(refused.value).startswith("Upload refused: the upload is 2.0 MB, more")
    assert upload_refusal(UploadError("nothing was uploaded.")) == (
        "Upload refused: nothing was uploaded.")


def test_good_zip_and_folder_upload_are_extracted_without_overwriting(tmp_path):
    data = _zip({"pat/CT.1.dcm": b"ct", "pat/RS.dcm": b"rs"})
    written = save_upload([_data_url(data), _data_url(b"plan")], ["case.zip", "extra/RP.dcm"],
                          tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "case/pat/CT.1.dcm", "case/pat/RS.dcm", "extra/RP.dcm"]
    assert (tmp_path / "case/pat/RS.dcm").read_bytes() == b"rs"
    with pytest.raises(UploadError, match="nothing is overwritten"):
        save_upload([_data_url(b"again")], ["extra/RP.dcm"], tmp_path)
    assert (tmp_path / "extra/RP.dcm").read_bytes() == b"plan"


def test_corrupt_zip_is_refused(tmp_path):
    with pytest.raises(UploadError, match="not a readable zip"):
        save_upload([_data_url(b"PK not a zip")], ["x.zip"], tmp_path)


# -- tables -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    structure: str
    metric: str
    value: float
    status: str
    regimen: str = "50 Gy/5"
    role: str = "oar"
    organ: str = "Esophagus"
    unit: str = "Gy"
    kind: str = "physical"
    model: str = "LQ"
    alpha_beta_gy: float | None = 3.0
    comparator: str = "<="
    limit: float | None = 35.0
    goal: float | None = None
    reason: str = ""
    source: str = "tg101_2010"
    constraint_fractions: int | None = 5
    converted_from_fractions: int | None = None
    priority: str = "mandatory"
    lesion_id: str = "L2"
    patient_id: str = "P"
    robustness: str = ""
    robustness_note: str = ""


def _text(component) -> str:
    """All text of a Dash component tree."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


def test_status_badge_has_colour_and_words():
    for status, word in (("pass", "PASS"), ("goal missed", "GOAL MISSED"), ("fail", "FAIL")):
        badge = status_badge(status)
        assert badge.children == word
        assert badge.style["backgroundColor"].startswith("#")
    assert worst_status(["pass", "goal missed", "fail", "pass"]) == "fail"
    assert worst_status(["pass", "not evaluable"]) == "not evaluable"


def test_kind_text_shows_model_and_alpha_beta():
    assert kind_text(Row("Cord", "Max[Gy]", 1.0, "pass")) == "physical"
    assert kind_text(Row("Cord", "Max[Gy]", 1.0, "pass", kind="EQD2", alpha_beta_gy=2.0)) == \
        "EQD2 (LQ, α/β = 2 Gy)"


def _visible(html_text: str) -> str:
    """The text a reader sees in the table's HTML: no tags, attributes (tooltips) or closed
    "details" disclosures; white space collapsed."""
    shown = re.sub(r"<details.*?</details>", " ", html_text)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", shown)))


def test_comparison_table_columns_units_status_and_conversion():
    rows = {
        "50 Gy/5": [Row("PTV_2", "Rx[Gy]", 100.0, "info", role="target", kind="BED",
                        alpha_beta_gy=10.0, limit=100.0, comparator=">=", unit="Gy",
                        priority="report"),
                    Row("Esophagus", "D0.03cc[Gy]", 34.52, "fail", limit=32.89,
                        converted_from_fractions=4)],
        "45 Gy/15": [Row("PTV_2", "Rx[Gy]", 58.5, "info", role="target", kind="BED",
                         alpha_beta_gy=10.0, limit=100.0, comparator=">=", regimen="45 Gy/15",
                         priority="report"),
                     Row("Esophagus", "D0.03cc[Gy]", 31.0, "pass", regimen="45 Gy/15",
                         limit=40.0)],
    }
    verdicts = {"50 Gy/5": ColumnVerdict("fail", "pass"),
                "45 Gy/15": ColumnVerdict("pass", "fail")}
    div = comparison_table(rows, chosen="45 Gy/15", recommended="45 Gy/15", planned="50 Gy/5",
                           verdicts=verdicts)
    table = div.children[1].children  # one HTML text (one component: fast to draw)
    text = _visible(table)
    legend = _text(div.children[2])
    assert "34.52" in text and "FAIL" in text and "PASS" in text
    # % of limit: 34.52 / 32.89 = 104.96 % (fails), 31 / 40 = 77.5 % -> "78 %"
    assert "105 % of ≤ 32.89" in text and "78 % of ≤ 40" in text
    # the conversion is said once on the row (LQ, the organ's α/β) and as "†4" in the cell,
    # no longer as a sentence in every cell; the legend says what † means
    assert "†LQ α/β 3 Gy" in text and "†4" in text and "converted from 4 fx" not in text
    assert "converted from the table's n-fraction row by LQ" in legend
    assert text.count("physical") == 1  # the unit line of the Esophagus row, not every cell
    # the source and the conversion stay behind "details" and in the cell's tooltip
    assert "tg101_2010" in table and 'title="Esophagus D0.03cc[Gy] (physical)' in table
    # targets: BED10 58.5 Gy is below the 100 Gy control target (amber), 100 Gy reaches it
    assert "below target" in text and "target met" in text and 'class="target-below"' in table
    assert re.findall(r'<th class="col-regimen[^"]*" data-regimen="([^"]+)"', table) == [
        "50 Gy/5", "45 Gy/15"]
    assert 'class="col-regimen col-recommended col-chosen col-rejected" data-regimen="45 Gy/15"' \
        in table
    assert 'class="col-regimen col-planned col-rejected" data-regimen="50 Gy/5"' in table
    first_row = table.split("<tbody>")[1].split("</tr>")[0]
    assert "PTV_2" in first_row  # target rows first


def test_no_composite_rejected_column_reads_a_bare_pass():
    """Issue 14: a column whose own OARs pass but whose composite fails shows both verdicts,
    each named ("own PASS", "with others FAIL"); no PASS in a header stands alone."""
    rows = {"50 Gy/10": [Row("Esophagus", "D0.03cc[Gy]", 20.0, "pass", regimen="50 Gy/10")]}
    table = comparison_table(rows, chosen=None, recommended=None,
                             verdicts={"50 Gy/10": ColumnVerdict("pass", "fail")}).children[1]
    head = _visible(table.children.split("<tbody>")[0])
    assert "own PASS" in head and "with others FAIL" in head
    assert re.sub(r"own PASS", "", head).count("PASS") == 0
    assert 'data-composite-status="fail"' in table.children


def test_one_row_per_organ_by_default_every_constraint_on_request():
    """Compact view: an organ's row shows its worst mandatory row in each column (the failing
    one, else the closest to its limit); "show all" gives one row per constraint."""
    rows = {"50 Gy/5": [Row("Esophagus", "D0.03cc[Gy]", 20.0, "pass", limit=40.0),  # 50 %
                        Row("Esophagus", "D5cc[Gy]", 18.0, "pass", limit=20.0),     # 90 %
                        Row("Esophagus", "Mean[Gy]", 9.0, "fail", limit=34.0,
                            priority="report")]}                                    # advisory
    compact = comparison_table(rows, chosen="50 Gy/5", recommended=None).children[1].children
    assert compact.count("<tr") == 2  # header + one organ row
    assert "Esophagus · D5cc[Gy]" in _visible(compact) and "90 % of ≤ 20" in _visible(compact)
    full = comparison_table(rows, chosen="50 Gy/5", recommended=None,
                            show_all=True).children[1].children
    assert full.count("<tr") == 4
    # an advisory row never reads PASS/FAIL: it is met or not met and does not decide
    assert "adv. not met" in _visible(full)


def test_fragile_verdicts_carry_a_visible_marker():
    """Issue 13: a verdict that flips within the organ's α/β range or the borderline band is
    marked in the regimen table and the composite table as text, not only in a tooltip."""
    from rtplan_assist.app.lesion_view import comparison_table_html
    from rtplan_assist.app.views import composite_table

    fragile = Row("Spinal Cord", "Max[Gy]", 40.0, "fail", limit=38.89, robustness="fragile",
                  robustness_note="flips: α/β 1.45 Gy; converted limit 38.89-41.36 Gy")
    robust = Row("Esophagus", "D0.03cc[Gy]", 20.0, "pass", robustness="pass-robust")
    table = comparison_table_html({"50 Gy/5": [fragile, robust]}, chosen="50 Gy/5",
                                  recommended="50 Gy/5")
    assert table.count("⚠ fragile") == 1 and "α/β 1.45 Gy" in table
    text = _text(composite_table([fragile, robust]))
    assert text.count("⚠ fragile: α/β 1.45 Gy") == 1


def test_comparison_table_escapes_what_the_files_say():
    # structure names and reasons come from DICOM files: they are text, never markup
    row = Row("<img src=x>", "D0.03cc[Gy]", float("nan"), "not evaluable",
              reason="<script>alert(1)</script>")
    table = comparison_table({"50 Gy/5": [row]}, chosen=None, recommended=None).children[1]
    assert "<img" not in table.children and "<script" not in table.children
    assert "&lt;img src=x&gt;" in table.children and "&lt;script&gt;" in table.children


# -- figures ------------------------------------------------------------------------------------
def _dvh(name="Esophagus", volume=10.0, dmax=40.0):
    dose = np.linspace(0, dmax, 81)
    vol = volume * (1 - dose / dmax)
    return DVH(name, 1, volume, volume, 0.0, dose, vol, 0.0, dmax / 2, dmax)


def test_dvh_figure_traces_and_axis_units():
    rows = [Row("Esophagus", "D0.03cc[Gy]", 34.5, "fail", limit=32.0),
            Row("Esophagus", "V20Gy[%]", 50.0, "pass", limit=60.0, unit="%")]
    fig = dvh_figure([("Esophagus", "50 Gy/5", _dvh()), ("Esophagus", "45 Gy/15", _dvh())],
                     kind="physical", rows=rows)
    names = [t.name for t in fig.data]
    # one legend entry per structure, one per regimen's line style, markers per regimen
    assert names == ["Esophagus", "Esophagus", "50 Gy/5 (line style)", "45 Gy/15 (line style)",
                     "limits at 50 Gy/5"]
    assert [t.showlegend for t in fig.data[:2]] == [True, False]
    assert fig.layout.xaxis.title.text == "Dose (Gy, physical)"
    assert fig.layout.yaxis.title.text == "Volume (% of structure)"
    pts = constraint_points(rows, {"Esophagus": _dvh()})
    # D0.03cc <= 32 Gy -> (32 Gy, 0.3 % of 10 cc); V20Gy <= 60 % -> (20 Gy, 60 %)
    assert pts[0]["dose_gy"] == 32.0 and math.isclose(pts[0]["volume_pct"], 0.3)
    assert pts[1]["dose_gy"] == 20.0 and pts[1]["volume_pct"] == 60.0
    eq = dvh_figure([("Esophagus", "50 Gy/5", _dvh())], kind="EQD2", model="LQ, α/β = 3 Gy")
    assert eq.layout.xaxis.title.text == "EQD2 (Gy, LQ, α/β = 3 Gy)"


def _square(z_planes, half=10.0, cx=0.0, cy=0.0):
    sq = np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
                   [cx - half, cy + half]])
    return Structure(1, "Box", "ORGAN", np.asarray(z_planes, float),
                     [[sq] for _ in z_planes], slice_thickness_mm=2.0)


def test_structure_outline_axial_and_cut_planes():
    box = _square([0.0, 2.0, 4.0])
    xs, _ys = structure_outline(box, "axial", 2.4)
    assert xs.count(None) == 1 and min(x for x in xs if x is not None) == -10.0
    assert structure_outline(box, "axial", 9.0) == ([], [])  # beyond half a slab
    xs, zs = structure_outline(box, "coronal", 0.0)  # y = 0 cuts x in [-10, 10] on each plane
    xs_num = [x for x in xs if x is not None]
    assert min(xs_num) == -10.0 and max(xs_num) == 10.0
    assert min(z for z in zs if z is not None) == -1.0  # first plane's slab starts 1 mm below
    assert structure_outline(box, "sagittal", 50.0) == ([], [])
    # three touching 2 mm slabs: one rectangle, 2 vertical edges per plane + bottom + top
    segments = [(xs[i], zs[i], xs[i + 1], zs[i + 1]) for i in range(0, len(xs), 3)]
    assert len(segments) == 8
    assert sorted(s for s in segments if s[1] == s[3]) == [(-10.0, -1.0, 10.0, -1.0),
                                                           (-10.0, 5.0, 10.0, 5.0)]


def test_dose_slice_figure_layers_and_orientation():
    grid = Grid.uniform((-20.0, -20.0, 0.0), (2.0, 2.0, 2.0), (3, 21, 21))
    dose = np.zeros(grid.shape, np.float32)
    dose[:, 8:13, 8:13] = 50.0
    ct = np.full(grid.shape, -1000.0, np.float32)
    fig = dose_slice_figure(plane="axial", position_mm=2.0, dose_grid=grid, dose=dose,
                            dose_label="Dose (Gy, physical)", wash_threshold=5.0,
                            isodose_levels=[(50.0, "100% (50 Gy)"), (40.0, "80% (40 Gy)")],
                            ct_grid=grid, ct_hu=ct, structures=[(_square([2.0]), "red")])
    names = [t.name for t in fig.data]
    assert names == ["CT (HU)", "Dose (Gy, physical)", "100% (50 Gy)", "80% (40 Gy)", "Box"]
    assert fig.layout.yaxis.autorange == "reversed"  # anterior up
    assert fig.layout.xaxis.title.text == "x (mm)"
    wash = np.asarray(fig.data[1].z, dtype=float)
    assert np.isnan(wash[0, 0]) and wash[10, 10] == 50.0
    cor = dose_slice_figure(plane="coronal", position_mm=0.0, dose_grid=grid, dose=dose,
                            dose_label="EQD2 (Gy, LQ α/β = 3 Gy)", wash_threshold=5.0,
                            isodose_levels=[])
    assert cor.layout.yaxis.title.text == "z (mm)" and cor.layout.yaxis.autorange is True


# -- state ----------------------------------------------------------------------------------------
def test_state_upload_replaced_and_removed(tmp_path, monkeypatch):
    from rtplan_assist.app.services import AppServices

    st = AppServices(None, cache_dir=tmp_path / "cache", session_ttl_s=10.0)
    monkeypatch.setattr("rtplan_assist.dicom.find_patient_folders", lambda f: [f])
    first = st.store_upload("s1", [_data_url(_zip({"RS.dcm": b"x"}))], ["a.zip"])
    assert first.upload_dir.is_dir() and first.owner_session == "s1"
    second = st.store_upload("s1", [_data_url(_zip({"RS.dcm": b"y"}))], ["b.zip"])
    assert not first.upload_dir.exists() and second.upload_dir.is_dir()
    with pytest.raises(UploadError):
        st.store_upload("s1", [_data_url(_zip({"../x": b"y"}))], ["c.zip"])
    assert len(list(st.upload_root.iterdir())) == 1  # the refused upload left nothing
    assert st.entry(second.key, "s1") == second
    with pytest.raises(Exception, match="unknown patient"):
        st.entry(second.key, "someone-else")
    st.sessions._seen["s1"] = -1e9  # long ago: expired at the next touch
    os.utime(st.uploads._index("s1"), (0, 0))  # ... and on disk, where every worker marks it
    st.touch("s2")
    assert not second.upload_dir.exists()
    assert st.picker_options("s1") == st.patients.options()
    st.close()


# -- the recommendation follows the regimens a session added ------------------------------------
def test_added_regimen_competes_in_the_recommendation():
    """L5 (the vertebra next to the cord; no cited control target) is recommended 45 Gy/15 from
    the catalogue, which is not a cited standard for a vertebra, for lack of a passing one. A
    user adds 39 Gy/13: the same 3 Gy per fraction, two fractions fewer, so every dose (and
    the cord's) is 39/45 of 45 Gy/15's; when it passes all of L5's mandatory constraints alone
    and in the composite, the objective's third criterion (fewer fractions) must take it.
    Another session's copy of the patient is not affected, and keeps the recommendation
    computed before the copies were made (no second search)."""
    from rtplan_assist.app.services import LoadedPatient, PatientEntry
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case
    from rtplan_assist.evaluation import CaseEvaluator
    from rtplan_assist.regimens import Regimen

    evaluator = CaseEvaluator(load_case(demo_case_folder()))
    stored = evaluator.recommend()  # the preparation job's, over the catalogue
    entry = PatientEntry("demo", "Demo", demo_case_folder())
    mine = LoadedPatient(entry, evaluator.copy())
    theirs = LoadedPatient(entry, evaluator.copy())
    assert stored.choice["L5"] == Regimen(15, 45.0)
    added = Regimen(13, 39.0)

    prefs = {"added": {"L5": [added.label]}}
    choice = mine.choice(prefs)
    rec = mine.recommendation_for(prefs)
    assert added in mine.evaluator.regimens_for("L5")
    fails = [r for r in mine.evaluator.lesion_rows("L5", added)
             if r.priority == "mandatory" and r.status == "fail"]
    assert not fails and rec.composite_status == "pass"
    assert rec.choice["L5"] == added and choice["L5"] == added
    result, result_choice = mine.result(prefs)
    assert result.recommendation is rec and result_choice == choice
    # the other session: no added regimen, the stored recommendation itself (no new search)
    assert theirs.recommendation_for({}) is stored and theirs.choice({}) == stored.choice
    assert added not in theirs.evaluator.regimens_for("L5")
    # nothing of the evaluation is replaced on the instance (the app used to patch recommend)
    assert "recommend" not in vars(mine.evaluator) and "recommend" not in vars(theirs.evaluator)


def test_concurrent_preparations_of_one_patient_start_one_job(tmp_path, monkeypatch):
    """Four sessions open the demo patient at once with an empty cache (new code, cleared
    cache): one preparation interpreter runs, the others wait for its pickle and reuse it."""
    import subprocess
    import threading

    from rtplan_assist.app.services import AppServices, prepared

    started = []
    real_popen = subprocess.Popen

    def counting_popen(cmd, *args, **kwargs):
        started.append(cmd)
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(prepared.subprocess, "Popen", counting_popen)
    st = AppServices(None, cache_dir=tmp_path / "cache")
    entry = st.entries[0]
    paths, errors = [], []

    def open_patient():
        try:
            paths.append(st.prepare(entry))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_patient) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    st.close()
    assert not errors, errors
    assert len(started) == 1, started
    assert len(set(paths)) == 1 and len(paths) == 4


def test_sessions_share_one_unpickled_patient_but_not_their_choices(tmp_path):
    """Two sessions on the demo patient: one unpickled evaluator (same dose arrays, same CT
    array), two session copies (a regimen added in one is not in the other)."""
    from rtplan_assist.app.services import AppServices
    from rtplan_assist.regimens import Regimen

    st = AppServices(None, cache_dir=tmp_path / "cache")
    key = st.entries[0].key
    a, b = st.patient("session-a", key), st.patient("session-b", key)
    assert a is not b and a.evaluator is not b.evaluator
    assert a.case is b.case  # doses, structures: one copy in memory
    assert a.ct_hu() is b.ct_hu()
    a.choice({"added": {"L4": ["57.5 Gy/5"]}})
    assert Regimen(5, 57.5) in a.evaluator.regimens_for("L4")
    assert Regimen(5, 57.5) not in b.evaluator.regimens_for("L4")
    assert len(st.prepared) == 1 and len(st.sessions) == 2
    st.close()


def test_dose_slider_slices_the_composite_without_recomputing_it(app_cache, monkeypatch):
    """The dose view's slider redraws on every move: the composite EQD2 of a choice at one α/β
    (a 3-D sum over every lesion) is computed once, then only sliced; another α/β, or another
    session with the same choice, does not recompute what is cached for the patient."""
    from app_http import callback_payload, post_callback, serve
    from rtplan_assist.app import create_app
    from rtplan_assist.evaluation import CaseEvaluator

    app = create_app(None, cache_dir=app_cache)
    services = app.rtplan_state
    key = services.entries[0].key
    services.prepare(services.entries[0])
    services.patient("slider-a", key)  # unpickling warms the composite grid: not counted
    calls = []
    real = CaseEvaluator.composite_eqd2

    def counting(self, choice, alpha_beta_gy=3.0):
        calls.append(alpha_beta_gy)
        return real(self, choice, alpha_beta_gy)

    monkeypatch.setattr(CaseEvaluator, "composite_eqd2", counting)

    def slide(session, position, alpha_beta="3.0"):
        status, answer, _ = post_callback(url, callback_payload(app, "dose-graph.figure", {
            "dose-slider.value": position, "dose-regimen.value": alpha_beta,
            "dose-plane.value": "axial", "loaded.data": {"key": key}, "choices.data": {},
            "page-dose.data": "composite", "session-id.data": session}, "dose-slider.value"))
        assert status == 200, answer
        return answer["response"]["dose-graph"]["figure"]["layout"]["title"]["text"]

    with serve(app) as (url, log):
        first = slide("slider-a", -20.0)
        assert calls == [3.0]
        titles = [slide("slider-a", z) for z in (-10.0, 0.0, 10.0)]
        assert calls == [3.0]  # three moves, no recomputation
        assert len(set(titles + [first])) == 4  # each answer is its own slice (z in the title)
        slide("slider-b", 5.0)  # another session, same choice: the patient's cached grid
        assert calls == [3.0]
        slide("slider-a", 0.0, alpha_beta="10.0")
        slide("slider-a", 5.0, alpha_beta="10.0")
        assert calls == [3.0, 10.0]
        assert log.messages() == []
    services.close()


def test_once_lru_makes_each_value_once_and_drops_the_least_recent():
    """Eight requests for one missing key (a patient eight sessions open at once) make it once;
    a third key evicts the least recently used of two; a failed make leaves nothing behind."""
    import threading
    import time

    from rtplan_assist.app.services.lru import OnceLRU

    cache = OnceLRU(2)
    made = []

    def make(key):
        def run():
            made.append(key)
            time.sleep(0.05)
            return f"value of {key}"
        return run

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get("a", make("a"))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["a"] and answers == ["value of a"] * 8
    cache.get("b", make("b"))
    cache.get("a", make("a"))  # a is now the most recent
    cache.get("c", make("c"))  # evicts b
    assert made == ["a", "b", "c"] and len(cache) == 2
    cache.get("b", make("b"))
    assert made[-1] == "b"

    def fail():
        raise RuntimeError("unreadable")

    with pytest.raises(RuntimeError):
        cache.get("d", fail)
    assert cache.get("d", make("d")) == "value of d"
    cache.discard(lambda key, _value: key != "d")
    assert cache.get("d", make("d")) == "value of d" and made[-2:] == ["d", "d"]


def test_composite_rows_are_listed_worst_first():
    """The composite tables list fail, goal missed, not evaluable, then pass and info (one
    group: the engine's verdict ignores info), each group by structure name."""
    @dataclass
    class Row:
        status: str
        structure: str

    rows = [Row("pass", "Heart"), Row("info", "Aorta"), Row("not evaluable", "Liver"),
            Row("fail", "SpinalCord"), Row("goal missed", "Esophagus"), Row("fail", "Bowel")]
    assert [(r.status, r.structure) for r in worst_first(rows)] == [
        ("fail", "Bowel"), ("fail", "SpinalCord"), ("goal missed", "Esophagus"),
        ("not evaluable", "Liver"), ("info", "Aorta"), ("pass", "Heart")]


def test_app_csv_export_can_drop_the_not_evaluable_rows(app_cache):
    """The composite page's CSV (the one writer, evaluation.result_to_csv) keeps every row by
    default; with the page's checkbox it leaves out exactly the rows whose status is 'not
    evaluable' (issue 14), as evaluate --drop-not-evaluable does."""
    import csv
    import io

    from app_http import callback_payload, post_callback, serve
    from rtplan_assist.app import create_app

    app = create_app(None, cache_dir=app_cache)
    services = app.rtplan_state
    key = services.entries[0].key
    services.prepare(services.entries[0])

    def export(drop):
        status, answer, _ = post_callback(url, callback_payload(app, "download-csv.data", {
            "export-csv.n_clicks": 1, "export-csv-drop.value": drop, "loaded.data": {"key": key},
            "choices.data": {}, "session-id.data": "csv-drop"}, "export-csv.n_clicks"))
        assert status == 200, answer
        text = answer["response"]["download-csv"]["data"]["content"]
        return list(csv.DictReader(io.StringIO(text)))

    with serve(app) as (url, _log):
        full, dropped = export(None), export(True)
    not_evaluable = [r for r in full if r["status"] == "not evaluable"]
    assert not_evaluable  # the demo has organs without structures and without cited limits
    assert all(r["status"] != "not evaluable" for r in dropped)
    assert len(dropped) == len(full) - len(not_evaluable)
    services.close()
