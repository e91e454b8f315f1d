"""The HTTP API's error answer, shared by every route (docs/api.md):
``{"error": {"code", "message"}}`` with its status."""

from __future__ import annotations

from aiohttp import web


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
