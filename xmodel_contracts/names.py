"""The names the API, the worker and the core library must spell alike, in one place.

A Celery task is sent by name from the API and registered under the same name by the worker;
the worker writes score rows under a strategy name that ``/suggest`` reads; an exported
model's ``config.json`` carries a format version that every reader checks; job rows carry a
status and a phase that the worker writes and the API serves. Each such string is defined
here once (as a ``StrEnum`` member where it is one of a closed set), so a rename is one edit
and a typo is a NameError rather than a silent mismatch. ``StrEnum`` members are ``str``:
they compare equal to, and are stored in the database as, their plain values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, get_args

# ---- Celery ------------------------------------------------------------------------------
TRAINING_TASK: Final = "training.run"  # args: [job_id]; the job row holds everything else
PREFILL_TASK: Final = "views.prefill"  # args: [project_id, sent at (epoch s)]; no job row

# ---- training ----------------------------------------------------------------------------
Method = Literal["supervised", "mean_teacher", "xmodel"]  # the trainer's methods
TRAINING_METHODS: tuple[Method, ...] = get_args(Method)
# where the X-model's minimax disagreement comes from: two views, or dropout on one view
MinimaxNoise = Literal["views", "dropout"]
MINIMAX_NOISE: tuple[MinimaxNoise, ...] = get_args(MinimaxNoise)

# ---- exported models ---------------------------------------------------------------------
EXPORT_FORMAT: Final = "xmodel/1"  # config.json "format" of a model directory


class ScoreStrategy(StrEnum):
    """Acquisition scores the worker writes per item (the ``strategy`` of a score row)."""

    XMODEL = "xmodel"  # disagreement across heads and views: always written
    MC_DROPOUT = "mc_dropout"  # baselines, written only when a project lists them
    ENTROPY = "entropy"


# ---- jobs --------------------------------------------------------------------------------
class JobStatus(StrEnum):
    """Where a job is in its life (``jobs.status``); the row is the source of truth."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_JOB_STATUSES: Final = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_JOB_STATUSES: Final = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobPhase(StrEnum):
    """What a job is doing (``jobs.phase``), shown with its progress.

    A run goes loading → caching (cached trunk views only) → training → exporting → scoring →
    writing scores → activating → done. The other phases say why a job left ``running``:
    retrying (a retryable error, back in the queue), requeued (its worker died and the reaper
    put it back), cancelled, failed.
    """

    LOADING = "loading"
    CACHING = "caching"
    TRAINING = "training"
    EXPORTING = "exporting"
    SCORING = "scoring"
    WRITING_SCORES = "writing scores"
    ACTIVATING = "activating"
    DONE = "done"
    RETRYING = "retrying"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"
    FAILED = "failed"
