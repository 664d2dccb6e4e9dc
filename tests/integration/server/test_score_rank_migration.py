"""Migration 0006 ranks the scores stored before it: after the upgrade, /suggest's stored
order is the round-robin walk across clusters (the worker's ``ranking``), on both backends."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text

from bench.common import pg_admin_connection
from server.db.engine import make_engine
from server.db.migrate import alembic_config
from server.suggest.ranking import ranked_rows

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database nobody has migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    host = os.environ.get("XM_TEST_PG_HOST", "127.0.0.1")
    port = int(os.environ.get("XM_TEST_PG_PORT", "5432"))
    admin, user = pg_admin_connection(host, port)
    name = f"xm_mig_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_upgrade_ranks_existing_scores_in_the_walk_order(fresh_url: str) -> None:
    config = alembic_config(fresh_url)
    command.upgrade(config, "0004")
    rng = random.Random(5)
    now = datetime.now(UTC)
    engine = make_engine(fresh_url)
    rows: dict[str, list[tuple[int, float, int]]] = {}
    with engine.begin() as conn:
        project = conn.execute(
            text(
                "INSERT INTO projects (name, task, image_size, backbone, training, created_at)"
                " VALUES ('p', '{}', 32, 'small_cnn', '{}', :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        ids = [
            conn.execute(
                text(
                    "INSERT INTO items (project_id, sha256, width, height, image_format,"
                    " byte_size, original_name, random_key, created_at) VALUES"
                    " (:p, :sha, 8, 8, 'PNG', 10, 'x.png', :key, :now) RETURNING id"
                ),
                {"p": project, "sha": f"{n:064d}", "key": rng.random(), "now": now},
            ).scalar_one()
            for n in range(40)
        ]
        model = conn.execute(
            text(
                "INSERT INTO model_versions (project_id, version, labelled_count, metrics,"
                " is_active, created_at, config_path, config_sha256, safetensors_path,"
                " safetensors_sha256, onnx_path, onnx_sha256)"
                " VALUES (:p, 1, 0, '{}', true, :now, 'c', 'c', 's', 's', 'o', 'o') RETURNING id"
            ),
            {"p": project, "now": now},
        ).scalar_one()
        for strategy in ("xmodel", "entropy"):  # ties in score, uneven clusters
            rows[strategy] = [(i, float(rng.randint(0, 5)), rng.choice([0, 1, 1, 4])) for i in ids]
            conn.execute(
                text(
                    "INSERT INTO item_scores (model_id, strategy, item_id, score, cluster)"
                    " VALUES (:m, :s, :i, :score, :c)"
                ),
                [
                    {"m": model, "s": strategy, "i": i, "score": s, "c": c}
                    for i, s, c in rows[strategy]
                ],
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        for strategy, expected in rows.items():
            stored = conn.execute(
                text("SELECT item_id, rank FROM item_scores WHERE model_id = :m AND strategy = :s"),
                {"m": model, "s": strategy},
            ).all()
            assert {i: r for i, r in stored} == {r.item_id: r.rank for r in ranked_rows(expected)}
    engine.dispose()
    command.downgrade(config, "0004")  # and back: the column and its index go
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM item_scores")).scalar_one() == 80
    engine.dispose()
