"""Janus (Debian ``janus`` 1.1.2) as the peer SFU of the bench: its own config folder, only
the VideoRoom plugin and the HTTP transport, ICE on one interface, and a bench room.

libnice gathers no candidates on the loopback interface, so Janus is run inside the private
network namespace of :mod:`benches.netns`, with ``ice_enforce_list`` naming the bench
interface. Everything else is Janus's stock configuration (one thread per handle, the
default RTP/RTCP behaviour), at debug level 3 (warnings) so logging costs nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benches.server_process import drain_in_background, terminate

LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
ROOM = 1234
PLUGIN = "janus.plugin.videoroom"


def janus_binary() -> str | None:
    return shutil.which("janus")


def _lib_dir() -> Path:
    if LIB.is_dir():
        return LIB
    for cand in Path("/usr/lib").glob("*/janus"):
        if (cand / "plugins").is_dir():
            return cand
    raise FileNotFoundError("Janus plugins not found (apt install janus)")


def write_config(folder: Path, *, port: int, interface: str, debug_level: int = 3,
                 http_ip: str = "127.0.0.1") -> Path:
    lib = _lib_dir()
    for sub, keep in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        os.symlink(lib / sub / keep, folder / sub / keep)
    for sub in ("events", "loggers"):
        (folder / sub).mkdir(exist_ok=True)
    (folder / "janus.jcfg").write_text(f"""general: {{
  configs_folder = "{folder}"
  plugins_folder = "{folder}/plugins"
  transports_folder = "{folder}/transports"
  events_folder = "{folder}/events"
  loggers_folder = "{folder}/loggers"
  debug_level = {debug_level}
  session_timeout = 120
}}
certificates: {{}}
media: {{
  rtp_port_range = "20000-60000"
}}
nat: {{
  nice_debug = false
  full_trickle = false
  ice_enforce_list = "{interface}"
  ignore_mdns = true
}}
plugins: {{}}
transports: {{}}
loggers: {{}}
events: {{
  broadcast = false
}}
""")
    (folder / "janus.transport.http.jcfg").write_text(f"""general: {{
  json = "compact"
  base_path = "/janus"
  http = true
  port = {port}
  ip = "{http_ip}"
  https = false
}}
admin: {{
  admin_http = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return folder / "janus.jcfg"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class JanusServer:
    proc: subprocess.Popen[str]
    http_url: str
    folder: Path
    log: list[str] = field(default_factory=list)
    room: int = ROOM

    @property
    def pid(self) -> int:
        return self.proc.pid


async def start(interface: str, *, publishers: int = 100, timeout: float = 20.0,
                rooms: int = 1, http_ip: str = "127.0.0.1") -> JanusServer:
    """Start Janus (must run inside the bench network namespace) and create the rooms
    (``server.room``, ``server.room + 1``, ...); its HTTP API on ``http_ip``."""
    binary = janus_binary()
    if binary is None:
        raise FileNotFoundError("janus is not installed (apt install janus)")
    folder = Path(tempfile.mkdtemp(prefix="bench-janus-"))
    port = _free_port()
    cfg = write_config(folder, port=port, interface=interface, http_ip=http_ip)
    proc = subprocess.Popen([binary, "-F", str(folder), "-C", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = JanusServer(proc, f"http://{http_ip}:{port}/janus", folder)
    drain_in_background(proc, server.log, keep=2000)
    try:
        await _create_rooms(server, publishers, timeout, rooms)
    except BaseException:
        stop(server)
        raise
    return server


async def _create_rooms(server: JanusServer, publishers: int, timeout: float,
                        rooms: int) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError("janus exited:\n" + "".join(server.log[-50:]))
            try:
                async with http.get(server.http_url + "/info") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("janus did not answer:\n" + "".join(server.log[-50:]))
            await asyncio.sleep(0.1)
        session = JanusSession(http, server.http_url)
        await session.create()
        handle = await session.attach()
        for k in range(rooms):
            resp = await session.message(handle, {
                "request": "create", "room": server.room + k, "publishers": publishers,
                "bitrate": 0, "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8",
                "notify_joining": False, "permanent": False})
            data = resp.get("plugindata", {}).get("data", {})
            if data.get("videoroom") != "created":
                raise RuntimeError(f"janus did not create the room: {resp}")
        await session.destroy()


def stop(server: JanusServer) -> None:
    terminate(server.proc)
    shutil.rmtree(server.folder, ignore_errors=True)


class JanusError(RuntimeError):
    pass


class JanusSession:
    """A Janus session over the HTTP transport: requests, and events by long poll
    (:meth:`run_events` as a task), routed to each handle's queue."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.id = 0
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": secrets.token_hex(6)}
        async with self.http.post(self.url + path, json=body) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
        if data.get("janus") == "error":
            raise JanusError(f"janus: {data.get('error')}")
        return data

    async def create(self) -> None:
        self.id = (await self._post("", {"janus": "create"}))["data"]["id"]

    async def attach(self) -> int:
        data = await self._post(f"/{self.id}", {"janus": "attach", "plugin": PLUGIN})
        handle: int = data["data"]["id"]
        self.events[handle] = asyncio.Queue()
        return handle

    async def message(self, handle: int, body: dict[str, Any],
                      jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        data = await self._post(f"/{self.id}/{handle}", msg)
        err = data.get("plugindata", {}).get("data", {}).get("error")
        if err:
            raise JanusError(f"videoroom: {err}")
        return data

    async def event(self, handle: int, key: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next plugin event of ``handle`` whose data has ``key`` (an error raises)."""
        deadline = time.monotonic() + timeout
        while True:
            ev = await asyncio.wait_for(self.events[handle].get(),
                                        max(0.01, deadline - time.monotonic()))
            data = ev.get("plugindata", {}).get("data", {})
            if "error" in data:
                raise JanusError(f"videoroom: {data['error']}")
            if key in data:
                return ev

    async def run_events(self) -> None:
        while True:
            try:
                async with self.http.get(f"{self.url}/{self.id}?maxev=50") as resp:
                    data = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.2)
                continue
            for ev in data if isinstance(data, list) else [data]:
                q = self.events.get(ev.get("sender", 0))
                if q is not None and ev.get("janus") == "event":
                    q.put_nowait(ev)

    async def destroy(self) -> None:
        try:
            await self._post(f"/{self.id}", {"janus": "destroy"})
        except (aiohttp.ClientError, JanusError):
            pass
