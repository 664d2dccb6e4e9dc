"""SQL for scores, candidates and leases. Written for both SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from server.db.base import UTCDateTime
from server.db.models import Item, ItemLease, ItemScore
from server.suggest.ranking import ScoreRow


class ScoredItem(NamedTuple):
    item_id: int
    score: float
    cluster: int


def write_scores(session: Session, model_id: int, strategy: str, rows: Iterable[ScoreRow]) -> int:
    """Insert one model's and strategy's rows (the worker's call; batch it, one transaction
    per batch; the ranks come from ``ranking.ranked_rows`` over the whole pool). Returns the
    number of rows written."""
    payload = [
        {
            "model_id": model_id,
            "strategy": strategy,
            "item_id": row.item_id,
            "score": float(row.score),
            "cluster": int(row.cluster),
            "rank": int(row.rank),
        }
        for row in rows
    ]
    if payload:
        session.execute(insert(ItemScore), payload)
    return len(payload)


def delete_scores(session: Session, model_id: int) -> int:
    """Drop a model's scores (a re-run rewrites them all: exactly one row per item)."""
    result = session.execute(delete(ItemScore).where(ItemScore.model_id == model_id))
    return int(cast(CursorResult[Any], result).rowcount or 0)


def forget_item(session: Session, item_id: int) -> None:
    """A labelled item leaves the pool: drop its score rows, so the ranked scan in
    /suggest never has to step over the items labelled since the model scored them (their
    count grows with every label; the leased ones it skips stay few). A cleared label puts
    the item back among the random picks until the next model scores it."""
    session.execute(delete(ItemScore).where(ItemScore.item_id == item_id))


def has_scores(session: Session, model_id: int, strategy: str) -> bool:
    query = select(exists().where(ItemScore.model_id == model_id, ItemScore.strategy == strategy))
    return bool(session.scalar(query))


def _free_for(holder: str, now: datetime) -> ColumnElement[bool]:
    taken = select(ItemLease.item_id).where(
        ItemLease.item_id == Item.id, ItemLease.expires_at > now, ItemLease.holder != holder
    )
    return ~taken.exists()


def _scored(model_id: int, strategy: str, holder: str, now: datetime, limit: int) -> Select:
    return (
        select(ItemScore.item_id, ItemScore.score, ItemScore.cluster)
        .join(Item, Item.id == ItemScore.item_id)
        .where(
            ItemScore.model_id == model_id,
            ItemScore.strategy == strategy,
            Item.labelled_at.is_(None),
            Item.unlabellable_at.is_(None),
            _free_for(holder, now),
        )
        .limit(limit)
    )


def _lock_free(session: Session, query: Select) -> Select:
    """On PostgreSQL, lock the chosen item rows and skip the ones a concurrent /suggest has
    locked: annotators asking at the same moment get different items without waiting for
    each other's commit. (SQLite serialises writers; there the claim alone decides.)"""
    if session.get_bind().dialect.name != "postgresql":
        return query
    return query.with_for_update(of=Item, skip_locked=True, key_share=True)


def in_diversity_order(
    session: Session, model_id: int, strategy: str, *, holder: str, now: datetime, limit: int
) -> list[ScoredItem]:
    """The first ``limit`` unlabelled items free for ``holder`` in the stored round-robin
    order: one range scan of ``(model_id, strategy, rank)``."""
    query = _scored(model_id, strategy, holder, now, limit).order_by(ItemScore.rank)
    return [
        ScoredItem(int(a), float(b), int(c))
        for a, b, c in session.execute(_lock_free(session, query))
    ]


def top_scored(
    session: Session, model_id: int, strategy: str, *, holder: str, now: datetime, limit: int
) -> list[ScoredItem]:
    """The ``limit`` highest-scored unlabelled items free for ``holder`` (score, then id)."""
    query = _scored(model_id, strategy, holder, now, limit).order_by(
        ItemScore.score.desc(), ItemScore.item_id
    )
    return [
        ScoredItem(int(a), float(b), int(c))
        for a, b, c in session.execute(_lock_free(session, query))
    ]


def random_unlabelled(
    session: Session, project_id: int, *, holder: str, now: datetime, start: float, limit: int
) -> list[int]:
    """A uniform sample: items in ``random_key`` order from a random start, wrapping round.
    Rows locked by a concurrent /suggest are skipped as in the scored reads: without that,
    two annotators refreshing at once pick overlapping samples, each claims some of the
    other's items, and their claims wait on each other (a deadlock on PostgreSQL)."""

    def part(condition: Any) -> list[int]:
        query = (
            select(Item.id)
            .where(
                Item.project_id == project_id,
                Item.labelled_at.is_(None),
                Item.unlabellable_at.is_(None),
                condition,
                _free_for(holder, now),
            )
            .order_by(Item.random_key)
            .limit(limit)
        )
        return [int(r) for r in session.scalars(_lock_free(session, query))]

    ids = part(Item.random_key >= start)
    if len(ids) < limit:
        ids += part(Item.random_key < start)[: limit - len(ids)]
    return ids


_CLAIM = """
INSERT INTO item_leases (item_id, project_id, holder, token_id, expires_at)
SELECT {ids}, :project_id, :holder, :token_id, :expires_at {source}
ON CONFLICT (item_id) DO UPDATE SET
    holder = excluded.holder, token_id = excluded.token_id,
    expires_at = excluded.expires_at, project_id = excluded.project_id
WHERE item_leases.expires_at <= :now OR item_leases.holder = :holder
RETURNING item_id
"""
# One statement text whatever the batch size (the ids travel as one array / JSON parameter),
# so neither SQLAlchemy nor the database re-plans it per call.
_CLAIM_POSTGRESQL = text(
    _CLAIM.format(ids="id", source="FROM unnest(CAST(:ids AS BIGINT[])) AS ids(id) ORDER BY id")
).bindparams(bindparam("expires_at", type_=UTCDateTime), bindparam("now", type_=UTCDateTime))
_CLAIM_SQLITE = text(
    _CLAIM.format(ids="CAST(value AS INTEGER)", source="FROM json_each(:ids) WHERE true ORDER BY 1")
).bindparams(bindparam("expires_at", type_=UTCDateTime), bindparam("now", type_=UTCDateTime))


def claim(
    session: Session,
    project_id: int,
    item_ids: list[int],
    *,
    holder: str,
    token_id: int,
    now: datetime,
    expires_at: datetime,
) -> set[int]:
    """Lease the items that are free (no lease, an expired one, or one of ``holder``'s).

    One conditional upsert on the item_leases primary key; on PostgreSQL a concurrent claim
    of the same row waits for the other transaction and then re-checks the condition, so two
    annotators never both win an item. Ids go in ascending order so lock order is the same
    everywhere."""
    if not item_ids:
        return set()
    postgres = session.get_bind().dialect.name == "postgresql"
    params = {
        "ids": sorted(item_ids) if postgres else json.dumps(sorted(item_ids)),
        "project_id": project_id,
        "holder": holder,
        "token_id": token_id,
        "expires_at": expires_at,
        "now": now,
    }
    statement = _CLAIM_POSTGRESQL if postgres else _CLAIM_SQLITE
    return {int(r) for r in session.scalars(statement, params)}


def relax_durability(session: Session) -> None:
    """Leases are short-lived hints, not data: on PostgreSQL this transaction's commit does
    not wait for its WAL flush (a crash may forget the last fraction of a second of leases,
    never a label, which commits in its own transaction)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def release_others(session: Session, project_id: int, holder: str, keep: set[int]) -> None:
    query = delete(ItemLease).where(ItemLease.project_id == project_id, ItemLease.holder == holder)
    if keep:
        query = query.where(ItemLease.item_id.not_in(keep))
    session.execute(query)


def renew(
    session: Session, project_id: int, holder: str, now: datetime, expires_at: datetime
) -> list[int]:
    result = session.execute(
        update(ItemLease)
        .where(
            and_(
                ItemLease.project_id == project_id,
                ItemLease.holder == holder,
                ItemLease.expires_at > now,
            )
        )
        .values(expires_at=expires_at)
        .returning(ItemLease.item_id)
        .execution_options(synchronize_session=False)
    )
    return sorted(int(r) for r in result.scalars())


def release(session: Session, project_id: int, holder: str, item_id: int | None = None) -> int:
    query = delete(ItemLease).where(ItemLease.project_id == project_id, ItemLease.holder == holder)
    if item_id is not None:
        query = query.where(ItemLease.item_id == item_id)
    result = session.execute(query)
    return int(cast(CursorResult[Any], result).rowcount or 0)
