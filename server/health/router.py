"""``GET /health``: answers 200 when the database answers, 503 otherwise."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


class HealthRead(BaseModel):
    status: str
    database: str


@router.get(
    "/health", response_model=HealthRead, responses={503: {"description": "database unreachable"}}
)
def health(request: Request) -> HealthRead:
    engine = request.app.state.engine
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(f"database check failed: {type(exc).__name__}") from exc
    return HealthRead(status="ok", database=engine.dialect.name)
