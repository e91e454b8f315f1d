"""The compiled send step (sfu._fastpath) puts exactly the bytes of the Python path on the
wire: same header rewrite, same transport-wide sequence number, same SRTP."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import pylibsrtp
import pytest
from engines import COMPILED, fastpath

from sfu.payload import vp8_keyframe
from sfu.rtp_header import RtpHeaderError, build_id_map, header_length, rewrite_extension_ids

KEY = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80 master key + salt


def session(direction: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(policy=pylibsrtp.Policy(key=KEY, ssrc_type=direction))


def packet(payload: bytes = b"\x10" + bytes(range(200))) -> bytes:
    """Version 2, one-byte extensions: mid (id 9) and transport-cc (id 3, 2 bytes)."""
    ext = bytes([0x90, ord("v"), 0x31, 0, 0]) + b"\x00" * 3
    return (struct.pack("!BBHII", 0x90, 96, 1000, 123456, 0x11111111)
            + struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext + payload)


TWCC_OFF = 12 + 4 + 2 + 1  # the transport-cc value, after the mid element and its header


def python_path(tx: pylibsrtp.Session, pkt: bytes, b1: int, seq: int, ts: int, ssrc: int,
                twcc_seq: int) -> bytes:
    buf = bytearray(pkt)
    struct.pack_into("!BHII", buf, 1, b1, seq, ts, ssrc)
    if twcc_seq >= 0:
        struct.pack_into("!H", buf, TWCC_OFF, twcc_seq)
    return bytes(tx.protect(bytes(buf)))


@pytest.fixture
def sockets():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.settimeout(2)
    yield a, b
    a.close()
    b.close()


def test_the_compiled_step_is_built() -> None:
    assert COMPILED or os.environ.get("SFU_FASTPATH") == "0", (
        "sfu._fastpath is not built: pip install -e . (scripts/setup.sh) builds it")


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0: Python path only")
@pytest.mark.parametrize("twcc", [False, True])
def test_same_bytes_as_the_python_path(sockets, twcc: bool) -> None:
    a, b = sockets
    tx_c, tx_py, rx = (session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
                       session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
                       session(pylibsrtp.Policy.SSRC_ANY_INBOUND))
    fc = fastpath.connect(tx_c, a, b.getsockname())
    assert fc is not None
    conn = fc.ptr
    history = fc.enable_twcc(0xFFFE) if twcc else None  # numbering wraps after one packet
    for i in range(3):  # successive packets: the SRTP index advances alike
        pkt = packet(bytes([i]) * (100 + i))
        b1, seq, ts, ssrc = 0x80 | 111, (65534 + i) & 0xFFFF, 0xFFFFFFF0 + i, 0xCAFEBABE
        before = time.monotonic() * 1000.0
        sent = fastpath.send(conn, pkt, len(pkt), b1, seq, ts, ssrc, TWCC_OFF)
        after = time.monotonic() * 1000.0
        twcc_seq = (0xFFFF + i) & 0xFFFF if twcc else -1
        data, src = b.recvfrom(2048)
        assert src == a.getsockname()
        assert sent == len(data)
        assert data == python_path(tx_py, pkt, b1, seq, ts, ssrc, twcc_seq)
        plain = rx.unprotect(data)
        assert plain[1] == b1 and struct.unpack_from("!HII", plain, 2) == (seq, ts, ssrc)
        assert plain[12:TWCC_OFF] == pkt[12:TWCC_OFF]  # extensions untouched...
        assert plain[TWCC_OFF + 2:] == pkt[TWCC_OFF + 2:]  # ...and the payload
        want = pkt[TWCC_OFF:TWCC_OFF + 2] if twcc_seq < 0 else struct.pack("!H", twcc_seq)
        assert plain[TWCC_OFF:TWCC_OFF + 2] == want
        if history is not None:  # recorded as sfu.twcc.SendHistory would: time, clear size
            assert history.last_assigned == twcc_seq
            sent_ms, size = history.lookup(twcc_seq)
            assert before <= sent_ms <= after and size == len(pkt)
    if history is not None:
        assert history.lookup(0xFFFE) is None  # before the first one: never sent
        assert history.lookup(2) is None


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0: Python path only")
def test_errors_are_reported_not_raised(sockets) -> None:
    a, b = sockets
    fc = fastpath.connect(session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND), a, b.getsockname())
    assert fc is not None
    conn = fc.ptr
    assert fastpath.send(conn, b"\x80" * 11, 11, 0, 0, 0, 0, 0) == -1  # too short
    big = packet(bytes(1600))
    assert fastpath.send(conn, big, len(big), 0, 0, 0, 0, 0) == -1  # too long
    port0 = fastpath.connect(session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND), a, ("127.0.0.1", 0))
    assert port0 is not None
    pkt = packet()
    assert fastpath.send(port0.ptr, pkt, len(pkt), 0, 0, 0, 0, 0) == -3  # sendto refused
    ok = fastpath.send(conn, pkt, len(pkt), 0x80 | 96, 1, 2, 3, 0)
    assert ok == len(b.recvfrom(2048)[0])  # the connection still works


def test_ipv6_addresses_are_encoded() -> None:
    raw = fastpath._address(("::1", 5004))
    assert len(raw) == 28 and struct.unpack_from("!H", raw, 2)[0] == 5004
    raw4 = fastpath._address(("10.0.0.1", 9))
    assert len(raw4) == 16 and raw4[4:8] == bytes([10, 0, 0, 1])


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0")
def test_the_compiled_unprotect_gives_what_pylibsrtp_gives() -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    reference = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
    rx = fastpath.receiver(session(pylibsrtp.Policy.SSRC_ANY_INBOUND))
    assert rx is not None
    for seq in range(1000, 1010):
        clear = packet()
        clear = clear[:2] + struct.pack("!H", seq) + clear[4:]
        wire = tx.protect(clear)
        assert rx.unprotect(wire) == reference.unprotect(wire) == clear
    # a replay, a forged tag, garbage and a runt: refused (None), never raised
    assert rx.unprotect(wire) is None
    forged = bytearray(tx.protect(packet()[:2] + struct.pack("!H", 1020) + packet()[4:]))
    forged[-1] ^= 1
    assert rx.unprotect(bytes(forged)) is None
    assert rx.unprotect(bytes([0x80]) + os.urandom(300)) is None
    assert rx.unprotect(b"\x80\x60") is None
    assert rx.unprotect(b"\x80" * 3000) is None


def _random_packet(rng: random.Random) -> bytes:
    """A valid RTP header (random CSRCs), often a header extension block of either profile
    with random, sometimes malformed elements, then a payload starting with a random VP8
    payload descriptor (sometimes a keyframe start)."""
    cc = rng.choice([0, 0, 1, 2])
    ext = b""
    x = rng.random() < 0.8
    if x:
        body = bytes(rng.choice([0, rng.randrange(256)]) for _ in range(rng.randrange(0, 20)))
        if rng.random() < 0.5:  # well-formed one-byte elements
            body = b"".join(bytes([(rng.randrange(1, 15) << 4) | (ln - 1)]) + os.urandom(ln)
                            for ln in (rng.randrange(1, 5) for _ in range(rng.randrange(4))))
        body += bytes(-len(body) % 4)
        profile = rng.choice([0xBEDE, 0xBEDE, 0x1000, 0x1003, 0x1234])
        words = len(body) // 4 if rng.random() < 0.9 else len(body) // 4 + 3  # overlong
        ext = struct.pack("!HH", profile, words) + body
    first = 0x80 | (0x10 if x else 0) | cc
    desc = bytes([rng.choice([0x10, 0x90, 0x00, 0x11]), rng.randrange(256), rng.randrange(256),
                  rng.randrange(256), rng.choice([0x00, 0x01]), rng.randrange(256)])
    payload = desc[:rng.randrange(0, 7)] + os.urandom(rng.randrange(0, 30))
    return (struct.pack("!BBHII", first, rng.randrange(128), 1, 2, 3) + os.urandom(4 * cc)
            + ext + payload)


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0")
def test_the_compiled_rewrite_and_keyframe_test_match_python() -> None:
    rng = random.Random(7741)
    for _ in range(5000):
        pkt = _random_packet(rng)
        try:
            offset = header_length(pkt)
        except RtpHeaderError:
            continue  # on_rtp only ever sees packets that passed header_length
        id_map = build_id_map({i: rng.choice([0, 1, 3, 5, i]) for i in range(1, 15)})
        pt = rng.randrange(128)
        expected = bytearray(pkt)
        want = rewrite_extension_ids(expected, id_map, 3, 1)
        expected[1] = (expected[1] & 0x80) | pt
        got = fastpath.rewrite(pkt, len(pkt), id_map, 3, 1, pt, fastpath.SCRATCH)
        assert got == want, pkt.hex()
        assert fastpath.unpack(fastpath.SCRATCH, len(pkt)) == bytes(expected), pkt.hex()
        assert bool(fastpath.vp8_keyframe(pkt, len(pkt))) == vp8_keyframe(pkt, offset), pkt.hex()


def test_the_compiled_cache_answers_as_the_python_one() -> None:
    """Random packets of random sizes (up to the largest the compiled cache keeps, and one
    beyond it) over more than a capacity's worth of numbers, wrapping slots: every lookup,
    hit or miss, answers the same as :class:`RetransmitCache`, and so do the counters."""
    from sfu.retransmit import RetransmitCache

    rng = random.Random(7)
    compiled, python = fastpath.CompiledCache(), RetransmitCache()
    for ext in range(5000):
        if rng.random() < 0.1:
            continue  # never arrived
        size = rng.choice([1, 20, 200, 1200, 1500, 1536, rng.randrange(1, 1537)])
        data = rng.randbytes(size)
        compiled.put(ext, data)
        python.put(ext, data)
        for probe in (ext, ext - rng.randrange(1, 1100), ext + 1, -1):
            assert compiled.get(probe) == python.get(probe), probe
    assert (compiled.hits, compiled.misses) == (python.hits, python.misses)
    assert compiled.hits > 1000 and compiled.misses > 1000
    # longer than any packet the server takes in: not kept, and the slot no longer holds
    # the older packet either (a later lookup of that older number must not find it)
    compiled.put(5000, b"x" * 10)
    compiled.put(5000 + 1024, b"y" * 1537)
    assert compiled.get(5000) is None and compiled.get(5000 + 1024) is None


def _io_uring_allowed() -> bool:
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return f.read().strip() == "0"
    except OSError:
        return False


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0: Python path only")
def test_a_fanout_sends_every_subscriber_its_own_packet(sockets) -> None:
    """300 subscribers (more than one send batch holds), one of them twice on the same
    connection (its buffer must be sent before it is reused), one whose address the kernel
    refuses: every other subscriber gets its packet, rewritten and protected as the single
    send does, and the counters say what happened."""
    a, b = sockets
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tx, rx = (session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
              session(pylibsrtp.Policy.SSRC_ANY_INBOUND))
    conns = [fastpath.connect(tx, a, b.getsockname()) for _ in range(299)]
    refused = fastpath.connect(tx, a, ("127.0.0.1", 0))
    states, dests = [], []
    for i in range(301):
        state = fastpath.forwarder_state()
        state.source_ssrc = 0x1234
        state.seq_offset = i
        state.ts_offset = 1000 * i
        d = fastpath.dest(state, 0x10000 + i)
        conn = refused if i == 150 else conns[0 if i == 300 else min(i, 298)]
        assert conn is not None
        d.conn = conn.ptr
        states.append(state)
        dests.append(d)
    pkt = packet(bytes(range(256)) * 4)
    left = fastpath.fanout(pkt, len(pkt), 0x80 | 96, 0x1234, 70000, 5000, 1.0, 0,
                           fastpath.dest_array(dests), len(dests))
    assert left == 0
    got = {}
    for _ in range(300):
        plain = rx.unprotect(b.recvfrom(2048)[0])
        seq, ts, ssrc = struct.unpack_from("!HII", plain, 2)
        got[ssrc - 0x10000] = (seq, ts, plain[12:])
    want = {i: ((70000 + i) & 0xFFFF, 5000 + 1000 * i, pkt[12:])
            for i in range(301) if i != 150}
    assert got == want
    assert [d.packets for d in dests] == [0 if i == 150 else 1 for i in range(301)]
    assert [d.errors for d in dests] == [1 if i == 150 else 0 for i in range(301)]
    if os.environ.get("SFU_BATCH_SEND") == "0":
        assert fastpath.batch_state() == "sendto"
    elif _io_uring_allowed():
        assert fastpath.batch_state() == "io_uring"


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0: Python path only")
def test_a_fanout_to_one_subscriber_is_sent_and_counted(sockets) -> None:
    """A packet with a single subscriber (a student's video, seen by the instructor only)
    goes out on its own: delivered to a good address, counted as an error at a refused
    one; two subscribers on one connection both get theirs."""
    a, b = sockets
    tx, rx = (session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
              session(pylibsrtp.Policy.SSRC_ANY_INBOUND))
    good = fastpath.connect(tx, a, b.getsockname())
    refused = fastpath.connect(tx, a, ("127.0.0.1", 0))
    assert good is not None and refused is not None

    states = []  # a dest's forwarder state lives as long as the caller keeps it

    def dest(conn: fastpath.Connection, ssrc: int) -> object:
        state = fastpath.forwarder_state()
        state.source_ssrc = 0x1234
        states.append(state)
        d = fastpath.dest(state, ssrc)
        d.conn = conn.ptr
        return d

    pkt = packet(b"student video")
    sent = []
    for group in ([dest(good, 0x51)], [dest(refused, 0x52)],
                  [dest(good, 0x53), dest(good, 0x54)]):
        fastpath.fanout(pkt, len(pkt), 0x80 | 96, 0x1234, 7, 500, 1.0, 0,
                        fastpath.dest_array(group), len(group))
        sent += group
    got = [struct.unpack_from("!I", rx.unprotect(b.recvfrom(2048)[0]), 8)[0]
           for _ in range(3)]
    assert got == [0x51, 0x53, 0x54]
    assert [(d.packets, d.errors) for d in sent] == [(1, 0), (0, 1), (1, 0), (1, 0)]


@pytest.mark.skipif(not COMPILED or os.environ.get("SFU_BATCH_SEND") == "0",
                    reason="runs the test above without batching")
def test_the_fanout_without_batching_sends_the_same() -> None:
    """The same fan-out with sendto per packet (a kernel without io_uring, or one that
    fails), in a process of its own: the choice is made once per process."""
    import subprocess
    import sys

    env = dict(os.environ, SFU_BATCH_SEND="0")
    name = f"{__file__}::test_a_fanout_sends_every_subscriber_its_own_packet"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           name], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
