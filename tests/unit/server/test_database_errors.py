"""Which database errors answer 503 ``database_unavailable`` (retry) and which stay a 500."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import errors as pg
from sqlalchemy.exc import InvalidatePoolError, OperationalError

from server.errors import install_error_handlers


def _answer(orig: Exception, wrap: bool = True) -> tuple[int, dict]:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise OperationalError("SELECT 1", {}, orig) if wrap else orig

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "orig",
    [
        pg.AdminShutdown("terminating connection due to administrator command"),  # 57P01
        pg.CannotConnectNow("the database system is starting up"),  # 57P03
        psycopg.OperationalError("the connection is lost"),  # client side, no SQLSTATE
        psycopg.OperationalError("connection socket closed"),
        psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "Connection refused"
        ),
    ],
)
def test_a_lost_connection_answers_503_with_retry(orig: Exception) -> None:
    status, body = _answer(orig)
    assert status == 503 and body["error"] == "database_unavailable"


@pytest.mark.parametrize(
    "orig",
    [
        pg.QueryCanceled("canceling statement due to statement timeout"),  # 57014
        pg.DeadlockDetected("deadlock detected"),  # 40P01, an OperationalError in psycopg
    ],
)
def test_an_error_of_the_query_itself_stays_500(orig: Exception) -> None:
    status, body = _answer(orig)
    assert status == 500 and body["error"] == "internal_error"


def test_a_pool_that_cannot_reconnect_answers_503() -> None:
    """SQLAlchemy's own error once pre-ping's reconnect attempts fail (not a driver error)."""
    status, body = _answer(InvalidatePoolError(), wrap=False)
    assert status == 503 and body["error"] == "database_unavailable"
