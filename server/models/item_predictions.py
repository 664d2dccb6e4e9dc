"""The active model's guess for stored items: ONNX on the CPU, cached per model and image.

The labelling page prefills each item with this guess, and ``/suggest`` can attach it to the
items it hands out. Items are predicted in one batch (one ``session.run`` for a whole
suggestion), and answers are kept in a small LRU keyed by (model id, ONNX sha256, image
sha256): a new model or a new image never sees a stale guess, and paging back and forth
through a queue costs no second forward pass."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from server.db.models import Item, ModelVersion
from server.errors import NotFound, ServiceUnavailable
from server.items import repository as items_repository
from server.models import predict as onnx_predict
from server.models.predict import OnnxSessionCache
from server.models.schemas import ItemPredictionRead
from server.models.service import artefact_path
from server.projects.repository import active_model
from server.storage import ArtefactStore, ImageStore

DEFAULT_CAPACITY = 4096


@dataclass(frozen=True)
class ModelRef:
    """What inference needs from a model row, read before the transaction ends."""

    model_id: int
    version: int
    onnx_path: Path
    config_path: Path
    onnx_sha256: str

    @property
    def session_key(self) -> str:
        return f"{self.model_id}:{self.onnx_sha256}"


@dataclass(frozen=True)
class ItemRef:
    """An item to predict: its id and the sha256 that locates its image bytes."""

    item_id: int
    sha256: str


class PredictionCache:
    """Least-recently-used answers, ``capacity`` entries (a few KB each), thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str, str]) -> dict[str, Any] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[int, str, str], value: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def model_ref(model: ModelVersion, artefacts: ArtefactStore) -> ModelRef:
    return ModelRef(
        model_id=model.id,
        version=model.version,
        onnx_path=artefact_path(artefacts, model.onnx_path, model.onnx_sha256, ServiceUnavailable),
        config_path=artefact_path(
            artefacts, model.config_path, model.config_sha256, ServiceUnavailable
        ),
        onnx_sha256=model.onnx_sha256,
    )


def active_model_ref(
    session: Session, project_id: int, artefacts: ArtefactStore
) -> ModelRef | None:
    """The project's active model, or None before the first training job succeeds."""
    model = active_model(session, project_id)
    if model is None or not model.onnx_path or not model.config_path:
        return None
    return model_ref(model, artefacts)


def require_active_model(session: Session, project_id: int, artefacts: ArtefactStore) -> ModelRef:
    ref = active_model_ref(session, project_id, artefacts)
    if ref is None:
        raise NotFound(
            "the project has no trained model yet: predictions appear once a "
            "training job has succeeded"
        )
    return ref


def item_ref(item: Item) -> ItemRef:
    return ItemRef(item_id=item.id, sha256=item.sha256)


def predict_items(
    model: ModelRef,
    items: Sequence[ItemRef],
    *,
    sessions: OnnxSessionCache,
    cache: PredictionCache,
    store: ImageStore,
) -> dict[int, dict[str, Any]]:
    """item id -> ``{"task", "prediction", "heads", "disagreement"}`` as ``predict.predict``
    answers it. Cached items cost nothing; the rest run as one batch [B, 3, H, W]."""
    answers: dict[int, dict[str, Any]] = {}
    missing: list[ItemRef] = []
    for ref in items:
        found = cache.get((model.model_id, model.onnx_sha256, ref.sha256))
        if found is not None:
            answers[ref.item_id] = found
        else:
            missing.append(ref)
    if not missing:
        return answers
    ort_session, config = sessions.get(model.onnx_path, model.config_path, model.session_key)
    images = []
    for ref in missing:
        try:
            images.append(store.get(ref.sha256))
        except (OSError, KeyError) as exc:
            raise NotFound(f"image of item {ref.item_id} is missing from storage") from exc
    for ref, answer in zip(
        missing, onnx_predict.predict_many(ort_session, config, images), strict=True
    ):
        cache.put((model.model_id, model.onnx_sha256, ref.sha256), answer)
        answers[ref.item_id] = answer
    return answers


def predictions_for(
    session: Session,
    project_id: int,
    item_ids: Sequence[int],
    *,
    artefacts: ArtefactStore,
    sessions: OnnxSessionCache,
    cache: PredictionCache,
    store: ImageStore,
) -> dict[int, ItemPredictionRead]:
    """The active model's guesses for items of one project ({} before the first model).

    Commits the caller's session before the forward pass, so the suggestion's leases are
    stored and SQLite's write lock is not held while the model runs."""
    model = active_model_ref(session, project_id, artefacts)
    found = [items_repository.get(session, item_id) for item_id in item_ids]
    refs = [item_ref(item) for item in found if item is not None and item.project_id == project_id]
    session.commit()
    if model is None or not refs:
        return {}
    answers = predict_items(model, refs, sessions=sessions, cache=cache, store=store)
    return {
        item_id: ItemPredictionRead(
            item_id=item_id, model_id=model.model_id, model_version=model.version, **answer
        )
        for item_id, answer in answers.items()
    }
