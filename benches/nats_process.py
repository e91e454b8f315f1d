"""A real ``nats-server -js`` (Debian ``nats-server``), on a free port with its JetStream
store in a given folder: for the tests and the cluster benches."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, store: Path, host: str = "127.0.0.1") -> None:
        self.store = store
        self.host = host
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    async def start(self) -> None:
        assert Path(NATS).exists(), "nats-server is missing (scripts/setup.sh --test installs it)"
        self.proc = subprocess.Popen([NATS, "-js", "-a", self.host, "-p", str(self.port),
                                      "-sd", str(self.store)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):  # until it accepts connections
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
