"""The compiled ingress step (``fastpath.ingress``) does what the Python ingress path does:
the same forwarded packets, counters, sequence state, retransmission cache, NACKs,
transport-cc numbers and audio levels, for a script with gaps, reordering, keyframes, a
mute, a paused subscriber, an SSRC change and a sequence wrap; and it takes the steady
packets itself, leaving the rare ones to Python."""

from __future__ import annotations

import random
import struct
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import RTCCertificate
from engines import COMPILED, fastpath
from test_fanout import KEY, WireTransport
from test_track import FakeTransport

from sfu import codecs
from sfu.publisher import PublisherSide
from sfu.sequence import SequenceTracker
from sfu.track import PublishedTrack, Subscription
from sfu.transport import MediaTransport
from sfu.twcc import TwccRecorder

pytestmark = pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0")

TWCC_EXT, LEVEL_EXT = 5, 2  # the publisher's extension ids (mapped to the canonical ones)
SSRC_A, SSRC_B = 1111, 2222


def window_of(state: Any) -> int:
    return sum(int(state.window[i]) << (64 * i) for i in range(8))


def test_the_compiled_sequence_tracker_matches_the_python_one() -> None:
    rnd = random.Random(7)
    for _ in range(40):
        py, c = SequenceTracker(90000), SequenceTracker(
            90000, fastpath.sequence_state(90000), fastpath.sequence_update)
        seq = rnd.randrange(65536)
        now = 0.0
        for _ in range(400):
            r = rnd.random()
            if r < 0.7:
                seq = (seq + 1) & 0xFFFF
                s = seq
            elif r < 0.8:
                seq = (seq + rnd.randrange(2, 100)) & 0xFFFF  # a gap (NACKed up to 64)
                s = seq
            elif r < 0.9:
                s = (seq - rnd.randrange(0, 600)) & 0xFFFF  # late, duplicate or too old
            elif r < 0.95:
                s = rnd.randrange(65536)  # anywhere: a restart after two in a row
            else:
                seq = (seq + 20000 + rnd.randrange(20000)) & 0xFFFF  # far ahead
                s = seq
            now += rnd.random() * 40
            ts = (s * 3000 + rnd.randrange(-900, 900)) & 0xFFFFFFFF
            assert c.update(s, ts, now) == py.update(s, ts, now)
            assert c.missing == py.missing
        for name in ("base_ext", "max_ext", "received", "duplicates", "late", "restarts",
                     "jitter", "expected", "lost"):
            assert getattr(c, name) == getattr(py, name), name
        assert window_of(c.state) == py.state.window
        assert c.report_block() == py.report_block()


class Owner:
    """The publishing participant's side of ingress, with the participant's own methods."""

    ingress_sources = PublisherSide.ingress_sources
    on_ingress = PublisherSide.on_ingress
    on_rtp = PublisherSide.on_rtp

    def __init__(self, track: PublishedTrack) -> None:
        self.ssrc_table = {SSRC_A: track.layers[0], SSRC_B: track.layers[0]}
        self.invalid_rtp_packets = self.unknown_ssrc_packets = self.wrong_pt_packets = 0
        self.handled = 0

    def _learn_ssrc(self, data: bytes, ssrc: int) -> None:
        return None


class Twcc:
    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_packet(self, seq: int, now_ms: float) -> None:
        self.seen.append((seq, now_ms))


def make(kind: str, down: object, twcc: Any) -> tuple[PublishedTrack, Subscription, list[Any]]:
    levels: list[Any] = []
    codec = codecs.VP8 if kind == "video" else codecs.OPUS
    ext = {TWCC_EXT: codecs.TWCC_ID, LEVEL_EXT: codecs.AUDIO_LEVEL_ID}
    track = PublishedTrack(
        track_id="TR", participant_id="PA", kind=kind, source="camera", mid="0", codec=codec,
        publisher_pt=100, ext_map=ext, ssrc=SSRC_A, rtx_ssrc=None, upstream=FakeTransport(),  # type: ignore[arg-type]
        receiver_ssrc=1, keyframe_interval_ms=0,
        twcc=twcc,
        on_audio_level=lambda pid, level, now: levels.append((pid, level, now)))
    sub = Subscription(track, down, out_ssrc=0xAAAA, rtx_ssrc=0xBBBB, rtx_pt=None,  # type: ignore[arg-type]
                       first_seq=65000, first_ts=0xFFFFFF00)
    track.add_subscription(sub)
    sub.accepted = True
    sub.active = True
    return track, sub, levels


def keyed_transport(owner: Owner) -> tuple[MediaTransport, pylibsrtp.Session]:
    """A publisher transport as it is once DTLS has keyed SRTP (no ICE: datagrams are fed
    to its socket callback), and the publisher's sending session."""
    transport = MediaTransport(
        RTCCertificate.generateCertificate(), ["127.0.0.1"], controlling=False,
        on_rtp=owner.on_rtp, on_rtcp=lambda data: None, on_state=lambda state: None)
    rx_session = pylibsrtp.Session(policy=pylibsrtp.Policy(
        key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    transport._rx_srtp = rx_session
    transport._rx_fast = fastpath.receiver(rx_session)
    transport.ingress = owner  # type: ignore[assignment]
    tx = pylibsrtp.Session(policy=pylibsrtp.Policy(
        key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    return transport, tx


KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xB4, 0x00]) + b"k" * 60


def packet(seq: int, ssrc: int, twcc: int, *, marker: bool = False, key: bool = False) -> bytes:
    exts = bytes([(TWCC_EXT << 4) | 1]) + struct.pack("!H", twcc)
    exts += bytes([LEVEL_EXT << 4, 0x80 | (seq % 100)])
    exts += bytes(-len(exts) % 4)
    payload = KEYFRAME if key else bytes([0x00]) + struct.pack("!HI", seq, ssrc) * 20
    return (struct.pack("!BBHII", 0x90, 100 | (0x80 if marker else 0), seq, seq * 3000, ssrc)
            + struct.pack("!HH", 0xBEDE, len(exts) // 4) + exts + payload)


def script() -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    pkt = [("pkt", (s, SSRC_A, s % 3 == 2, False)) for s in range(1000, 1030)]
    steps += pkt
    steps += [("pkt", (s, SSRC_A, False, False)) for s in range(1032, 1040)]  # a gap
    steps.append(("pkt", (1030, SSRC_A, False, False)))  # late: reordered
    steps.append(("pkt", (1040, SSRC_A, True, True)))  # a keyframe
    steps += [("pkt", (s, SSRC_A, s % 4 == 0, False)) for s in range(1041, 1060)]
    steps.append(("mute", True))
    steps += [("pkt", (s, SSRC_A, False, False)) for s in range(1060, 1065)]
    steps.append(("mute", False))
    steps += [("pkt", (s, SSRC_A, False, False)) for s in range(1065, 1080)]
    steps.append(("active", False))
    steps += [("pkt", (s, SSRC_A, False, False)) for s in range(1080, 1085)]
    steps.append(("active", True))
    steps += [("pkt", (s, SSRC_A, False, False)) for s in range(1085, 1100)]
    # the publisher restarted with a new SSRC, its numbers wrapping
    steps += [("pkt", (s & 0xFFFF, SSRC_B, s % 5 == 0, s == 65530)) for s in range(65530, 65580)]
    return steps


RECORDERS = {"python": (Twcc, Twcc),
             "compiled": (lambda: fastpath.CompiledTwccRecorder(), TwccRecorder),
             "none": (lambda: None, lambda: None)}


@pytest.mark.parametrize("kind,twcc", [("video", "python"), ("audio", "python"),
                                       ("video", "none"), ("video", "compiled"),
                                       ("audio", "compiled")])
def test_compiled_ingress_matches_the_python_path(kind: str, twcc: str) -> None:
    """Without transport-cc recorded in Python (and for video: no audio level) the steady
    packets leave nothing to Python: the compiled step also fills the retransmission cache
    and, with the compiled recorder, records transport-cc arrivals."""
    wire = WireTransport()
    try:
        make_c, make_py = RECORDERS[twcc]
        c_track, c_sub, c_levels = make(kind, wire, make_c())
        py_down = FakeTransport()
        py_track, py_sub, py_levels = make(kind, py_down, make_py())
        py_sub.dest = None
        c_owner, py_owner = Owner(c_track), Owner(py_track)

        def counted(flags: int, rx: Any, data: bytes, handle: Any) -> None:
            c_owner.handled += 1
            PublisherSide.on_ingress(c_owner, flags, rx, data, handle)  # type: ignore[arg-type]

        c_owner.on_ingress = counted  # type: ignore[method-assign]
        transport, tx = keyed_transport(c_owner)
        # the track's publisher transport is this one (its RTCP is recorded by the fake)
        c_track.upstream.invalidate_ingress = transport.invalidate_ingress  # type: ignore[method-assign]
        twcc_seq = 500
        packets = 0
        handled_before = fastpath.ingress_handled()
        for step, arg in script():
            if step == "mute":
                c_track.set_muted(arg, 0.0)
                py_track.set_muted(arg, 0.0)
                continue
            if step == "active":
                for sub in (c_sub, py_sub):
                    sub.active = arg
                    if arg:
                        sub.forwarder.resync()
                continue
            seq, ssrc, marker, key = arg
            twcc_seq += 1
            clear = packet(seq, ssrc, twcc_seq, marker=marker, key=key)
            transport._datagram_received(tx.protect(clear), 1)
            packets += 1
            assert transport._rx_fast is not None
            now = float(transport._rx_fast.ptr.now_ms)  # when the compiled step saw it
            py_owner.on_rtp(clear, now)  # type: ignore[arg-type]
        # the same packets went out, and the same things happened on the way
        expected = py_down.rtp
        assert len(expected) > 100
        got = wire.received(len(expected))
        assert [p[1:] for p in got] == [p[1:] for p in expected]
        assert c_sub.stats.packets == py_sub.stats.packets == len(expected)
        for name in ("packets_in", "bytes_in", "duplicates", "nacks_sent", "ssrc_changes"):
            assert getattr(c_track.stats, name) == getattr(py_track.stats, name), name
        c_layer, py_layer = c_track.layers[0], py_track.layers[0]
        for name in ("packets", "bytes", "frames", "keyframes", "last_packet_ms", "width",
                     "height", "current_ssrc"):
            assert getattr(c_layer, name) == getattr(py_layer, name), name
        for ssrc in (SSRC_A, SSRC_B):
            c_seq, py_seq = c_track.tracker(ssrc), py_track.tracker(ssrc)
            assert c_seq is not None and py_seq is not None
            for name in ("base_ext", "max_ext", "received", "jitter", "lost"):
                assert getattr(c_seq, name) == getattr(py_seq, name), name
            for ext in range(py_seq.base_ext, py_seq.max_ext + 1):
                assert c_track.cached(ssrc, ext) == py_track.cached(ssrc, ext)
        assert c_track._upstream.rtcp == py_track._upstream.rtcp  # type: ignore[attr-defined]
        if kind == "video":
            assert py_track.stats.nacks_sent == 1
            assert py_layer.keyframes == 2
        if twcc == "python":
            assert c_track.twcc.seen == py_track.twcc.seen  # type: ignore[union-attr]
            assert len(c_track.twcc.seen) == packets  # type: ignore[union-attr]
        if twcc == "compiled":  # the same feedback from the compiled recorder
            assert c_track.twcc is not None and py_track.twcc is not None
            feedback = py_track.twcc.build_feedback(1, 2, 0.0)
            assert feedback and c_track.twcc.build_feedback(1, 2, 0.0) == feedback
            assert c_track.twcc.duplicates == py_track.twcc.duplicates
        assert c_levels == py_levels
        assert bool(py_levels) == (kind == "audio")
        # the compiled step took the steady packets; first packets, the late one, keyframes,
        # the muted ones and the resumes came to Python
        handled = fastpath.ingress_handled() - handled_before
        assert handled >= packets - 25
        # and the owner hears only of the packets that left it something to do (without
        # transport-cc for Python, video: the gap's NACK)
        python_work = twcc == "python" or kind == "audio"
        assert c_owner.handled == (handled if python_work else py_track.stats.nacks_sent)
        assert transport.stats.rtp_in == packets
    finally:
        wire.close()


def test_garbage_and_unknown_sources_are_counted_and_nothing_is_forwarded() -> None:
    wire = WireTransport()
    try:
        track, sub, _ = make("video", wire, Twcc())
        owner = Owner(track)
        transport, tx = keyed_transport(owner)
        for s in range(10):
            transport._datagram_received(tx.protect(packet(s, SSRC_A, s)), 1)
        assert len(wire.received(10)) == 10
        rnd = random.Random(3)
        for n in (0, 1, 11, 12, 40, 1400, 1600):
            transport._datagram_received(bytes([0x80]) + rnd.randbytes(n), 1)
        assert transport.stats.srtp_auth_failures == 7
        transport._datagram_received(tx.protect(packet(10, 3333, 10)), 1)  # unknown SSRC
        assert owner.unknown_ssrc_packets == 1
        clear = bytearray(packet(11, SSRC_A, 11))
        clear[1] = 101  # a payload type the publisher did not negotiate
        transport._datagram_received(tx.protect(bytes(clear)), 1)
        assert owner.wrong_pt_packets == 1
        transport._datagram_received(tx.protect(packet(12, SSRC_A, 12)), 1)
        got = wire.received(1)  # the next one forwarded is this; 10 and 11 were not, and
        assert struct.unpack_from("!H", got[0], 2)[0] == 65000 + 12  # the gap stays
        assert track.stats.packets_in == 11
        assert sub.stats.packets == 11
    finally:
        wire.close()
