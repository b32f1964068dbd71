"""Runs record the host and process that ran them, so a killed run can be told apart.

Revision ID: 0003_run_owner
Revises: 0002_pull_judges_datasets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_run_owner"
down_revision = "0002_pull_judges_datasets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(255)))
        batch.add_column(sa.Column("pid", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pid")
        batch.drop_column("host")
