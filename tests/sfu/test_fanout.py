"""The compiled fan-out forwards exactly as the Python path does: the same packets, sequence
numbers, timestamps and SSRCs, across a source change, a late packet and a resync, with the
rare cases handed back to Python and the plans rebuilt when the topology changes."""

from __future__ import annotations

import socket
import struct

import pylibsrtp
import pytest
from engines import COMPILED, fastpath
from test_track import FakeTransport, rtp

from sfu import codecs
from sfu.track import PublishedTrack, Subscription

pytestmark = pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0")

KEY = bytes(range(30))


class WireTransport:
    """A downstream whose packets really go out: the compiled connection (what the fan-out
    uses) and, for what is left to Python, ``send_rewritten`` through the same session."""

    def __init__(self) -> None:
        self.tx = pylibsrtp.Session(policy=pylibsrtp.Policy(
            key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self.rx = pylibsrtp.Session(policy=pylibsrtp.Policy(
            key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.inp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.bind(("127.0.0.1", 0))
        self.inp.bind(("127.0.0.1", 0))
        self.inp.settimeout(2)
        self.conn = fastpath.connect(self.tx, self.out, self.inp.getsockname())
        assert self.conn is not None
        self.fast_connection = self.conn.ptr
        self.twcc_history = None
        self.python_sends = 0

    def send_rewritten(self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int,
                       twcc_off: int = 0) -> bool:
        self.python_sends += 1
        return fastpath.send(self.conn.ptr, packet, len(packet), b1, seq, ts, ssrc,
                             twcc_off) > 0

    def send_rtcp(self, packet: bytes) -> bool:
        return True

    def received(self, n: int) -> list[bytes]:
        return [bytes(self.rx.unprotect(self.inp.recvfrom(2048)[0])) for _ in range(n)]

    def close(self) -> None:
        self.out.close()
        self.inp.close()


def make(down: object, ext_map: dict[int, int] | None = None
         ) -> tuple[PublishedTrack, Subscription]:
    track = PublishedTrack(
        track_id="TR", participant_id="PA", kind="audio", source="microphone", mid="0",
        codec=codecs.OPUS, publisher_pt=111, ext_map=ext_map or {}, ssrc=1111, rtx_ssrc=None,
        upstream=FakeTransport(), receiver_ssrc=1, keyframe_interval_ms=500)  # type: ignore[arg-type]
    sub = Subscription(track, down, out_ssrc=0xAAAA, rtx_ssrc=0xBBBB, rtx_pt=None,  # type: ignore[arg-type]
                       first_seq=65530, first_ts=0xFFFFFF00)
    track.add_subscription(sub)
    sub.accepted = True
    sub.active = True
    return track, sub


def script() -> list[tuple[str, object]]:
    """Packets (source seq, ssrc) and events, in order."""
    steps: list[tuple[str, object]] = [("pkt", (s, 1111)) for s in range(100, 140)]
    steps.append(("pkt", (120, 1111)))  # duplicate: dropped at ingress
    steps += [("pkt", (s, 2222)) for s in range(7, 30)]  # the publisher's SSRC changed
    steps.append(("pkt", (29 - 5, 1111)))  # a straggler of the old source: not forwarded
    steps.append(("mute", True))
    steps += [("pkt", (s, 2222)) for s in range(30, 35)]  # muted: nothing
    steps.append(("mute", False))
    steps += [("pkt", (s, 2222)) for s in range(35, 80)]  # resync: continuous output
    return steps


def run(track: PublishedTrack) -> int:
    sent_before = 0
    now = 0.0
    for kind, arg in script():
        now += 20.0
        if kind == "mute":
            track.set_muted(bool(arg), now)
            continue
        seq, ssrc = arg  # type: ignore[misc]
        packet = rtp(seq, ssrc=ssrc, payload=struct.pack("!HI", seq, ssrc) * 10)
        track.on_rtp(packet, ssrc, seq, seq * 960, now)
        sent_before += 1
    return sent_before


def test_compiled_fanout_matches_the_python_path() -> None:
    wire = WireTransport()
    try:
        c_track, c_sub = make(wire)
        py_down = FakeTransport()
        py_track, py_sub = make(py_down)
        py_sub.dest = None  # this one takes the Python path for every packet
        py_track.invalidate_plans()
        run(c_track)
        run(py_track)
        expected = py_down.rtp
        assert len(expected) == 40 + 23 + 45  # not the duplicate, straggler or muted ones
        got = wire.received(len(expected))
        assert [p[1:] for p in got] == [p[1:] for p in expected]  # headers and payloads
        assert c_sub.stats.packets == len(expected) == py_sub.stats.packets
        # the steady packets went through the C loop; only switches/resyncs came back
        assert 0 < wire.python_sends <= 3
        assert c_sub.forwarder.forwarded == py_sub.forwarder.forwarded
        assert c_sub.forwarder.last_out_ext == py_sub.forwarder.last_out_ext
    finally:
        wire.close()


def test_plans_follow_the_topology() -> None:
    wire = WireTransport()
    try:
        track, sub = make(wire)
        for s in range(5):
            track.on_rtp(rtp(s), 1111, s, s * 960, s * 20.0)
        assert len(wire.received(5)) == 5
        sub.active = False  # e.g. the subscriber transport is being replaced
        for s in range(5, 10):
            track.on_rtp(rtp(s), 1111, s, s * 960, s * 20.0)
        sub.active = True
        sub.forwarder.resync()
        track.on_rtp(rtp(10), 1111, 10, 10 * 960, 200.0)
        got = wire.received(1)  # nothing was sent while inactive: the next one is this
        assert struct.unpack_from("!H", got[0], 2)[0] == (65530 + 5) & 0xFFFF
        track.remove_subscription(sub)
        track.on_rtp(rtp(11), 1111, 11, 11 * 960, 220.0)
        wire.inp.settimeout(0.2)
        with pytest.raises(TimeoutError):
            wire.inp.recvfrom(2048)
    finally:
        wire.close()


def test_a_downstream_route_change_reaches_the_plans_through_the_subscription() -> None:
    """A transport whose compiled connection goes away (failed, closed) tells the
    subscriptions sending there; their tracks' plans are made again, so the next packet is
    not sent on the old connection. A change to one track leaves other tracks' plans."""
    wire = WireTransport()
    wire.route_listeners = []  # type: ignore[attr-defined]
    try:
        track, sub = make(wire)
        other, _ = make(FakeTransport())
        for s in range(3):
            track.on_rtp(rtp(s), 1111, s, s * 960, s * 20.0)
            other.on_rtp(rtp(s), 1111, s, s * 960, s * 20.0)
        assert len(wire.received(3)) == 3
        sends = wire.python_sends
        others_plan = other.layers[0].plan
        assert others_plan is not None and track.layers[0].plan is not None
        assert wire.route_listeners == [sub._route_changed]  # type: ignore[attr-defined]
        wire.fast_connection = None  # as MediaTransport does when its path fails...
        for listener in wire.route_listeners:  # type: ignore[attr-defined]
            listener()  # ...and then tells its listeners
        assert track.layers[0].plan is None and other.layers[0].plan is others_plan
        track.on_rtp(rtp(3), 1111, 3, 3 * 960, 60.0)
        assert wire.python_sends == sends + 1  # the Python path: no compiled connection
        assert len(wire.received(1)) == 1
        sub.close()
        assert wire.route_listeners == []  # type: ignore[attr-defined]
    finally:
        wire.close()


def test_transport_cc_subscribers_stay_in_the_compiled_loop() -> None:
    """A subscriber doing transport-cc (every browser) is served by the C loop too: each
    packet gets the connection's next transport-wide number, recorded for the feedback."""
    wire = WireTransport()
    try:
        history = wire.conn.enable_twcc()
        wire.twcc_history = history
        track, sub = make(wire, ext_map={5: codecs.TWCC_ID})  # the publisher's id 5
        n = 30
        for s in range(n):
            ext = bytes([(5 << 4) | 1, 0xAB, 0xCD, 0])  # transport-cc, 2 bytes, padding
            pkt = (struct.pack("!BBHII", 0x90, 111, s, s * 960, 1111)
                   + struct.pack("!HH", 0xBEDE, 1) + ext + bytes([s]) * 50)
            track.on_rtp(pkt, 1111, s, s * 960, s * 20.0)
        got = wire.received(n)
        twcc_off = 12 + 4 + 1
        assert [struct.unpack_from("!H", p, twcc_off)[0] for p in got] == list(range(1, n + 1))
        assert all(p[twcc_off - 1] >> 4 == codecs.TWCC_ID for p in got)  # id rewritten
        assert history.last_assigned == n
        assert all(history.lookup(k)[1] == len(got[0]) for k in range(1, n + 1))
        assert wire.python_sends <= 1  # the first packet (the forwarder's start) at most
    finally:
        wire.close()
