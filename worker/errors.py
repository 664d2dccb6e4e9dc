"""What can stop a job, and which errors a retry may cure."""

from __future__ import annotations

import kombu.exceptions
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError


class JobDataError(ValueError):
    """The job cannot succeed with this data (no labels, an unreadable image, bad params):
    it fails at once, with this message as its error."""


class JobCancelled(Exception):
    """The job's ``cancel_requested`` flag was seen: stop, activate nothing."""


class LeaseLost(Exception):
    """Another worker owns the job now (our lease expired): stop writing anything."""


# Infrastructure errors: the database, the broker or the storage failed, not the job.
RETRYABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, RETRYABLE) and not isinstance(error, JobDataError)
