"""The cluster as the server runs it (docs/cluster.md): this node's announcement, the
cluster API (``/api/cluster/*``), room creations and the room API forwarded to the room's
node, and the replica of the rooms' state; moving rooms (drain, take-over) is
:mod:`signalling.handover`.

Everything is off unless ``cluster.nats_url`` is set: a single node needs no NATS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from classroom import replica
from cluster.edge import Edges
from cluster.metrics import ClusterCollector, RelayCollector
from cluster.node import Announcer, RateSince, node_id
from cluster.placement import Placement, PlacementError
from cluster.registry import ClusterRegistry
from cluster.rooms import ClusterRooms, Elsewhere
from cluster.state import Part, StateStore, StateWriter
from events import EventBus
from sfu.metrics import forwarded_packets
from sfu.room import RoomRegistry

from . import tokens
from .handover import Drain, Handover
from .responses import json_error

if TYPE_CHECKING:
    from .app import ServerState

log = logging.getLogger(__name__)
#: how long a room creation forwarded to its origin may take
FORWARD_TIMEOUT_S = 10.0
#: the room API's paths of one room (forwarded to the room's node)
ROOM_PATH = re.compile(r"^/api/rooms/([^/]+)(?:/.*)?$")
#: marks a forwarded request: the origin answers it whatever the placement says by then
#: (no second hop, no loop while a placement moves)
FORWARDED = "X-Classroom-Forwarded"


def install(app: web.Application, state: ServerState) -> None:
    """Wire the cluster into the app (after the app's own startup and shutdown handlers:
    rooms close, and release their placements, before the node leaves the registry)."""
    cc = state.config.cluster
    if not cc.nats_url:
        async def off(request: web.Request) -> web.Response:
            return json_error(404, "cluster_off", "this server is a single node "
                          "(cluster.nats_url is not set)")
        app.router.add_get("/api/cluster/nodes", off)
        app.router.add_get("/api/cluster/rooms", off)
        app.router.add_post("/api/cluster/drain", off)
        return

    def count() -> tuple[int, int]:
        rooms = list(state.rooms.rooms.values())
        return len(rooms), sum(len(r.participants) for r in rooms)

    draining = Drain()
    registry = ClusterRegistry(cc.nats_url, Announcer(
        node_id(cc.node_id), cc.region, lambda: cc.public_url or state.base_url,
        cc.capacity_rooms, count, lambda: not state.ready or draining.active,
        RateSince(lambda: forwarded_packets(
            state.rooms, state.media.retired,
            state.edges.rooms.rooms.values() if state.edges is not None else ()))),
        ttl_s=cc.ttl_s, prefix=cc.prefix, replicas=cc.kv_replicas)

    def placed(placement: Placement, why: str) -> None:
        state.bus.emit("room.placed", placement.room, {
            "node": placement.node, "region": placement.region, "movedBecause": why})

    registry.on_placed = placed
    rooms = ClusterRooms(registry, cc.region, lambda: list(state.classrooms.rooms))
    store = StateStore(registry, max_age_s=cc.state_max_age_s)

    def parts(room: str) -> dict[str, Part]:
        """A room's state now, for the replica: its parts' versions and bytes."""
        out: dict[str, Part] = {}
        classroom = state.classrooms.get(room)
        if classroom is not None:
            data = replica.export(classroom)
            out["classroom"] = (data, lambda: data)
        hub = state.boards.hubs.get(room) if state.boards is not None else None
        if hub is not None:
            out["board"] = ((id(hub), hub.board.updates), hub.board.snapshot)
        session = state.reporter.snapshot(room) if state.reporter is not None else None
        if session is not None:
            out["engagement"] = (session, lambda: session)
        return out

    writer = StateWriter(store, parts, lambda: list(state.classrooms.rooms),
                         interval_s=cc.state_interval_s)
    state.cluster, state.cluster_rooms = registry, rooms

    handover = Handover(state, registry, rooms, store, writer, draining)
    state.classrooms.on_room_closed.append(handover.closed)
    state.registry.register(ClusterCollector(registry, rooms, writer))
    state.take_over = handover.take_over
    if cc.relays:
        state.edges = _edges(state, registry.node_id, rooms)
    state.registry.register(RelayCollector(state.rooms, lambda: state.edges))
    joining: list[asyncio.Task[None]] = []

    async def drain_api(request: web.Request) -> web.Response:
        """Drain this node (``classroom-sfu drain``): its rooms move to other nodes."""
        if (refused := unreachable()) is not None:
            return refused
        return web.json_response(await handover.drain_node())

    def unreachable() -> web.Response | None:
        if registry.connected:
            return None
        return json_error(503, "cluster_unreachable", f"not connected to NATS at {registry.url} "
                      "yet (retrying every 2 s)")

    async def cluster_nodes(request: web.Request) -> web.Response:
        """The live nodes of the cluster registry."""
        if (refused := unreachable()) is not None:
            return refused
        nodes = await registry.nodes()
        return web.json_response({"node": registry.node_id,
                                  "nodes": [n.__dict__ for n in nodes]})

    async def cluster_rooms(request: web.Request) -> web.Response:
        """Every placed room of the cluster and its origin node."""
        if (refused := unreachable()) is not None:
            return refused
        try:
            placed = await registry.rooms()
        except Exception as exc:
            return json_error(503, "cluster_unreachable", f"NATS at {registry.url}: "
                          f"{type(exc).__name__}: {exc}")
        return web.json_response({"rooms": [
            {**p.__dict__, "url": registry.url_of(p.node)} for p in placed]})

    @web.middleware
    async def forward_room_api(request: web.Request, handler: Any) -> web.StreamResponse:
        """The room API of a room open on another node answers from that node: any node
        can be asked about any room (docs/cluster.md)."""
        m = ROOM_PATH.match(request.path)
        if (m is None or FORWARDED in request.headers or not registry.connected
                or m.group(1) in state.classrooms.rooms):
            response: web.StreamResponse = await handler(request)
            return response
        try:
            current = await registry.placement(m.group(1))
        except Exception:  # NATS away: answer for this node only
            current = None
        if current is None or current[0].node == registry.node_id or not (
                url := registry.url_of(current[0].node)):
            response = await handler(request)
            return response
        rooms.redirects += 1
        return await _forward(request, Elsewhere(current[0].node, url))

    app.middlewares.append(forward_room_api)

    async def join_cluster() -> None:
        """Announce this node once it listens (its URL is in the announcement), retrying
        while NATS cannot be reached; then claim the rooms opened meanwhile."""
        for _ in range(200):
            if state.base_url or cc.public_url:
                break
            await asyncio.sleep(0.05)
        while True:
            try:
                await registry.start()
                log.info("cluster: node %s announced to %s", registry.node_id, registry.url)
                break
            except Exception as exc:
                log.warning("cluster: NATS at %s not reachable (%s); retrying",
                            registry.url, exc)
                await asyncio.sleep(2.0)
        await rooms.claim_hosted()
        writer.start()
        while True:  # rooms served while NATS stopped answering are claimed once it does
            await asyncio.sleep(2.0)
            await rooms.claim_pending()

    async def on_startup(app: web.Application) -> None:
        joining.append(asyncio.ensure_future(join_cluster()))

    async def drain_at_shutdown(app: web.Application) -> None:
        """SIGTERM (and every clean stop): the rooms move to other nodes before the rest of
        the shutdown closes what is left."""
        if registry.connected and not draining.active and state.classrooms.rooms:
            result = await handover.drain_node()
            log.info("cluster: drained at shutdown: %d rooms moved, %d stayed",
                     len(result["moved"]), len(result["stayed"]))

    async def on_shutdown(app: web.Application) -> None:
        for task in joining:
            task.cancel()
        if state.edges is not None:
            await state.edges.close()
        await writer.stop()
        await rooms.close()  # the closed rooms' releases
        if draining.tasks:
            await asyncio.wait(list(draining.tasks), timeout=2.0)
        await registry.stop()  # a clean exit: the node leaves the registry at once

    app.on_startup.append(on_startup)
    app.on_shutdown.insert(0, drain_at_shutdown)  # before the app closes the rooms
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/api/cluster/nodes", cluster_nodes)
    app.router.add_post("/api/cluster/drain", drain_api)
    app.router.add_get("/api/cluster/rooms", cluster_rooms)


async def route_creation(state: ServerState, request: web.Request, name: str,
                         body: dict[str, Any]) -> web.Response | None:
    """A room creation for a room placed on another node is forwarded there (with the
    caller's credentials) and its answer returned; None: create it here."""
    rooms = state.cluster_rooms
    if rooms is None or FORWARDED in request.headers:
        return None
    region = body.get("region")
    if region is not None and not isinstance(region, str):
        return json_error(400, "bad_message", "region must be a string")
    try:
        where = await rooms.route(name, region)
    except PlacementError as exc:
        return json_error(503, exc.code, str(exc))
    if where is None:
        return None
    return await _forward(request, where, json.dumps(body).encode())


async def _forward(request: web.Request, where: Elsewhere, body: bytes | None = None
                   ) -> web.Response:
    """The request, sent on to the room's node with the caller's credentials: its answer."""
    headers = {k: v for k, v in request.headers.items()
               if k.lower() in ("authorization", "content-type")}
    headers[FORWARDED] = "1"
    data = body if body is not None else await request.read()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                total=FORWARD_TIMEOUT_S)) as http, http.request(
                    request.method, where.url.rstrip("/") + request.path_qs, data=data,
                    headers=headers) as res:
            return web.Response(body=await res.read(), status=res.status,
                                content_type=res.content_type)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return json_error(502, "origin_unreachable", f"the room's node {where.node} at "
                      f"{where.url} did not answer: {type(exc).__name__}: {exc}")


#: an edge's media room holds the pages it serves and the origin's publishers
EDGE_ROOM_LIMIT = 10_000


def _edges(state: ServerState, node: str, placement: ClusterRooms) -> Edges:
    """Edge relays (docs/cluster.md): the rooms this node serves for pages of its region
    while their origin is elsewhere, in a registry of their own (not classrooms here)."""
    cfg = state.config

    def relay_token(room: str) -> str:
        return tokens.mint(cfg.auth.api_key, cfg.auth.api_secret, room=room,
                           identity=f"relay:{node}", role="observer", ttl_s=60, relay=node)

    # the lesson's events are the origin's: an edge room's own (its pages coming and going
    # as media) stay here
    # (the room's limit is the origin's: it refuses a page's join there; here the room
    # holds the pages and the origin's publishers too)
    rooms = RoomRegistry(EventBus(history=100), max_participants=EDGE_ROOM_LIMIT,
                         auto_create=True, reconnect_window_s=cfg.rooms.reconnect_window_s)
    return Edges(rooms, state.media, relay_token, placement.route)
