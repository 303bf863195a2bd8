"""Alembic environment: runs on the connection handed in by ``storage.db.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from storage.models import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is None:  # plain `alembic` CLI use: url from -x url=...
        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/charwatch.db")
        with create_engine(url).begin() as c:
            context.configure(connection=c, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
