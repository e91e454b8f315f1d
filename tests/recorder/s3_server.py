"""A real S3-compatible server on loopback for the recorder tests (moto_server, from the
test dependencies; shared/TESTING.md), behind a TCP proxy the test can take down and bring
back: moto keeps its data in memory, so "S3 is unreachable for a while" is the proxy
refusing connections while moto, and what it stored, lives on."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

BUCKET = "lessons"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """Forwards 127.0.0.1:<port> to the server; ``down()`` closes the listener and every
    connection through it (clients get refused), ``up()`` listens again on the same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = _free_port()
        self.server: asyncio.base_events.Server | None = None
        self.conns: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.conns):
            w.transport.abort()
        self.conns.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.conns.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self.conns.difference_update((writer, up_w))


@contextlib.asynccontextmanager
async def s3_server() -> AsyncIterator[tuple[str, Proxy, Any]]:
    """(endpoint URL through the proxy, the proxy, a boto3 client straight to moto) with
    the bucket created."""
    import boto3

    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = _free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # up when it answers
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                await asyncio.sleep(0.1)
        direct = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        direct.create_bucket(Bucket=BUCKET)
        proxy = Proxy(port)
        await proxy.up()
        try:
            yield f"http://127.0.0.1:{proxy.port}", proxy, direct
        finally:
            await proxy.down()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
