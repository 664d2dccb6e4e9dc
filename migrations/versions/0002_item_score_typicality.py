"""item score typicality, model cluster sizes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

``item_scores.typicality``: how typical an item is of its diversity cluster (cosine
similarity of its features to the cluster centre, written by the worker). ``/suggest`` weighs
it against the disagreement score while a project has few labels. Nullable: rows written
before this revision have none, and ``/suggest`` then ranks by score alone.

``model_versions.cluster_sizes``: items scored per cluster (``{"cluster id": count}``), so
``/suggest`` can sample clusters in proportion to their size without counting rows; NULL for
models scored before this revision (``/suggest`` then counts them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('item_scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('typicality', sa.Float(), nullable=True))
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cluster_sizes', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('cluster_sizes')
    with op.batch_alter_table('item_scores', schema=None) as batch_op:
        batch_op.drop_column('typicality')
