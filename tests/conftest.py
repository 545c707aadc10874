"""Shared fixtures. ``tests/`` is on sys.path so tests can import ``analytic``."""

from __future__ import annotations

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
