"""Time-limited TURN credentials for each participant: the TURN REST API convention that
coturn's ``use-auth-secret`` + ``static-auth-secret`` checks (username
``<unix expiry>:<identity>``, password base64(HMAC-SHA1(secret, username))), so the shared
secret never leaves the server and a leaked credential dies with its expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from sfu.config import TurnConfig


def credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers(turn: TurnConfig, identity: str, now: float | None = None
                ) -> list[dict[str, Any]]:
    """The ``iceServers`` a participant's peer connections use (``[]`` without TURN)."""
    if not turn.urls:
        return []
    stun = [u for u in turn.urls if u.startswith("stun:")]
    relays = [u for u in turn.urls if not u.startswith("stun:")]
    out: list[dict[str, Any]] = []
    if stun:
        out.append({"urls": stun})
    if relays:
        expiry = int(time.time() if now is None else now) + turn.ttl_s
        username = f"{expiry}:{identity}"
        out.append({"urls": relays, "username": username,
                    "credential": credential(turn.secret, username)})
    return out
