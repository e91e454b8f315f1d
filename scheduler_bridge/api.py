"""HTTP API of the scheduler bridge under ``/api/schedule/`` (docs/api.md, and the OpenAPI
document at ``/api/schedule/openapi.json``). The server's API guard requires the API secret
on every route; this module turns requests into :class:`~scheduler_bridge.service.Bridge`
calls and its errors into ``{"error": {code, message}}`` answers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from signalling import tokens
from signalling.responses import json_error

from . import operations, records
from .booking import Status, iso_utc, parse_booking, zone
from .errors import BadBooking, ImportTooLarge, SchedulerError
from .exception_queue import KINDS, ExceptionState
from .imports import parse_csv_import, parse_json_import
from .openapi import document
from .service import Bridge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1 << 20
BRIDGE = web.AppKey("schedule_bridge", Bridge)


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SchedulerError as exc:
            return json_error(exc.status, exc.code, str(exc))
    return run


async def _read(request: web.Request, limit: int) -> bytes:
    """The request body, refusing it (ImportTooLarge) past ``limit`` bytes without reading
    the rest into memory."""
    if request.content_length is not None and request.content_length > limit:
        raise ImportTooLarge(f"the body is {request.content_length} bytes: at most {limit}")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise ImportTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await _read(request, MAX_BODY)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadBooking("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadBooking("the body must be a JSON object")
    return body


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadBooking(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadBooking(f"{name} must be {low}..{high}")
    return value


def _list(request: web.Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    values = [v for v in request.query.get(name, "").split(",") if v]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise BadBooking(f"{name} must be among {', '.join(allowed)} (got {', '.join(bad)})")
    return values


def day_range(day: str, tz_name: str) -> tuple[float, float]:
    """[start, end) of a calendar day in a time zone, as unix seconds."""
    tz = zone(tz_name)
    try:
        first = datetime.fromisoformat(day).replace(tzinfo=tz)
    except ValueError:
        raise BadBooking(f"day {day!r} is not a date (YYYY-MM-DD)") from None
    return first.timestamp(), (first + timedelta(days=1)).timestamp()


def install(app: web.Application, bridge: Bridge) -> None:
    app[BRIDGE] = bridge
    sc = bridge.sc

    async def create(request: web.Request) -> web.Response:
        lesson = await bridge.book(parse_booking(await _json(request)))
        return web.json_response({**lesson.to_json(), "links": bridge.links(lesson)},
                                 status=201)

    async def list_lessons(request: web.Request) -> web.Response:
        q = request.query
        start_from = start_to = None
        if "day" in q:
            start_from, start_to = day_range(q["day"], q.get("tz", "UTC"))
            if "days" in q:
                start_to = start_from + _int(request, "days", 1, 1, 62) * 86400.0
        lessons, total = await bridge.db(
            bridge.store.lessons, start_from=start_from, start_to=start_to,
            instructor=q.get("instructor") or None, student=q.get("student") or None,
            status=_list(request, "status", tuple(s.value for s in Status)),
            series=q.get("series") or None, limit=_int(request, "limit", 100, 1, 1000),
            offset=_int(request, "offset", 0, 0, 10_000_000))
        return web.json_response({"lessons": [lesson.to_json() for lesson in lessons],
                                  "total": total})

    async def get(request: web.Request) -> web.Response:
        lesson = await bridge.get(request.match_info["lesson"])
        return web.json_response(lesson.to_json())

    async def patch(request: web.Request) -> web.Response:
        lesson = await bridge.update(request.match_info["lesson"], await _json(request))
        return web.json_response(lesson.to_json())

    async def reschedule(request: web.Request) -> web.Response:
        lesson = await bridge.reschedule(request.match_info["lesson"], await _json(request))
        return web.json_response({**lesson.to_json(), "links": bridge.links(lesson)})

    async def substitute(request: web.Request) -> web.Response:
        lesson = await bridge.substitute(request.match_info["lesson"], await _json(request))
        return web.json_response({**lesson.to_json(), "links": bridge.links(lesson)})

    async def cancel(request: web.Request) -> web.Response:
        body = await _json(request)
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            raise BadBooking("reason must be a string of at most 500 characters")
        lesson = await bridge.cancel(request.match_info["lesson"], reason)
        return web.json_response(lesson.to_json())

    async def lesson_links(request: web.Request) -> web.Response:
        lesson = await bridge.get(request.match_info["lesson"])
        return web.json_response({"lessonId": lesson.id, "revision": lesson.booking.revision,
                                  "links": bridge.links(lesson)})

    async def bulk_import(request: web.Request) -> web.Response:
        data = await _read(request, sc.max_import_bytes)
        kind = request.content_type
        if kind in ("text/csv", "application/csv"):
            parsed = parse_csv_import(data, sc.max_import_rows)
        elif kind == "application/json":
            parsed = parse_json_import(data, sc.max_import_rows)
        else:
            return json_error(415, "unsupported_media_type", "send text/csv or application/json")
        result, errors = await bridge.import_parsed(parsed)
        return web.json_response({
            "created": len(result.created), "updated": len(result.updated),
            "unchanged": len(result.unchanged), "rejected": len(errors),
            "errors": [e.to_json() for e in errors]})

    async def list_exceptions(request: web.Request) -> web.Response:
        rows, total = await bridge.db(
            bridge.store.exceptions,
            state=_list(request, "state", tuple(s.value for s in ExceptionState)),
            kind=_list(request, "kind", KINDS), lesson=request.query.get("lesson") or None,
            limit=_int(request, "limit", 100, 1, 1000),
            offset=_int(request, "offset", 0, 0, 10_000_000))
        return web.json_response({"exceptions": rows, "total": total})

    def transition(to: ExceptionState) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            body = await _json(request)
            by, note = body.get("by"), body.get("note", "")
            if not isinstance(by, str) or not 1 <= len(by) <= 128:
                raise BadBooking("by (who does it) must be 1-128 characters")
            if not isinstance(note, str) or len(note) > 2000:
                raise BadBooking("note must be a string of at most 2000 characters")
            row = await bridge.transition(request.match_info["exception"], to, by, note)
            return web.json_response(row)
        return handle

    async def list_notifications(request: web.Request) -> web.Response:
        rows = await bridge.db(bridge.store.notifications,
                               lesson=request.query.get("lesson") or None,
                               kind=request.query.get("kind") or None,
                               limit=_int(request, "limit", 200, 1, 1000))
        for row in rows:
            row.pop("body", None)
        return web.json_response({"notifications": rows})

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document())

    # -- the operations page's views --------------------------------------------------

    async def day(request: web.Request) -> web.Response:
        """A day's lessons with their live state, and the day's and week's rates."""
        q = request.query
        if "day" not in q:
            raise BadBooking("day (YYYY-MM-DD) is required")
        tz = q.get("tz", "UTC")
        start, end = day_range(q["day"], tz)
        lessons, total = await bridge.db(
            bridge.store.lessons, start_from=start, start_to=end,
            instructor=q.get("instructor") or None,
            status=_list(request, "status", tuple(s.value for s in Status)),
            limit=_int(request, "limit", 50, 1, 1000),
            offset=_int(request, "offset", 0, 0, 10_000_000))
        week_start = start - 6 * 86400.0
        today = await bridge.db(operations.rates, bridge.store, start, end)
        week = await bridge.db(operations.rates, bridge.store, week_start, end)
        _, open_total = await bridge.db(bridge.store.exceptions, state=["open"], limit=1)
        rows = []
        for lesson in lessons:
            room = bridge.classrooms.get(lesson.id)
            b = lesson.booking
            live = None
            if room is not None:
                live = {"participants": len(room.media.participants),
                        "recording": room.recording is not None}
            rows.append({
                "lessonId": b.lesson_id, "title": b.title, "start": iso_utc(b.start_ts),
                "end": iso_utc(b.end_ts), "timeZone": b.time_zone,
                "instructor": b.instructor.to_json(), "students": len(b.students),
                "status": str(b.status), "recordingPolicy": b.recording_policy,
                "roomOpen": room is not None, "live": live, "notes": lesson.notes})
        return web.json_response({"day": q["day"], "timeZone": tz, "lessons": rows,
                                  "total": total, "today": today, "week": week,
                                  "openExceptions": open_total})

    async def students_at_risk(request: web.Request) -> web.Response:
        found = await bridge.db(operations.at_risk, bridge.store,
                                window=_int(request, "window", 4, 1, 50),
                                threshold=_int(request, "threshold", 2, 1, 50),
                                limit=_int(request, "limit", 200, 1, 1000))
        return web.json_response({"students": found})

    async def record(request: web.Request) -> web.Response:
        return web.json_response(await bridge.record(request.match_info["lesson"]))

    async def brief(request: web.Request) -> web.Response:
        lesson = await bridge.get(request.match_info["lesson"])
        return web.json_response({"lessonId": lesson.id,
                                  "brief": await bridge.db(records.brief, bridge.store, lesson)})

    async def notes(request: web.Request) -> web.Response:
        body = await _json(request)
        text = body.get("notes")
        if not isinstance(text, str) or len(text) > 20000:
            raise BadBooking("notes must be a string of at most 20000 characters")
        await bridge.set_notes(request.match_info["lesson"], text)
        return web.json_response({"lessonId": request.match_info["lesson"], "notes": text})

    async def operator_token(request: web.Request) -> web.Response:
        """An operator token for the operations page (only with the API secret itself)."""
        body = await _json(request)
        name, ttl = body.get("name"), body.get("ttl", 12 * 3600)
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise BadBooking("name (the operator's) must be 1-128 characters")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 7 * 86400:
            raise BadBooking("ttl must be 60..604800 seconds")
        token = tokens.mint_operator(bridge.link_params.api_key, bridge.link_params.api_secret,
                                     name, ttl)
        return web.json_response({"token": token, "name": name}, status=201)

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"operator": request.get("operator") or "api-secret"})

    base = "/api/schedule"
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/lessons", create),
        ("GET", "/lessons", list_lessons),
        ("GET", "/lessons/{lesson}", get),
        ("PATCH", "/lessons/{lesson}", patch),
        ("POST", "/lessons/{lesson}/reschedule", reschedule),
        ("POST", "/lessons/{lesson}/substitute", substitute),
        ("POST", "/lessons/{lesson}/cancel", cancel),
        ("GET", "/lessons/{lesson}/links", lesson_links),
        ("POST", "/import", bulk_import),
        ("GET", "/exceptions", list_exceptions),
        ("POST", "/exceptions/{exception}/acknowledge",
         transition(ExceptionState.ACKNOWLEDGED)),
        ("POST", "/exceptions/{exception}/resolve", transition(ExceptionState.RESOLVED)),
        ("GET", "/notifications", list_notifications),
        ("GET", "/openapi.json", openapi),
        ("GET", "/day", day),
        ("GET", "/at-risk", students_at_risk),
        ("GET", "/lessons/{lesson}/record", record),
        ("GET", "/lessons/{lesson}/brief", brief),
        ("PUT", "/lessons/{lesson}/notes", notes),
        ("POST", "/operator-token", operator_token),
        ("GET", "/whoami", whoami),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, base + path, _guarded(handler))
