"""The API's Prometheus registry: one per app (tests build several apps in one process).

Request metrics are labelled by the route *template* (``/items/{item_id}``), never the raw
path, so the number of series stays bounded; job and queue figures are read from the
database and the broker when Prometheus scrapes, so every API process reports the same
truth however many there are."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.db.base import utcnow
from server.jobs import repository as jobs
from xmodel_contracts.names import JobStatus

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"  # 404s for paths no route knows: one series, not one per path


class ApiMetrics:
    """The registry and the request instruments of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "xmodel_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "xmodel_http_request_duration_seconds",
            "Time from request to the end of the response, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_jobs(
        self, factory: Callable[[], sessionmaker[Session]], queue_depth: Callable[[], int | None]
    ) -> None:
        self.registry.register(JobsCollector(factory, queue_depth))


class JobsCollector(Collector):
    """Jobs by state, the broker queue's depth and the oldest queued job's age, at scrape."""

    def __init__(
        self, factory: Callable[[], sessionmaker[Session]], queue_depth: Callable[[], int | None]
    ) -> None:
        self.factory = factory
        self.queue_depth = queue_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "xmodel_jobs", "Jobs in the database by status", labels=["status"]
        )
        oldest = GaugeMetricFamily(
            "xmodel_oldest_queued_job_age_seconds",
            "Seconds since the oldest still-queued job was created (0 when none is queued)",
        )
        try:
            with self.factory()() as session:
                counts = jobs.count_by_status(session)
                first = jobs.oldest_queued_created_at(session)
        except Exception:  # a scrape must answer even when the database does not
            log.exception("metrics: could not read jobs")
        else:
            for status in JobStatus:
                by_state.add_metric([status], counts.get(status, 0))
            oldest.add_metric([], (utcnow() - first).total_seconds() if first else 0.0)
            yield by_state
            yield oldest
        try:
            depth = self.queue_depth()
        except Exception:
            log.exception("metrics: could not read the broker queue")
            depth = None
        if depth is not None:
            gauge = GaugeMetricFamily(
                "xmodel_queue_depth", "Messages waiting in the broker's training queue"
            )
            gauge.add_metric([], depth)
            yield gauge


class RequestMetricsMiddleware:
    """Counts and times every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, route, str(status[0])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (FastAPI puts the route in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
