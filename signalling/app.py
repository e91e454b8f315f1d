"""aiohttp application: client page, WebSocket signalling, room service API, health, metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from classroom.engagement import Thresholds
from classroom.reports import SessionReporter
from classroom.room import (
    RECORDING_POLICIES,
    TRANSCRIPTION_POLICIES,
    Classroom,
    RecordingRefused,
)
from classroom.rooms import Classrooms
from cluster.edge import Edges, ws_url
from cluster.registry import ClusterRegistry
from cluster.rooms import ClusterRooms
from events import EventBus
from events.filelog import FileLog
from events.metrics import EventSinkCollector, MeasuredSink
from events.nats_sink import NatsSink
from events.webhook_sink import WebhookSink
from recorder.alarms import Alarms
from recorder.service import RecordingCollector, Recordings
from recorder.session import Limits
from recorder.sinks import LocalSink, S3Sink, Sink
from scheduler_bridge import api as schedule_api
from scheduler_bridge.metrics import ScheduleCollector
from scheduler_bridge.service import Bridge
from sfu.config import Config
from sfu.errors import SfuError
from sfu.media_ports import MediaPorts
from sfu.metrics import LoopCollector, MediaPortsCollector, SfuCollector
from sfu.participant import ROLES, MediaParams, Participant
from sfu.room import Room, RoomRegistry
from sfu.speech_gate import SpeechPolicy
from sfu.transport import SharedPortTransports, new_certificate
from transcription.engines import EngineConfig
from transcription.metrics import TranscriptionCollector
from transcription.service import Transcriptions
from transcription.summaries import NoSummary, Summaries
from transcription.summary import SummaryError
from whiteboard.board import MAX_UPDATE_BYTES

from . import cluster_api, tokens, whiteboard_ws
from .edge import proxy_socket as edge_proxy_socket
from .responses import json_error
from .session import SignallingSession
from .whiteboard_ws import Whiteboards

log = logging.getLogger(__name__)
#: the summary API, which the room's instructor may use with a join token
SUMMARY_PATH = re.compile(r"^/api/rooms/([^/]+)/summary(?:/approve)?$")
STATIC = Path(__file__).parent / "static"
NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass
class ServerState:
    config: Config
    bus: EventBus
    #: the media rooms (sfu) and, above each, its classroom (classroom.rooms)
    rooms: RoomRegistry
    classrooms: Classrooms
    media: MediaParams
    metrics_errors: dict[str, int] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ready: bool = False
    #: admits a join's token claims or raises tokens.TokenError (the scheduler bridge's
    #: lesson links: a superseded or cancelled link is refused); what it returns goes into
    #: the ``joined`` message (the lesson, and the instructor's brief)
    join_gate: Callable[[tokens.JoinClaims], Awaitable[dict[str, Any]]] | None = None
    #: where it listens, once it does (signalling.cli sets it)
    base_url: str = ""
    #: this node in the cluster registry (None: a single node; docs/cluster.md)
    cluster: ClusterRegistry | None = None
    #: where this node's joins go (None: a single node, every room is here)
    cluster_rooms: ClusterRooms | None = None
    #: the rooms this node serves as an edge of their origin (None: relays off)
    edges: Edges | None = None
    #: a room's classroom made from the state another node replicated (None: nothing
    #: replicated, or a single node)
    take_over: Callable[[str], Awaitable[Classroom | None]] | None = None
    #: the rooms' whiteboards (signalling.whiteboard_ws)
    boards: whiteboard_ws.Whiteboards | None = None
    #: the rooms' engagement sessions (classroom.reports)
    reporter: SessionReporter | None = None


STATE = web.AppKey("state", ServerState)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > 65536:
        raise web.HTTPRequestEntityTooLarge(max_size=65536, actual_size=request.content_length)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error":{"code":"bad_message","message":"body is not '
                                 'JSON"}}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error":{"code":"bad_message","message":"body must be '
                                 'an object"}}', content_type="application/json")
    return body


def _token_params(body: dict[str, Any]) -> dict[str, Any] | web.Response:
    room, identity = body.get("room"), body.get("identity")
    name, role = body.get("name") or identity, body.get("role", "student")
    if not isinstance(room, str) or not NAME_RE.match(room):
        return json_error(400, "bad_message", "room must match [A-Za-z0-9_.-]{1,64}")
    if not isinstance(identity, str) or not 1 <= len(identity) <= 128:
        return json_error(400, "bad_message", "identity must be 1-128 characters")
    if not isinstance(name, str) or len(name) > 128:
        return json_error(400, "bad_message", "name must be a string of at most 128 characters")
    if role not in ROLES:
        return json_error(400, "bad_message", f"role must be one of {', '.join(ROLES)}")
    region = body.get("region", "")
    if not isinstance(region, str) or region and not tokens.REGION_RE.match(region):
        return json_error(400, "bad_message", "region must match [A-Za-z0-9_-]{1,32}")
    return {"room": room, "identity": identity, "name": name, "role": role, "region": region}


def recording_sinks(config: Config) -> Callable[[], list[Sink]]:
    """The two sinks of every recording (docs/recording.md): the local folder and a second
    folder or an S3-compatible bucket (one client for all recordings: it is thread-safe)."""
    rc = config.recording
    client: list[Any] = []

    def make() -> list[Sink]:
        first: Sink = LocalSink("local", rc.dir)
        if not rc.s3_bucket:
            return [first, LocalSink("copy", rc.second_dir)]
        s3 = S3Sink("s3", bucket=rc.s3_bucket, prefix=rc.s3_prefix,
                    endpoint_url=rc.s3_endpoint or None, region=rc.s3_region,
                    access_key=rc.s3_access_key or None, secret_key=rc.s3_secret_key or None,
                    client=client[0] if client else None)
        client[:] = [s3.client]
        return [first, s3]
    return make


def create_app(config: Config) -> web.Application:
    config = config.with_secret()
    for bundle in ("client.bundle.js", "whiteboard.bundle.js", "ops.bundle.js",
                   "summary.bundle.js"):
        if not (STATIC / bundle).exists():
            log.warning("%s is not built (scripts/setup.sh builds it: webui/, npm run build): "
                        "the page will not work without it", bundle)
    bus = EventBus()
    certificate = new_certificate()
    # every participant's media on one UDP port (and ICE-TCP on one TCP port); bound at
    # start-up
    media_ports = MediaPorts(config.media.ice_addresses, config.media.udp_port,
                             config.media.tcp_port if config.media.ice_tcp else None,
                             config.media.announced_addresses)
    rooms = RoomRegistry(bus, max_participants=config.rooms.max_participants,
                         auto_create=config.rooms.auto_create,
                         reconnect_window_s=config.rooms.reconnect_window_s,
                         speech=SpeechPolicy(config.rooms.audio_speakers,
                                             config.rooms.speech_threshold_dbov,
                                             config.rooms.speech_hold_ms))
    state = ServerState(
        config=config, bus=bus, rooms=rooms,
        classrooms=Classrooms(rooms, bus, recording_policy=config.recording.policy),
        media=MediaParams(
            certificate=certificate,
            ice_addresses=config.media.ice_addresses,
            transport_factory=SharedPortTransports(certificate, media_ports),
            keyframe_interval_ms=config.media.keyframe_interval_ms,
            publisher_max_bitrate_bps=config.media.publisher_max_bitrate_bps,
            dynacast_delay_ms=config.media.dynacast_delay_ms,
            initial_downlink_bps=config.media.initial_downlink_bps,
            transport_timeout_ms=config.media.transport_timeout_s * 1000.0,
        ),
    )
    state.registry.register(SfuCollector(
        state.rooms, state.media.retired, state.metrics_errors,
        lambda: list(state.edges.rooms.rooms.values()) if state.edges is not None else []))
    state.registry.register(MediaPortsCollector(media_ports, state.rooms))
    state.registry.register(LoopCollector())
    sinks: list[MeasuredSink] = []
    event_log: FileLog | None = None
    if config.events.log_dir:
        event_log = FileLog(config.events.log_dir, max_bytes=config.events.log_max_bytes,
                            keep_files=config.events.log_keep_files)
        sinks.append(event_log)
    nats_sink: NatsSink | None = None
    if config.events.nats_url:
        nats_sink = NatsSink(config.events.nats_url, stream=config.events.nats_stream,
                             subject_prefix=config.events.nats_subject_prefix)
        sinks.append(nats_sink)
    webhooks: WebhookSink | None = None
    if config.events.webhook_urls:
        webhooks = WebhookSink(list(config.events.webhook_urls),
                               config.events.webhook_secret or config.auth.api_secret,
                               config.events.webhook_dead_letter,
                               max_attempts=config.events.webhook_max_attempts)
        sinks.append(webhooks)
    for sink in sinks:
        bus.subscribe(sink)
    # after the sinks: they get room.closed before the session.report it brings
    reporter = state.reporter = SessionReporter(
        bus, config.classroom.reports_dir or None, Thresholds(
            inactivity_ms=config.classroom.inactivity_minutes * 60_000.0,
            attendance_fraction=config.classroom.attendance_threshold,
            silent_after_ms=config.classroom.silent_after_minutes * 60_000.0))
    state.registry.register(EventSinkCollector(*sinks))
    recordings = Recordings(bus, recording_sinks(config), Alarms(
        bus, config.recording.alarms_file or None), Limits(
            stall_s=config.recording.stall_s,
            min_free_bytes=config.recording.min_free_mb << 20,
            finish_timeout_s=config.recording.finish_timeout_s))
    state.registry.register(RecordingCollector(recordings))
    state.classrooms.recorder = recordings
    tc = config.transcription
    transcriptions = Transcriptions(
        bus, EngineConfig(tc.engine, tc.model_dir, tc.language), workers=tc.workers,
        directory=tc.dir, captions=tc.captions)
    state.classrooms.transcriber = transcriptions
    state.classrooms.transcription_policy = tc.policy
    state.registry.register(TranscriptionCollector(transcriptions))

    async def roster(room: str) -> list[dict[str, str]] | None:
        return await bridge.roster(room) if bridge is not None else None

    summaries = Summaries(bus, tc.dir, roster=roster)
    transcriptions.on_finished = summaries.draft
    app = web.Application(client_max_size=65536)
    app[STATE] = state
    bridge: Bridge | None = None
    if config.scheduler.enabled:
        bridge = Bridge(config, bus, state.classrooms)
        state.join_gate = bridge.check_join
        state.registry.register(ScheduleCollector(bridge))
        schedule_api.install(app, bridge)

    # -- pages, health, metrics -------------------------------------------------------

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def operations_page(request: web.Request) -> web.FileResponse:
        """The operations page (docs/operations.md): it asks for the API secret or an
        operator token and reads the scheduling API with it."""
        return web.FileResponse(STATIC / "ops.html")

    async def client_config(request: web.Request) -> web.Response:
        return web.json_response({"devMode": config.server.dev_mode})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if not state.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready", "rooms": len(state.rooms.rooms)})

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(state.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        # frames over the limits get a message_too_large error; aiohttp itself closes (1009)
        # on frames over twice the larger limit, so a huge frame is never buffered whole
        limit = max(config.server.max_message_bytes, config.server.max_sdp_message_bytes)
        ws = web.WebSocketResponse(max_msg_size=2 * limit,
                                   heartbeat=config.server.ws_heartbeat_s)
        await ws.prepare(request)
        await SignallingSession(state, ws).run()
        return ws

    boards = state.boards = Whiteboards(bus, config.classroom.whiteboards_dir or None)

    async def whiteboard_socket(request: web.Request) -> web.StreamResponse:
        """The room's whiteboard (signalling/whiteboard_ws.py), for a valid join token."""
        try:
            claims = tokens.verify(request.query.get("token"), config.auth.api_key,
                                   config.auth.api_secret)
            if state.join_gate is not None:
                await state.join_gate(claims)
        except tokens.TokenError as exc:
            return json_error(401, exc.code, str(exc))
        edge = state.edges.edges.get(claims.room) if state.edges is not None else None
        if edge is not None:  # the board is the origin's (docs/cluster.md, "Edge relays")
            return await edge_proxy_socket(
                request, ws_url(edge.origin.url).removesuffix("/ws") + "/ws/whiteboard?"
                + request.query_string, MAX_UPDATE_BYTES + 64)
        room = state.rooms.rooms.get(claims.room)
        joined = room.by_identity(claims.identity) if room is not None else None
        return await whiteboard_ws.serve(request, boards, claims,
                                         joined.id if joined is not None else claims.identity)

    async def dev_token(request: web.Request) -> web.Response:
        if not config.server.dev_mode:
            return json_error(404, "not_found", "dev mode is off")
        params = _token_params(await _body(request))
        if isinstance(params, web.Response):
            return params
        token = tokens.mint(config.auth.api_key, config.auth.api_secret,
                            ttl_s=config.auth.token_ttl_s, **params)
        return web.json_response({"token": token})

    # -- room service API (Authorization: Bearer <api secret>) ------------------------

    def authorized(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        supplied = header[7:] if header.startswith("Bearer ") else ""
        if not supplied:
            return False
        if hmac.compare_digest(supplied.encode(), config.auth.api_secret.encode()):
            return True
        # the room's instructor (its join token: the summary page) reviews its summary
        summary_of = SUMMARY_PATH.match(request.path)
        if summary_of is not None and supplied.count(".") == 2:
            try:
                claims = tokens.verify(supplied, config.auth.api_key, config.auth.api_secret)
            except tokens.TokenError:
                return False
            if claims.role == "instructor" and claims.room == summary_of.group(1):
                request["instructor"] = claims.name or claims.identity
                return True
            return False
        # an operator token (the operations page) opens the scheduling API, nothing else
        if request.path.startswith("/api/schedule/") and supplied.count(".") == 2 and \
                request.path != "/api/schedule/operator-token":
            try:
                request["operator"] = tokens.verify_operator(supplied, config.auth.api_key,
                                                             config.auth.api_secret)
                return True
            except tokens.TokenError:
                return False
        return False

    @web.middleware
    async def api_guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/") and not request.path.startswith(
            ("/api/dev/", "/api/config")
        ) and not authorized(request):
            return json_error(401, "unauthorized", "missing or wrong API key "
                               "(Authorization: Bearer <api secret>)")
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except SfuError as exc:
            return json_error(409, exc.code, str(exc))

    app.middlewares.append(api_guard)

    async def create_token(request: web.Request) -> web.Response:
        body = await _body(request)
        params = _token_params(body)
        if isinstance(params, web.Response):
            return params
        ttl = body.get("ttl", config.auth.token_ttl_s)
        if not isinstance(ttl, int) or not 10 <= ttl <= 7 * 86400:
            return json_error(400, "bad_message", "ttl must be 10..604800 seconds")
        token = tokens.mint(config.auth.api_key, config.auth.api_secret, ttl_s=ttl, **params)
        return web.json_response({"token": token}, status=201)

    async def create_room(request: web.Request) -> web.Response:
        body = await _body(request)
        name = body.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            return json_error(400, "bad_message", "name must match [A-Za-z0-9_.-]{1,64}")
        maxp = body.get("maxParticipants")
        if maxp is not None and (not isinstance(maxp, int) or not 1 <= maxp <= 1000):
            return json_error(400, "bad_message", "maxParticipants must be 1..1000")
        window = body.get("reconnectWindowS")
        if window is not None and (isinstance(window, bool) or not isinstance(
                window, int | float) or not 0 <= window <= 600):
            return json_error(400, "bad_message", "reconnectWindowS must be 0..600 seconds")
        speakers = body.get("audioSpeakers")
        if speakers is not None and (isinstance(speakers, bool) or not isinstance(speakers, int)
                                     or not 0 <= speakers <= 50):
            return json_error(400, "bad_message", "audioSpeakers must be 0..50 (0: every "
                               "microphone forwarded)")
        policy = body.get("recordingPolicy")
        if policy is not None and policy not in RECORDING_POLICIES:
            return json_error(400, "bad_message", "recordingPolicy must be one of "
                               + ", ".join(RECORDING_POLICIES))
        transcription = body.get("transcription")
        if transcription is not None and transcription not in TRANSCRIPTION_POLICIES:
            return json_error(400, "bad_message", "transcription must be one of "
                               + ", ".join(TRANSCRIPTION_POLICIES))
        existed = name in state.classrooms.rooms
        if not existed and (elsewhere := await cluster_api.route_creation(
                state, request, name, body)) is not None:
            return elsewhere  # placed on another node: created there
        room = state.classrooms.create(name, maxp, reconnect_window_s=window,
                                       recording_policy=policy, audio_speakers=speakers,
                                       transcription_policy=transcription)
        described = room.describe()
        if state.cluster is not None:
            described["node"] = state.cluster.node_id
        return web.json_response(described, status=200 if existed else 201)

    async def recent_events(request: web.Request) -> web.Response:
        """The server's most recent events (the bus keeps the last 1000), oldest first, as
        JSON envelopes; ``room`` filters, ``after`` returns only events with a larger seq."""
        room = request.query.get("room")
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return json_error(400, "bad_message", "after must be an integer (an event seq)")
        found = [e.envelope() for e in list(bus.recent)
                 if e.seq > after and (room is None or e.room == room)]
        return web.json_response({"events": found})

    async def list_rooms(request: web.Request) -> web.Response:
        return web.json_response({"rooms": [r.describe()
                                            for r in state.classrooms.rooms.values()]})

    def room_or_404(request: web.Request) -> Classroom:
        room = state.classrooms.get(request.match_info["room"])
        if room is None:
            raise web.HTTPNotFound(text='{"error":{"code":"room_not_found","message":"no such '
                                   'room"}}', content_type="application/json")
        return room

    async def close_room(request: web.Request) -> web.Response:
        room_or_404(request)
        await state.classrooms.close(request.match_info["room"])
        return web.Response(status=204)

    async def session_report(request: web.Request) -> web.Response:
        """The engagement report of the room's session so far (docs/engagement.md)."""
        room = room_or_404(request)
        report = reporter.report(room.id, time.time() * 1000.0)
        if report is None:
            return json_error(404, "room_not_found", "no session for this room")
        return web.json_response(report)

    async def get_transcript(request: web.Request) -> web.Response:
        """The transcript of the room's session so far (docs/transcription.md)."""
        room_id = request.match_info["room"]
        body = transcriptions.transcript_json(room_id)
        if body is None:
            return json_error(404, "not_transcribed", "this room is not being transcribed "
                               "(its transcription policy is off)")
        return web.json_response(body)

    async def get_summary(request: web.Request) -> web.Response:
        """The room's summary draft, or the approved summary (docs/transcription.md)."""
        try:
            return web.json_response(await summaries.get(request.match_info["room"]))
        except NoSummary as exc:
            return json_error(404, exc.code, str(exc))

    async def edit_summary(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            return web.json_response(await summaries.edit(
                request.match_info["room"], body, request.get("instructor", "api")))
        except NoSummary as exc:
            return json_error(404, exc.code, str(exc))
        except SummaryError as exc:
            return json_error(409 if exc.code == "summary_approved" else 400, exc.code,
                               str(exc))

    async def approve_summary(request: web.Request) -> web.Response:
        try:
            return web.json_response(await summaries.approve(
                request.match_info["room"], request.get("instructor", "api")))
        except NoSummary as exc:
            return json_error(404, exc.code, str(exc))
        except SummaryError as exc:
            return json_error(409, exc.code, str(exc))

    async def summary_page(request: web.Request) -> web.FileResponse:
        """The instructor's summary page: opened with the instructor's join token."""
        return web.FileResponse(STATIC / "summary.html")

    async def start_recording(request: web.Request) -> web.Response:
        """Record the room: every track, from now until stopped or the room closes
        (docs/recording.md)."""
        room = room_or_404(request)
        running = recordings.get(room.id)
        try:
            rec = recordings.start(room)
        except RecordingRefused as exc:
            return json_error(409, exc.code, str(exc))
        return web.json_response(rec.describe(), status=200 if running is rec else 201)

    async def get_recording(request: web.Request) -> web.Response:
        room = room_or_404(request)
        rec = recordings.get(room.id)
        if rec is None:
            return json_error(404, "not_recording", "the room is not being recorded")
        return web.json_response(rec.describe())

    async def stop_recording(request: web.Request) -> web.Response:
        room = room_or_404(request)
        manifest = await recordings.stop(room.id)
        if manifest is None:
            return json_error(404, "not_recording", "the room is not being recorded")
        return web.json_response(manifest)

    async def list_alarms(request: web.Request) -> web.Response:
        """The operations exception queue: the last 1000 recording alarms, oldest first."""
        room = request.query.get("room")
        return web.json_response({"alarms": [a for a in recordings.alarms.recent
                                             if room is None or a["room"] == room]})

    async def list_participants(request: web.Request) -> web.Response:
        room = room_or_404(request)
        return web.json_response(
            {"participants": [{**p.describe(), "media": p.media_stats()}
                              for p in room.participants.values()]})

    def participant_or_404(request: web.Request) -> tuple[Room, Participant]:
        room = room_or_404(request).media
        p = room.by_identity(request.match_info["identity"])
        if p is None:
            raise web.HTTPNotFound(text='{"error":{"code":"participant_not_found","message":'
                                   '"no such participant"}}', content_type="application/json")
        return room, p

    async def remove_participant(request: web.Request) -> web.Response:
        room, p = participant_or_404(request)
        p.send({"type": "left", "reason": "removed"})
        await room.remove(p, "removed")
        await state.rooms.left(room)
        return web.Response(status=204)

    async def mute_track(request: web.Request) -> web.Response:
        room, p = participant_or_404(request)
        body = await _body(request)
        track_id, muted = body.get("trackId"), body.get("muted", True)
        if not isinstance(track_id, str) or not isinstance(muted, bool):
            return json_error(400, "bad_message", "trackId (string) and muted (bool) required")
        track = p.track_by_id(track_id)
        if track is None:
            return json_error(404, "unknown_track", f"no track {track_id!r}")
        if not muted:
            return json_error(409, "permission_denied",
                               "only the publisher can unmute its track")
        track.set_muted(True, 0.0)
        room.track_muted(p, track)
        return web.json_response(track.describe())

    async def on_startup(app: web.Application) -> None:
        await media_ports.start()
        for started in (nats_sink, webhooks):
            if started is not None:
                started.start()
        recordings.find_crashed(Path(config.recording.dir))
        if bridge is not None:
            await bridge.start()
        state.ready = True

    async def on_shutdown(app: web.Application) -> None:
        state.ready = False
        for name in list(state.classrooms.rooms):
            await state.classrooms.close(name, "server_shutdown")
        await recordings.close()
        await transcriptions.close()  # the rooms' last lines written, the workers stopped
        if bridge is not None:  # after the rooms: their last joins and leaves are kept
            await bridge.close()

    async def on_cleanup(app: web.Application) -> None:
        for stopped in (nats_sink, webhooks):
            if stopped is not None:
                await stopped.close()
        boards.close()
        await media_ports.close()
        if event_log is not None:  # after the rooms closed: their last events are written
            await asyncio.get_running_loop().run_in_executor(None, event_log.close)

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    cluster_api.install(app, state)  # (its shutdown after ours: rooms release, then leave)
    app.router.add_get("/", index)
    app.router.add_get("/ops", operations_page)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/ws/whiteboard", whiteboard_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/config", client_config)
    app.router.add_post("/api/dev/token", dev_token)
    app.router.add_post("/api/tokens", create_token)
    app.router.add_post("/api/rooms", create_room)
    app.router.add_get("/api/rooms", list_rooms)
    app.router.add_delete("/api/rooms/{room}", close_room)
    app.router.add_get("/api/rooms/{room}/participants", list_participants)
    app.router.add_get("/api/rooms/{room}/report", session_report)
    app.router.add_get("/api/alarms", list_alarms)
    app.router.add_get("/api/rooms/{room}/transcript", get_transcript)
    app.router.add_get("/api/rooms/{room}/summary", get_summary)
    app.router.add_put("/api/rooms/{room}/summary", edit_summary)
    app.router.add_post("/api/rooms/{room}/summary/approve", approve_summary)
    app.router.add_get("/summary", summary_page)
    app.router.add_post("/api/rooms/{room}/recording", start_recording)
    app.router.add_get("/api/rooms/{room}/recording", get_recording)
    app.router.add_delete("/api/rooms/{room}/recording", stop_recording)
    app.router.add_get("/api/events", recent_events)
    app.router.add_delete("/api/rooms/{room}/participants/{identity}", remove_participant)
    app.router.add_post("/api/rooms/{room}/participants/{identity}/mute", mute_track)
    return app
