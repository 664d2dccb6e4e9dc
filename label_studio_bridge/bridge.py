"""The bridge's rules, over our Python client and Label Studio's REST API.

* ``link``: a Label Studio project (its uid ``"<id>.<created_at epoch>"`` and labelling config)
  → one project of ours, found by name ``label-studio <uid>`` or created on first contact with
  the bridge's project defaults (image size, backbone, training, ``retrain_every``).
* ``ensure_items``: each task's image becomes an item of that project — fetched from Label
  Studio with its token and uploaded; uploads are content-addressed (sha256), so an image seen
  twice, or already uploaded another way, is the same item. Records are kept in ``State``.
* ``predict``: the active model's guess per task in Label Studio's result format, scored so
  that an ascending sort gives ``/suggest``'s order (``scores``).
* ``sync_task``: a task's label here follows its latest non-skipped annotation there; no
  annotation left clears it. The service's ``retrain_every`` then queues training.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from label_studio_bridge import convert, scores
from label_studio_bridge.label_studio import LabelStudio, LabelStudioError
from label_studio_bridge.labelling_config import TaskMapping, parse_config
from label_studio_bridge.state import State, TaskItem
from xmodel_client import XModelClient
from xmodel_client.errors import ApiError, NotFound
from xmodel_client.models import ItemPrediction
from xmodel_client.sources import bytes_source

log = logging.getLogger(__name__)
UNTRAINED = "xmodel-untrained"
ANNOTATOR = "label-studio-bridge"


class BridgeError(Exception):
    """A request the bridge cannot serve; ``status`` is the HTTP status to answer with."""

    status = 400


class ConfigMismatch(BridgeError):
    status = 409


@dataclass(frozen=True)
class BridgeSettings:
    """``project_defaults``: what a new project of ours gets (``image_size``, ``backbone``,
    ``training``, ``retrain_every``). ``label_studio_url``/``_token``: used instead of what
    Label Studio sends in ``/setup`` when given. ``window``: how many items one ``/suggest``
    call ranks (the service's ``max_suggest_k``)."""

    project_defaults: dict[str, Any] = field(default_factory=dict)
    label_studio_url: str | None = None
    label_studio_token: str | None = None
    window: int = 200
    threads: int = 8


@dataclass(frozen=True)
class Linked:
    """A Label Studio project and the project of ours it maps to."""

    uid: str
    project_id: int
    mapping: TaskMapping


def project_uid(project: dict[str, Any]) -> str:
    """Label Studio's uid for a project, from its webhook form (``id``, ``created_at``): the
    same ``"<id>.<epoch seconds>"`` it sends to ``/setup`` and ``/predict``."""
    created = datetime.fromisoformat(str(project["created_at"]).replace("Z", "+00:00"))
    return f"{int(project['id'])}.{int(created.timestamp())}"


def project_name(uid: str) -> str:
    return f"label-studio {uid}"


def model_version(version: int | None) -> str:
    return UNTRAINED if version is None else f"xmodel-v{version}"


def image_name(task_id: int, reference: str) -> str:
    """A readable file name for an uploaded task image (the upload's or the served file's)."""
    parts = urlsplit(reference)
    path = parse_qs(parts.query).get("d", [parts.path])[0]
    name = PurePosixPath(path).name or "image"
    return f"ls-task-{task_id}-{name}"[:200]


def _same_task(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    keys = {"classification": "classes", "regression": "targets", "keypoints": "points"}
    kind = theirs["kind"]
    return ours.get("kind") == kind and list(ours.get(keys[kind], [])) == theirs[keys[kind]]


class Bridge:
    """One bridge between one service of ours (``xmodel``, an admin client) and the Label
    Studio instances that call it."""

    def __init__(self, xmodel: XModelClient, state: State, settings: BridgeSettings) -> None:
        self.xmodel = xmodel
        self.state = state
        self.settings = settings
        self._linked: dict[tuple[str, str], Linked] = {}
        self._studios: dict[str, LabelStudio] = {}
        self._connection: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=settings.threads)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        for studio in self._studios.values():
            studio.close()

    # ---- Label Studio connection ---------------------------------------------------------
    def remember_connection(self, uid: str, hostname: str | None, token: str | None) -> None:
        """Where Label Studio says it is (``/setup``'s ``hostname`` and ``access_token``)."""
        if hostname and token:
            self._connection[uid] = (hostname, token)

    def studio(self, uid: str) -> LabelStudio:
        url = self.settings.label_studio_url
        token = self.settings.label_studio_token
        if not (url and token):
            known = self._connection.get(uid)
            if known is None:
                raise BridgeError(
                    "the bridge does not know where Label Studio is yet: start it with "
                    "--label-studio-url and --label-studio-token, or let Label Studio call "
                    "/setup first (connect the model in the project's settings)"
                )
            url, token = url or known[0], token or known[1]
        with self._lock:
            key = f"{url}\n{token}"
            if key not in self._studios:
                self._studios[key] = LabelStudio(url, token)
            return self._studios[key]

    # ---- projects ------------------------------------------------------------------------
    def link(self, uid: str, label_config: str) -> Linked:
        """Our project for this Label Studio project, created on first contact."""
        digest = hashlib.sha256(label_config.encode()).hexdigest()
        cached = self._linked.get((uid, digest))
        if cached is not None:
            return cached
        try:
            mapping = parse_config(label_config)
        except ValueError as exc:
            raise BridgeError(str(exc)) from exc
        with self._lock:
            cached = self._linked.get((uid, digest))
            if cached is not None:
                return cached
            name = project_name(uid)
            found = [p for p in self.xmodel.list_projects() if p.name == name]
            if found:
                project = found[0]
                if not _same_task(project.task, mapping.task):
                    raise ConfigMismatch(
                        f"Label Studio project {uid}'s labelling config now maps to "
                        f"{mapping.task}, but project {project.id} ({name!r}) was made for "
                        f"{project.task}; put the config back, or delete project {project.id} "
                        "to start over"
                    )
                project_id = project.id
            else:
                created = self.xmodel.create_project(
                    name, mapping.task, **self.settings.project_defaults
                )
                project_id = created.id
                log.info("created project %s for Label Studio project %s", project_id, uid)
            linked = Linked(uid=uid, project_id=project_id, mapping=mapping)
            self._linked[(uid, digest)] = linked
            return linked

    def active_version(self, linked: Linked) -> tuple[int | None, int | None]:
        """(active model id, its version), or (None, None) before the first model."""
        stats = self.xmodel.project_stats(linked.project_id)
        if stats.active_model_id is None:
            return None, None
        return stats.active_model_id, self.xmodel.get_model(stats.active_model_id).version

    def setup(self, uid: str, label_config: str) -> str:
        """Link the project; answer the active model's version."""
        return model_version(self.active_version(self.link(uid, label_config))[1])

    # ---- items ---------------------------------------------------------------------------
    def _reference(self, linked: Linked, task: dict[str, Any]) -> str:
        reference = (task.get("data") or {}).get(linked.mapping.image_key)
        if not isinstance(reference, str) or not reference:
            raise BridgeError(
                f"task {task.get('id')} has no {linked.mapping.image_key!r} field with an image "
                "URL (the labelling config's <Image value=...>)"
            )
        return reference

    def ensure_items(
        self, linked: Linked, tasks: list[dict[str, Any]]
    ) -> tuple[dict[int, TaskItem], dict[int, str]]:
        """Each task's item (fetched and uploaded when new), and the tasks that failed with
        why. A task whose image URL changed since it was seen is fetched again."""
        known = self.state.task_items(linked.uid, [int(t["id"]) for t in tasks])
        items: dict[int, TaskItem] = {}
        failed: dict[int, str] = {}
        missing: list[tuple[int, str]] = []
        for task in tasks:
            task_id = int(task["id"])
            try:
                reference = self._reference(linked, task)
            except BridgeError as exc:
                failed[task_id] = str(exc)
                continue
            record = known.get(task_id)
            if record and record.image_url == reference and record.project_id == linked.project_id:
                items[task_id] = record
            else:
                missing.append((task_id, reference))
        if not missing:
            return items, failed
        studio = self.studio(linked.uid)

        def fetch(entry: tuple[int, str]) -> bytes | str:
            try:
                return studio.fetch_image(entry[1])
            except LabelStudioError as exc:
                return str(exc)

        fetched = list(self._pool.map(fetch, missing))
        sources, order = [], []
        for (task_id, reference), data in zip(missing, fetched, strict=True):
            if isinstance(data, str):
                failed[task_id] = data
            else:
                sources.append(bytes_source(image_name(task_id, reference), data, reference))
                order.append((task_id, reference))
        outcomes = self.xmodel.upload_sources(linked.project_id, sources)
        records = []
        for (task_id, reference), outcome in zip(order, outcomes, strict=True):
            if outcome.item_id is None:
                failed[task_id] = f"image {reference!r} refused: {outcome.reason}"
                continue
            item = self.xmodel.get_item(outcome.item_id)
            records.append(
                TaskItem(
                    task_id=task_id,
                    image_url=reference,
                    project_id=linked.project_id,
                    item_id=item.id,
                    sha256=item.sha256,
                    width=item.width,
                    height=item.height,
                )
            )
        self.state.save(linked.uid, records)
        items.update({r.task_id: r for r in records})
        return items, failed

    # ---- predictions ---------------------------------------------------------------------
    def suggest_window(
        self, linked: Linked, model_id: int
    ) -> tuple[dict[int, int], int, dict[int, ItemPrediction]]:
        """``/suggest``'s order for the window: item id -> rank, the window's size, and the
        guesses the service attached (one batch). The window's items are leased to the
        bridge only for the moment of the call."""
        try:
            answer = self.xmodel.suggest(
                linked.project_id, k=self.settings.window, annotator=ANNOTATOR, predictions=True
            )
        finally:
            self.xmodel.release_leases(linked.project_id, annotator=ANNOTATOR)
        if answer.cold_start or answer.model_id != model_id:
            return {}, 0, {}
        ranks = {s.item_id: rank for rank, s in enumerate(answer.items)}
        guesses = {s.item_id: s.prediction for s in answer.items if s.prediction is not None}
        return ranks, len(answer.items), guesses

    def predict(self, uid: str, label_config: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Label Studio's ``/predict`` answer: ``results`` (one list of predictions per task,
        in task order; empty before the first model or for a task that failed) and
        ``model_version``."""
        linked = self.link(uid, label_config)
        items, failed = self.ensure_items(linked, tasks)
        for task_id, why in failed.items():
            log.warning("task %s of Label Studio project %s: %s", task_id, uid, why)
        if tasks and len(failed) == len(tasks):
            raise BridgeError(f"no task could be served: {next(iter(failed.values()))}")
        model_id, version = self.active_version(linked)
        if model_id is None:
            return {"results": [[] for _ in tasks], "model_version": UNTRAINED}
        ranks, window, attached = self.suggest_window(linked, model_id)

        def guess(record: TaskItem | None) -> ItemPrediction | None:
            if record is None:
                return None
            if record.item_id in attached:
                return attached[record.item_id]
            try:  # outside the window (labelled, leased elsewhere, or beyond it)
                return self.xmodel.item_prediction(record.item_id)
            except NotFound:
                return None

        records = [items.get(int(t["id"])) for t in tasks]
        guesses = list(self._pool.map(guess, records))
        results: list[list[dict[str, Any]]] = []
        for record, found in zip(records, guesses, strict=True):
            if record is None or found is None:
                results.append([])
                continue
            results.append(
                [
                    {
                        "result": convert.prediction_result(
                            linked.mapping, found.prediction, record.width, record.height
                        ),
                        "score": scores.item_score(
                            record.item_id, ranks, window, found.disagreement
                        ),
                        "model_version": model_version(found.model_version),
                    }
                ]
            )
        return {"results": results, "model_version": model_version(version)}

    # ---- annotations ---------------------------------------------------------------------
    def task_record(self, linked: Linked, task_id: int, task: dict[str, Any] | None) -> TaskItem:
        """The item of a task, from the webhook's task, the state, or Label Studio."""
        if task is None:
            known = self.state.task_items(linked.uid, [task_id]).get(task_id)
            if known is not None and known.project_id == linked.project_id:
                return known
            task = dict(self.studio(linked.uid).get(f"/api/tasks/{task_id}/").json())
        items, failed = self.ensure_items(linked, [task])
        if task_id in failed:
            raise BridgeError(f"task {task_id}: {failed[task_id]}")
        return items[task_id]

    def sync_task(
        self,
        linked: Linked,
        task_id: int,
        task: dict[str, Any] | None = None,
        seen: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Make our item's label the task's latest non-skipped annotation (or clear it when
        none is left). ``seen``: annotations of this task the webhook carried, used when Label
        Studio's listing does not show them yet. Returns the label now stored (None: cleared)."""
        record = self.task_record(linked, task_id, task)
        annotations = self.studio(linked.uid).task_annotations(task_id)
        listed = {a.get("id") for a in annotations}
        annotations += [a for a in seen or [] if a.get("id") not in listed]
        for annotation in annotations:
            self.state.remember_annotation(int(annotation["id"]), linked.uid, task_id)
        usable = [a for a in annotations if not a.get("was_cancelled") and a.get("result")]
        current = self.xmodel.get_item(record.item_id).label
        if not usable:
            if current is not None:
                self.xmodel.clear_label(record.item_id)
                log.info("task %s: label of item %s cleared", task_id, record.item_id)
            return None
        latest = max(usable, key=lambda a: (str(a.get("updated_at") or ""), int(a["id"])))
        label = convert.annotation_label(
            linked.mapping, latest["result"], record.width, record.height
        )
        if current != _canonical(label):
            answer = self.xmodel.set_label(record.item_id, label)
            log.info(
                "task %s: item %s labelled %s%s",
                task_id,
                record.item_id,
                label,
                f" (retrain job {answer.retrain_job_id})" if answer.retrain_job_id else "",
            )
        return label

    def train(self, linked: Linked) -> int:
        """Queue a training job (Label Studio's "Start training"); returns its id."""
        return self.xmodel.create_job(linked.project_id).id

    def handle_event(self, event: dict[str, Any]) -> str:
        """One webhook event; returns what was done (for the log)."""
        action = str(event.get("action", ""))
        project = event.get("project")
        if not isinstance(project, dict) or "label_config" not in project:
            return f"{action}: ignored (no project in the payload)"
        uid = project_uid(project)
        linked = self.link(uid, str(project["label_config"]))
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"):
            tasks = event.get("task")
            annotations = event.get("annotation")
            task_list = tasks if isinstance(tasks, list) else [tasks]
            annotation_list = annotations if isinstance(annotations, list) else [annotations]
            for annotation in annotation_list:
                if isinstance(annotation, dict) and "id" in annotation and "task" in annotation:
                    self.state.remember_annotation(int(annotation["id"]), uid, _task_id(annotation))
            for task in task_list:
                if isinstance(task, dict) and "id" in task:
                    carried = [
                        a
                        for a in annotation_list
                        if isinstance(a, dict) and _task_id(a) == int(task["id"])
                    ]
                    self.sync_task(linked, int(task["id"]), task, carried)
            return f"{action}: {len(task_list)} task(s) synced"
        if action == "ANNOTATIONS_DELETED":
            task_ids = set()
            for annotation in event.get("annotations") or []:
                found = self.state.annotation_task(int(annotation["id"]))
                if found is None:
                    log.warning("deleted annotation %s was never seen: skipped", annotation["id"])
                elif found[0] == uid:
                    task_ids.add(found[1])
            for task_id in sorted(task_ids):
                self.sync_task(linked, task_id)
            return f"{action}: {len(task_ids)} task(s) synced"
        if action == "TASKS_CREATED":
            tasks = [t for t in event.get("tasks") or [] if isinstance(t, dict)]
            items, failed = self.ensure_items(linked, tasks)
            return f"{action}: {len(items)} item(s), {len(failed)} failed"
        if action == "START_TRAINING":
            return f"{action}: job {self.train(linked)}"
        return f"{action}: ignored"


def _task_id(annotation: dict[str, Any]) -> int:
    """An annotation's task id (webhooks send the id, some versions the task itself)."""
    task = annotation.get("task")
    task = task.get("id") if isinstance(task, dict) else task
    return int(task) if isinstance(task, int | str) and str(task).isdigit() else -1


def _canonical(label: dict[str, Any]) -> dict[str, Any]:
    """Our stored form of a label the bridge sends (keypoints as [x, y, v], numbers float)."""
    if "points" in label:
        return {"points": [[float(x), float(y), int(v)] for x, y, v in label["points"]]}
    if "values" in label:
        return {"values": {k: float(v) for k, v in label["values"].items()}}
    return label


__all__ = ["ApiError", "Bridge", "BridgeError", "BridgeSettings", "ConfigMismatch", "Linked"]
