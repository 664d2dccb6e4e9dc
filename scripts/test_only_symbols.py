"""List symbols of the product packages that nothing but the tests (or nothing at all) uses.

    python scripts/test_only_symbols.py            # exit 1 when any is found

A symbol is a module-level function, class or constant, or a method of a module-level class,
defined in ``server/``, ``worker/`` or ``xmodel_core/``. It counts as used when its name is
read (a name, an attribute or an import) anywhere outside ``tests/`` other than at its own
definition: the product packages, the contracts and client packages, ``bench/``, ``scripts/``,
``migrations/``, or the build and run files (pyproject, Makefile, CI script, Dockerfile).
Names the frameworks call for us are not listed: decorated functions (routes, Celery tasks,
signal handlers, fixtures), dunder methods, and the hooks below. The check is by name, so a
symbol whose name is used elsewhere for something else counts as used: it finds dead code,
it does not prove code live.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("server", "worker", "xmodel_core")
READERS = (*CHECKED, "xmodel_contracts", "xmodel_client", "bench", "scripts", "migrations")
BUILD_FILES = ("pyproject.toml", "Makefile", ".ci/run", "Dockerfile", "docker-compose.yml")
# names that a framework or the language calls by convention
HOOKS = frozenset(
    {
        "model_config",  # pydantic
        "model_post_init",
        "setUp",
        "tearDown",
        "run",  # threading.Thread
        "forward",  # torch.nn.Module
        "emit",  # logging.Handler
        "process_bind_param",  # sqlalchemy TypeDecorator
        "process_result_value",
        "load_dialect_impl",
        "impl",
        "cache_ok",
        "dispatch",  # starlette BaseHTTPMiddleware
    }
)


def python_files(folder: str) -> list[Path]:
    base = ROOT / folder
    return sorted(p for p in base.rglob("*.py") if ".venv" not in p.parts) if base.exists() else []


Key = tuple[str, str]  # (file, symbol name)


def _listed(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """False for functions a framework calls (routes, tasks, handlers: decorated ones)."""
    plain = {"staticmethod", "classmethod", "property", "dataclass", "cache", "functools.cache"}
    if isinstance(node, ast.ClassDef):
        return True
    return all(ast.unparse(d).split("(")[0] in plain for d in node.decorator_list)


def _wanted(name: str) -> bool:
    return not (name.startswith("__") and name.endswith("__")) and name not in HOOKS


def scan(path: Path) -> tuple[list[tuple[str, int]], dict[str | None, Counter[str]]]:
    """The symbols ``path`` defines, ``(name, line)``, and the names it reads, grouped by the
    symbol whose body reads them (``None``: module level)."""
    tree = ast.parse(path.read_text(), str(path))
    defs: list[tuple[str, int]] = []
    reads: dict[str | None, Counter[str]] = {}

    def read(owner: str | None, node: ast.AST) -> None:
        counts = reads.setdefault(owner, Counter())
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Store):
                counts[sub.id] += 1
            elif isinstance(sub, ast.Attribute) and not isinstance(sub.ctx, ast.Store):
                counts[sub.attr] += 1
            elif isinstance(sub, ast.alias):
                counts[sub.name.rsplit(".", 1)[-1]] += 1
            elif isinstance(sub, ast.keyword) and sub.arg:
                counts[sub.arg] += 1
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                # "package.module:attr" references (entry points, uvicorn and Celery targets)
                if re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?", sub.value):
                    counts.update(re.findall(r"[A-Za-z_]\w*", sub.value))

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if _listed(node) and _wanted(node.name):
                defs.append((node.name, node.lineno))
                owner: str | None = node.name
            else:
                owner = None
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                        if _listed(member) and _wanted(member.name):
                            defs.append((member.name, member.lineno))
                            read(member.name, member)
                            continue
                    read(owner, member)
                for extra in (*node.decorator_list, *node.bases, *node.keywords):
                    read(owner, extra)
            else:
                read(owner, node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if names == ["__all__"]:
                continue  # exporting a name is not using it
            for name in names:
                if _wanted(name):
                    defs.append((name, node.lineno))
            read(names[0] if len(names) == 1 and _wanted(names[0]) else None, node)
        else:
            read(None, node)
    return defs, reads


def main() -> int:
    defined: dict[Key, int] = {}
    chunks: list[tuple[Key | None, Counter[str]]] = []
    for folder in READERS:
        for path in python_files(folder):
            rel = str(path.relative_to(ROOT))
            defs, reads = scan(path)
            if folder in CHECKED:
                defined.update({(rel, name): line for name, line in defs})
            for owner, counts in reads.items():
                key = (rel, owner) if owner is not None and folder in CHECKED else None
                chunks.append((key, counts))
    for name in BUILD_FILES:
        if (ROOT / name).exists():
            chunks.append((None, Counter(re.findall(r"[A-Za-z_]\w*", (ROOT / name).read_text()))))
    in_tests: Counter[str] = Counter()
    for path in python_files("tests"):
        for counts in scan(path)[1].values():
            in_tests.update(counts)
    # a symbol read only by dead symbols is dead too: iterate to the fixed point
    dead: set[Key] = set()
    while True:
        live: Counter[str] = Counter()
        for key, counts in chunks:
            if key not in dead:
                live.update(counts)
        # a method or function reading its own name (recursion) does not keep itself alive
        newly = {
            key
            for key in defined
            if key not in dead and live[key[1]] - sum(c[key[1]] for k, c in chunks if k == key) <= 0
        }
        if not newly:
            break
        dead |= newly
    rows = []
    for rel, name in sorted(dead, key=lambda k: (k[0], defined[k])):
        where = "tests only" if in_tests[name] else "nowhere"
        rows.append(f"{rel}:{defined[(rel, name)]}: {name} (used {where})")
    for row in rows:
        print(row)
    print(f"{len(rows)} symbol(s) in {', '.join(CHECKED)} used by tests only or not at all")
    return 1 if rows else 0


if __name__ == "__main__":
    sys.exit(main())
