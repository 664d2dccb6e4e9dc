"""Row ids as the API accepts them: positive and within a signed 64-bit integer, the widest
id PostgreSQL's BIGINT and SQLite's INTEGER can hold. Declared in the OpenAPI schema, so an
id past the limit answers 422 at the edge instead of overflowing in the database driver."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import NotFound, send_error

MAX_DB_ID = 2**63 - 1

DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="a row id (1 to 2^63-1)")]
AfterId = Annotated[int, Query(ge=0, le=MAX_DB_ID, description="only rows with a larger id")]


def parse_cursor(cursor: str | None) -> int | None:
    """``next_cursor`` text back to an id; None when it is not one the API could have given."""
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19:
        return None
    value = int(cursor)
    return value if value <= MAX_DB_ID else None


class OversizedIdMiddleware:
    """Answer 404 for a path with an all-digit segment past ``MAX_DB_ID``, before any route
    runs: no such row can exist, and the database driver would overflow converting it. The
    routes declare the limit in the schema as well; this covers every route at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(
            part.isascii() and part.isdigit() and (len(part) > 19 or int(part) > MAX_DB_ID)
            for part in str(scope.get("path", "")).split("/")
        ):
            await send_error(send, NotFound("no such resource: ids are at most 2^63-1"))
            return
        await self.app(scope, receive, send)
