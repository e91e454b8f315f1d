"""A room served on this node as an edge of its origin (docs/cluster.md, "Edge relays").

Pages of a region join a node of their region. When the room's origin is in another
region, this node serves their media itself and pulls the origin's tracks over one relay
session per room: a WebSocket to the origin's signalling as a relay (a token with the
``relay`` claim, minted with the cluster's shared secret) and one DTLS-SRTP connection on
which the origin sends each track once, however many pages here receive it. The origin's
tracks become :class:`sfu.remote.RemoteParticipant` tracks of a local media room, where the
pages' subscriptions fan them out. The edge asks the origin for a video only while a page
here receives it, at the largest size one of them shows it at (``set_quality``).

The pages' own signalling (classroom actions, the room's messages) goes to the origin on
their own sessions (``signalling.edge``); this module is the media. An :class:`EdgeRoom`
(its pages, what they want and publish, their sessions at the origin) outlives its
:class:`Relay` with one origin: when the room moves (a drain), :class:`Edges` joins the new
origin again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from sfu import rtcp, sdp
from sfu.codecs import EXT_TWCC
from sfu.downlink import QUALITIES
from sfu.negotiation import answer_publisher
from sfu.participant import MediaParams, now_ms
from sfu.remote import RelayIngress, RemoteParticipant
from sfu.room import Room, RoomRegistry
from sfu.track import PublishedTrack
from sfu.transport import MediaTransport

from .rooms import Elsewhere
from .uplink import Uplink

log = logging.getLogger(__name__)

#: how often the edge reports to the origin (receiver reports keep the relay's connection
#: alive there) and re-reads what its pages want
REPORT_INTERVAL_S = 1.0


def ws_url(url: str) -> str:
    return url.rstrip("/").replace("http", "ws", 1) + "/ws"


class OriginSocket:
    """A signalling session with the room's origin: the edge's relay session, or a page's
    session the edge carries (``signalling.edge``)."""

    def __init__(self, origin: Elsewhere) -> None:
        self.origin = origin
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def join(self, token: str) -> dict[str, Any]:
        return await self.join_with({"type": "join", "token": token})

    async def join_with(self, first: dict[str, Any], timeout: float = 10.0
                        ) -> dict[str, Any]:
        """Connect and send ``first`` (a ``join`` or a ``resume``); the origin's answer
        (``joined``, ``resumed``, ``error``, ``redirect``). ConnectionError if the origin
        cannot be reached."""
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(ws_url(self.origin.url),
                                                      max_msg_size=0, heartbeat=15)
            await self.send(first)
            msg = await self._ws.receive(timeout=timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self.close()
            raise ConnectionError(f"origin {self.origin.node} unreachable: {exc}") from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            await self.close()
            raise ConnectionError(f"origin {self.origin.node} closed the session")
        answer: dict[str, Any] = json.loads(msg.data)
        return answer

    async def send(self, msg: dict[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise ConnectionError("the session with the origin is closed")
        await self._ws.send_str(json.dumps(msg))

    async def messages(self, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Hand each message to ``handle`` until the session ends (a failing message is
        logged; the next ones still come)."""
        if self._ws is None:
            return
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                await handle(json.loads(frame.data))
            except Exception:
                log.exception("edge: message from origin %s failed", self.origin.node)

    async def close(self, leave: bool = False) -> None:
        if leave:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send({"type": "leave"})
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()


class Relay:
    """The room's relay session with its origin: the origin's tracks, as remote
    participants of the edge's room. One per room and origin: a move of the room (a drain,
    a failed origin) ends it, and the edge opens one with the new origin."""

    def __init__(self, edge: EdgeRoom, origin: Elsewhere) -> None:
        self.edge = edge
        self.room = edge.room
        self.origin = origin
        self.params = edge.params
        self.ingress = RelayIngress()
        self.transport: MediaTransport | None = None
        self.rtcp_ssrc = secrets.randbits(32) | 1
        #: the origin's participants as last described (for the remote participants)
        self.people: dict[str, dict[str, Any]] = {}
        self.remotes: dict[str, RemoteParticipant] = {}
        #: relay m-line -> (remote participant id, track id)
        self.slots: dict[str, tuple[str, str]] = {}
        #: what the origin was last asked for, per track
        self.asked: dict[str, str] = {}
        self.offers = 0
        self.closed = False
        self.socket = OriginSocket(origin)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        #: called when the session ended by itself (the room closed or moved there, or the
        #: origin went away)
        self.on_ended: Callable[[Relay], None] | None = None

    async def start(self, token: str) -> None:
        """Join the origin as this room's relay; raises ConnectionError if it refuses."""
        msg = await self.socket.join(token)
        if msg.get("type") != "joined":
            await self.socket.close()
            raise ConnectionError(f"the origin {self.origin.node} refused the relay: {msg}")
        for person in msg.get("participants", []):
            self.people[person["id"]] = person
        # a page here keeps its place as long as it would at the origin
        window_ms = msg.get("reconnectWindowMs")
        if isinstance(window_ms, int | float) and 0 <= window_ms <= 600_000:
            self.room.reconnect_window_s = window_ms / 1000.0
        self._tasks = [asyncio.ensure_future(self._read()),
                       asyncio.ensure_future(self._report())]

    async def _read(self) -> None:
        await self.socket.messages(self._on_message)
        if not self.closed:
            log.warning("edge %s: the relay session to %s ended", self.room.id,
                        self.origin.node)
            if self.on_ended is not None:
                self.on_ended(self)

    async def _on_message(self, msg: dict[str, Any]) -> None:
        mtype = msg.get("type")
        if mtype == "offer" and msg.get("target") == "subscriber":
            await self._answer(msg)
        elif mtype == "participant_joined":
            self.people[msg["participant"]["id"]] = msg["participant"]
        elif mtype == "participant_left":
            self.people.pop(msg.get("participantId", ""), None)
        elif mtype == "track_muted":
            remote = self.remotes.get(msg.get("participantId", ""))
            if remote is not None:
                remote.set_remote_muted(str(msg.get("trackId")), bool(msg.get("muted")))

    async def _answer(self, msg: dict[str, Any]) -> None:
        """The origin's subscriber offer: answered as a publisher offer is (the edge
        receives), and the relayed tracks follow its m-lines."""
        self.offers += 1
        offer = sdp.parse(msg["sdp"])
        described = {t["mid"]: t for t in msg.get("tracks", []) if isinstance(t, dict)}
        first_offer = self.transport is None
        if first_offer:
            self.transport = MediaTransport(
                self.params.certificate, list(self.params.ice_addresses), controlling=False,
                on_rtp=self.ingress.on_rtp, on_rtcp=self._on_rtcp, on_state=self._on_state,
                name=f"edge/{self.room.id}")
            self.ingress.transport = self.transport
            self.transport.ingress = self.ingress
            await self.transport.gather()
        transport = self.transport
        assert transport is not None
        answer = answer_publisher(offer, transport.local())
        # no transport-cc between nodes: the origin sends the edge every track in full (a
        # link between servers is no browser's downlink to probe); the pages' own
        # downlinks are adapted at the edge
        lines = [ln for ln in answer.sdp.split("\r\n")
                 if EXT_TWCC not in ln and not ln.endswith(" transport-cc")]
        await self.socket.send({"type": "answer", "target": "subscriber",
                                "sdp": "\r\n".join(lines)})
        if first_offer:
            await transport.start_with(offer, dtls_role="client")
        carried: dict[str, tuple[str, str]] = {}
        for media in answer.accepted:
            track = described.get(media.mid)
            if track is not None:
                carried[media.mid] = (str(track["participantId"]), str(track["trackId"]))
        for mid, was in list(self.slots.items()):
            if carried.get(mid) != was:
                self._drop(mid, was[0])
        for media in answer.accepted:
            if media.mid in carried and media.mid not in self.slots:
                pid, track_id = carried[media.mid]
                remote = self.remotes.get(pid)
                if remote is None:
                    remote = RemoteParticipant(self.people.get(pid, {"id": pid}), self.room,
                                               self.params)
                    self.remotes[pid] = remote
                    self.room.participants[pid] = remote  # (no join: the origin's news)
                source = str(described[media.mid].get("source") or (
                    "microphone" if media.kind == "audio" else "camera"))
                remote.attach_track(media, track_id, source, transport, self.ingress,
                                    self.rtcp_ssrc)
                self.slots[media.mid] = (pid, track_id)

    def _drop(self, mid: str, pid: str) -> None:
        del self.slots[mid]
        remote = self.remotes.get(pid)
        if remote is None:
            return
        remote.detach_track(mid, self.ingress)
        if not remote.tracks:
            del self.remotes[pid]
            self.room.participants.pop(pid, None)
            task = asyncio.ensure_future(remote.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _on_rtcp(self, data: bytes) -> None:
        now = self.room_clock()
        for msg in rtcp.parse(data):
            if msg.pt == rtcp.SR and msg.sender_info is not None:
                layer = self.ingress.routes.get(msg.sender_ssrc)
                if layer is not None:
                    layer.track.last_sr[msg.sender_ssrc] = (
                        (msg.sender_info[0] >> 16) & 0xFFFFFFFF, now)

    @staticmethod
    def room_clock() -> float:
        return now_ms()

    def _on_state(self, state: str) -> None:
        log.info("edge %s: relay media connection to %s %s", self.room.id, self.origin.node,
                 state)
        if state == "connected":
            for track in self.tracks():
                if track.subscriptions:
                    track.request_keyframe(self.room_clock())

    def tracks(self) -> list[PublishedTrack]:
        return [t for remote in self.remotes.values() for t in remote.tracks.values()]

    async def _report(self) -> None:
        while not self.closed:
            await asyncio.sleep(REPORT_INTERVAL_S)
            try:
                await self.report()
            except (ConnectionError, RuntimeError) as exc:
                log.warning("edge %s: reporting to the origin failed: %s", self.room.id, exc)

    async def report(self) -> None:
        """Receiver reports of every relayed stream (the origin counts a silent relay
        connection as dead), and the pages' demand where it changed."""
        transport = self.transport
        now = self.room_clock()
        self.edge.tick(now)
        if transport is not None and transport.ready:
            blocks: list[rtcp.ReportBlock] = []
            for track in self.tracks():
                blocks += track.receiver_report_blocks(now)
            transport.send_rtcp(rtcp.build_rr(self.rtcp_ssrc, blocks[:31]))
        for track_id, quality in self.edge.demand(self.tracks()).items():
            if self.asked.get(track_id) != quality:
                self.asked[track_id] = quality
                await self.socket.send({"type": "set_quality", "trackId": track_id,
                                        "quality": quality})

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await self.socket.close(leave=True)
        for remote in list(self.remotes.values()):
            self.room.participants.pop(remote.id, None)
            await remote.close()
        self.remotes.clear()
        if self.transport is not None:
            await self.transport.close()


@dataclass(slots=True)
class PageAtOrigin:
    """How the edge speaks for one of its pages at the origin."""

    #: the page's join token with the ``via`` claim (a move resumes with it)
    token: str
    #: the origin's resume token for the page's participant there
    resume_token: str
    #: where its session is (the room's origin when the page joined, or moved to)
    origin: Elsewhere


class EdgeRoom:
    """One room served here as an edge: its media room (the pages, and the origin's
    participants as remote ones), what the pages want and publish, and its relay."""

    def __init__(self, room: Room, origin: Elsewhere, params: MediaParams) -> None:
        self.room = room
        self.origin = origin
        self.params = params
        self.relay: Relay | None = None
        #: what each page here asked to see a video at: (participant id, track id) -> quality
        self.wants: dict[tuple[str, str], str] = {}
        #: the pages' tracks on their way to the origin (cluster.uplink), by page: they
        #: outlast a page's lost socket, as its media connections do, and a move
        self.uplinks: dict[str, Uplink] = {}
        #: the pages' sessions at the origin, by page
        self.at_origin: dict[str, PageAtOrigin] = {}
        self.closed = False

    def pages(self) -> int:
        """The pages whose media this edge serves."""
        return sum(not isinstance(p, RemoteParticipant) for p in self.room.participants.values())

    def tracks(self) -> list[PublishedTrack]:
        return self.relay.tracks() if self.relay is not None else []

    def tick(self, now: float) -> None:
        for uplink in list(self.uplinks.values()):
            uplink.tick(now)

    # -- what the pages here want --------------------------------------------------------

    def want(self, participant_id: str, track_id: str, quality: str) -> None:
        self.wants[(participant_id, track_id)] = quality

    async def page_gone(self, participant_id: str) -> None:
        """A page left the room here: what it wanted and published goes."""
        for key in [k for k in self.wants if k[0] == participant_id]:
            del self.wants[key]
        self.at_origin.pop(participant_id, None)
        uplink = self.uplinks.pop(participant_id, None)
        if uplink is not None:
            await uplink.close()

    def demand(self, tracks: list[PublishedTrack]) -> dict[str, str]:
        """Per relayed video: the largest size a page here receives it at, ``off`` when
        none does (the origin then stops sending it here)."""
        out = {t.id: "off" for t in tracks if t.kind == "video"}
        for p in self.room.participants.values():
            if isinstance(p, RemoteParticipant):
                continue
            for track_id in p.subscriptions:
                if track_id in out:
                    quality = self.wants.get((p.id, track_id), "high")
                    if QUALITIES[quality] > QUALITIES[out[track_id]]:
                        out[track_id] = quality
        return out

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for uplink in list(self.uplinks.values()):
            await uplink.close()
        self.uplinks.clear()
        if self.relay is not None:
            await self.relay.close()


class Edges:
    """The rooms this node serves as an edge, each with its relay session."""

    def __init__(self, rooms: RoomRegistry, params: MediaParams,
                 relay_token: Callable[[str], str],
                 route: Callable[[str], Awaitable[Elsewhere | None]] | None = None) -> None:
        self.rooms = rooms
        self.params = params
        self._relay_token = relay_token
        #: where a room's origin is now (cluster.rooms.ClusterRooms.route)
        self._route = route
        self.edges: dict[str, EdgeRoom] = {}
        self._opening: dict[str, asyncio.Future[EdgeRoom]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: relay sessions opened again with a room's new origin (after a move)
        self.relay_moves = 0

    async def open(self, room_id: str, origin: Elsewhere) -> EdgeRoom:
        """The room's edge here, its relay session joined (one per room, however many
        pages come at once)."""
        edge = self.edges.get(room_id)
        if edge is not None and not edge.closed and edge.relay is not None:
            return edge
        pending = self._opening.get(room_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[EdgeRoom] = asyncio.get_running_loop().create_future()
        self._opening[room_id] = future
        try:
            if edge is None or edge.closed:
                room = self.rooms.create(room_id, auto_created=True, audio_speakers=0)
                room.on_expired = self._expired  # (a page's window ran out)
                edge = EdgeRoom(room, origin, self.params)
            await self._connect(edge, origin)
            self.edges[room_id] = edge
            future.set_result(edge)
            return edge
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # (read: nobody else may be waiting)
            raise
        finally:
            del self._opening[room_id]

    async def _connect(self, edge: EdgeRoom, origin: Elsewhere) -> None:
        relay = Relay(edge, origin)
        relay.on_ended = self._relay_ended
        await relay.start(self._relay_token(edge.room.id))
        edge.relay, edge.origin = relay, origin

    def _relay_ended(self, relay: Relay) -> None:
        task = asyncio.ensure_future(self._follow(relay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, relay: Relay) -> None:
        """The relay session ended under the edge: the room closed at its origin, moved
        (a drain, a failed origin), or the origin went away. While pages are here, the
        edge joins the room's origin again, wherever it is now (the pages' own sessions
        follow the move themselves, ``signalling.edge``)."""
        edge = relay.edge
        await relay.close()
        if edge.relay is not relay or edge.closed:
            return
        edge.relay = None
        for attempt in range(20):
            if not edge.pages() or edge.closed or self._route is None:
                break
            try:
                where = await self._route(edge.room.id)
            except Exception as exc:  # (no node: every node draining or full)
                log.warning("edge %s: no origin to relay from: %s", edge.room.id, exc)
                where = None
            if where is None:  # the room is now on this node, or nowhere
                break
            try:
                await self._connect(edge, where)
                self.relay_moves += 1
                log.info("edge %s: relaying from %s now", edge.room.id, where.node)
                return
            except ConnectionError as exc:
                log.info("edge %s: origin %s not ready (%s); attempt %d", edge.room.id,
                         where.node, exc, attempt + 1)
                await asyncio.sleep(0.5)
        if self.edges.get(edge.room.id) is edge and not edge.pages():
            await self.left(edge.room.id)

    async def _expired(self, room: Room) -> None:
        edge = self.edges.get(room.id)
        if edge is not None:
            for pid in [pid for pid in edge.uplinks if pid not in room.participants]:
                await edge.page_gone(pid)
        await self.left(room.id)

    async def left(self, room_id: str) -> None:
        """A page left: the edge closes with its last local page."""
        room = self.rooms.rooms.get(room_id)
        if room is None or any(not isinstance(p, RemoteParticipant)
                               for p in room.participants.values()):
            return
        edge = self.edges.pop(room_id, None)
        if edge is not None:
            await edge.close()
        await self.rooms.close(room_id, "empty")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for edge in list(self.edges.values()):
            await edge.close()
        self.edges.clear()
        for room_id in list(self.rooms.rooms):
            await self.rooms.close(room_id, "server_shutdown")
