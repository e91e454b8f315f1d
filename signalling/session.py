"""One participant's WebSocket: validates frames, drives sfu.Participant, reports errors.

Protocol in docs/protocol.md. Every client error becomes an ``error`` frame with a documented
code; nothing a client sends can affect another participant.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from classroom.errors import ClassroomError
from classroom.room import Classroom
from cluster.placement import PlacementError
from cluster.rooms import Elsewhere
from sfu.errors import ResumeRefused, SfuError
from sfu.negotiation import NoCommonCodecError
from sfu.participant import QUALITIES, Grants, Participant, ParticipantInfo
from sfu.room import Room
from sfu.sdp import SdpError

from . import tokens, turn
from .edge import LOCAL_TYPES, EdgeLink, page_messages

if TYPE_CHECKING:
    from .app import ServerState

log = logging.getLogger(__name__)

_CLOSE = object()
PARTICIPANT_ID = re.compile(r"^PA_[0-9a-f]{12}$")
SDP_TYPES = ("offer", "answer")
CLIENT_TYPES = ("join", "resume", "offer", "answer", "candidate", "mute", "set_quality",
                "restart_ice", "leave", "ping", "poll_create", "poll_answer", "poll_close",
                "poll_publish", "poll_results", "hand_raise", "hand_lower", "chat_send",
                "chat_delete", "react", "recording_start", "recording_stop")
#: what an edge's relay session may send (it receives media; docs/cluster.md)
RELAY_TYPES = ("answer", "candidate", "set_quality", "restart_ice", "leave", "ping")
#: the session ended because the socket went away (not a leave, not an error of ours)
CONNECTION_LOST = "connection_lost"
TARGETS = ("publisher", "subscriber")


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


def _field(msg: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = msg.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError("bad_message", f"field {name!r} must be a {kind.__name__}")
    return value


class SignallingSession:
    def __init__(self, state: ServerState, ws: web.WebSocketResponse) -> None:
        self.state = state
        self.ws = ws
        self.participant: Participant | None = None
        self.room: Room | None = None
        #: the classroom tools of the room (polls, hands, chat, recording)
        self.classroom: Classroom | None = None
        #: a page served here as an edge of its room's origin: its session with the origin
        self.edge: EdgeLink | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: asyncio.Queue[dict[str, Any] | object | None] = asyncio.Queue()
        self._ended = False
        self._close_code = WSCloseCode.OK
        #: when the client was last heard from (monotonic ms): any frame, e.g. its pings
        self._last_heard_ms = time.monotonic() * 1000.0

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- outgoing ---------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if not self._ended:
            self._outbox.put_nowait(message)

    async def _writer(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None:
                return
            if message is _CLOSE:
                await self.ws.close(code=self._close_code)
                return
            if self.ws.closed:
                continue
            try:
                await self.ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):
                return

    def error(self, code: str, message: str, fatal: bool = False, ref: str | None = None) -> None:
        self.state.metrics_errors[code] = self.state.metrics_errors.get(code, 0) + 1
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message,
                                 "fatal": fatal}
        if ref:
            frame["ref"] = ref
        self.send(frame)

    # -- main loop --------------------------------------------------------------------

    def _join_deadline(self) -> None:
        if self.participant is None and not self.ws.closed:
            self.error("not_joined", "no join within "
                       f"{self.state.config.server.join_timeout_s:g} s", fatal=True)
            self._outbox.put_nowait(_CLOSE)

    async def run(self) -> None:
        writer = asyncio.ensure_future(self._writer())
        deadline = asyncio.get_running_loop().call_later(
            self.state.config.server.join_timeout_s, self._join_deadline)
        reason = CONNECTION_LOST
        try:
            async for frame in self.ws:
                if frame.type == WSMsgType.ERROR:
                    break  # (aiohttp's heartbeat timeout arrives as one: not a sign of life)
                self._last_heard_ms = time.monotonic() * 1000.0
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.BINARY:
                        fatal = self.participant is None
                        self.error("bad_message", "binary frames are not part of the protocol",
                                   fatal=fatal)
                        if fatal:
                            break
                    continue
                outcome = await self._handle_text(frame.data, len(frame.data.encode()))
                if outcome is not None:
                    reason = outcome
                    break
        finally:
            deadline.cancel()
            await self._finish(reason)
            self._outbox.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 2.0)
            except TimeoutError:
                writer.cancel()
            if not self.ws.closed:
                await self.ws.close(code=self._close_code)

    def _check_size(self, size: int, mtype: str | None) -> None:
        """64 KiB per frame; offers and answers (SDP grows with the room) up to 256 KiB."""
        server = self.state.config.server
        limit = server.max_message_bytes
        if mtype in SDP_TYPES:
            limit = max(limit, server.max_sdp_message_bytes)
        if size > limit:
            self._close_code = WSCloseCode.MESSAGE_TOO_BIG  # 1009, docs/protocol.md
            raise ProtocolError("message_too_large", f"frame exceeds {limit} bytes", fatal=True)

    async def _handle_text(self, text: str, size: int) -> str | None:
        """Handle one frame; returns a leave reason when the session must end."""
        mtype = None
        try:
            if size > max(self.state.config.server.max_message_bytes,
                          self.state.config.server.max_sdp_message_bytes):
                self._check_size(size, None)
            try:
                msg = json.loads(text)
            except ValueError:
                raise ProtocolError("bad_message", "frame is not valid JSON",
                                    fatal=self.participant is None) from None
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ProtocolError("bad_message", "frame must be an object with a string 'type'",
                                    fatal=self.participant is None)
            mtype = msg["type"]
            self._check_size(size, mtype)
            if mtype not in CLIENT_TYPES:
                if self.participant is None:
                    raise ProtocolError("not_joined", "the first frame must be 'join' or "
                                        "'resume'", True)
                raise ProtocolError("unknown_type", f"unknown message type {mtype[:40]!r}")
            if self.participant is None and mtype not in ("join", "resume"):
                raise ProtocolError("not_joined", "the first frame must be 'join' or 'resume'",
                                    fatal=True)
            if self.participant is not None and self.participant.info.relay and (
                    mtype not in RELAY_TYPES):
                raise ProtocolError("permission_denied", "a relay session only receives media")
            if self.edge is not None and mtype not in LOCAL_TYPES:
                await self._on_edge(msg)  # (a leave goes to the origin as the link closes)
                return None
            outcome: str | None = await getattr(self, f"_on_{mtype}")(msg)
            return outcome
        except ProtocolError as exc:
            self.error(exc.code, str(exc), exc.fatal, ref=mtype)
            return "disconnected" if exc.fatal else None
        except NoCommonCodecError as exc:
            self.error("no_common_codec", str(exc), ref=mtype)
        except SdpError as exc:
            self.error("bad_sdp", str(exc), ref=mtype)
        except tokens.TokenError as exc:
            self.error(exc.code, str(exc), fatal=True, ref=mtype)
            return "disconnected"
        except ClassroomError as exc:
            self.error(exc.code, str(exc), ref=mtype)
        except SfuError as exc:
            fatal = self.participant is None
            self.error(exc.code, str(exc), fatal=fatal, ref=mtype)
            return "disconnected" if fatal else None
        except Exception:
            log.exception("internal error handling %s", mtype)
            self.error("internal_error", "internal error; the session carries on", ref=mtype)
        return None

    # -- handlers ---------------------------------------------------------------------

    async def _on_join(self, msg: dict[str, Any]) -> str | None:
        if self.participant is not None:
            raise ProtocolError("already_joined", "this socket has already joined")
        cfg = self.state.config
        claims = tokens.verify(msg.get("token"), cfg.auth.api_key, cfg.auth.api_secret)
        extras = await self.state.join_gate(claims) if self.state.join_gate is not None else {}
        if (claims.relay or claims.via) and self.state.cluster is None:
            raise tokens.TokenError("relay and edge sessions exist only in a cluster")
        where = await self._route(claims.room, claims.region)
        if where is not None:
            if self._edge_for(where, claims.region) and not claims.relay and not claims.via:
                return await self._join_as_edge(claims, where)
            self._redirect(where)
            return "redirected"
        classroom = await self._open_here(claims.room)
        if claims.relay:
            self._enter_relay(claims, classroom)
            return None
        servers = await self._servers()
        participant, others = await self._enter(claims, classroom, f"PA_{secrets.token_hex(6)}")
        # queued before anything room.add scheduled for this participant (subscriber offer):
        # no await between the two
        self.send({"type": "joined", "room": classroom.id, "participant": participant.describe(),
                   "participants": others, **classroom.state(),
                   **self._resume_info(participant, classroom.media), **extras,
                   "servers": servers,
                   "iceServers": turn.ice_servers(cfg.turn, claims.identity)})
        return None

    async def _open_here(self, room_id: str) -> Classroom:
        """The room's classroom on this node: open, taken over from a node that drained or
        failed (its replicated state restored; docs/cluster.md), or new (auto-create)."""
        classroom = self.state.classrooms.get(room_id)
        if classroom is None and self.state.take_over is not None:
            classroom = await self.state.take_over(room_id)
        return classroom or self.state.classrooms.get_for_join(room_id)

    async def _enter(self, claims: tokens.JoinClaims, classroom: Classroom, participant_id: str
                     ) -> tuple[Participant, list[dict[str, Any]]]:
        """Add this socket's participant to the room; it and the others, described."""
        room = classroom.media
        # loop: another join with this identity may slip in while we await a removal
        while (previous := room.by_identity(claims.identity)) is not None:
            previous.send({"type": "left", "reason": "replaced"})
            await room.remove(previous, "replaced")
        # a page on an edge node receives its media there, from the edge's relay
        grants = replace(claims.grants, subscribe=False) if claims.via else claims.grants
        info = ParticipantInfo(id=participant_id, identity=claims.identity, name=claims.name,
                               role=claims.role, grants=grants, via=claims.via)
        participant = Participant(info, room, self.state.media, self.send)
        others = [p.describe() for p in room.participants.values()]
        room.add(participant)  # room_full / room_closed: refused before 'joined' is sent
        self.participant, self.room, self.classroom = participant, room, classroom
        participant.attach(self.send, self._closed_by_server, self._taken_over)
        return participant, others

    def _enter_relay(self, claims: tokens.JoinClaims, classroom: Classroom) -> None:
        """An edge node's relay session (docs/cluster.md, "Edge relays"): it receives each
        track of the room once for all of that node's pages, and the room's messages."""
        room = classroom.media
        info = ParticipantInfo(id=f"PA_{secrets.token_hex(6)}", identity=claims.identity,
                               name=claims.name, role="observer",
                               grants=Grants(publish=False, subscribe=True),
                               relay=claims.relay)
        relay = Participant(info, room, self.state.media, self.send)
        others = [p.describe() for p in room.participants.values()]
        room.add_relay(relay)
        self.participant, self.room, self.classroom = relay, room, classroom
        relay.attach(self.send, self._closed_by_server, self._taken_over)
        self.send({"type": "joined", "room": classroom.id, "participant": relay.describe(),
                   "participants": others, **self._resume_info(relay, room)})

    async def _route(self, room: str, region: str = "") -> Elsewhere | None:
        """In a cluster, the room's origin when it is another node (docs/cluster.md); a
        room its join opens is placed in the token's region, else this node's."""
        if self.state.cluster_rooms is None:
            return None
        try:
            return await self.state.cluster_rooms.route(room, region or None)
        except PlacementError as exc:
            raise ProtocolError(exc.code, str(exc), fatal=True) from None

    def _redirect(self, where: Elsewhere) -> None:
        """``redirect`` to the room's origin; the socket then closes."""
        self.send({"type": "redirect", "url": where.url, "node": where.node,
                   "reason": "room_elsewhere"})

    async def _redirected(self, room: str, region: str = "") -> bool:
        where = await self._route(room, region)
        if where is not None:
            self._redirect(where)
        return where is not None

    def _edge_for(self, where: Elsewhere, region: str) -> bool:
        """Whether this node serves a page as an edge of the room's origin (relays on),
        rather than redirecting it: the origin is in another region, and the page is of
        this node's region (its token says so, or says nothing: the node it reached)."""
        mine = self.state.config.cluster.region
        return (self.state.edges is not None and self.state.cluster is not None
                and bool(where.region) and where.region != mine and region in ("", mine))

    async def _join_as_edge(self, claims: tokens.JoinClaims, where: Elsewhere) -> str | None:
        """The page's media is served here from the room's edge; its session goes on with
        the origin as the same participant (docs/cluster.md, "Edge relays")."""
        edges, cfg = self.state.edges, self.state.config
        assert edges is not None and self.state.cluster is not None
        try:
            edge = await edges.open(claims.room, where)
        except ConnectionError as exc:
            raise ProtocolError("no_node", f"the room's origin cannot be reached: {exc}",
                                fatal=True) from None
        link = EdgeLink(edge, where, self.send, self._closed_by_server)
        via = tokens.mint(
            cfg.auth.api_key, cfg.auth.api_secret, room=claims.room, identity=claims.identity,
            name=claims.name, role=claims.role, grants=claims.grants,
            expires_at=claims.expires_at, region=claims.region,
            lesson=(claims.lesson, claims.lesson_rev) if claims.lesson else None,
            via=self.state.cluster.node_id)
        try:
            joined = await link.join(via)
        except ConnectionError as exc:
            await link.close(leave=False)
            await edges.left(claims.room)
            raise ProtocolError("no_node", str(exc), fatal=True) from None
        if joined.get("type") != "joined":  # refused there: the page hears why
            await link.close(leave=False)
            await edges.left(claims.room)
            self.send(joined)
            return "disconnected"
        info = ParticipantInfo(id=joined["participant"]["id"], identity=claims.identity,
                               name=claims.name, role=claims.role, grants=claims.grants)
        to_page = page_messages(self.send)
        participant = Participant(info, edge.room, self.state.media, to_page)
        try:
            edge.room.add(participant)
        except SfuError:
            await link.close(leave=True)
            await edges.left(claims.room)
            raise
        self.participant, self.room, self.edge = participant, edge.room, link
        participant.attach(to_page, self._closed_by_server, self._taken_over)
        # (the page resumes here with this node's token; the edge keeps the origin's)
        self.send({**joined, "servers": [], "resumeToken": participant.resume_token,
                   "iceServers": turn.ice_servers(cfg.turn, claims.identity)})
        link.start()
        return None

    async def _on_resume(self, msg: dict[str, Any]) -> None:
        if self.participant is not None:
            raise ProtocolError("already_joined", "this socket has already joined")
        room_id = _field(msg, "room", str)
        participant_id = _field(msg, "participantId", str)
        if self.state.edges is not None and room_id in self.state.edges.edges:
            await self._resume_on_edge(msg, room_id, participant_id)
            return
        classroom = self.state.classrooms.get(room_id)
        if self.state.cluster_rooms is not None and (
                classroom is None or participant_id not in classroom.media.participants):
            if await self._redirected(room_id):  # the room is on another node: go there
                self._outbox.put_nowait(_CLOSE)
                return
            if "token" in msg:
                await self._resume_moved(msg, room_id, participant_id)
                return
        if classroom is None:
            self.state.rooms.presence_stats.refused += 1
            raise ResumeRefused("the room has closed; join again")
        room = classroom.media
        servers = await self._servers()
        participant, outage_ms = room.resume(participant_id, msg.get("resumeToken"))
        self.participant, self.room, self.classroom = participant, room, classroom
        participant.attach(self.send, self._closed_by_server, self._taken_over)
        others = [p.describe() for p in room.participants.values() if p is not participant]
        self.send({"type": "resumed", "room": room.id, "participant": participant.describe(),
                   "participants": others, "outageMs": round(outage_ms),
                   **classroom.state(), **self._resume_info(participant, room),
                   "servers": servers,
                   "iceServers": turn.ice_servers(self.state.config.turn,
                                                  participant.info.identity)})
        participant.resync()

    async def _resume_on_edge(self, msg: dict[str, Any], room_id: str, participant_id: str
                              ) -> None:
        """A page served here as an edge comes back: resumed here (its media) and at the
        origin (the rest), which tells the others (docs/cluster.md, "Edge relays")."""
        edges = self.state.edges
        assert edges is not None
        edge = edges.edges[room_id]
        participant, outage_ms = edge.room.resume(participant_id, msg.get("resumeToken"))
        at = edge.at_origin.get(participant_id)
        link = EdgeLink(edge, at.origin if at is not None else edge.origin, self.send,
                        self._closed_by_server)
        try:
            resumed = await link.resume(participant_id)
        except ConnectionError as exc:
            resumed = {"type": "error", "message": str(exc)}
        if resumed.get("type") != "resumed":  # the origin let it go: so does the edge
            await link.close(leave=False)
            await edge.room.remove(participant, "timeout")
            await edge.page_gone(participant_id)
            await edges.left(room_id)
            raise ResumeRefused(f"the room's origin refused: {resumed.get('message', '')}")
        to_page = page_messages(self.send)
        self.participant, self.room, self.edge = participant, edge.room, link
        participant.attach(to_page, self._closed_by_server, self._taken_over)
        self.send({**resumed, "resumeToken": participant.resume_token,
                   "outageMs": round(max(outage_ms, resumed.get("outageMs", 0))),
                   "servers": [], "iceServers": turn.ice_servers(
                       self.state.config.turn, participant.info.identity)})
        participant.resync()
        link.start()

    async def _resume_moved(self, msg: dict[str, Any], room_id: str, participant_id: str
                            ) -> None:
        """In a cluster, a participant whose room moved here (a drain, or its node failed)
        resumes with its join token: it enters the room under its old id, and its client
        makes new media connections (``resumed`` with ``moved``)."""
        cfg = self.state.config
        claims = tokens.verify(msg.get("token"), cfg.auth.api_key, cfg.auth.api_secret)
        if claims.room != room_id:
            raise ResumeRefused("the token is for another room; join again")
        if not PARTICIPANT_ID.match(participant_id):
            raise ProtocolError("bad_message", "participantId is not a participant id",
                                fatal=True)
        extras = await self.state.join_gate(claims) if self.state.join_gate is not None else {}
        classroom = await self._open_here(room_id)
        if participant_id in classroom.media.participants:
            raise ResumeRefused("that participant id is taken in this room; join again")
        servers = await self._servers()
        participant, others = await self._enter(claims, classroom, participant_id)
        self.send({"type": "resumed", "room": classroom.id,
                   "participant": participant.describe(), "participants": others,
                   "outageMs": 0, "moved": True, **classroom.state(),
                   **self._resume_info(participant, classroom.media), **extras,
                   "servers": servers,
                   "iceServers": turn.ice_servers(cfg.turn, claims.identity)})

    async def _servers(self) -> list[str]:
        """The cluster's nodes a page may reconnect through, this one first (none on a
        single node): if this node fails, another takes the room over."""
        cluster = self.state.cluster
        if cluster is None or not cluster.connected:
            return []
        others = [n.url for n in await cluster.nodes()
                  if n.id != cluster.node_id and n.url and not n.draining]
        me = cluster.url_of(cluster.node_id)
        return [me, *others] if me else others

    @staticmethod
    def _resume_info(participant: Participant, room: Room) -> dict[str, Any]:
        return {"resumeToken": participant.resume_token,
                "reconnectWindowMs": round(room.reconnect_window_s * 1000)}

    def _taken_over(self) -> None:
        """A newer connection resumed our participant, or it was handed off to another
        node (a drain; it was told where): let go of it and close."""
        handed_off = self.participant is not None and self.participant.handed_off
        self.participant = None
        if self.edge is not None:  # (the new socket has its own session with the origin)
            self._background(self.edge.close(leave=False))
        if not handed_off:
            self.send({"type": "left", "reason": "resumed_elsewhere"})
        self._outbox.put_nowait(_CLOSE)

    async def _on_edge(self, msg: dict[str, Any]) -> None:
        """A page served here as an edge: what it says goes to the origin, its media
        settings are also applied here."""
        assert self.edge is not None and self.participant is not None
        if msg["type"] == "set_quality":
            await self._on_set_quality(msg)
            self.edge.edge.want(self.participant.id, msg["trackId"], msg["quality"])
            return  # (the edge asks the origin for what its pages want together)
        if msg["type"] == "mute":
            await self._on_mute(msg)
        try:
            await self.edge.forward(msg)
        except ConnectionError:
            self._closed_by_server()  # the page reconnects

    async def _on_offer(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None
        if msg.get("target", "publisher") != "publisher":
            raise ProtocolError("bad_message", "clients offer only on target 'publisher'")
        sdp_text = _field(msg, "sdp", str)
        declared = msg.get("tracks")
        if declared is not None and not isinstance(declared, list):
            raise ProtocolError("bad_message", "field 'tracks' must be a list")
        answer = await self.participant.handle_publisher_offer(sdp_text, declared)
        self.send(answer)
        if self.edge is not None:  # relayed to the room's origin (docs/cluster.md)
            try:
                await self.edge.publish(self.participant, self.state.media)
            except (ConnectionError, TimeoutError) as exc:
                raise ProtocolError("no_node", f"the room's origin did not take the "
                                    f"published tracks: {exc}") from None

    async def _on_answer(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None
        if msg.get("target", "subscriber") != "subscriber":
            raise ProtocolError("bad_message", "clients answer only on target 'subscriber'")
        await self.participant.handle_subscriber_answer(_field(msg, "sdp", str))

    async def _on_candidate(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None
        target = msg.get("target")
        if target not in TARGETS:
            raise ProtocolError("bad_message", "field 'target' must be publisher or subscriber")
        cand = msg.get("candidate")
        if cand is not None and not isinstance(cand, dict):
            raise ProtocolError("bad_message", "field 'candidate' must be an object or null")
        await self.participant.handle_candidate(target, cand)

    async def _on_mute(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None
        track_id = _field(msg, "trackId", str)
        muted = _field(msg, "muted", bool)
        self.participant.set_track_muted(track_id, muted, by=self.participant)

    async def _on_set_quality(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None
        track_id = _field(msg, "trackId", str)
        quality = _field(msg, "quality", str)
        if quality not in QUALITIES:
            raise ProtocolError("bad_message",
                                f"field 'quality' must be one of {', '.join(QUALITIES)}")
        self.participant.set_quality(track_id, quality)

    async def _on_restart_ice(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None
        if msg.get("target") != "subscriber":
            raise ProtocolError("bad_message", "restart_ice: the client restarts its publisher "
                                "connection itself (an offer with new ICE credentials); "
                                "target must be 'subscriber'")
        await self.participant.restart_subscriber()

    # polls (classroom.polls via the classroom; docs/protocol.md)

    async def _on_poll_create(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.create_poll(self.participant, _field(msg, "poll", dict))

    async def _on_poll_answer(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.answer_poll(self.participant, _field(msg, "pollId", str),
                                          msg.get("answer"))

    async def _on_poll_close(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.close_poll(self.participant, _field(msg, "pollId", str))

    async def _on_poll_publish(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.publish_poll(self.participant, _field(msg, "pollId", str))

    async def _on_poll_results(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.poll_results(self.participant, _field(msg, "pollId", str))

    # hands, chat, reactions (classroom.hands, classroom.chat via the classroom)

    async def _on_hand_raise(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.raise_hand(self.participant)

    async def _on_hand_lower(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.lower_hand(self.participant,
                                         _field(msg, "participantId", str, required=False))

    async def _on_chat_send(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.send_chat(self.participant, msg.get("text"))

    async def _on_chat_delete(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.delete_chat(self.participant, _field(msg, "messageId", str))

    async def _on_react(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        self.classroom.react(self.participant, msg.get("reaction"))

    # recording (recorder.service via the classroom; docs/recording.md)

    async def _on_recording_start(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        await self.classroom.request_recording(self.participant, True)

    async def _on_recording_stop(self, msg: dict[str, Any]) -> None:
        assert self.participant is not None and self.classroom is not None
        await self.classroom.request_recording(self.participant, False)

    async def _on_leave(self, msg: dict[str, Any]) -> str:
        self.send({"type": "left", "reason": "left"})
        return "left"

    async def _on_ping(self, msg: dict[str, Any]) -> None:
        self.send({"type": "pong", "id": msg.get("id")})

    def _closed_by_server(self) -> None:
        """The room removed this participant: flush queued frames, then close the socket."""
        self._outbox.put_nowait(_CLOSE)

    async def _finish(self, reason: str) -> None:
        p, room = self.participant, self.room
        self.participant = None
        if p is None or room is None:
            return
        # (a page whose session the origin ended, with `left` or `redirect`, is gone)
        lost = (reason == CONNECTION_LOST and room.reconnect_window_s > 0
                and not (self.edge is not None and self.edge.ended_by_origin))
        if self.edge is not None:
            # a lost page: its session with the origin is lost too (the origin keeps it for
            # its window, as this node does, and a resume here resumes it there)
            await self.edge.close(leave=not lost)
        if p.info.relay:  # an edge's relay comes back as a new session
            await room.remove_relay(p, "disconnected" if reason == CONNECTION_LOST else reason)
            return
        if lost:
            # the grace window (sfu.presence) counts from when the client was last known
            # alive: a socket that went silent is only noticed by the heartbeat, up to 1.5
            # intervals later (a socket that was closed or reset is noticed at once)
            now = time.monotonic() * 1000.0
            since = now
            abnormal = (self.ws.exception() is not None
                        or self.ws.close_code in (None, WSCloseCode.ABNORMAL_CLOSURE))
            if abnormal:  # no close frame from the client: it may have been gone a while
                heartbeat_ms = self.state.config.server.ws_heartbeat_s * 1000.0
                since = max(self._last_heard_ms, now - 1.5 * heartbeat_ms)
            log.info("participant %s: socket lost (close code %s, %r); last heard %.1f s ago",
                     p.id, self.ws.close_code, self.ws.exception(),
                     (now - self._last_heard_ms) / 1000)
            room.participant_lost(p, "signalling", since)
            return
        await room.remove(p, "disconnected" if reason == CONNECTION_LOST else reason)
        if self.edge is not None and self.state.edges is not None:
            await self.edge.edge.page_gone(p.id)
            await self.state.edges.left(room.id)
        else:
            await self.state.rooms.left(room)
