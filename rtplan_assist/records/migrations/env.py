"""Alembic environment of the decision database.

:meth:`rtplan_assist.records.store.RecordStore.upgrade` runs the migrations on its own
connection (``config.attributes["connection"]``), inside a transaction that holds the append
lock. From the command line: ``alembic -x url=sqlite:///records.sqlite upgrade head`` with a
config whose ``script_location`` is this folder.
"""

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    with create_engine(url).begin() as own:
        context.configure(connection=own, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
