"""``GET /metrics``: Prometheus text format. Aggregates only (request counts per route
template, job counts, queue depth), no project data, so it needs no token; keep it off the
public network with the reverse proxy when that matters."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics of this API process and of the jobs it shares with the others."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
