"""HMAC-signed join tokens (JWT HS256), claims in the LiveKit style.

Claims: ``iss`` (API key), ``sub`` (identity), ``name``, ``room``, ``role``
(instructor/student/observer), ``grants`` {publish, subscribe, moderate, record}, ``iat``,
``nbf``, ``exp``; a personal lesson link's token (scheduler_bridge/links.py) also has
``lesson`` {``id``, ``rev``}: the booking revision it was made for, so that a reschedule or a
substitution makes the older links fail (the server's join gate checks it). An optional
``region`` says where the participant is (docs/cluster.md).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import jwt

from sfu.participant import ROLES, Grants

ALGORITHM = "HS256"
REGION_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: a cluster node's id (relay and via claims)
NODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

DEFAULT_GRANTS = {
    "instructor": Grants(publish=True, subscribe=True, moderate=True, record=True),
    "student": Grants(publish=True, subscribe=True, moderate=False, record=False),
    "observer": Grants(publish=False, subscribe=True, moderate=False, record=False),
}


class TokenError(Exception):
    code = "invalid_token"


class TokenExpired(TokenError):
    code = "token_expired"


class LinkRefused(TokenError):
    """A valid lesson link the booking no longer admits (``code`` says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class JoinClaims:
    room: str
    identity: str
    name: str
    role: str
    grants: Grants
    expires_at: int
    #: the lesson and booking revision of a personal lesson link ("" and 0 otherwise)
    lesson: str = ""
    lesson_rev: int = 0
    #: where the participant is (a cluster places a room its join opens there); "" = the
    #: region of the node it reached
    region: str = ""
    #: a relay session (docs/cluster.md, "Edge relays"): the edge node whose pages it
    #: carries media for; minted by that node with the cluster's shared secret
    relay: str = ""
    #: a participant whose page is on an edge node (its media served there): that node
    via: str = ""


def mint(
    api_key: str, secret: str, *, room: str, identity: str, name: str = "",
    role: str = "student", ttl_s: int = 6 * 3600, grants: Grants | None = None,
    now: float | None = None, not_before: int | None = None, expires_at: int | None = None,
    lesson: tuple[str, int] | None = None, region: str = "", relay: str = "", via: str = "",
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not room or not identity:
        raise ValueError("room and identity are required")
    g = grants or DEFAULT_GRANTS[role]
    t = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "iss": api_key, "sub": identity, "name": name or identity, "room": room, "role": role,
        "grants": {"publish": g.publish, "subscribe": g.subscribe, "moderate": g.moderate,
                   "record": g.record},
        "iat": t, "nbf": t - 5 if not_before is None else not_before,
        "exp": t + ttl_s if expires_at is None else expires_at,
    }
    if lesson is not None:
        claims["lesson"] = {"id": lesson[0], "rev": lesson[1]}
    if region:
        if not REGION_RE.match(region):
            raise ValueError("region must match [A-Za-z0-9_-]{1,32}")
        claims["region"] = region
    for name, node in (("relay", relay), ("via", via)):
        if node:
            if not NODE_RE.match(node):
                raise ValueError(f"{name} must be a node id ([A-Za-z0-9_.-]{{1,64}})")
            claims[name] = node
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(token: object, api_key: str, secret: str) -> JoinClaims:
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenError("token missing or not a string")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=api_key,
            options={"require": ["exp", "sub", "iss"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenExpired("token is not valid yet (nbf)") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    room, role = claims.get("room"), claims.get("role", "student")
    if not isinstance(room, str) or not room:
        raise TokenError("token has no room")
    if role not in ROLES:
        raise TokenError(f"token role {role!r} is not one of {ROLES}")
    g = claims.get("grants") or {}
    if not isinstance(g, dict):
        raise TokenError("token grants must be an object")
    d = DEFAULT_GRANTS[role]
    values = {}
    for name in ("publish", "subscribe", "moderate", "record"):
        value = g.get(name, getattr(d, name))
        if not isinstance(value, bool):
            raise TokenError(f"token grant {name!r} must be true or false")
        values[name] = value
    grants = Grants(**values)
    lesson, lesson_rev = "", 0
    if "lesson" in claims:
        link = claims["lesson"]
        if (not isinstance(link, dict) or not isinstance(link.get("id"), str)
                or not isinstance(link.get("rev"), int) or isinstance(link.get("rev"), bool)):
            raise TokenError("token lesson must be {id: string, rev: integer}")
        lesson, lesson_rev = link["id"], link["rev"]
    region = claims.get("region", "")
    if not isinstance(region, str) or region and not REGION_RE.match(region):
        raise TokenError("token region must match [A-Za-z0-9_-]{1,32}")
    nodes = {name: claims.get(name, "") for name in ("relay", "via")}
    for name, node in nodes.items():
        if not isinstance(node, str) or node and not NODE_RE.match(node):
            raise TokenError(f"token {name} must be a node id")
    return JoinClaims(room, str(claims["sub"]), str(claims.get("name") or claims["sub"]), role,
                      grants, int(claims["exp"]), lesson, lesson_rev, region,
                      nodes["relay"], nodes["via"])


OPERATOR_SCOPE = "operator"


def mint_operator(api_key: str, secret: str, name: str, ttl_s: int = 12 * 3600,
                  now: float | None = None) -> str:
    """A token for the operations page and the scheduling API (``/api/schedule/``), made
    with the API secret so that operators never hold the secret itself."""
    t = int(time.time() if now is None else now)
    return jwt.encode({"iss": api_key, "sub": name, "scope": OPERATOR_SCOPE, "iat": t,
                       "nbf": t - 5, "exp": t + ttl_s}, secret, algorithm=ALGORITHM)


def verify_operator(token: str, api_key: str, secret: str) -> str:
    """The operator's name, or :class:`TokenError`."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=api_key,
                            options={"require": ["exp", "sub", "iss"], "verify_iat": False})
    except jwt.ExpiredSignatureError:
        raise TokenExpired("operator token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid operator token: {exc}") from None
    if claims.get("scope") != OPERATOR_SCOPE:
        raise TokenError("not an operator token")
    return str(claims["sub"])
