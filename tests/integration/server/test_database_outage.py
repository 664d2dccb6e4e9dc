"""The database goes away and comes back (a restart, a failover): meanwhile the API answers
503 ``database_unavailable`` with Retry-After instead of an internal error, and once the
database answers again the same process serves requests with nothing restarted and nothing
confirmed lost. The outage is real: every connection to PostgreSQL passes through a TCP relay
that the test cuts (open connections dropped, new ones refused) and then restores."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from in_process_api import in_process_settings

from server.jobs.queue import RecordingJobQueue
from server.main import create_app

pytestmark = pytest.mark.integration
ADMIN = "outage-admin-token-0123456789abcdef"


class Relay:
    """Forward 127.0.0.1:<port> to ``upstream``; ``cut()`` drops and refuses, ``restore()``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self.listener is not None
        try:  # (on Linux this wakes the thread blocked in accept(); close alone does not)
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_api_answers_503_while_the_database_is_away_then_recovers(postgres_url, tmp_path):
    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    relayed = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
    settings = in_process_settings(relayed, tmp_path / "s", ADMIN)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"name": "outage", "task": {"kind": "classification", "classes": ["a", "b"]}}
    try:
        with TestClient(create_app(settings, job_queue=RecordingJobQueue())) as client:
            created = client.post("/projects", headers=admin, json=body)
            assert created.status_code == 201, created.text
            relay.cut()
            for _ in range(3):  # pooled connections dropped, new ones refused
                answer = client.get(f"/projects/{created.json()['id']}", headers=admin)
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"] == "database_unavailable"
                assert answer.headers["Retry-After"] == "1"
            relay.restore()
            deadline = time.monotonic() + 10
            while True:  # the same app, nothing restarted
                answer = client.get(f"/projects/{created.json()['id']}", headers=admin)
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert answer.status_code == 200, answer.text
            assert answer.json()["name"] == "outage"
    finally:
        relay.cut()
