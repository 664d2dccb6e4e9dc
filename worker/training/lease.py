"""The claim's lease: a heartbeat thread, throttled progress writes, the cancel flag.

The heartbeat thread extends ``lease_expires_at`` every few seconds even while a long step
or an export runs; the training thread writes progress at most once per
``progress_seconds``. Both read ``cancel_requested`` back from the row, and both notice a
lost lease (the row is no longer ours), so :meth:`JobLease.check` raises within a second or
so of a cancel without an extra query per step."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from server.db.base import utcnow
from server.jobs import repository as jobs
from worker.errors import JobCancelled, LeaseLost

log = logging.getLogger(__name__)


class JobLease:
    """Owns a claimed job row for as long as the work runs (use as a context manager)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        job_id: int,
        owner: str,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
        progress_seconds: float,
    ) -> None:
        self.factory = factory
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.progress_seconds = progress_seconds
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._last_write = 0.0
        self._lock = threading.Lock()  # one writer at a time (thread and training loop)
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> JobLease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.heartbeat_seconds + 5)

    def _write(self, **progress: Any) -> None:
        now = utcnow()
        with self._lock, self.factory.begin() as session:
            flag = jobs.heartbeat(
                session,
                self.job_id,
                self.owner,
                now,
                now + timedelta(seconds=self.lease_seconds),
                **progress,
            )
        if flag is None:
            self.lost.set()
        elif flag:
            self.cancelled.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self._write()
            except Exception:  # the database may be back next time; the lease covers a few misses
                log.exception("heartbeat of job %s failed", self.job_id)
            if self.lost.is_set():
                return

    def check(self) -> None:
        """Raise :class:`LeaseLost` or :class:`JobCancelled` if either was seen."""
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job_id}: lease lost to another worker")
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job_id}: cancelled")

    def progress(self, force: bool = False, **columns: Any) -> None:
        """Write progress columns (phase, progress_step, progress_total, metrics), throttled;
        ``force`` writes now (phase changes). Then :meth:`check`."""
        now = time.monotonic()
        if force or now - self._last_write >= self.progress_seconds:
            self._last_write = now
            self._write(**columns)
        self.check()
