"""job runs, video availability, thresholds, allow-list, match policies

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("crawl_batch", sa.String(length=64), nullable=True),
        sa.Column("listings", sa.Integer(), nullable=False),
        sa.Column("listings_failed", sa.Integer(), nullable=False),
        sa.Column("videos_new", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("report_path", sa.String(length=1024), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("availability", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("availability_checked_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("availability_note", sa.Text(), nullable=True))
    with op.batch_alter_table("characters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("min_frames", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("min_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewed_at", UTCDateTime(), nullable=True))
    op.create_table(
        "character_thresholds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=256), nullable=False),
        sa.Column("signal", sa.String(length=64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("target_fpr", sa.Float(), nullable=True),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.Column("negatives", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "character_id", "model_id", "signal", name="uq_threshold_char_model_sig"
        ),
    )
    with op.batch_alter_table("character_thresholds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_character_thresholds_character_id"), ["character_id"], unique=False
        )
    op.create_table(
        "allowed_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=256), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "author", "character_id", name="uq_allowed_account"),
    )


def downgrade() -> None:
    op.drop_table("allowed_accounts")
    op.drop_table("character_thresholds")
    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.drop_column("reviewed_at")
    with op.batch_alter_table("characters", schema=None) as batch_op:
        batch_op.drop_column("min_seconds")
        batch_op.drop_column("min_frames")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_column("availability_note")
        batch_op.drop_column("availability_checked_at")
        batch_op.drop_column("availability")
    op.drop_table("job_runs")
