"""The HTTP side: Label Studio's ML backend contract (``label_studio_ml/api.py`` of
HumanSignal/label-studio-ml-backend) served by FastAPI.

* ``GET /health`` (and ``GET /``) → ``{"status": "UP", ...}``;
* ``POST /setup`` ``{"project": "<id>.<epoch>", "schema": <xml>, "hostname", "access_token"}``
  → ``{"model_version"}``;
* ``POST /predict`` ``{"tasks": [...], "project", "label_config", "params"}`` →
  ``{"results": [[{"result", "score", "model_version"}] per task], "model_version"}``;
* ``POST /webhook`` ``{"action": ..., ...}`` (Label Studio registers it when the backend is
  connected): queued and answered at once, then applied in arrival order by one thread, since
  Label Studio waits for a webhook only ``WEBHOOK_TIMEOUT`` (1 s by default).

Errors answer ``{"error": code, "detail": text}`` with a 4xx status, and are logged: Label
Studio shows only the status, so the log is where a user reads which tag is unsupported.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from label_studio_bridge.bridge import Bridge, BridgeError
from label_studio_bridge.convert import UnusableAnnotation
from label_studio_bridge.label_studio import LabelStudioError
from xmodel_client.errors import ApiError, TransportError

log = logging.getLogger("label_studio_bridge")


class EventQueue:
    """Webhook events applied one at a time, in order, by a daemon thread."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.processed = 0
        self.failed = 0
        self.errors: deque[str] = deque(maxlen=20)
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def put(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                done = self.bridge.handle_event(event)
                log.info("webhook %s", done)
                self.processed += 1
            except (
                BridgeError,
                ApiError,
                LabelStudioError,
                UnusableAnnotation,
                TransportError,
            ) as exc:
                self.failed += 1
                message = f"{event.get('action') if event else ''}: {exc}"
                self.errors.append(message)
                log.warning("webhook failed: %s", message)
            except Exception as exc:  # a bad event must not stop the thread
                self.failed += 1
                self.errors.append(f"{event.get('action') if event else ''}: {exc!r}")
                log.exception("webhook failed")
            finally:
                self._queue.task_done()


def _error(status: int, code: str, detail: str) -> JSONResponse:
    log.warning("%s %s: %s", status, code, detail)
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(bridge: Bridge) -> FastAPI:
    events: EventQueue | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal events
        events = EventQueue(bridge)
        app.state.events = events
        try:
            yield
        finally:
            events.stop()
            bridge.close()

    app = FastAPI(title="X-model bridge for Label Studio", lifespan=lifespan)

    @app.exception_handler(BridgeError)
    async def bridge_error(_: Request, exc: BridgeError) -> JSONResponse:
        code = "config_mismatch" if exc.status == 409 else "bad_request"
        return _error(exc.status, code, str(exc))

    @app.exception_handler(ApiError)
    async def service_error(_: Request, exc: ApiError) -> JSONResponse:
        status = exc.status_code if 400 <= exc.status_code < 500 else 502
        return _error(status, exc.code, f"the annotation service answered: {exc.detail}")

    @app.exception_handler(TransportError)
    async def service_down(_: Request, exc: TransportError) -> JSONResponse:
        return _error(502, "service_unreachable", str(exc))

    @app.exception_handler(LabelStudioError)
    async def studio_error(_: Request, exc: LabelStudioError) -> JSONResponse:
        return _error(502, "label_studio_error", str(exc))

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError as exc:
            raise BridgeError("the body must be a JSON object") from exc
        if not isinstance(data, dict):
            raise BridgeError("the body must be a JSON object")
        return data

    def text_field(data: dict[str, Any], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str | int) or value == "":
            raise BridgeError(f"{name!r} is required")
        return str(value)

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        queued = app.state.events
        return {
            "status": "UP",
            "model_class": "XModelBridge",
            "events": {
                "pending": queued.pending(),
                "processed": queued.processed,
                "failed": queued.failed,
                "errors": list(queued.errors),
            },
        }

    @app.post("/setup")
    async def setup(request: Request) -> dict[str, Any]:
        data = await body(request)
        uid = text_field(data, "project")
        schema = text_field(data, "schema")
        bridge.remember_connection(uid, data.get("hostname"), data.get("access_token"))
        version = await run_in_threadpool(bridge.setup, uid, schema)
        return {"model_version": version}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        data = await body(request)
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not all(
            isinstance(t, dict) and isinstance(t.get("id"), int) for t in tasks
        ):
            raise BridgeError("'tasks' must be a list of Label Studio tasks with an 'id'")
        uid = text_field(data, "project")
        config = text_field(data, "label_config")
        return await run_in_threadpool(bridge.predict, uid, config, tasks)

    @app.post("/webhook", status_code=201)
    async def webhook(request: Request) -> dict[str, Any]:
        data = await body(request)
        if not isinstance(data.get("action"), str):
            raise BridgeError("'action' is required")
        app.state.events.put(data)
        return {"status": "queued", "action": data["action"]}

    @app.post("/train", status_code=201)
    async def train(request: Request) -> dict[str, Any]:
        """Older Label Studio versions ask for training here; queue a job as for
        ``START_TRAINING``."""
        data = await body(request)
        uid = text_field(data, "project")
        config = text_field(data, "label_config")
        linked = await run_in_threadpool(bridge.link, uid, config)
        return {"job": await run_in_threadpool(bridge.train, linked)}

    return app
