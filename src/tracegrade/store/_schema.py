"""The store's tables. This schema is a public interface: users query it with plain SQL.

Every change goes through a new Alembic migration in ``migrations/versions``; the tables here
describe the schema at the latest migration and are what the Store API reads and writes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

from tracegrade.store._types import UTCDateTime

metadata = MetaData()

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
JSONColumn = JSON().with_variant(JSONB(), "postgresql")

spans = Table(
    "spans",
    metadata,
    Column("id", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True,
           autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("span_id", String(200), nullable=False),
    Column("trace_id", String(200), nullable=False),
    Column("parent_id", String(200)),
    Column("name", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("release", String(200)),
    Column("environment", String(200)),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime()),
    Column("latency_ms", Float),
    Column("status", String(10), nullable=False),
    Column("status_message", Text),
    Column("input", JSONColumn),
    Column("output", JSONColumn),
    Column("model", String(200)),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("total_tokens", Integer),
    Column("cost", Float),
    Column("session_id", String(200)),
    Column("user_id", String(200)),
    Column("tags", JSONColumn),
    Column("attributes", JSONColumn),
    Column("content_hash", String(32), nullable=False),
    Column("ingested_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "span_id", name="uq_spans_source_span_id"),
    Index("ix_spans_trace", "source", "trace_id"),
    Index("ix_spans_release", "release"),
    Index("ix_spans_kind_name", "kind", "name"),
    Index("ix_spans_start_time", "start_time"),
)

graders = Table(
    "graders",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("config", JSONColumn, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("id", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True,
           autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("span_id", String(200), nullable=False),
    Column("grader", String(200), nullable=False),
    Column("grader_version", String(64), nullable=False),
    Column("outcome", String(5), nullable=False),
    Column("score", Float),
    Column("reason", Text, nullable=False),
    Column("inclusion_probability", Float, nullable=False),
    Column("cost", Float),
    Column("latency_ms", Float),
    Column("run_id", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("details", JSONColumn),
    UniqueConstraint("source", "span_id", "grader", "grader_version",
                     name="uq_verdicts_span_grader_version"),
    Index("ix_verdicts_grader", "grader", "grader_version", "outcome"),
    Index("ix_verdicts_run", "run_id"),
)

releases = Table(
    "releases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("environment", String(200), primary_key=True, server_default=""),
    Column("deployed_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("span_id", String(200), nullable=False),
    Column("criterion", String(200), nullable=False),
    Column("label", String(5), nullable=False),
    Column("critique", Text),
    Column("labeler", String(200)),
    Column("split", String(5), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "span_id", "criterion", "labeler", name="uq_labels"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("command", String(50), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(20), nullable=False),
    Column("counts", JSONColumn),
    # added in migration 0003: who ran it, so a run killed mid-way can be told from a live one
    Column("host", String(255)),
    Column("pid", Integer),
)

# -- added in migration 0002 ----------------------------------------------------------------------

source_cursors = Table(
    "source_cursors",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("cursor", JSONColumn),
    Column("watermark", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
)

exports = Table(
    "exports",
    metadata,
    Column("id", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True,
           autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("span_id", String(200), nullable=False),
    Column("grader", String(200), nullable=False),
    Column("grader_version", String(64), nullable=False),
    Column("destination", String(200), nullable=False),
    Column("remote_id", String(200)),
    Column("exported_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "span_id", "grader", "grader_version", "destination",
                     name="uq_exports"),
)

judge_cache = Table(
    "judge_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("provider", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("request", JSONColumn, nullable=False),
    Column("response", JSONColumn, nullable=False),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost", Float),
    Column("created_at", UTCDateTime(), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text),
    Column("created_at", UTCDateTime(), nullable=False),
)

dataset_items = Table(
    "dataset_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(200), nullable=False),
    Column("item_id", String(200), nullable=False),
    Column("input", JSONColumn),
    Column("expected_output", JSONColumn),
    Column("source", String(200)),
    Column("span_id", String(200)),
    Column("trace_id", String(200)),
    Column("valid_as_of", UTCDateTime()),
    Column("time_sensitive", Boolean, nullable=False, server_default=false()),
    Column("item_metadata", JSONColumn),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("dataset", "item_id", name="uq_dataset_items"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("grader", String(200), nullable=False),
    Column("grader_version", String(64), nullable=False),
    Column("release", String(200)),
    Column("status", String(30), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
    Column("payload", JSONColumn),
)

calibrations = Table(
    "calibrations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("grader", String(200), nullable=False),
    Column("grader_version", String(64), nullable=False),
    Column("computed_at", UTCDateTime(), nullable=False),
    Column("trusted", Boolean, nullable=False),
    Column("n", Integer, nullable=False),
    Column("kappa", Float),
    Column("tpr", Float),
    Column("tnr", Float),
    Column("details", JSONColumn),
    Index("ix_calibrations_grader", "grader", "grader_version"),
)
