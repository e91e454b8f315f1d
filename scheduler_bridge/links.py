"""Personal join links of a lesson, and the check that admits them (sans-IO).

Each booked person gets a join token of the lesson's room whose ``nbf``/``exp`` frame the
lesson (from ``provision_lead_s`` before the start to ``close_after_s`` after the end) and
whose ``lesson`` claim names the booking revision. A reschedule or a substitution bumps the
revision, so :func:`check` refuses the older links with ``link_superseded``; a person taken
off the booking gets ``not_booked``, a cancelled lesson ``lesson_cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from signalling.tokens import JoinClaims, LinkRefused, mint

from .booking import Booking, Status


@dataclass(frozen=True, slots=True)
class LinkParams:
    api_key: str
    api_secret: str
    base_url: str
    lead_s: float
    close_after_s: float


def window(booking: Booking, params: LinkParams) -> tuple[int, int]:
    return (int(booking.start_ts - params.lead_s),
            int(booking.end_ts + params.close_after_s))


def links(booking: Booking, params: LinkParams) -> list[dict[str, Any]]:
    """Every booked person's link: ``{identity, name, role, email, url, token, notBefore,
    expiresAt}``. The same for one booking revision whenever it is made (its ``iat`` is its
    ``nbf``), so a reminder carries the very link the booking answer gave."""
    nbf, exp = window(booking, params)
    out = []
    for person, role in booking.people():
        token = mint(params.api_key, params.api_secret, room=booking.lesson_id,
                     identity=person.id, name=person.name, role=role, now=nbf,
                     not_before=nbf, expires_at=exp,
                     lesson=(booking.lesson_id, booking.revision))
        out.append({"identity": person.id, "name": person.name, "role": role,
                    "email": person.email, "token": token,
                    "url": f"{params.base_url.rstrip('/')}/?token={quote(token)}",
                    "notBefore": nbf, "expiresAt": exp, "revision": booking.revision})
    return out


def check(claims: JoinClaims, booking: Booking | None) -> None:
    """Admit a lesson link's claims, or raise :class:`LinkRefused` with the reason."""
    if booking is None:
        raise LinkRefused("lesson_not_found", f"lesson {claims.lesson!r} is not booked")
    if claims.room != booking.lesson_id:
        raise LinkRefused("invalid_token", "the link's room is not its lesson's room")
    if booking.status == Status.CANCELLED:
        raise LinkRefused("lesson_cancelled", f"lesson {booking.title!r} was cancelled")
    if booking.status in (Status.ENDED, Status.NO_SHOW):
        raise LinkRefused("lesson_ended", f"lesson {booking.title!r} is over")
    if claims.lesson_rev != booking.revision:
        raise LinkRefused("link_superseded", "this link was replaced: the lesson was "
                          "rescheduled or its instructor changed since it was sent; use the "
                          "newest link")
    role = booking.role_of(claims.identity)
    if role is None:
        raise LinkRefused("not_booked", f"{claims.identity!r} is no longer booked for this "
                          "lesson")
    if role != claims.role:
        raise LinkRefused("link_superseded", "this link was made for another role in the "
                          "lesson; use the newest link")
