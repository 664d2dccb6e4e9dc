"""The embedded launcher's generated admin token: kept once, and safe to pass on a command line."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from server.auth.service import TOKEN_PREFIX

REPO = Path(__file__).resolve().parents[3]


def _launcher(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_embedded", REPO / "scripts/run_embedded.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def test_generated_admin_token_never_reads_as_an_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare url-safe token starts with "-" one time in 64, and ``--token <it>`` then fails
    in argparse ("expected one argument"); the launcher's tokens carry the service's prefix."""
    launcher = _launcher(monkeypatch)
    for index in range(200):
        data_dir = tmp_path / str(index)
        data_dir.mkdir()
        token = launcher.admin_token(data_dir)
        assert token.startswith(TOKEN_PREFIX)
        assert launcher.admin_token(data_dir) == token  # read back, not regenerated
    mode = stat.S_IMODE((tmp_path / "0" / "admin_token").stat().st_mode)
    assert mode == 0o600
