"""STUN messages (RFC 5389) as far as an ICE-lite agent needs them (sans-IO, bytes in/out).

Reads a message's header and attributes without trusting any length in it, checks
MESSAGE-INTEGRITY (short-term credentials: HMAC-SHA1 keyed with the ICE password) and
FINGERPRINT, and writes binding responses. Everything that reads outside input raises
:class:`StunError` (never anything else) on a malformed message.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from dataclasses import dataclass
from hashlib import sha1
from ipaddress import ip_address

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")

# message types (method binding, four classes)
BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

# attribute types
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

_FINGERPRINT_XOR = 0x5354554E
#: a STUN message this agent reads is small; a datagram of more is not one of ours
MAX_MESSAGE_BYTES = 1280


class StunError(ValueError):
    """Not a well-formed STUN message."""


@dataclass(frozen=True, slots=True)
class Message:
    type: int
    transaction_id: bytes
    #: attribute type -> value (the first of each type; later repeats are ignored)
    attributes: dict[int, bytes]
    #: where MESSAGE-INTEGRITY's header starts in the datagram (-1: absent)
    integrity_offset: int
    #: where FINGERPRINT's header starts (-1: absent)
    fingerprint_offset: int

    @property
    def username(self) -> str | None:
        raw = self.attributes.get(USERNAME)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None


def looks_like_stun(data: bytes) -> bool:
    """The cheap demultiplexing test (RFC 7983: first byte 0..3, and the magic cookie)."""
    return (len(data) >= 20 and data[0] < 4
            and data[4:8] == b"\x21\x12\xa4\x42")


def parse(data: bytes) -> Message:
    """The message in ``data``; :class:`StunError` if it is not a well-formed one."""
    n = len(data)
    if n < 20 or n > MAX_MESSAGE_BYTES:
        raise StunError(f"a STUN message is 20..{MAX_MESSAGE_BYTES} bytes, not {n}")
    mtype, length, cookie, txid = HEADER.unpack_from(data)
    if mtype & 0xC000 or cookie != MAGIC_COOKIE:
        raise StunError("not a STUN message (type bits or magic cookie)")
    if length != n - 20 or length % 4:
        raise StunError("the STUN length field does not match the datagram")
    attrs: dict[int, bytes] = {}
    integrity = fingerprint = -1
    pos = 20
    while pos < n:
        if pos + 4 > n:
            raise StunError("truncated STUN attribute header")
        atype, alen = _ATTR.unpack_from(data, pos)
        end = pos + 4 + alen
        if end > n:
            raise StunError("a STUN attribute runs past the message")
        if fingerprint >= 0:
            raise StunError("attributes after FINGERPRINT")
        if integrity >= 0 and atype != FINGERPRINT:
            pos = end + (-alen % 4)
            continue  # after MESSAGE-INTEGRITY only FINGERPRINT counts (RFC 5389 15.4)
        if atype == MESSAGE_INTEGRITY:
            if alen != 20:
                raise StunError("MESSAGE-INTEGRITY is 20 bytes")
            integrity = pos
        elif atype == FINGERPRINT:
            if alen != 4:
                raise StunError("FINGERPRINT is 4 bytes")
            fingerprint = pos
        attrs.setdefault(atype, data[pos + 4:end])
        pos = end + (-alen % 4)
    if pos != n:
        raise StunError("STUN attribute padding runs past the message")
    return Message(mtype, txid, attrs, integrity, fingerprint)


def integrity_ok(data: bytes, message: Message, key: bytes) -> bool:
    """MESSAGE-INTEGRITY is present and right for ``key`` (the ICE password)."""
    off = message.integrity_offset
    if off < 0:
        return False
    covered = bytearray(data[:off])
    struct.pack_into("!H", covered, 2, off + 24 - 20)
    expected = hmac.new(key, bytes(covered), sha1).digest()
    return hmac.compare_digest(expected, data[off + 4:off + 24])


def fingerprint_ok(data: bytes, message: Message) -> bool:
    """FINGERPRINT is absent (it is optional for us to receive) or right."""
    off = message.fingerprint_offset
    if off < 0:
        return True
    covered = bytearray(data[:off])
    struct.pack_into("!H", covered, 2, off + 8 - 20)
    expected = (zlib.crc32(bytes(covered)) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
    return bool(struct.unpack_from("!I", data, off + 4)[0] == expected)


def _attr(atype: int, value: bytes) -> bytes:
    return _ATTR.pack(atype, len(value)) + value + b"\x00" * (-len(value) % 4)


def _xor_address(addr: tuple[str, int], txid: bytes) -> bytes:
    ip = ip_address(addr[0])
    port = addr[1] ^ (MAGIC_COOKIE >> 16)
    if ip.version == 4:
        packed = int(ip) ^ MAGIC_COOKIE
        return struct.pack("!BBHI", 0, 1, port, packed)
    mask = int.from_bytes(struct.pack("!I", MAGIC_COOKIE) + txid, "big")
    return struct.pack("!BBH", 0, 2, port) + (int(ip) ^ mask).to_bytes(16, "big")


def _finish(mtype: int, txid: bytes, body: bytes, key: bytes | None) -> bytes:
    """Header + ``body`` + MESSAGE-INTEGRITY (with ``key``) + FINGERPRINT."""
    if key is not None:
        head = HEADER.pack(mtype, len(body) + 24, MAGIC_COOKIE, txid)
        mac = hmac.new(key, head + body, sha1).digest()
        body += _attr(MESSAGE_INTEGRITY, mac)
    head = HEADER.pack(mtype, len(body) + 8, MAGIC_COOKIE, txid)
    crc = (zlib.crc32(head + body) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
    return head + body + _attr(FINGERPRINT, struct.pack("!I", crc))


def binding_success(txid: bytes, mapped: tuple[str, int], key: bytes) -> bytes:
    """A binding success response telling the peer its address, signed with ``key``."""
    return _finish(BINDING_SUCCESS, txid,
                   _attr(XOR_MAPPED_ADDRESS, _xor_address(mapped, txid)), key)


def binding_error(txid: bytes, code: int, reason: str, key: bytes | None) -> bytes:
    """A binding error response (400 bad request, 401 unauthorized, 487 role conflict);
    signed when the request was authenticated (``key``)."""
    value = struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")
    return _finish(BINDING_ERROR, txid, _attr(ERROR_CODE, value), key)


def binding_request(txid: bytes, username: str, key: bytes, *, priority: int = 1,
                    use_candidate: bool = False, controlling: int | None = None) -> bytes:
    """A connectivity check as a full ICE agent sends it (for tests and bench clients)."""
    body = _attr(USERNAME, username.encode("utf-8")) + _attr(PRIORITY,
                                                            struct.pack("!I", priority))
    if use_candidate:
        body += _attr(USE_CANDIDATE, b"")
    if controlling is not None:
        body += _attr(ICE_CONTROLLING, controlling.to_bytes(8, "big"))
    return _finish(BINDING_REQUEST, txid, body, key)
