"""Run a snippet in a fresh interpreter whose import system refuses some top-level packages,
as on a machine where only one extra of the project is installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_BLOCKER = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
        return None
sys.meta_path.insert(0, Blocker())
"""


def run_blocked(blocked: Iterable[str], body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``body`` (dedented) with the packages ``blocked`` refused; the repo on ``PYTHONPATH``."""
    script = f"BLOCKED = {sorted(blocked)!r}\n{_BLOCKER}\n{textwrap.dedent(body)}"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
