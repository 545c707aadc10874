"""The Dash app of rtplan-assist: ``create_app(data_path=None, *, cache_dir=None, limits=None,
deidentify=False, records_db=None, users=None)``.

Imported lazily so that ``python -m rtplan_assist.app.prepare`` (the preparation job) does not
pay for Dash.
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(data_path=None, *, cache_dir=None, limits=None, deidentify=False,
               records_db=None, users=None):
    """Build the Dash app; see :func:`rtplan_assist.app.main.create_app`."""
    from .main import create_app as _create_app

    return _create_app(data_path, cache_dir=cache_dir, limits=limits, deidentify=deidentify,
                       records_db=records_db, users=users)
