"""The Dash application: :func:`create_app` builds one app with its own state.

Pages live in ``app/pages`` (``dash.register_page``: layouts only); their callbacks live in
``app/callbacks/<page>.py``, each registered by its ``register(app, services)`` with the app's
:class:`~rtplan_assist.app.services.AppServices` in its closure, so nothing is shared between
two apps and page modules hold no state.
"""

from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import diskcache
from dash import DiskcacheManager, dcc, html

from .callback_errors import ERROR_AREA_ID, callback_error_handler
from .services import AppServices
from .upload import UploadLimits
from .views import progress_panel

__all__ = ["create_app"]

APP_DIR = Path(__file__).resolve().parent
PAGES_DIR = APP_DIR / "pages"
ASSETS_DIR = APP_DIR / "assets"


def upload_hint(limits: UploadLimits) -> html.Span:
    """The upload zone's text; its data attributes carry the caps to ``assets/upload-limits.js``.

    ``data-max-bytes`` is :attr:`UploadLimits.max_upload_bytes` (bytes, as sent, zip archives
    counted compressed) and ``data-max-files`` :attr:`UploadLimits.max_files`; the script
    refuses a selection over either before the browser reads a byte of it.
    """
    mb = limits.max_upload_bytes / (1024 * 1024)
    return html.Span(
        f"Upload a patient (.zip or files, ≤ {mb:.3g} MB)", id="upload-limits",
        **{"data-max-bytes": str(limits.max_upload_bytes),
           "data-max-files": str(limits.max_files)},
    )


def root_layout(services: AppServices) -> html.Div:
    """Navigation bar, patient picker and upload, progress, stores and the page container."""
    picker = dcc.Dropdown(
        id="patient-picker", options=services.picker_options(None),
        value=services.default_key(),
        placeholder="Choose a patient…", clearable=False, style={"minWidth": "280px"},
    )
    upload = dcc.Upload(
        id="upload", multiple=True, max_size=services.limits.max_upload_bytes,
        children=upload_hint(services.limits),
        className="upload-zone", className_reject="upload-zone upload-reject",
    )
    nav = dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("rtplan-assist", href="/"),
            dbc.Nav([
                dbc.NavItem(dbc.NavLink("Overview", href="/", id="nav-overview")),
                dbc.NavItem(dbc.NavLink("Composite / MDT", href="/composite",
                                        id="nav-composite")),
                dbc.NavItem(dbc.NavLink("Composite dose", href="/dose/composite",
                                        id="nav-composite-dose")),
                dbc.NavItem(dbc.NavLink("Prior course", href="/prior", id="nav-prior")),
            ], navbar=True, className="me-auto"),
            html.Div(picker, className="me-2 picker-box"),
            upload,
        ], fluid=True),
        color="dark", dark=True, className="mb-3",
    )
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="session-id", storage_type="session"),
        dcc.Store(id="patient", storage_type="session"),
        dcc.Store(id="choices", storage_type="session", data={}),
        dcc.Store(id="loaded", storage_type="memory"),
        nav,
        dbc.Container([
            html.Div(id=ERROR_AREA_ID),
            html.Div(id="upload-message"),
            progress_panel(),
            html.Div(id="load-error"),
            dash.page_container,
        ], fluid=True),
    ])


def create_app(data_path=None, *, cache_dir=None,
               limits: UploadLimits | None = None, deidentify: bool = False,
               records_db: str | None = None, users=None) -> dash.Dash:
    """Build the app on a patient folder, a data root (patient picker) or the demo patient.

    Parameters
    ----------
    data_path : path or None
        A folder with one patient's DICOM RT files, a data root with several patients, or
        None for the built-in demo patient.
    cache_dir : path or None
        Background-job results and prepared evaluations; a temporary folder removed at exit
        when None.
    limits : UploadLimits or None
        Caps on one upload (default :class:`UploadLimits`); checked in the browser before
        anything is sent, and again on the server.
    deidentify : bool
        Show and export patients by their key, withholding names and folders
        (:meth:`AppServices.scrub` on every callback answer; PDF reports rendered de-identified).
    records_db : str or None
        Decision database URL or SQLite file (:func:`rtplan_assist.records.resolve_url`;
        default ``$RTPLAN_ASSIST_DB`` or the user's data directory).
    users : FileUsers, DbUsers or None
        Require logins against these users (:mod:`rtplan_assist.app.auth`); None: no login
        (loopback use only, ``serve`` enforces it).

    Returns
    -------
    dash.Dash
        Served from local assets only (no CDN); ``app.server`` is the Flask server and
        ``app.rtplan_state`` the :class:`AppServices`.
    """
    from .auth import install_auth
    from .callbacks import register_callbacks
    from .decisions import Decisions

    services = AppServices(data_path, cache_dir=cache_dir, limits=limits, deidentify=deidentify)
    services.decisions = Decisions(records_db)
    services.auth_on = users is not None
    manager = DiskcacheManager(diskcache.Cache(str(services.workspace.jobs_dir)))
    app = dash.Dash(
        "rtplan_assist.app",
        use_pages=True,
        pages_folder=str(PAGES_DIR),
        assets_folder=str(ASSETS_DIR),
        serve_locally=True,
        external_stylesheets=[],
        external_scripts=[],
        suppress_callback_exceptions=True,
        background_callback_manager=manager,
        on_error=callback_error_handler(services),  # a message on the page, never a 500
        title="rtplan-assist",
        update_title=None,
    )
    # one upload plus its base64 overhead and some slack; larger posts are refused by Flask
    app.server.config["MAX_CONTENT_LENGTH"] = int(services.limits.max_upload_bytes * 1.4) + 2**20
    if users is not None:
        install_auth(app, users)
    app.layout = root_layout(services)
    register_callbacks(app, services)
    app.rtplan_state = services
    return app
