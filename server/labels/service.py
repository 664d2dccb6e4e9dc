"""Label rules: validate, record who/when, keep revisions, release the lease, auto-retrain."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from server.db.base import utcnow
from server.db.models import Item, Job, LabelRevision, Project
from server.db.session import after_commit
from server.errors import BadRequest
from server.items import repository as items_repository
from server.jobs.queue import LABEL_PREFILLS, JobQueue
from server.jobs.service import prefill_sender, request_training
from server.labels.validation import validate_label
from server.projects import repository as projects_repository
from server.suggest import repository as scores_repository

log = logging.getLogger(__name__)


def apply_label(session: Session, project: Project, item: Item, label: Any, token_id: int) -> Item:
    """Set a validated label; the old value stays in ``label_revisions``."""
    canonical = validate_label(project.task, label, width=item.width, height=item.height)
    _record(session, item, canonical, token_id)
    items_repository.release_lease(session, item.id)
    scores_repository.forget_item(session, item.id)
    session.flush()
    return item


def clear_label(session: Session, item: Item, token_id: int) -> Item:
    _record(session, item, None, token_id)
    session.flush()
    return item


def _record(session: Session, item: Item, value: Any, token_id: int) -> None:
    """Make ``value`` (None = cleared) the item's label, by whom and when, and keep a revision."""
    now = utcnow()
    item.label = value
    item.labelled_at = now if value is not None else None
    item.labelled_by_token_id = token_id
    items_repository.add_revision(
        session, LabelRevision(item_id=item.id, value=value, token_id=token_id, created_at=now)
    )


def maybe_retrain(session: Session, queue: JobQueue, project: Project, token_id: int) -> Job | None:
    """After new labels: ask (now and then) for a prefill of their views, so the next job
    finds them; create (or return) a training job once ``retrain_every`` labels were added
    since the active model was trained. Both are sent after the commit, the prefill first."""
    send_prefill = prefill_sender(queue, project, LABEL_PREFILLS)
    if send_prefill is not None:
        after_commit(session, send_prefill)
    if not project.retrain_every:
        return None
    labelled = projects_repository.labelled_count(session, project.id)
    model = projects_repository.active_model(session, project.id)
    trained_on = model.labelled_count if model else 0
    if labelled - trained_on < project.retrain_every:
        return None
    try:
        job, _created = request_training(session, queue, project, None, token_id)
    except BadRequest as exc:  # settings stored before they were validated: keep the label
        log.warning("project %s: no automatic retraining: %s", project.id, exc.detail)
        return None
    return job
