"""cluster queue: workers table, claim indexes, 64-bit ids on PostgreSQL

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from storage.models import CLAIMABLE_SQL, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# table -> columns widened to BIGINT on PostgreSQL (ids and the foreign keys that point at them)
BIGINT_COLUMNS = {
    "videos": ("id",),
    "frames": ("id", "video_id"),
    "embeddings": ("id", "frame_id"),
    "detections": ("id", "video_id"),
}


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        "videos",
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def _widen(to: str) -> None:
    for table, columns in BIGINT_COLUMNS.items():
        alters = ", ".join(f"ALTER COLUMN {c} TYPE {to}" for c in columns)
        op.execute(f"ALTER TABLE {table} {alters}")
        op.execute(
            f"DO $$ DECLARE seq text := pg_get_serial_sequence('{table}', 'id'); BEGIN "
            f"IF seq IS NOT NULL THEN EXECUTE format('ALTER SEQUENCE %s AS {to}', seq); "
            "END IF; END $$"
        )


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=256), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_space", sa.String(length=128), nullable=False, server_default=""),
        sa.Column("role", sa.String(length=32), nullable=False, server_default="process"),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    _partial("ix_videos_claimable", ["id"], f"lease_owner IS NULL AND {CLAIMABLE_SQL}")
    _partial("ix_videos_lease_expires", ["lease_expires"], "lease_owner IS NOT NULL")
    _partial("ix_videos_lease_owner", ["lease_owner"], "lease_owner IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        _widen("BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _widen("INTEGER")
    op.drop_index("ix_videos_lease_owner", table_name="videos")
    op.drop_index("ix_videos_lease_expires", table_name="videos")
    op.drop_index("ix_videos_claimable", table_name="videos")
    op.drop_table("workers")
