"""Backlogs per node and their leases: shared PostgreSQL stores (DESIGN §9).

``buffered_messages.node`` names the backlog a row belongs to ("" for the
rows of a store from before, which the node opening it adopts); the index
leads with it so a node reads only its own backlog. ``buffer_leases`` says
which node drains which backlog. ``buffer_drops`` counts per node too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Revisions import only sqlalchemy and alembic.op (STYLE §3.6).
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("buffered_messages") as batch:
        batch.add_column(
            sa.Column("node", sa.String(length=255), server_default="", nullable=False)
        )
        batch.drop_index("ix_buffered_messages_remote_acked_at_us_seq")
        batch.create_index(
            "ix_buffered_messages_node_remote_acked_at_us_seq",
            ["node", "remote", "acked_at_us", "seq"],
            unique=False,
        )
    with op.batch_alter_table("buffer_drops") as batch:
        batch.add_column(
            sa.Column("node", sa.String(length=255), server_default="", nullable=False)
        )
        batch.drop_constraint("pk_buffer_drops", type_="primary")
        batch.create_primary_key("pk_buffer_drops", ["node", "remote", "reason"])
    op.create_table(
        "buffer_leases",
        sa.Column("backlog", sa.String(length=255), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("instance", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("renewed_at_us", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("backlog", name=op.f("pk_buffer_leases")),
    )


def downgrade() -> None:
    op.drop_table("buffer_leases")
    with op.batch_alter_table("buffer_drops") as batch:
        batch.drop_constraint("pk_buffer_drops", type_="primary")
        batch.create_primary_key("pk_buffer_drops", ["remote", "reason"])
        batch.drop_column("node")
    with op.batch_alter_table("buffered_messages") as batch:
        batch.drop_index("ix_buffered_messages_node_remote_acked_at_us_seq")
        batch.create_index(
            "ix_buffered_messages_remote_acked_at_us_seq",
            ["remote", "acked_at_us", "seq"],
            unique=False,
        )
        batch.drop_column("node")
