"""What the bridge remembers between requests and restarts: which item of ours each Label
Studio task's image became, and which task each annotation belongs to (a deletion webhook
names only the annotation), in a small SQLite file (stdlib ``sqlite3``, WAL mode).

Knowing it, a ``/predict`` for tasks already seen costs no image download and no upload; a
task whose image URL changed is fetched again. Lost, it is rebuilt: uploads are
content-addressed, so fetching an image again finds the same item (sha256)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_items (
    ls_project TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    image_url TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (ls_project, task_id)
);
CREATE TABLE IF NOT EXISTS annotations (
    annotation_id INTEGER PRIMARY KEY,
    ls_project TEXT NOT NULL,
    task_id INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class TaskItem:
    """A Label Studio task's image as an item of our project ``project_id``."""

    task_id: int
    image_url: str
    project_id: int
    item_id: int
    sha256: str
    width: int
    height: int


class State:
    """Task → item records, safe to share between the server's threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def task_items(self, ls_project: str, task_ids: list[int]) -> dict[int, TaskItem]:
        """The records of these tasks (those known), by task id."""
        found: dict[int, TaskItem] = {}
        with self._lock:
            for start in range(0, len(task_ids), 500):
                chunk = task_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT task_id, image_url, project_id, item_id, sha256, width, height "
                    f"FROM task_items WHERE ls_project = ? AND task_id IN ({marks})",
                    [ls_project, *chunk],
                ).fetchall()
                found.update({row[0]: TaskItem(*row) for row in rows})
        return found

    def save(self, ls_project: str, records: list[TaskItem]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO task_items (ls_project, task_id, image_url, "
                    "project_id, item_id, sha256, width, height) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            ls_project,
                            r.task_id,
                            r.image_url,
                            r.project_id,
                            r.item_id,
                            r.sha256,
                            r.width,
                            r.height,
                        )
                        for r in records
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def forget_project(self, ls_project: str) -> None:
        """Drop a project's records (its project of ours was deleted)."""
        with self._lock:
            self._db.execute("DELETE FROM task_items WHERE ls_project = ?", [ls_project])

    def remember_annotation(self, annotation_id: int, ls_project: str, task_id: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO annotations (annotation_id, ls_project, task_id) "
                "VALUES (?, ?, ?)",
                [annotation_id, ls_project, task_id],
            )

    def annotation_task(self, annotation_id: int) -> tuple[str, int] | None:
        """(Label Studio project key, task id) of an annotation seen before, else None."""
        with self._lock:
            row = self._db.execute(
                "SELECT ls_project, task_id FROM annotations WHERE annotation_id = ?",
                [annotation_id],
            ).fetchone()
        return (str(row[0]), int(row[1])) if row else None
