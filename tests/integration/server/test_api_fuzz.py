"""schemathesis against a live uvicorn (SQLite and PostgreSQL), with the admin token and a
project owner token, on every operation of the OpenAPI schema: no answer may be a 5xx or
disagree with the schema (status code, content type, body, headers). Examples are bounded
(``XM_FUZZ_EXAMPLES`` per operation and token, 12 by default) so the pass takes minutes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_test_helpers import ADMIN_TOKEN, unique_png

from bench.live_api import start_uvicorn
from xmodel_contracts.launch import embedded_settings, free_port, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = int(os.environ.get("XM_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Live:
    url: str
    tokens: dict[str, dict[str, str]]
    log: Path


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    database_url = (
        f"sqlite:///{tmp_path / 'xmodel.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    if request.param == "postgresql":
        from sqlalchemy import text

        from server.db.base import Base
        from server.db.engine import make_engine

        engine = make_engine(database_url)
        with engine.begin() as connection:  # a clean database, as the other tests leave it
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()
    env = {
        **os.environ,
        **embedded_settings(tmp_path, database_url),
        "XM_ADMIN_TOKEN": ADMIN_TOKEN,
        "XM_AUTO_MIGRATE": "true",
    }
    log = tmp_path / "uvicorn.log"
    process, url = start_uvicorn(free_port(), env, log)
    try:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = httpx.post(
            f"{url}/projects",
            headers=admin,
            json={
                "name": "fuzz",
                "task": {"kind": "classification", "classes": ["cat", "dog"]},
                "image_size": 16,
                "backbone": "small_cnn",
            },
        ).json()
        owner = {"Authorization": f"Bearer {created['owner_token']}"}
        httpx.post(
            f"{url}/projects/{created['id']}/items",
            headers=owner,
            files=[("files", (f"{i}.png", unique_png(), "image/png")) for i in range(3)],
        )
        yield Live(url, {"admin": admin, "owner": owner}, log)
    finally:
        stop_process(process, timeout=20)


def _fuzz(operation: schemathesis.APIOperation, base_url: str, headers: dict[str, str]) -> None:
    """Up to ``EXAMPLES`` generated requests to one operation; raises on the first failure."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    run()


def test_every_operation_answers_within_its_schema(live: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    failures: list[str] = []
    results = list(schema.get_all_operations())
    broken = [result.err() for result in results if not isinstance(result, Ok)]
    assert not broken, f"operations the schema does not describe: {broken}"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) > 20
    for operation in operations:
        for who, headers in live.tokens.items():
            try:
                _fuzz(operation, live.url, headers)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({who}): {str(exc)[:1500]}"
                )
    server_log = live.log.read_text(errors="replace")
    assert not failures, "\n\n".join(failures) + "\n\nserver log:\n" + server_log[-4000:]
