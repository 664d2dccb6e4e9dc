"""The FastAPI app: ``create_app(settings)`` for tests and tools, ``app`` for uvicorn."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from server.auth.router import router as tokens_router
from server.auth.service import ensure_admin_token
from server.db.engine import make_engine
from server.db.session import run_in_transaction
from server.deletion.router import router as deletion_router
from server.errors import install_error_handlers
from server.exports.router import router as exports_router
from server.health.router import router as health_router
from server.ids import OversizedIdMiddleware
from server.imports.router import router as imports_router
from server.items.router import router as items_router
from server.items.unlabellable_router import router as unlabellable_router
from server.jobs.queue import CeleryJobQueue, JobQueue
from server.jobs.router import router as jobs_router
from server.labels.router import router as labels_router
from server.metrics.router import router as metrics_router
from server.models.item_predictions import PredictionCache
from server.models.predict import OnnxSessionCache
from server.models.prediction_router import router as prediction_router
from server.models.router import router as models_router
from server.monitoring.prometheus import ApiMetrics, RequestMetricsMiddleware
from server.monitoring.router import router as monitoring_router
from server.page.router import router as page_router
from server.projects.router import router as projects_router
from server.settings import Settings
from server.storage import ImageStore
from server.storage.factory import build_stores
from server.suggest.router import router as suggest_router
from server.uploads.body_limit import BodySizeLimitMiddleware

log = logging.getLogger("server")

DESCRIPTION = """Label-efficient annotation service.

Authenticate with `Authorization: Bearer <token>`. The admin token creates projects; each
project has owner and annotator tokens. Another project's resources answer 404.
Every error has the body `{"error": code, "detail": text}`."""


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_app(
    settings: Settings | None = None,
    *,
    job_queue: JobQueue | None = None,
    image_store: ImageStore | None = None,
) -> FastAPI:
    """Build the app. Engines, stores and queues are created in the lifespan, not here."""
    settings = settings or Settings()
    settings.check_safe()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _ensure_sqlite_dir(settings.database_url)
        if settings.gil_switch_interval_ms > 0:
            sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        if settings.auto_migrate:
            from server.db.migrate import upgrade_to_head

            upgrade_to_head(settings.database_url)
        engine = make_engine(
            settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = sessionmaker(engine, expire_on_commit=False)
        stores = build_stores(settings)
        app.state.image_store = image_store or stores.images
        app.state.artefacts = stores.artefacts
        app.state.job_queue = job_queue or CeleryJobQueue(
            settings.broker_url, settings.broker_queue
        )
        app.state.onnx_sessions = OnnxSessionCache(settings.predict_session_cache)
        app.state.metrics = metrics
        app.state.item_predictions = PredictionCache()
        for session in run_in_transaction(app.state.session_factory):
            generated = ensure_admin_token(session, settings.admin_token)
        if generated:
            # Printed once; only its hash is stored.
            print(
                f"xmodel: generated admin token (shown once, store it now): {generated}",
                file=sys.stderr,
                flush=True,
            )
        try:
            yield
        finally:
            app.state.job_queue.close()
            engine.dispose()

    # operationId = the route function's name: stable for generated and hand-written clients.
    app = FastAPI(
        title="xmodel annotate",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
    )
    install_error_handlers(app)
    for router in (
        health_router,
        projects_router,
        tokens_router,
        items_router,
        labels_router,
        suggest_router,
        jobs_router,
        models_router,
        metrics_router,
        prediction_router,
        unlabellable_router,
        page_router,
        exports_router,
        imports_router,
        deletion_router,
        monitoring_router,
    ):
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(OversizedIdMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)  # outermost: times it all
    # read at scrape time, from whatever the lifespan built
    metrics.watch_jobs(lambda: app.state.session_factory, lambda: app.state.job_queue.depth())
    return app


def __getattr__(name: str) -> FastAPI:
    # ``server.main:app`` builds the app from the environment on first access, so importing
    # this module (tests, import-linter) reads no settings.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
