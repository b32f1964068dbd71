"""Pull cursors, exports, judge cache, datasets, alerts, calibrations; verdicts.details.

Revision ID: 0002_pull_judges_datasets
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from tracegrade.store._types import UTCDateTime

revision = "0002_pull_judges_datasets"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("details", JSONColumn))
    op.create_table(
        "source_cursors",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("cursor", JSONColumn),
        sa.Column("watermark", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "exports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("span_id", sa.String(200), nullable=False),
        sa.Column("grader", sa.String(200), nullable=False),
        sa.Column("grader_version", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("remote_id", sa.String(200)),
        sa.Column("exported_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("source", "span_id", "grader", "grader_version", "destination",
                            name="uq_exports"),
    )
    op.create_table(
        "judge_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("request", JSONColumn, nullable=False),
        sa.Column("response", JSONColumn, nullable=False),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("cost", sa.Float),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("description", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "dataset_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("input", JSONColumn),
        sa.Column("expected_output", JSONColumn),
        sa.Column("source", sa.String(200)),
        sa.Column("span_id", sa.String(200)),
        sa.Column("trace_id", sa.String(200)),
        sa.Column("valid_as_of", UTCDateTime()),
        sa.Column("time_sensitive", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("item_metadata", JSONColumn),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("dataset", "item_id", name="uq_dataset_items"),
    )
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("grader", sa.String(200), nullable=False),
        sa.Column("grader_version", sa.String(64), nullable=False),
        sa.Column("release", sa.String(200)),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("payload", JSONColumn),
    )
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("grader", sa.String(200), nullable=False),
        sa.Column("grader_version", sa.String(64), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("trusted", sa.Boolean, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("kappa", sa.Float),
        sa.Column("tpr", sa.Float),
        sa.Column("tnr", sa.Float),
        sa.Column("details", JSONColumn),
    )
    op.create_index("ix_calibrations_grader", "calibrations", ["grader", "grader_version"])


def downgrade() -> None:
    for table in ("calibrations", "alerts", "dataset_items", "datasets", "judge_cache",
                  "exports", "source_cursors"):
        op.drop_table(table)
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_column("details")
