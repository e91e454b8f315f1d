"""The server's side of ICE as an ICE-lite agent (RFC 8445 section 2.5), sans-IO.

A lite agent gathers only host candidates (the server's shared media ports), never sends
connectivity checks and is always the controlled agent: it answers the browser's checks
and takes the path the browser nominates. One :class:`IceLiteAgent` per media transport;
its adapter (:mod:`sfu.media_ports` + :class:`sfu.transport.LiteTransport`) feeds it each
STUN request with the path it arrived on and sends back what it returns.

A path is whatever the adapter uses to name where a datagram came from (a UDP remote
address on a shared socket, or one ICE-TCP connection): the agent only compares and keeps
them.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum

from . import stun

#: paths one transport may have validated at once (a browser checks a few candidate pairs;
#: beyond this, new ones are refused instead of growing the demultiplexing tables)
MAX_PATHS = 8
_UFRAG_ALPHABET = string.ascii_letters + string.digits


def new_credentials() -> tuple[str, str]:
    """A fresh (ufrag, pwd): 8 and 24 characters of [A-Za-z0-9] (RFC 8839 asks for at
    least 4 and 22; the ufrag is the demultiplexing key of the shared port)."""
    ufrag = "".join(secrets.choice(_UFRAG_ALPHABET) for _ in range(8))
    pwd = "".join(secrets.choice(_UFRAG_ALPHABET) for _ in range(24))
    return ufrag, pwd


def local_ufrag_of(username: str | None) -> str | None:
    """The part of a check's USERNAME (``<our ufrag>:<their ufrag>``) that names us."""
    if not username:
        return None
    ufrag, sep, _ = username.partition(":")
    return ufrag if sep else None


class Refusal(StrEnum):
    """Why a check was not accepted (a metric label: ``sfu_media_port_rejected_total``)."""

    NOT_A_REQUEST = "not_a_request"
    WRONG_USERNAME = "wrong_username"
    UNAUTHENTICATED = "unauthenticated"
    BAD_FINGERPRINT = "bad_fingerprint"
    ROLE_CONFLICT = "role_conflict"
    NO_PRIORITY = "no_priority"
    TOO_MANY_PATHS = "too_many_paths"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What to do with one connectivity check: send ``response`` (if any) back on the path
    it came from; ``accepted``: the path is the peer's (authenticated); ``refused``: why
    not; ``selected_changed``: :attr:`IceLiteAgent.selected` is another path now."""

    response: bytes | None
    accepted: bool
    refused: Refusal | None = None
    selected_changed: bool = False


class IceLiteAgent:
    """Answers one transport's connectivity checks; knows its validated paths and the one
    selected for sending (the nominated one, else the first validated)."""

    def __init__(self, ufrag: str, pwd: str) -> None:
        self.ufrag = ufrag
        self.pwd = pwd
        self._key = pwd.encode("utf-8")
        #: the peer's ufrag, once its description arrived (checks may come first)
        self.remote_ufrag: str | None = None
        #: validated paths -> when last checked (ms)
        self.paths: dict[Hashable, float] = {}
        self.selected: Hashable | None = None
        self.nominated = False
        #: an authenticated check arrived (the peer is alive) at this time (ms)
        self.last_check_ms = 0.0

    def handle(self, data: bytes, message: stun.Message, path: Hashable,
               mapped: tuple[str, int], now_ms: float) -> CheckOutcome:
        """One STUN message for this agent (its USERNAME names our ufrag, or it came on a
        validated path), received on ``path`` from ``mapped`` (the source address)."""
        if message.type != stun.BINDING_REQUEST:
            return CheckOutcome(None, False, Refusal.NOT_A_REQUEST)
        txid = message.transaction_id
        if not stun.fingerprint_ok(data, message):
            return CheckOutcome(None, False, Refusal.BAD_FINGERPRINT)
        username = message.username
        if local_ufrag_of(username) != self.ufrag or (
                self.remote_ufrag is not None
                and username != f"{self.ufrag}:{self.remote_ufrag}"):
            return CheckOutcome(stun.binding_error(txid, 401, "Unauthorized", None), False,
                                Refusal.WRONG_USERNAME)
        if not stun.integrity_ok(data, message, self._key):
            return CheckOutcome(stun.binding_error(txid, 401, "Unauthorized", None), False,
                                Refusal.UNAUTHENTICATED)
        if stun.PRIORITY not in message.attributes:
            return CheckOutcome(stun.binding_error(txid, 400, "Bad Request", self._key),
                                False, Refusal.NO_PRIORITY)
        if stun.ICE_CONTROLLED in message.attributes:
            # the peer thinks it is controlled too: a lite agent never controls, so the
            # peer must switch (RFC 8445 7.3.1.1; a full agent retries as controlling)
            return CheckOutcome(stun.binding_error(txid, 487, "Role Conflict", self._key),
                                False, Refusal.ROLE_CONFLICT)
        if path not in self.paths and len(self.paths) >= MAX_PATHS:
            return CheckOutcome(None, False, Refusal.TOO_MANY_PATHS)
        self.paths[path] = now_ms
        self.last_check_ms = now_ms
        before = self.selected
        if stun.USE_CANDIDATE in message.attributes:
            self.selected, self.nominated = path, True
        elif self.selected is None:
            self.selected = path  # tentative: DTLS may start before the nomination
        return CheckOutcome(stun.binding_success(txid, mapped, self._key), True,
                            selected_changed=self.selected != before)

    def forget(self, path: Hashable) -> bool:
        """``path`` is gone (its TCP connection closed); True if it was the selected one
        (the agent falls back to another validated path, if any)."""
        self.paths.pop(path, None)
        if path != self.selected:
            return False
        self.selected = next(iter(self.paths), None)
        self.nominated = False
        return True
