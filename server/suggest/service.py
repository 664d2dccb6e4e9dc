"""Suggest rules: choose candidates by strategy, then lease them race-free to one annotator.

xmodel: top scores walked round-robin across k-means clusters (diversity); xmodel_nodiv:
pure top score; mc_dropout / entropy: pure top score of the baseline scores the worker writes
when the project's ``training.score_strategies`` asks for them (the benchmark's comparisons);
random / cold start: uniform sample through ``items.random_key``. Each call
replaces the annotator's batch: items still chosen keep (renew) their lease, others are
released. A label releases its item's lease; leases also lapse at ``expires_at``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.db.base import utcnow
from server.db.models import Project
from server.projects.repository import active_model
from server.suggest import repository

SCORE_STRATEGY = "xmodel"  # the score rows both xmodel strategies read
# requested strategy -> the item_scores rows it reads (worker.training.scoring writes them)
SCORE_ROWS = {
    "xmodel": SCORE_STRATEGY,
    "xmodel_nodiv": SCORE_STRATEGY,
    "mc_dropout": "mc_dropout",
    "entropy": "entropy",
}
OVERFETCH = 2
MAX_ROUNDS = 4


@dataclass
class Candidate:
    item_id: int
    score: float | None
    cluster: int | None


@dataclass
class Suggestion:
    annotator: str
    strategy: str
    cold_start: bool
    note: str | None
    model_id: int | None
    model_version: int | None
    lease_expires_at: datetime
    items: list[Candidate]


def holder_key(principal: Principal, annotator: str | None) -> str:
    """Leases belong to a token and an annotator name (several people may share a token)."""
    return f"{principal.token_id}:{annotator or ''}"


def round_robin(rows: list[tuple[int, float, int]]) -> list[Candidate]:
    """Interleave clusters: each cluster's best, then each one's second best, ...; within a
    round the clusters go by score, so the best items still come first."""
    by_cluster: dict[int, list[tuple[int, float, int]]] = {}
    for row in sorted(rows, key=lambda r: (-r[1], r[0])):
        by_cluster.setdefault(row[2], []).append(row)
    ordered: list[Candidate] = []
    depth = 0
    while True:
        layer = [rows_[depth] for rows_ in by_cluster.values() if depth < len(rows_)]
        if not layer:
            return ordered
        layer.sort(key=lambda r: (-r[1], r[0]))
        ordered.extend(Candidate(item_id=i, score=s, cluster=c) for i, s, c in layer)
        depth += 1


def _candidates(
    session: Session, project: Project, strategy: str, holder: str, k: int, now: datetime
) -> tuple[list[Candidate], str, bool, str | None, int | None, int | None]:
    model = active_model(session, project.id)
    rows_of = SCORE_ROWS.get(strategy)
    usable = (
        model is not None
        and rows_of is not None
        and repository.has_scores(session, model.id, rows_of)
    )
    if usable:
        assert model is not None and rows_of is not None
        clusters = repository.clusters(session, model.id, rows_of) if strategy == "xmodel" else None
        limit = k * OVERFETCH
        rows = repository.top_scored(
            session, model.id, rows_of, holder=holder, now=now, limit=limit, cluster_ids=clusters
        )
        ordered = (
            round_robin(rows)
            if strategy == "xmodel"
            else [Candidate(i, s, c) for i, s, c in sorted(rows, key=lambda r: (-r[1], r[0]))]
        )
        return ordered, strategy, False, None, model.id, model.version
    ids = repository.random_unlabelled(
        session, project.id, holder=holder, now=now, start=random.random(), limit=k * OVERFETCH
    )
    random.shuffle(ids)
    picks = [Candidate(item_id=i, score=None, cluster=None) for i in ids]
    if strategy == "random":
        return (
            picks,
            "random",
            False,
            None,
            model.id if model else None,
            model.version if model else None,
        )
    if model is None:
        note = "no trained model yet: a uniform random sample of unlabelled items"
    elif rows_of != SCORE_STRATEGY and repository.has_scores(session, model.id, SCORE_STRATEGY):
        note = (
            f"the active model has no {strategy} scores (add it to the project's "
            "training.score_strategies and retrain): a uniform random sample of unlabelled items"
        )
    else:
        note = "the active model has no scores yet: a uniform random sample of unlabelled items"
    return (
        picks,
        "cold_start_random",
        True,
        note,
        model.id if model else None,
        model.version if model else None,
    )


def suggest(
    session: Session,
    project: Project,
    principal: Principal,
    *,
    k: int,
    annotator: str | None,
    strategy: str,
    lease_seconds: int,
    exclude: frozenset[int] = frozenset(),
    keep_leases: bool = False,
) -> Suggestion:
    """Choose up to ``k`` items and lease them to the annotator (disjoint across annotators).
    ``exclude``: ids not to hand out this time (already queued, or skipped, by the caller);
    ``keep_leases``: add to what the annotator holds instead of replacing the batch."""
    holder = holder_key(principal, annotator)
    now = utcnow()
    expires_at = now + timedelta(seconds=lease_seconds)
    chosen: list[Candidate] = []
    tried: set[int] = set(exclude)
    for _round in range(MAX_ROUNDS):
        # Concurrent annotators may win some candidates; each round re-reads the pool,
        # which then excludes the leases they committed meanwhile.
        candidates, used, cold, note, model_id, version = _candidates(
            session, project, strategy, holder, k + len(tried), now
        )
        fresh = [c for c in candidates if c.item_id not in tried]
        if not fresh:
            break
        position = 0
        while len(chosen) < k and position < len(fresh):
            batch = fresh[position : position + (k - len(chosen))]
            position += len(batch)
            tried.update(c.item_id for c in batch)
            won = repository.claim(
                session,
                project.id,
                [c.item_id for c in batch],
                holder=holder,
                token_id=principal.token_id,
                now=now,
                expires_at=expires_at,
            )
            chosen.extend(c for c in batch if c.item_id in won)
        if len(chosen) >= k:
            break
    if not keep_leases:
        repository.release_others(session, project.id, holder, {c.item_id for c in chosen})
    return Suggestion(
        annotator=annotator or "",
        strategy=used,
        cold_start=cold,
        note=note,
        model_id=model_id,
        model_version=version,
        lease_expires_at=expires_at,
        items=chosen,
    )


def renew_leases(
    session: Session,
    project: Project,
    principal: Principal,
    annotator: str | None,
    lease_seconds: int,
) -> tuple[list[int], datetime]:
    now = utcnow()
    expires_at = now + timedelta(seconds=lease_seconds)
    ids = repository.renew(session, project.id, holder_key(principal, annotator), now, expires_at)
    return ids, expires_at
