"""The app's callbacks, one module per page, each with ``register(app, services)``.

Data flow: ``session-id`` (per browser tab) → ``patient`` (picker, upload or default) → the
background job prepares the patient (``loaded``) → each screen renders from the session's
cached evaluator. User choices (regimen per lesion, added regimens) live in the tab's
``choices`` store, keyed by patient; the server keeps no per-user choice.

=================  =========================================================================
module             callbacks
=================  =========================================================================
``patient``        ensure_session, select_patient, load_patient (every page: the navbar)
``overview``       render_overview
``lesion``         render_lesion, change_choice
``dvh``            dvh_regimens, render_dvh
``dose``           dose_options, dose_slider, render_dose
``composite``      render_composite, export_csv, export_pdf
``decisions``      record_decision, render_history (the MDT page's decision panel)
``prior``          prior_options, render_prior (the prior-course page, rtplan_assist.prior)
=================  =========================================================================
"""

from __future__ import annotations

import functools

from . import composite, decisions, dose, dvh, lesion, overview, patient, plans, prior

__all__ = ["PAGES", "register_callbacks"]

#: the callback modules, in the order they are registered
PAGES = (patient, plans, overview, lesion, dvh, dose, composite, decisions, prior)


class _Scrubbing:
    """``app`` whose ``callback`` decorator passes every answer through ``services.scrub``
    (de-identified mode); background callbacks (their progress runs in another process) and
    everything else go to ``app`` unchanged."""

    def __init__(self, app, services):
        self._app = app
        self._services = services

    def __getattr__(self, name):
        return getattr(self._app, name)

    def callback(self, *args, **kwargs):
        register = self._app.callback(*args, **kwargs)
        if kwargs.get("background"):
            return register
        scrub = self._services.scrub

        def decorate(func):
            @functools.wraps(func)
            def scrubbed(*a, **k):
                return scrub(func(*a, **k))

            return register(scrubbed)

        return decorate


def register_callbacks(app, services) -> None:
    """Register the callbacks of every page on ``app``, bound to ``services``
    (:class:`~rtplan_assist.app.services.AppServices`)."""
    if services.deidentify:
        app = _Scrubbing(app, services)
    for page in PAGES:
        page.register(app, services)
