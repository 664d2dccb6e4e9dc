"""jobs.sent_at: when the job's broker message was last sent

Revision ID: 0005
Revises: 0006
Create Date: 2026-12-01

A queued job whose message the broker lost (restarted empty, queue purged) would otherwise
stay queued for ever; the reaper re-sends the message of a job queued longer than
``XM_RESEND_QUEUED_SECONDS`` since ``sent_at``. Rows from before have NULL: sent long ago.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("sent_at")
