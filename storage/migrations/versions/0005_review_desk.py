"""review desk: users, review history, who reviewed, reference labels, queue indexes

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# 64-bit ids on PostgreSQL, SQLite's rowid alias there (as storage.models.BigID)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

QUEUE_INDEXES = {
    "ix_detections_state_detected": ["review_state", "detected_at", "id"],
    "ix_detections_state_score": ["review_state", "score", "id"],
    "ix_detections_detected": ["detected_at", "id"],
    "ix_detections_score": ["score", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("references", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=256), nullable=True))
    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=128), nullable=True))
    for name, columns in QUEUE_INDEXES.items():
        op.create_index(name, "detections", columns)
    op.create_table(
        "review_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("detection_id", BIG_ID, nullable=False),
        sa.Column("old_state", sa.String(length=32), nullable=False),
        sa.Column("new_state", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=128), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["detection_id"], ["detections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_review_events_detection_id", "review_events", ["detection_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("password_set_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_index("ix_review_events_detection_id", table_name="review_events")
    op.drop_table("review_events")
    for name in QUEUE_INDEXES:
        op.drop_index(name, table_name="detections")
    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.drop_column("reviewed_by")
    with op.batch_alter_table("references", schema=None) as batch_op:
        batch_op.drop_column("label")
