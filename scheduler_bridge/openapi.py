"""The OpenAPI 3.1 document of ``/api/schedule/`` (served at
``/api/schedule/openapi.json``; a test checks it names every route the server has)."""

from __future__ import annotations

from typing import Any

from .booking import RECORDING_POLICIES, Status
from .exception_queue import KINDS, ExceptionState


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any], status: str = "200", description: str = "done"
        ) -> dict[str, Any]:
    return {status: {"description": description, **_json(schema)},
            "400": {"description": "bad request", **_json(_ref("Error"))},
            "401": {"description": "missing or wrong API secret", **_json(_ref("Error"))}}


def _lesson_path(summary: str, body: dict[str, Any] | None, result: dict[str, Any],
                 **errors: str) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": [
        {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_ok(result), "404": {"description": "lesson_not_found",
                                             **_json(_ref("Error"))}}}
    for status, description in errors.items():
        op["responses"][status.lstrip("_")] = {"description": description,
                                               **_json(_ref("Error"))}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind}}


def document() -> dict[str, Any]:
    person = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string", "maxLength": 128}, "name": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "guardians": {"type": "array", "maxItems": 4, "items": {
            "type": "object", "properties": {"name": {"type": "string"},
                                             "email": {"type": "string", "format": "email"}}}}}}
    booking = {"type": "object", "required": ["lessonId", "start", "end", "instructor"],
               "properties": {
                   "lessonId": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-]{1,64}$"},
                   "title": {"type": "string", "maxLength": 200},
                   "start": {"type": "string", "description": "ISO 8601; without an offset "
                             "it is local to timeZone"},
                   "end": {"type": "string"},
                   "timeZone": {"type": "string", "description": "IANA name", "default": "UTC"},
                   "instructor": _ref("Person"),
                   "students": {"type": "array", "items": _ref("Person")},
                   "recordingPolicy": {"enum": list(RECORDING_POLICIES)},
                   "room": {"type": "object", "properties": {
                       "reconnectWindowS": {"type": "number", "minimum": 0, "maximum": 600},
                       "maxParticipants": {"type": "integer", "maximum": 1000}}},
                   "seriesId": {"type": "string"}}}
    lesson = {"allOf": [_ref("Booking"), {"type": "object", "properties": {
        "status": {"enum": [s.value for s in Status]}, "revision": {"type": "integer"},
        "localStart": {"type": "string"}, "localEnd": {"type": "string"},
        "provisionedAt": {"type": ["number", "null"]},
        "startedAt": {"type": ["number", "null"]}, "closedAt": {"type": ["number", "null"]},
        "notes": {"type": "string"}, "cancelReason": {"type": "string"}}}]}
    link = {"type": "object", "properties": {
        "identity": {"type": "string"}, "name": {"type": "string"},
        "role": {"enum": ["instructor", "student"]}, "url": {"type": "string"},
        "token": {"type": "string"}, "notBefore": {"type": "integer"},
        "expiresAt": {"type": "integer"}, "revision": {"type": "integer"}}}
    with_links = {"allOf": [_ref("Lesson"), {"type": "object", "properties": {
        "links": {"type": "array", "items": _ref("Link")}}}]}
    exception = {"type": "object", "properties": {
        "id": {"type": "string"}, "kind": {"enum": list(KINDS)},
        "lessonId": {"type": ["string", "null"]}, "room": {"type": "string"},
        "person": {"type": "string"}, "evidence": {"type": "object"},
        "raisedAt": {"type": "number"}, "state": {"enum": [s.value for s in ExceptionState]},
        "acknowledgedBy": {"type": ["string", "null"]},
        "acknowledgedAt": {"type": ["number", "null"]},
        "resolvedBy": {"type": ["string", "null"]}, "resolvedAt": {"type": ["number", "null"]},
        "history": {"type": "array", "items": {"type": "object"}}}}
    transition = {"type": "object", "required": ["by"], "properties": {
        "by": {"type": "string", "maxLength": 128}, "note": {"type": "string"}}}
    exc_path = {"name": "exception", "in": "path", "required": True,
                "schema": {"type": "string"}}
    import_result = {"type": "object", "properties": {
        "created": {"type": "integer"}, "updated": {"type": "integer"},
        "unchanged": {"type": "integer"}, "rejected": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "row": {"type": "integer"}, "lessonId": {"type": "string"},
            "code": {"type": "string"}, "message": {"type": "string"}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "classroom-sfu scheduler bridge", "version": "1",
                 "description": "Bookings, provisioning, personal links and the exception "
                 "queue (docs/scheduling.md). Authorization: Bearer <auth.api_secret>."},
        "components": {
            "securitySchemes": {"apiSecret": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Person": person, "Booking": booking, "Lesson": lesson, "Link": link,
                        "LessonWithLinks": with_links, "Exception": exception,
                        "Rates": {"type": "object", "properties": {
                            "lessons": {"type": "integer"}, "byStatus": {"type": "object"},
                            "attendanceRate": {"type": ["number", "null"]},
                            "noShowRate": {"type": ["number", "null"]},
                            "studentPlaces": {"type": "integer"},
                            "studentsCame": {"type": "integer"},
                            "recordingFailures": {"type": "integer"}}},
                        "Error": {"type": "object", "properties": {"error": {
                            "type": "object", "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"}}}}}}},
        "security": [{"apiSecret": []}],
        "paths": {
            "/api/schedule/lessons": {
                "post": {"summary": "book a lesson", "requestBody": {
                    "required": True, **_json(_ref("Booking"))},
                    "responses": {**_ok(_ref("LessonWithLinks"), "201", "booked"),
                                  "409": {"description": "lesson_exists, instructor_conflict",
                                          **_json(_ref("Error"))}}},
                "get": {"summary": "list lessons by start time", "parameters": [
                    _query("day", "YYYY-MM-DD, in tz"), _query("tz", "IANA zone of day"),
                    _query("days", "days from day (1..62)", "integer"),
                    _query("instructor", "identity"), _query("student", "identity"),
                    _query("status", "comma-separated statuses"),
                    _query("series", "series id"), _query("limit", "1..1000", "integer"),
                    _query("offset", "skip", "integer")],
                    "responses": _ok({"type": "object", "properties": {
                        "lessons": {"type": "array", "items": _ref("Lesson")},
                        "total": {"type": "integer"}}})}},
            "/api/schedule/lessons/{lesson}": {
                "get": _lesson_path("one lesson", None, _ref("Lesson")),
                "patch": _lesson_path(
                    "change title, students, recordingPolicy, room or seriesId",
                    {"type": "object"}, _ref("Lesson"), _409="bad_state")},
            "/api/schedule/lessons/{lesson}/reschedule": {
                "post": _lesson_path("new times (links of older revisions stop working)", {
                    "type": "object", "required": ["start", "end"], "properties": {
                        "start": {"type": "string"}, "end": {"type": "string"},
                        "timeZone": {"type": "string"}}}, _ref("LessonWithLinks"),
                    _409="bad_state, instructor_conflict")},
            "/api/schedule/lessons/{lesson}/substitute": {
                "post": _lesson_path("another instructor (older links stop working)", {
                    "type": "object", "required": ["instructor"],
                    "properties": {"instructor": _ref("Person")}}, _ref("LessonWithLinks"),
                    _409="bad_state, instructor_conflict")},
            "/api/schedule/lessons/{lesson}/cancel": {
                "post": _lesson_path("cancel (its room closes, links stop working)", {
                    "type": "object", "properties": {"reason": {"type": "string"}}},
                    _ref("Lesson"), _409="bad_state")},
            "/api/schedule/lessons/{lesson}/links": {
                "get": _lesson_path("every booked person's personal join link", None, {
                    "type": "object", "properties": {
                        "lessonId": {"type": "string"}, "revision": {"type": "integer"},
                        "links": {"type": "array", "items": _ref("Link")}}})},
            "/api/schedule/import": {
                "post": {"summary": "bulk import, idempotent by lesson id; bad rows "
                         "reported, good rows stored", "requestBody": {"required": True,
                         "content": {"application/json": {"schema": {"type": "object",
                                     "properties": {"bookings": {
                                         "type": "array", "items": _ref("Booking")}}}},
                                     "text/csv": {"schema": {"type": "string"}}}},
                         "responses": {**_ok(import_result),
                                       "413": {"description": "import_too_large",
                                               **_json(_ref("Error"))},
                                       "415": {"description": "not CSV or JSON",
                                               **_json(_ref("Error"))}}}},
            "/api/schedule/exceptions": {
                "get": {"summary": "the exception queue, newest first", "parameters": [
                    _query("state", "comma-separated states"),
                    _query("kind", "comma-separated kinds"), _query("lesson", "lesson id"),
                    _query("limit", "1..1000", "integer"), _query("offset", "skip", "integer")],
                    "responses": _ok({"type": "object", "properties": {
                        "exceptions": {"type": "array", "items": _ref("Exception")},
                        "total": {"type": "integer"}}})}},
            "/api/schedule/exceptions/{exception}/acknowledge": {
                "post": {"summary": "open → acknowledged", "parameters": [exc_path],
                         "requestBody": {"required": True, **_json(transition)},
                         "responses": {**_ok(_ref("Exception")),
                                       "404": {"description": "exception_not_found"},
                                       "409": {"description": "bad_state"}}}},
            "/api/schedule/exceptions/{exception}/resolve": {
                "post": {"summary": "open or acknowledged → resolved", "parameters": [exc_path],
                         "requestBody": {"required": True, **_json(transition)},
                         "responses": {**_ok(_ref("Exception")),
                                       "404": {"description": "exception_not_found"},
                                       "409": {"description": "bad_state"}}}},
            "/api/schedule/notifications": {
                "get": {"summary": "the notification log (reminders, exception emails)",
                        "parameters": [_query("lesson", "lesson id"),
                                       _query("kind", "reminder or exception"),
                                       _query("limit", "1..1000", "integer")],
                        "responses": _ok({"type": "object"})}},
            "/api/schedule/day": {
                "get": {"summary": "the operations page's day: lessons with live state "
                        "(participants, recording), the day's and week's rates",
                        "parameters": [_query("day", "YYYY-MM-DD (required)"),
                                       _query("tz", "IANA zone of the day"),
                                       _query("instructor", "identity"),
                                       _query("status", "comma-separated statuses"),
                                       _query("limit", "1..1000", "integer"),
                                       _query("offset", "skip", "integer")],
                        "responses": _ok({"type": "object", "properties": {
                            "lessons": {"type": "array", "items": {"type": "object"}},
                            "total": {"type": "integer"}, "today": _ref("Rates"),
                            "week": _ref("Rates"), "openExceptions": {"type": "integer"}}})}},
            "/api/schedule/at-risk": {
                "get": {"summary": "students absent or flagged in threshold of their last "
                        "window lessons", "parameters": [
                            _query("window", "lessons looked at (4)", "integer"),
                            _query("threshold", "missed or flagged (2)", "integer"),
                            _query("limit", "1..1000", "integer")],
                        "responses": _ok({"type": "object"})}},
            "/api/schedule/lessons/{lesson}/record": {
                "get": _lesson_path("the session record: report, recording, attendance, "
                                    "exceptions, notes", None, {"type": "object"})},
            "/api/schedule/lessons/{lesson}/brief": {
                "get": _lesson_path("the previous lesson of its series (or students), as the "
                                    "instructor's brief", None, {"type": "object"})},
            "/api/schedule/lessons/{lesson}/notes": {
                "put": _lesson_path("the instructor's notes on the lesson", {
                    "type": "object", "required": ["notes"],
                    "properties": {"notes": {"type": "string", "maxLength": 20000}}},
                    {"type": "object"})},
            "/api/schedule/operator-token": {
                "post": {"summary": "an operator token (API secret only): opens "
                         "/api/schedule/ and the operations page", "requestBody": {
                             "required": True, **_json({"type": "object", "required": ["name"],
                                                        "properties": {
                                                            "name": {"type": "string"},
                                                            "ttl": {"type": "integer"}}})},
                         "responses": _ok({"type": "object", "properties": {
                             "token": {"type": "string"}, "name": {"type": "string"}}},
                             "201", "made")}},
            "/api/schedule/whoami": {
                "get": {"summary": "who the credentials are (an operator's name, or "
                        "api-secret)", "responses": _ok({"type": "object"})}},
            "/api/schedule/openapi.json": {
                "get": {"summary": "this document", "responses": _ok({"type": "object"})}},
        },
    }
