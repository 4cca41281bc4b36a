"""The initial store schema: buffered messages, store meta, drop counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Revisions import only sqlalchemy and alembic.op (STYLE §3.6).
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA_VERSION = "1"


def upgrade() -> None:
    op.create_table(
        "buffered_messages",
        # INTEGER PRIMARY KEY is SQLite's rowid: no second b-tree per insert.
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("remote", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("headers", sa.LargeBinary(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("acked_at_us", sa.BigInteger(), nullable=True),
        sa.Column("queues", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_buffered_messages")),
    )
    op.create_index(
        op.f("ix_buffered_messages_remote_acked_at_us_seq"),
        "buffered_messages",
        ["remote", "acked_at_us", "seq"],
        unique=False,
    )
    meta = op.create_table(
        "store_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_meta")),
    )
    op.create_table(
        "buffer_drops",
        sa.Column("remote", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("remote", "reason", name=op.f("pk_buffer_drops")),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": SCHEMA_VERSION}])


def downgrade() -> None:
    op.drop_table("buffer_drops")
    op.drop_table("store_meta")
    op.drop_index(
        op.f("ix_buffered_messages_remote_acked_at_us_seq"), table_name="buffered_messages"
    )
    op.drop_table("buffered_messages")
