"""Run the service on one machine with no other server: migrations, the API (uvicorn) and
one worker process, sharing a SQLite database and a SQLite-file broker under ``--data-dir``.

    python scripts/run_embedded.py [--host 127.0.0.1] [--port 8000] [--data-dir var]

Prints the URL and the admin token (kept in ``<data-dir>/admin_token``, mode 0600). Ctrl-C
(or SIGTERM) stops both children: the worker gets a warm shutdown, then a hard stop after
``--grace`` seconds; a training job cut short is requeued and resumed by the next worker.
Any ``XM_*`` variable already set wins over the defaults derived from ``--data-dir``.

The launcher supervises its children: one that exits on its own (a worker killed by the
kernel's OOM killer, a crash) is started again after a back-off (1 s, doubling to 30 s, back
to 1 s once a child has run for a minute), with a log line saying which child stopped, how,
and when it comes back. The worker runs at a lower CPU priority (``--worker-nice``, default 10): on
a small machine a training job then takes the cores only when requests leave them idle, so
annotators are not kept waiting by it. The API keeps serving meanwhile; the job the dead worker held is
requeued by the reaper once its lease expires, resumed from its checkpoint, and its history
records the lost attempt."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def admin_token(data_dir: Path) -> str:
    path = data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    from server.auth.service import new_secret

    token = new_secret()  # prefixed: never starts with "-", which argparse would read as an option
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def environment(data_dir: Path) -> dict[str, str]:
    from xmodel_contracts.launch import embedded_settings

    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**embedded_settings(data_dir), **os.environ}
    env.setdefault("XM_ADMIN_TOKEN", admin_token(data_dir))
    env["XM_AUTO_MIGRATE"] = "false"  # done once here, before either child starts
    return env


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


BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long starts the back-off over


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} xmodel launcher: {message}", file=sys.stderr, flush=True)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


@dataclass
class Child:
    """One supervised process: its command, the running process, its restart back-off."""

    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_START_S
    restart_at: float | None = None
    restarts: int = 0
    nice: int = 0  # added to the launcher's niceness (lower CPU priority)

    def start(self) -> None:
        # Own session: a terminal's Ctrl-C reaches only the launcher, which stops children in order.
        increment = self.nice
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=self.env,
            start_new_session=True,
            preexec_fn=(lambda: os.nice(increment)) if increment else None,
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        log(f"{self.name} started (pid {self.process.pid})")

    def supervise(self, now: float) -> None:
        """Notice an exit and schedule a restart; restart when the back-off has passed."""
        if self.process is not None and self.restart_at is None:
            code = self.process.poll()
            if code is None:
                return
            if now - self.started_at >= STABLE_AFTER_S:
                self.backoff_s = BACKOFF_START_S
            self.restart_at = now + self.backoff_s
            log(
                f"{self.name} (pid {self.process.pid}) {describe_exit(code)}; restarting it in "
                f"{self.backoff_s:.0f}s (restart {self.restarts + 1})"
            )
            self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)
        if self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", type=Path, default=REPO / "var")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds a child gets to stop")
    parser.add_argument(
        "--no-worker", action="store_true", help="the API only (workers run elsewhere)"
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="CPU niceness added to the worker, so requests win the cores from training (0: same)",
    )
    args = parser.parse_args(argv)

    env = environment(args.data_dir.resolve())
    os.environ.update(env)
    from server.db.migrate import upgrade_to_head  # after the environment is set
    from xmodel_contracts.launch import api_command, wait_healthy, worker_command

    upgrade_to_head(env["XM_DATABASE_URL"])
    children = [Child("API", api_command(args.host, args.port), env)]
    if not args.no_worker:
        children.append(Child("worker", worker_command(), env, nice=args.worker_nice))
    for child in children:
        child.start()
    processes = [c.process for c in children if c.process is not None]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    url = f"http://{args.host}:{args.port}"
    try:
        wait_healthy(url, processes, timeout=120)
    except RuntimeError as exc:  # a child that cannot start is a configuration error: stop
        print(exc, file=sys.stderr)
        stop(processes, args.grace)
        return 1
    print(
        f"\nxmodel is running: {url}  (API docs: {url}/docs)\n"
        f"admin token: {env['XM_ADMIN_TOKEN']}\n"
        f"data: {args.data_dir}   broker: {env['XM_BROKER_URL']}\n"
        "Ctrl-C stops the API and the worker.\n",
        flush=True,
    )
    while not stopping:
        now = time.monotonic()
        for child in children:
            child.supervise(now)
        time.sleep(0.3)
    log("stopping")
    stop([c.process for c in children if c.process is not None], args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
