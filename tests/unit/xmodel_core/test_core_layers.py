"""The layer rule: the core library imports no service, worker, database or web code."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import xmodel_core

FORBIDDEN = ("server", "worker", "sqlalchemy", "fastapi", "celery", "alembic", "starlette", "redis")


def test_importing_every_core_module_pulls_in_nothing_forbidden():
    modules = sorted(f"xmodel_core.{m.name}" for m in pkgutil.iter_modules(xmodel_core.__path__))
    assert {"xmodel_core.acquisition", "xmodel_core.export", "xmodel_core.predict"} <= set(modules)
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    # a fresh interpreter, so nothing imported by pytest or other tests can hide or fake a hit
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    leaked = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert leaked == []
    assert "torch" in loaded, "the check saw the real imports"
