"""Browser test of the plan form (issue 13): a patient whose RTPLANs have no prescription and
several PTVs (``demo --variant no-prescription``) is listed plan by plan with the reason; picking
targets and prescriptions in the app evaluates it, and the recommended regimens equal those of
``evaluate`` with the same ``--target``/``--prescription`` (the command line is the reference:
both run the same engine, the test checks the app passes the user's choices through)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser

# Only L1 and L4 get a prescription: the other plans stay "not a lesion" (warned), which keeps
# the preparation (every regimen of every lesion) short.
RX = {"RP.L1.dcm": "54/3", "RP.L4.dcm": "50 Gy/5"}
TARGET = ("RP.L4.dcm", "PTV_4")  # no ReferencedROINumber in the plan: the user names it


def _field(dash_duo, kind: str, plan: str):
    ident = json.dumps({"plan": plan, "type": kind}, separators=(",", ":"))
    return dash_duo.wait_for_element(f"[id='{ident}']", timeout=30)


def test_plan_form_picks_targets_and_prescriptions_like_evaluate(dash_duo, tmp_path, capsys):
    from rtplan_assist.app import create_app
    from rtplan_assist.cli import main
    from rtplan_assist.demo import write_demo_patient

    folder = write_demo_patient(tmp_path / "data", variant="no-prescription")
    app = create_app(str(folder), cache_dir=str(tmp_path / "cache"))
    dash_duo.start_server(app)

    # every plan with why it is not a lesion
    dash_duo.wait_for_element("#plan-form", timeout=120)
    form = dash_duo.find_element("#plan-form").text
    for label, file in (("L1 RUL", "RP.L1.dcm"), ("L4 liver", "RP.L4.dcm"),
                        ("L5 T8 vertebra", "RP.L5.dcm")):
        assert label in form and file in form
    assert form.count("no target prescription dose in the RTPLAN") == 5

    # a prescription that is not DOSE/FRACTIONS is refused, naming the plan
    _field(dash_duo, "plan-rx", "RP.L1.dcm").send_keys("54")
    dash_duo.find_element("#plan-form-submit").click()
    dash_duo.wait_for_contains_text("#plan-form-error", "RP.L1.dcm", timeout=30)

    _field(dash_duo, "plan-rx", "RP.L1.dcm").send_keys("/3")
    _field(dash_duo, "plan-rx", "RP.L4.dcm").send_keys(RX["RP.L4.dcm"])
    _field(dash_duo, "plan-target", TARGET[0]).click()
    dash_duo.wait_for_element("input.dash-dropdown-search", timeout=10).send_keys(TARGET[1])
    option = dash_duo.wait_for_element(
        f"label[role=option]:has(input[value='{TARGET[1]}'])", timeout=10)
    option.click()
    dash_duo.find_element("#plan-form-submit").click()

    dash_duo.wait_for_element("#lesion-list", timeout=300)
    rows = [r.text for r in dash_duo.find_elements("#lesion-list tbody tr")]
    assert len(rows) == 2
    assert "PTV_4" in rows[1] and "50 Gy/5" in rows[1] and "54 Gy/3" in rows[0]
    given = dash_duo.find_element("#user-plan-options").text
    assert "given by the user" in given.lower()
    assert "RP.L1.dcm: prescription 54 Gy in 3 fractions" in given
    assert "RP.L4.dcm: target PTV_4" in given
    app_recommended = [
        dash_duo.find_element(f"#lesion-list tbody tr:nth-child({i}) td:nth-child(7)").text
        for i in (1, 2)]

    out = tmp_path / "out.json"
    args = ["evaluate", str(folder), "--format", "json", "--out", str(out),
            "--target", "=".join(TARGET)]
    for plan, rx in RX.items():
        args += ["--prescription", f"{plan}={rx}"]
    assert main(args) in (0, 1), capsys.readouterr().err
    data = json.loads(out.read_text())
    assert [x["planned"] for x in data["lesions"]] == ["54 Gy/3", "50 Gy/5"]
    choice = data["recommendation"]["choice"]
    assert app_recommended == [choice["L1"], choice["L2"]]
    assert dash_duo.get_logs() == []


def test_user_targets_and_prescriptions_are_part_of_the_prepared_cache_key(tmp_path):
    """Another choice of targets/prescriptions is never served from the cache of the first."""
    import dataclasses

    from rtplan_assist.app.services.patients import PatientEntry
    from rtplan_assist.app.services.prepared import PreparedCache

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "RP.dcm").write_bytes(b"x")
    cache = PreparedCache(tmp_path / "cache")
    plain = PatientEntry("p0", "p", folder)
    a = dataclasses.replace(plain, plan_options=(("--prescription", "RP.dcm=54/3"),))
    b = dataclasses.replace(plain, plan_options=(("--prescription", "RP.dcm=60/8"),))
    c = dataclasses.replace(plain, plan_options=(("--target", "RP.dcm=PTV_1"),
                                                 ("--prescription", "RP.dcm=54/3")))
    paths = {cache.pickle_path(e) for e in (plain, a, b, c)}
    assert len(paths) == 4
    assert cache.pickle_path(a) == cache.pickle_path(dataclasses.replace(a))
