"""items that cannot be labelled: a flag with its reason, kept out of /suggest

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

An annotator who cannot label an image (blurred, wrong subject, several answers) flags it
instead of skipping it over and over; ``/suggest`` then never hands it out again and the
owner sees it with the reason. Clearing the flag returns it to the pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unlabellable_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("unlabellable_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("unlabellable_reason")
        batch_op.drop_column("unlabellable_at")
