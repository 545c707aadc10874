"""Shared fixtures. ``tests/`` is on sys.path so tests can import ``analytic``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the project root; the test skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared test data at {SHARED_DATA} (not in a fresh clone)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def private_decision_db(tmp_path_factory) -> str:
    """Tests never read or write the user's MDT decision database (issue 16): the default
    (``RTPLAN_ASSIST_DB``, also seen by subprocesses) is a file of this run."""
    path = str(tmp_path_factory.mktemp("decisions") / "records.sqlite")
    os.environ["RTPLAN_ASSIST_DB"] = path
    return path


@pytest.fixture(scope="session")
def demo_evaluation():
    """``(evaluation, result)`` of the demo patient with the defaults of ``evaluate --demo``
    (every regimen of the catalogue, every shipped table), computed once per run.

    Read-only: a test that adds regimens or choices works on ``evaluation.copy()`` (it shares
    the computed caches and keeps its own additions)."""
    from rtplan_assist.workflow import evaluate_folder

    evaluation = evaluate_folder(demo=True)
    return evaluation, evaluation.result()


# -- browser tests (dash[testing]): Debian's Chromium, headless, no network chatter ------------
def pytest_setup_options():
    """Chrome options for dash_duo (run ``pytest --headless``); see ecosystem.md §4.5."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="session")
def app_cache(tmp_path_factory) -> str:
    """One cache folder of prepared evaluations for every app test (``create_app(cache_dir=)``),
    so the demo patient is prepared once per run; ``RTPLAN_ASSIST_TEST_APP_CACHE`` names one to
    reuse between runs."""
    return os.environ.get("RTPLAN_ASSIST_TEST_APP_CACHE") or str(
        tmp_path_factory.mktemp("app-cache"))


# -- fuzzing (tests/test_fuzz_*.py, issue 6): --fuzz-long raises the fixed-seed corpus ------
def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-long",
        nargs="?",
        type=int,
        const=50,
        default=1,
        metavar="FACTOR",
        help="fuzz suites: FACTOR times the CI example counts (default 50 when given without a "
        "value), with fresh random draws instead of the fixed seed",
    )
    parser.addoption(
        "--dvh-stress",
        type=int,
        default=2,
        metavar="ROUNDS",
        help="tests/test_dvh_stress.py: rounds of every Nelms DVH on several threads "
        "(default 2, a few seconds)",
    )


@pytest.fixture(scope="session")
def fuzz_scale(request) -> int:
    """Multiplier of the fuzz example counts: 1 in CI (derandomized), more with --fuzz-long."""
    return max(int(request.config.getoption("--fuzz-long")), 1)


@pytest.fixture(scope="session")
def leakcheck_patient(tmp_path_factory) -> Path:
    """A demo patient with a distinctive ID (``LEAKCHECK-12345``), written once per session.

    Read-only for the tests: the immutability tests check that nothing changes it.
    """
    from rtplan_assist.demo import write_demo_patient

    return write_demo_patient(tmp_path_factory.mktemp("leakcheck"), patient_id="LEAKCHECK-12345")
