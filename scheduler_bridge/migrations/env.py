"""Alembic environment: run by :func:`scheduler_bridge.store.migrate` on the connection it
passes in ``config.attributes["connection"]``, or by the ``alembic`` command with
``-x url=<database url>`` (docs/scheduling.md)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from scheduler_bridge.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("alembic: pass the database with -x url=<SQLAlchemy URL>")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
