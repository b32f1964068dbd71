"""Initial schema: spans, graders, verdicts, releases, labels, runs.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from tracegrade.store._types import UTCDateTime

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("span_id", sa.String(200), nullable=False),
        sa.Column("trace_id", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.String(200)),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("release", sa.String(200)),
        sa.Column("environment", sa.String(200)),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime()),
        sa.Column("latency_ms", sa.Float),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("input", JSONColumn),
        sa.Column("output", JSONColumn),
        sa.Column("model", sa.String(200)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("total_tokens", sa.Integer),
        sa.Column("cost", sa.Float),
        sa.Column("session_id", sa.String(200)),
        sa.Column("user_id", sa.String(200)),
        sa.Column("tags", JSONColumn),
        sa.Column("attributes", JSONColumn),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("source", "span_id", name="uq_spans_source_span_id"),
    )
    op.create_index("ix_spans_trace", "spans", ["source", "trace_id"])
    op.create_index("ix_spans_release", "spans", ["release"])
    op.create_index("ix_spans_kind_name", "spans", ["kind", "name"])
    op.create_index("ix_spans_start_time", "spans", ["start_time"])

    op.create_table(
        "graders",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("config", JSONColumn, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "verdicts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("span_id", sa.String(200), nullable=False),
        sa.Column("grader", sa.String(200), nullable=False),
        sa.Column("grader_version", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(5), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("inclusion_probability", sa.Float, nullable=False),
        sa.Column("cost", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("source", "span_id", "grader", "grader_version",
                            name="uq_verdicts_span_grader_version"),
    )
    op.create_index("ix_verdicts_grader", "verdicts", ["grader", "grader_version", "outcome"])
    op.create_index("ix_verdicts_run", "verdicts", ["run_id"])

    op.create_table(
        "releases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("environment", sa.String(200), primary_key=True, server_default=""),
        sa.Column("deployed_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("span_id", sa.String(200), nullable=False),
        sa.Column("criterion", sa.String(200), nullable=False),
        sa.Column("label", sa.String(5), nullable=False),
        sa.Column("critique", sa.Text),
        sa.Column("labeler", sa.String(200)),
        sa.Column("split", sa.String(5), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("source", "span_id", "criterion", "labeler", name="uq_labels"),
    )

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("command", sa.String(50), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("counts", JSONColumn),
    )


def downgrade() -> None:
    for table in ("runs", "labels", "releases", "verdicts", "graders", "spans"):
        op.drop_table(table)
