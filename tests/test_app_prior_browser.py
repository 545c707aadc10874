"""Browser test of the prior-course page (issue 17) in headless Chromium: the demo patient with
its synthetic prior course (30 Gy/10 a year earlier, ``demo --variant prior``) in a folder
``<patient>-prior`` beside it.

The expected verdict and cumulative cord EQD2 are computed through the library
(:func:`rtplan_assist.prior.evaluate_prior`, whose arithmetic ``tests/test_prior.py`` checks
against hand-worked values) on the evaluator the app serves, never read from the page.
"""

from __future__ import annotations

import shutil

import pytest
from test_app_browser import PREPARE_TIMEOUT_S

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def patient_with_prior(tmp_path_factory):
    from rtplan_assist.demo import demo_case_folder, write_prior_course

    root = tmp_path_factory.mktemp("prior-app")
    patient = root / "RTPA-DEMO-0000"
    shutil.copytree(demo_case_folder(), patient)
    write_prior_course(root / "RTPA-DEMO-0000-prior", patient_id="RTPA-DEMO-0000")
    return patient


def test_prior_page_shows_the_cumulative_verdict_and_cord_eqd2(dash_duo, app_cache,
                                                                patient_with_prior):
    from rtplan_assist.app import create_app
    from rtplan_assist.prior import evaluate_prior, load_prior_course

    app = create_app(str(patient_with_prior), cache_dir=app_cache)
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    state = app.rtplan_state
    template = state.prepared.template(state.entry(state.default_key(), None))
    evaluator = template.evaluator.copy()
    prior = load_prior_course(patient_with_prior.parent / "RTPA-DEMO-0000-prior", evaluator.case)
    expected = evaluate_prior(evaluator, template.recommendation.choice, prior)
    cord = next(o for o in expected.organs if o.organ == "SpinalCord")

    dash_duo.find_element("#nav-prior").click()
    dash_duo.wait_for_contains_text("#prior-folder", "RTPA-DEMO-0000-prior", timeout=30)
    dash_duo.find_element("#prior-run").click()
    dash_duo.wait_for_element("#prior-verdict", timeout=120)
    verdict = dash_duo.find_element("#prior-verdict").text
    assert f"Prior-course verdict: {expected.verdict()}" in verdict
    # the cord's row: structure, α/β, recovery, then "Max / Mean" per course (COURSES order)
    from rtplan_assist.prior import COURSES

    rows = {}
    for tr in dash_duo.find_elements("#prior-table tbody tr"):
        cells = [td.text for td in tr.find_elements("css selector", "td")]
        rows[cells[0]] = cells
    cells = rows[cord.structure]
    for course in ("prior", "cumulative"):
        shown = cells[3 + COURSES.index(course)]
        m = cord.metrics[course]
        assert shown == f"{m['Max[Gy]']:.1f} / {m['Mean[Gy]']:.1f}", (course, shown)
    rules = dash_duo.find_element("#prior-rules").text
    assert "Nieder" in rules or "HyTEC" in rules
    assert not [e for e in dash_duo.get_logs() or [] if e.get("level") == "SEVERE"]
