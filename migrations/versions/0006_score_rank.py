"""item_scores.rank: the stored diversity order /suggest walks with one index range scan

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01

``rank`` is each item's position in the round-robin order across k-means clusters (every
cluster's best, then every cluster's second best, ..., by score inside a layer), written by
the worker with the scores. Existing rows are ranked here with window functions, so models
scored before this revision keep their order.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = """
WITH layered AS (
    SELECT model_id, strategy, item_id, score,
           ROW_NUMBER() OVER (PARTITION BY model_id, strategy, cluster
                              ORDER BY score DESC, item_id) AS depth
    FROM item_scores
), ranked AS (
    SELECT model_id, strategy, item_id,
           ROW_NUMBER() OVER (PARTITION BY model_id, strategy
                              ORDER BY depth, score DESC, item_id) - 1 AS position
    FROM layered
)
UPDATE item_scores SET rank = ranked.position
FROM ranked
WHERE item_scores.model_id = ranked.model_id
  AND item_scores.strategy = ranked.strategy
  AND item_scores.item_id = ranked.item_id
"""


def upgrade() -> None:
    with op.batch_alter_table("item_scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rank", sa.BigInteger(), nullable=True))
    op.execute(_BACKFILL)
    op.create_index(
        "ix_item_scores_model_id_strategy_rank",
        "item_scores",
        ["model_id", "strategy", "rank"],
        unique=False,
    )
    # The per-cluster walk this order replaces was the only reader of this index.
    op.drop_index("ix_item_scores_model_id_strategy_cluster_score", table_name="item_scores")


def downgrade() -> None:
    op.create_index(
        "ix_item_scores_model_id_strategy_cluster_score",
        "item_scores",
        ["model_id", "strategy", "cluster", "score"],
        unique=False,
    )
    op.drop_index("ix_item_scores_model_id_strategy_rank", table_name="item_scores")
    with op.batch_alter_table("item_scores", schema=None) as batch_op:
        batch_op.drop_column("rank")
