"""sfu.stun against aioice's STUN implementation (an independent one), and on garbage."""

from __future__ import annotations

import struct

import pytest
from aioice import stun as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu import stun
from tests.stun_reference import parse_checked

KEY = b"a-24-character-password!"
TXID = bytes(range(12))



def reference_check(*, key: bytes = KEY, username: str = "srvufrag:cli",
                    use_candidate: bool = True, fingerprint: bool = True) -> bytes:
    msg = ref.Message(message_method=ref.Method.BINDING, message_class=ref.Class.REQUEST,
                      transaction_id=TXID)
    msg.attributes["USERNAME"] = username
    msg.attributes["PRIORITY"] = 1853824767
    msg.attributes["ICE-CONTROLLING"] = 0x1122334455667788
    if use_candidate:
        msg.attributes["USE-CANDIDATE"] = None
    msg.add_message_integrity(key)
    if fingerprint:
        msg.add_fingerprint()
    return bytes(msg)


def test_reads_a_check_made_by_aioice() -> None:
    data = reference_check()
    assert stun.looks_like_stun(data)
    m = stun.parse(data)
    assert m.type == stun.BINDING_REQUEST and m.transaction_id == TXID
    assert m.username == "srvufrag:cli"
    assert struct.unpack("!I", m.attributes[stun.PRIORITY])[0] == 1853824767
    assert stun.USE_CANDIDATE in m.attributes and stun.ICE_CONTROLLING in m.attributes
    assert stun.integrity_ok(data, m, KEY)
    assert stun.fingerprint_ok(data, m)


def test_wrong_password_or_tampering_fails_integrity() -> None:
    data = reference_check()
    assert not stun.integrity_ok(data, stun.parse(data), b"another-password-24-long")
    tampered = bytearray(data)
    tampered[30] ^= 1  # inside USERNAME
    m = stun.parse(bytes(tampered))
    assert not stun.integrity_ok(bytes(tampered), m, KEY)
    assert not stun.fingerprint_ok(bytes(tampered), m)


def test_without_integrity_is_not_authenticated() -> None:
    msg = ref.Message(message_method=ref.Method.BINDING, message_class=ref.Class.REQUEST,
                      transaction_id=TXID)
    msg.attributes["USERNAME"] = "srvufrag:cli"
    data = bytes(msg)
    assert not stun.integrity_ok(data, stun.parse(data), KEY)


@pytest.mark.parametrize("addr", [("127.0.0.1", 50000), ("10.1.2.3", 1),
                                  ("2001:db8::7", 65535)])
def test_success_response_is_read_by_aioice(addr: tuple[str, int]) -> None:
    data = stun.binding_success(TXID, addr, KEY)
    m = parse_checked(data, KEY)  # checks integrity and fingerprint
    assert m.message_class == ref.Class.RESPONSE and m.transaction_id == TXID
    assert m.attributes["XOR-MAPPED-ADDRESS"] == addr
    ours = stun.parse(data)
    assert stun.integrity_ok(data, ours, KEY) and stun.fingerprint_ok(data, ours)


def test_error_responses_carry_the_code() -> None:
    data = stun.binding_error(TXID, 487, "Role Conflict", KEY)
    m = parse_checked(data, KEY)
    assert m.message_class == ref.Class.ERROR and m.attributes["ERROR-CODE"] == (
        487, "Role Conflict")
    unsigned = stun.binding_error(TXID, 401, "Unauthorized", None)
    assert parse_checked(unsigned).attributes["ERROR-CODE"] == (401, "Unauthorized")


def test_our_request_is_read_by_aioice() -> None:
    data = stun.binding_request(TXID, "a:b", KEY, priority=7, use_candidate=True,
                                controlling=5)
    m = parse_checked(data, KEY)
    assert m.attributes["USERNAME"] == "a:b" and m.attributes["PRIORITY"] == 7
    assert "USE-CANDIDATE" in m.attributes and m.attributes["ICE-CONTROLLING"] == 5


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 19, b"\x00\x01\x00\x00" + b"\x00" * 16,  # no magic cookie
    bytes.fromhex("0001000421 12a442") + bytes(12) + b"\x00\x06",  # length says 4, has 2
    bytes.fromhex("000100082112a442") + bytes(12) + bytes.fromhex("00060010") + bytes(4),
    bytes.fromhex("c00100002112a442") + bytes(12),  # top type bits set
    bytes.fromhex("000100182112a442") + bytes(12)  # MESSAGE-INTEGRITY of 16 bytes
    + bytes.fromhex("00080010") + bytes(16) + bytes(4),
    bytes(2000),
])
def test_malformed_messages_raise_stun_error(data: bytes) -> None:
    with pytest.raises(stun.StunError):
        stun.parse(data)


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_garbage_raises_only_stun_error(data: bytes) -> None:
    for candidate in (data, bytes.fromhex("00012112") + data,
                      struct.pack("!HHI", 1, max(0, len(data) - 20) & ~3, 0x2112A442) + data):
        try:
            m = stun.parse(candidate)
        except stun.StunError:
            continue
        stun.integrity_ok(candidate, m, KEY)
        stun.fingerprint_ok(candidate, m)
        _ = m.username
