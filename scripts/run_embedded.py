"""Run the service on one machine with no other server: migrations, the API (uvicorn) and
one worker process, sharing a SQLite database and a SQLite-file broker under ``--data-dir``.

    python scripts/run_embedded.py [--host 127.0.0.1] [--port 8000] [--data-dir var]

Prints the URL and the admin token (kept in ``<data-dir>/admin_token``, mode 0600). Ctrl-C
(or SIGTERM) stops both children: the worker gets a warm shutdown, then a hard stop after
``--grace`` seconds; a training job cut short is requeued and resumed by the next worker.
Any ``XM_*`` variable already set wins over the defaults derived from ``--data-dir``."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def admin_token(data_dir: Path) -> str:
    path = data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def environment(data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    defaults = {
        "XM_DATABASE_URL": f"sqlite:///{data_dir / 'xmodel.db'}",
        "XM_STORAGE_DIR": str(data_dir / "storage"),
        "XM_BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.sqlite'}",
    }
    env = {**defaults, **os.environ}
    env.setdefault("XM_ADMIN_TOKEN", admin_token(data_dir))
    env["XM_AUTO_MIGRATE"] = "false"  # done once here, before either child starts
    return env


def wait_healthy(url: str, children: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise SystemExit("a child process exited during start-up; see its output above")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the API did not answer on {url} within {timeout}s")


def stop(children: list[subprocess.Popen[bytes]], grace: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # uvicorn: graceful; celery: warm shutdown
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", type=Path, default=REPO / "var")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds a child gets to stop")
    parser.add_argument("--no-worker", action="store_true", help="the API only (workers run elsewhere)")
    args = parser.parse_args(argv)

    env = environment(args.data_dir.resolve())
    os.environ.update(env)
    from server.db.migrate import upgrade_to_head  # after the environment is set

    upgrade_to_head(env["XM_DATABASE_URL"])
    python = sys.executable
    commands = [[python, "-m", "uvicorn", "server.main:app", "--host", args.host, "--port", str(args.port)]]
    if not args.no_worker:
        commands.append([python, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo",
                         "--concurrency=1", "--loglevel=INFO", "--without-mingle", "--without-gossip",
                         "--without-heartbeat"])
    # Own sessions: a terminal's Ctrl-C reaches only this launcher, which stops them in order.
    children = [subprocess.Popen(c, cwd=REPO, env=env, start_new_session=True) for c in commands]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    url = f"http://{args.host}:{args.port}"
    try:
        wait_healthy(url, children)
        print(f"\nxmodel is running: {url}  (API docs: {url}/docs)\n"
              f"admin token: {env['XM_ADMIN_TOKEN']}\n"
              f"data: {args.data_dir}   broker: {env['XM_BROKER_URL']}\n"
              "Ctrl-C stops the API and the worker.\n", flush=True)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.3)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        stop(children, args.grace)
        return 1
    stop(children, args.grace)
    failed = [c.args[2] for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 0 if stopping or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
