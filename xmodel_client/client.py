"""``XModelClient``: one typed method per API operation, named after its ``operationId``.

* Retries: only calls that are safe to repeat (GET, PUT, DELETE of a sub-resource, and the
  content-addressed upload of unlabelled images) are retried, on connection errors and on
  429/502/503/504, with exponential backoff. Creating a project or a job is never repeated.
* Pagination: ``iter_items`` follows ``next_cursor``, ``iter_jobs`` follows ``after_id``;
  ``export_labels`` streams the export to a file.
* Uploads: ``upload_sources`` sends files in batches read from disk while they are sent; a
  batch the service refuses (all-or-nothing) is retried file by file so one corrupt image is
  reported as refused and the others still go in.
* Errors: every error answer becomes an :class:`~xmodel_client.errors.ApiError` subclass.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from xmodel_client import errors
from xmodel_client.models import (
    ImportReport,
    Item,
    ItemPrediction,
    Job,
    LabelResult,
    Model,
    Prediction,
    Project,
    ProjectCreated,
    ProjectDeleted,
    ProjectStats,
    Suggestion,
    UploadResult,
)
from xmodel_client.sources import UploadSource, batches


class Writable(Protocol):
    """Where downloads go when not to a file: an open binary file, a socket, a counter."""

    def write(self, data: bytes, /) -> Any: ...


SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
RETRY_STATUSES = {429, 502, 503, 504}
ExportFormat = Literal["csv", "jsonl", "coco"]
ArtefactFormat = Literal["onnx", "config", "safetensors", "torchscript"]


@dataclass(frozen=True)
class FileOutcome:
    """What became of one uploaded file: ``created``, ``duplicate`` or ``refused``."""

    source: UploadSource
    status: Literal["created", "duplicate", "refused"]
    item_id: int | None = None
    reason: str = ""


class XModelClient:
    """A client for one service and one token. ``http`` may be any ``httpx.Client`` (a
    FastAPI ``TestClient`` works too); the client does not close one it was given."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        http: httpx.Client | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retries, self.backoff = retries, backoff
        self._owns_http = http is None
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)

    def with_token(self, token: str) -> XModelClient:
        """The same connection pool, another token (e.g. a new project's owner token)."""
        other = XModelClient(
            self.url, token, http=self.http, retries=self.retries, backoff=self.backoff
        )
        other._owns_http = False
        return other

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> XModelClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- transport -----------------------------------------------------------------------
    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def request(
        self,
        method: str,
        path: str,
        *,
        safe: bool | None = None,
        build: Callable[[ExitStack], dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one call; raise a typed error for an error answer. ``safe`` overrides whether
        the call may be repeated (default: by method). ``build`` makes per-attempt arguments
        (open files) inside an ``ExitStack`` closed after the attempt."""
        method = method.upper()
        attempts = 1 + (
            self.retries if (safe if safe is not None else method in SAFE_METHODS) else 0
        )
        for attempt in range(attempts):
            last = attempt == attempts - 1
            with ExitStack() as stack:
                extra = build(stack) if build else {}
                try:
                    request = self.http.build_request(
                        method, path, headers=self._headers(headers), **kwargs, **extra
                    )
                    response = self.http.send(request, stream=stream)
                except httpx.TransportError as exc:
                    if last:
                        raise errors.TransportError(f"{method} {path}: {exc!r}") from exc
                    time.sleep(self.backoff * 2**attempt)
                    continue
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                time.sleep(self.backoff * 2**attempt)
                continue
            if response.status_code >= 400:
                if stream:
                    response.read()
                raise errors.ApiError.from_response(response)
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # ---- service -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/health"))

    # ---- projects ------------------------------------------------------------------------
    def create_project(self, name: str, task: dict[str, Any], **settings: Any) -> ProjectCreated:
        """Admin token. ``settings``: image_size, backbone, training, retrain_every."""
        return ProjectCreated.model_validate(
            self._json("POST", "/projects", json={"name": name, "task": task, **settings})
        )

    def list_projects(self) -> list[Project]:
        return [Project.model_validate(p) for p in self._json("GET", "/projects")]

    def get_project(self, project_id: int) -> Project:
        return Project.model_validate(self._json("GET", f"/projects/{project_id}"))

    def update_project(self, project_id: int, **changes: Any) -> Project:
        return Project.model_validate(
            self._json("PATCH", f"/projects/{project_id}", json=changes, safe=True)
        )

    def project_stats(self, project_id: int) -> ProjectStats:
        return ProjectStats.model_validate(self._json("GET", f"/projects/{project_id}/stats"))

    def delete_project(self, project_id: int, confirm: str) -> ProjectDeleted:
        """Delete a project and everything it holds; ``confirm`` is the project's name."""
        return ProjectDeleted.model_validate(
            self._json("DELETE", f"/projects/{project_id}", params={"confirm": confirm}, safe=False)
        )

    def create_token(
        self, project_id: int, role: str = "annotator", name: str = ""
    ) -> dict[str, Any]:
        return dict(
            self._json("POST", f"/projects/{project_id}/tokens", json={"role": role, "name": name})
        )

    # ---- items ---------------------------------------------------------------------------
    def upload_items(
        self,
        project_id: int,
        files: list[UploadSource],
        labels: list[dict[str, Any] | None] | None = None,
    ) -> UploadResult:
        """One multipart request; files are streamed from disk. Without labels the call is
        content-addressed (a repeat returns the same items), so it is retried like a GET."""

        def build(stack: ExitStack) -> dict[str, Any]:
            parts = [
                ("files", (s.name, stack.enter_context(s.open()), "application/octet-stream"))
                for s in files
            ]
            data = {"labels": json.dumps(labels)} if labels is not None else None
            return {"files": parts, "data": data}

        answer = self._json(
            "POST", f"/projects/{project_id}/items", build=build, safe=labels is None
        )
        return UploadResult.model_validate(answer)

    def import_zip(self, project_id: int, archive: Path) -> UploadResult:
        def build(stack: ExitStack) -> dict[str, Any]:
            return {
                "files": {
                    "archive": (
                        archive.name,
                        stack.enter_context(archive.open("rb")),
                        "application/zip",
                    )
                }
            }

        return UploadResult.model_validate(
            self._json("POST", f"/projects/{project_id}/items/import", build=build, safe=False)
        )

    def upload_sources(
        self,
        project_id: int,
        sources: list[UploadSource],
        *,
        batch_files: int = 64,
        batch_bytes: int = 32 * 1024 * 1024,
        on_batch: Callable[[list[FileOutcome]], None] | None = None,
    ) -> list[FileOutcome]:
        """Upload in batches; a refused batch (one bad file spoils an all-or-nothing request)
        is resent file by file, so each refused file comes back with the service's reason."""
        outcomes: list[FileOutcome] = []
        for batch in batches(sources, batch_files, batch_bytes):
            done = self._upload_batch(project_id, batch)
            outcomes.extend(done)
            if on_batch:
                on_batch(done)
        return outcomes

    def _upload_batch(self, project_id: int, batch: list[UploadSource]) -> list[FileOutcome]:
        try:
            result = self.upload_items(project_id, batch)
        except (errors.BadRequest, errors.PayloadTooLarge, errors.UnsupportedMediaType) as exc:
            if len(batch) == 1:
                return [FileOutcome(batch[0], "refused", reason=f"{exc.code}: {exc.detail}")]
            return [o for source in batch for o in self._upload_batch(project_id, [source])]
        return [
            FileOutcome(source, "created" if entry.created else "duplicate", entry.item.id)
            for source, entry in zip(batch, result.items, strict=True)
        ]

    def list_items(
        self, project_id: int, *, status: str = "all", cursor: str | None = None, limit: int = 500
    ) -> tuple[list[Item], str | None]:
        """One page and the cursor of the next (None at the end)."""
        params: dict[str, Any] = {"status": status, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = self._json("GET", f"/projects/{project_id}/items", params=params)
        return [Item.model_validate(i) for i in page["items"]], page.get("next_cursor")

    def iter_items(
        self, project_id: int, *, status: str = "all", page_size: int = 500
    ) -> Iterator[Item]:
        """Every item, following the cursor page after page."""
        cursor: str | None = None
        while True:
            items, cursor = self.list_items(
                project_id, status=status, cursor=cursor, limit=page_size
            )
            yield from items
            if not cursor:
                return

    def get_item(self, item_id: int) -> Item:
        return Item.model_validate(self._json("GET", f"/items/{item_id}"))

    def get_item_image(self, item_id: int) -> bytes:
        return self.request("GET", f"/items/{item_id}/image").content

    def item_prediction(self, item_id: int) -> ItemPrediction:
        """The active model's guess for a stored item (``NotFound`` before the first model)."""
        return ItemPrediction.model_validate(self._json("GET", f"/items/{item_id}/prediction"))

    def delete_item(self, item_id: int) -> None:
        self.request("DELETE", f"/items/{item_id}")

    # ---- labels --------------------------------------------------------------------------
    def set_label(self, item_id: int, label: dict[str, Any]) -> LabelResult:
        return LabelResult.model_validate(self._json("PUT", f"/items/{item_id}/label", json=label))

    def clear_label(self, item_id: int) -> Item:
        return Item.model_validate(self._json("DELETE", f"/items/{item_id}/label"))

    def label_revisions(self, item_id: int) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/items/{item_id}/label/revisions"))

    def import_labels(
        self,
        project_id: int,
        fmt: ExportFormat,
        data: bytes | Path,
        *,
        match: str = "auto",
        dry_run: bool = False,
        allow_unmatched: bool = False,
    ) -> ImportReport:
        """Label items from a CSV, JSON lines or COCO file (all or nothing)."""
        params = {
            "format": fmt,
            "match": match,
            "dry_run": dry_run,
            "allow_unmatched": allow_unmatched,
        }
        media = {"csv": "text/csv", "jsonl": "application/x-ndjson", "coco": "application/json"}[
            fmt
        ]

        def build(stack: ExitStack) -> dict[str, Any]:
            body = data if isinstance(data, bytes) else stack.enter_context(data.open("rb"))
            return {"content": body}

        answer = self._json(
            "POST",
            f"/projects/{project_id}/labels/import",
            params=params,
            build=build,
            headers={"Content-Type": media},
            safe=dry_run,
        )
        return ImportReport.model_validate(answer)

    def export_labels(
        self,
        project_id: int,
        fmt: ExportFormat,
        destination: Path | Writable,
        *,
        include_unlabelled: bool = False,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Stream the export into a file (written to a temporary name, then renamed) or an
        open binary handle. Returns the number of bytes written."""
        params = {"format": fmt, "include_unlabelled": include_unlabelled}
        response = self.request("GET", f"/projects/{project_id}/export", params=params, stream=True)
        return _save(response, destination, on_bytes)

    # ---- suggest -------------------------------------------------------------------------
    def suggest(
        self,
        project_id: int,
        k: int = 10,
        *,
        strategy: str = "xmodel",
        annotator: str | None = None,
        predictions: bool = False,
    ) -> Suggestion:
        """Items to label next, leased to this token and ``annotator``; ``predictions``
        attaches the active model's guess to each (one batch on the service)."""
        params: dict[str, Any] = {"k": k, "strategy": strategy}
        if predictions:
            params["predictions"] = True
        if annotator:
            params["annotator"] = annotator
        return Suggestion.model_validate(
            self._json("GET", f"/projects/{project_id}/suggest", params=params)
        )

    def release_leases(self, project_id: int, annotator: str | None = None) -> None:
        """Give back every item this token and ``annotator`` hold in the project."""
        params = {"annotator": annotator} if annotator else {}
        self.request("DELETE", f"/projects/{project_id}/leases", params=params)

    # ---- jobs ----------------------------------------------------------------------------
    def create_job(self, project_id: int, training: dict[str, Any] | None = None) -> Job:
        """Queue a training job (or get the one already queued or running)."""
        body = {"kind": "train", **({"training": training} if training else {})}
        return Job.model_validate(self._json("POST", f"/projects/{project_id}/jobs", json=body))

    def list_jobs(self, project_id: int, *, after_id: int = 0, limit: int = 100) -> list[Job]:
        page = self._json(
            "GET", f"/projects/{project_id}/jobs", params={"after_id": after_id, "limit": limit}
        )
        return [Job.model_validate(j) for j in page]

    def iter_jobs(self, project_id: int, page_size: int = 100) -> Iterator[Job]:
        """Every job, following ``after_id`` page after page."""
        after = 0
        while True:
            page = self.list_jobs(project_id, after_id=after, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].id

    def get_job(self, job_id: int) -> Job:
        return Job.model_validate(self._json("GET", f"/jobs/{job_id}"))

    def cancel_job(self, job_id: int) -> Job:
        return Job.model_validate(self._json("POST", f"/jobs/{job_id}/cancel", safe=True))

    def wait_for_job(
        self,
        job_id: int,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job is finished (any final status); ``on_progress`` sees each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_progress:
                on_progress(job)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(interval)

    # ---- models --------------------------------------------------------------------------
    def list_models(self, project_id: int) -> list[Model]:
        return [
            Model.model_validate(m) for m in self._json("GET", f"/projects/{project_id}/models")
        ]

    def get_model(self, model_id: int) -> Model:
        return Model.model_validate(self._json("GET", f"/models/{model_id}"))

    def download_model(
        self, model_id: int, destination: Path, fmt: ArtefactFormat = "onnx"
    ) -> Path:
        """Stream one artefact to ``destination`` and check it against the sha256 the
        service states (``X-Content-SHA256``)."""
        response = self.request(
            "GET", f"/models/{model_id}/download", params={"format": fmt}, stream=True
        )
        expected = response.headers.get("X-Content-SHA256")
        digest = hashlib.sha256()
        _save(response, destination, None, digest)
        if expected and digest.hexdigest() != expected:
            destination.unlink(missing_ok=True)
            raise errors.XModelError(
                f"model {model_id} {fmt}: sha256 mismatch (got {digest.hexdigest()}, "
                f"expected {expected})"
            )
        return destination

    def predict(self, model_id: int, image: Path | bytes, name: str = "image") -> Prediction:
        """Predict one image on the server (the model's ONNX export, on CPU)."""
        data = image.read_bytes() if isinstance(image, Path) else image
        filename = image.name if isinstance(image, Path) else name
        answer = self._json(
            "POST",
            f"/models/{model_id}/predict",
            safe=True,
            files={"file": (filename, data, "application/octet-stream")},
        )
        return Prediction.model_validate(answer)


def _save(
    response: httpx.Response,
    destination: Path | Writable,
    on_bytes: Callable[[int], None] | None,
    digest: Any = None,
) -> int:
    written = 0
    try:
        if isinstance(destination, Path):
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(f".{destination.name}.partial")
            with partial.open("wb") as handle:
                written = _copy(response, handle, on_bytes, digest)
            partial.replace(destination)
        else:
            written = _copy(response, destination, on_bytes, digest)
    finally:
        response.close()
    return written


def _copy(
    response: httpx.Response, handle: Writable, on_bytes: Callable[[int], None] | None, digest: Any
) -> int:
    written = 0
    for chunk in response.iter_bytes():
        handle.write(chunk)
        if digest is not None:
            digest.update(chunk)
        written += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    return written
