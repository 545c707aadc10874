"""Bounded loopback load (issue 6): 20 concurrent regimen changes from 20 sessions, no errors.

The real app on the demo patient, served by a threaded werkzeug server on 127.0.0.1; each
request is the lesion screen's POST after a regimen change (``render_lesion``; the body is built
from the app's ``callback_map``, see ``app_http.py``), each from its own session id, all
released at once. Round 1 is every session's first request, choosing a regimen of its own that
is in no table (``40+i Gy/11``): each answer must be 200, choose that regimen, and offer no
other session's regimen. Round 2 changes every session to a table regimen (with 20 sessions
and an LRU of 6 evaluators, most are reloaded). The server must log no warning or error.

No timing is asserted (the project measures speed in benches/: ``benches/bench_load.py`` sends
the same requests and prints the latency percentiles).
"""

from __future__ import annotations

from app_http import (
    concurrent_regimen_changes,
    regimen_change_problems,
    serve,
    session_regimen,
)

N_SESSIONS = 20  # the bound
LESION = "L2"


def test_twenty_concurrent_regimen_changes_from_twenty_sessions_all_answer_right(app_cache):
    from rtplan_assist.app import create_app

    app = create_app(None, cache_dir=app_cache)
    state = app.rtplan_state
    entry = state.entries[0]
    state.prepare(entry)  # what the background job does when a browser opens the demo
    sessions = [f"load-{i:02d}" for i in range(N_SESSIONS)]
    own = {s: session_regimen(i) for i, s in enumerate(sessions)}
    with serve(app) as (url, log):
        first, _ = concurrent_regimen_changes(app, url, list(own.items()),
                                              patient_key=entry.key, lesion_id=LESION)
        problems = [p for c in first for p in regimen_change_problems(
            c, lesion_id=LESION, foreign=set(own.values()) - {own[c.session]})]
        assert problems == []
        table = [r for r in first[0].options() if r not in own.values()]
        assert len(table) >= 2, table  # L2's regimens from the tables (regimens.py)
        second, _ = concurrent_regimen_changes(
            app, url, [(s, table[i % len(table)]) for i, s in enumerate(sessions)],
            patient_key=entry.key, lesion_id=LESION)
        problems = [p for c in second for p in regimen_change_problems(
            c, lesion_id=LESION, foreign=set(own.values()) - {own[c.session]})]
        assert problems == []
    assert log.messages() == []
    assert len({c.session for c in first + second}) == N_SESSIONS
    state.close()
