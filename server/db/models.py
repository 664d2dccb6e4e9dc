"""Every ORM model of the service, in one module so Alembic sees the whole schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime, utcnow
from xmodel_contracts.names import ACTIVE_JOB_STATUSES, JobStatus

# Integer primary keys that are BIGINT on PostgreSQL and INTEGER (rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# the partial unique index "one active job per project" (a migration spells the same SQL)
_ACTIVE_JOB_SQL = "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_JOB_STATUSES) + ")"


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_size: Mapped[int] = mapped_column(Integer)
    backbone: Mapped[str] = mapped_column(String(50))
    training: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retrain_every: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token; only its sha256 is stored. Admin tokens have no project."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_token_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Item(Base):
    """One image of a project, with its current label (history in ``label_revisions``)."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "sha256"),
        Index("ix_items_project_id_random_key", "project_id", "random_key"),
        Index("ix_items_project_id_labelled_at", "project_id", "labelled_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    image_format: Mapped[str] = mapped_column(String(10))
    byte_size: Mapped[int] = mapped_column(Integer)
    original_name: Mapped[str] = mapped_column(String(500), default="")
    # Uniform random number drawn at insert: cold-start sampling walks an index on it.
    random_key: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    label: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    labelled_by_token_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # Flagged "cannot be labelled": kept out of /suggest, shown to the owner with the reason.
    unlabellable_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unlabellable_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class LabelRevision(Base):
    """Every value an item's label ever had; ``value`` NULL records a cleared label."""

    __tablename__ = "label_revisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    value: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    token_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ItemLease(Base):
    """At most one live lease per item (the primary key): suggest claims rows with a
    conditional upsert, so concurrent annotators get disjoint items."""

    __tablename__ = "item_leases"
    __table_args__ = (Index("ix_item_leases_project_id_holder", "project_id", "holder"),)

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    holder: Mapped[str] = mapped_column(String(300))
    token_id: Mapped[int] = mapped_column(BigId)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Job(Base):
    """A unit of background work; the row is the source of truth for its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        # One active training per project, enforced by the database itself.
        Index(
            "uq_jobs_project_id_active_train",
            "project_id",
            unique=True,
            sqlite_where=text(f"kind = 'train' AND {_ACTIVE_JOB_SQL}"),
            postgresql_where=text(f"kind = 'train' AND {_ACTIVE_JOB_SQL}"),
        ),
        Index("ix_jobs_project_id_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    phase: Mapped[str | None] = mapped_column(String(50), nullable=True)
    progress_step: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # when its broker message was last sent; the reaper re-sends a queued job's message after
    # XM_RESEND_QUEUED_SECONDS (a broker restarted empty or a purged queue loses messages)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=utcnow)
    created_by_token_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobEvent(Base):
    """One attempt of a job that did not end well, and why (``jobs.error`` only keeps the
    latest). ``kind``: ``lost`` (its worker stopped answering), ``retry`` (an error released
    the job for another attempt) or ``failed`` (the final error)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """A trained model of a project. Artefact paths are relative to the storage root."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "version"),
        # At most one active model per project.
        Index(
            "uq_model_versions_project_id_active",
            "project_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    labelled_count: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    config_path: Mapped[str] = mapped_column(String(500))
    config_sha256: Mapped[str] = mapped_column(String(64))
    safetensors_path: Mapped[str] = mapped_column(String(500))
    safetensors_sha256: Mapped[str] = mapped_column(String(64))
    onnx_path: Mapped[str] = mapped_column(String(500))
    onnx_sha256: Mapped[str] = mapped_column(String(64))
    torchscript_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    torchscript_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ItemScore(Base):
    """The worker's acquisition score and diversity cluster of an item under one model and
    one strategy, and its ``rank`` in the round-robin order across clusters
    (server.suggest.ranking): ``/suggest`` walks ``(model_id, strategy, rank)`` in order."""

    __tablename__ = "item_scores"
    __table_args__ = (
        Index("ix_item_scores_model_id_strategy_score", "model_id", "strategy", "score"),
        Index("ix_item_scores_model_id_strategy_rank", "model_id", "strategy", "rank"),
        Index("ix_item_scores_item_id", "item_id"),
    )

    model_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    strategy: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)
    cluster: Mapped[int] = mapped_column(Integer, default=0)
    # Null only for rows written without one; the migration ranks existing rows.
    rank: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
