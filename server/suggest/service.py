"""Suggest rules: choose candidates by strategy, then lease them race-free to one annotator.

xmodel: top scores walked round-robin across k-means clusters (diversity), in the order the
worker stores with the scores (``ranking``), so a request is one index range scan; xmodel_nodiv:
pure top score; mc_dropout / entropy: pure top score of the baseline scores the worker writes
when the project's ``training.score_strategies`` asks for them (the benchmark's comparisons);
random / cold start: uniform sample through ``items.random_key``. Each call
replaces the annotator's batch: items still chosen keep (renew) their lease, others are
released. A label releases its item's lease; leases also lapse at ``expires_at``. On
PostgreSQL the candidate read locks its item rows with SKIP LOCKED, so annotators asking at
once take different items instead of queueing behind each other's claim."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.db.base import utcnow
from server.db.models import ModelVersion, Project
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
DIVERSE = frozenset({"xmodel"})  # strategies that walk the stored round-robin order
MAX_ROUNDS = 4


@dataclass(frozen=True)
class Candidate:
    item_id: int
    score: float | None
    cluster: int | None


@dataclass(frozen=True)
class Candidates:
    """What one read of the pool offers: the items in the order to hand them out, and how
    they were chosen (the strategy actually used, and the model whose scores ranked them)."""

    items: list[Candidate]
    strategy: str
    cold_start: bool
    note: str | None
    model_id: int | None
    model_version: int | None


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


def _scored(
    session: Session, model: ModelVersion, strategy: str, holder: str, limit: int, now: datetime
) -> Candidates | None:
    """The active model's best free items for ``strategy``; None when it has no such scores."""
    rows_of = SCORE_ROWS.get(strategy)
    if rows_of is None:
        return None
    read = repository.in_diversity_order if strategy in DIVERSE else repository.top_scored
    rows = read(session, model.id, rows_of, holder=holder, now=now, limit=limit)
    if not rows and not repository.has_scores(session, model.id, rows_of):
        return None  # (an empty answer with scores means the pool is done)
    return Candidates(
        items=[Candidate(r.item_id, r.score, r.cluster) for r in rows],
        strategy=strategy,
        cold_start=False,
        note=None,
        model_id=model.id,
        model_version=model.version,
    )


def _candidates(
    session: Session, project: Project, strategy: str, holder: str, limit: int, now: datetime
) -> Candidates:
    model = active_model(session, project.id)
    if model is not None:
        scored = _scored(session, model, strategy, holder, limit, now)
        if scored is not None:
            return scored
    ids = repository.random_unlabelled(
        session, project.id, holder=holder, now=now, start=random.random(), limit=limit
    )
    random.shuffle(ids)
    picks = [Candidate(item_id=i, score=None, cluster=None) for i in ids]
    model_id, version = (model.id, model.version) if model else (None, None)
    if strategy == "random":
        return Candidates(picks, "random", False, None, model_id, version)
    if model is None:
        note = "no trained model yet: a uniform random sample of unlabelled items"
    elif SCORE_ROWS[strategy] != SCORE_STRATEGY and repository.has_scores(
        session, model.id, SCORE_STRATEGY
    ):
        note = (
            f"the active model has no {strategy} scores (add it to the project's "
            "training.score_strategies and retrain): a uniform random sample of unlabelled items"
        )
    else:
        note = "the active model has no scores yet: a uniform random sample of unlabelled items"
    return Candidates(picks, "cold_start_random", True, note, model_id, version)


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
    repository.relax_durability(session)
    chosen: list[Candidate] = []
    tried: set[int] = set(exclude)
    offer: Candidates | None = None
    for _round in range(MAX_ROUNDS):
        # Concurrent annotators may win some candidates; each round re-reads the pool,
        # which then excludes the leases they committed meanwhile.
        offer = _candidates(session, project, strategy, holder, k - len(chosen) + len(tried), now)
        fresh = [c for c in offer.items if c.item_id not in tried][: k - len(chosen)]
        if not fresh:
            break
        tried.update(c.item_id for c in fresh)
        won = repository.claim(
            session,
            project.id,
            [c.item_id for c in fresh],
            holder=holder,
            token_id=principal.token_id,
            now=now,
            expires_at=expires_at,
        )
        chosen.extend(c for c in fresh if c.item_id in won)
        if len(chosen) >= k:
            break
    assert offer is not None  # MAX_ROUNDS >= 1
    if not keep_leases:
        repository.release_others(session, project.id, holder, {c.item_id for c in chosen})
    return Suggestion(
        annotator=annotator or "",
        strategy=offer.strategy,
        cold_start=offer.cold_start,
        note=offer.note,
        model_id=offer.model_id,
        model_version=offer.model_version,
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
