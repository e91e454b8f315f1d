"""PublishedTrack ingress + Subscription fan-out with an in-memory downstream transport."""

from __future__ import annotations

import struct

from sfu import codecs
from sfu.track import (
    MAX_NACK_SEQS,
    RETRANSMIT_BURST_S,
    PublishedTrack,
    Subscription,
    TokenBucket,
)


class FakeTransport:
    """Records what would go on the wire (the I/O boundary of the cores)."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.ingress_invalidations = 0

    def invalidate_ingress(self) -> None:
        self.ingress_invalidations += 1

    def send_rewritten(self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int,
                       twcc_off: int = 0) -> bool:
        buf = bytearray(packet)
        struct.pack_into("!BHII", buf, 1, b1, seq, ts, ssrc)
        self.rtp.append(bytes(buf))
        return True

    def send_rtp(self, packet: bytes) -> bool:
        self.rtp.append(bytes(packet))
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        self.rtcp.append(packet)
        return True


def make(ssrc: int = 1111) -> tuple[PublishedTrack, Subscription, FakeTransport]:
    track = PublishedTrack(
        track_id="TR", participant_id="PA", kind="video", source="camera", mid="1",
        codec=codecs.VP8, publisher_pt=100, ext_map={}, ssrc=ssrc, rtx_ssrc=None,
        upstream=FakeTransport(), receiver_ssrc=1, keyframe_interval_ms=500)  # type: ignore[arg-type]
    down = FakeTransport()
    sub = Subscription(track, down, out_ssrc=0xAAAA, rtx_ssrc=0xBBBB, rtx_pt=97,  # type: ignore[arg-type]
                       first_seq=0, first_ts=0)
    track.add_subscription(sub)
    sub.accepted = True
    sub.active = True
    return track, sub, down


def rtp(seq: int, ssrc: int = 1111, payload: bytes = b"x" * 100) -> bytes:
    return struct.pack("!BBHII", 0x80, 100, seq, seq * 3000, ssrc) + payload


def feed(track: PublishedTrack, packet: bytes, now_ms: float) -> None:
    seq, ts, ssrc = struct.unpack_from("!HII", packet, 2)
    track.on_rtp(packet, ssrc, seq, ts, now_ms)


def test_payload_type_is_mapped_to_the_canonical_one() -> None:
    track, _, down = make()
    feed(track, rtp(5), 0)
    assert down.rtp[0][1] & 0x7F == codecs.VP8.pt
    assert struct.unpack_from("!I", down.rtp[0], 8)[0] == 0xAAAA


def test_a_nack_naming_the_same_packets_many_times_resends_each_once() -> None:
    track, sub, down = make()
    for s in range(20):
        feed(track, rtp(s), s)
    sent = len(down.rtp)
    sub.on_nack(tuple(range(3, 20)) * 300, now_ms=100)  # 5100 entries, 17 distinct
    assert len(down.rtp) - sent == 17
    sub.on_nack(tuple(range(3, 20)), now_ms=150)  # again within the guard time: nothing
    assert len(down.rtp) - sent == 17
    assert sub.stats.retransmits_suppressed >= 17


def test_retransmissions_per_nack_and_per_second_are_bounded() -> None:
    track, sub, down = make()
    for s in range(1000):
        feed(track, rtp(s), s)
    size = len(rtp(0))
    sent = len(down.rtp)
    sub.on_nack(tuple(range(0, 1000)), now_ms=2000)
    assert len(down.rtp) - sent == MAX_NACK_SEQS
    sub.set_retransmit_budget(800_000)  # 100 kB/s: a 25 kB burst, 10 kB per 100 ms
    sent = len(down.rtp)
    for k in range(50):  # 50 NACKs asking for 3200 packets within 100 ms
        sub.on_nack(tuple(range(64 * k, 64 * k + 64)), now_ms=3000 + 2 * k)
    resent_bytes = (len(down.rtp) - sent) * size
    assert 0 < resent_bytes <= 100_000 * (RETRANSMIT_BURST_S + 0.1) + size
    assert sub.stats.retransmits_suppressed > 500


def test_no_retransmissions_of_video_from_before_a_switch_or_while_paused() -> None:
    track, sub, down = make()
    for s in range(10):
        feed(track, rtp(s), s)
    sub.forwarder.resync()  # what a layer switch or a resume does at its keyframe
    for s in range(10, 15):
        feed(track, rtp(s), s)
    sent = len(down.rtp)
    sub.on_nack(tuple(range(0, 15)), now_ms=100)
    resent = [struct.unpack_from("!H", p, 12)[0] for p in down.rtp[sent:]]  # RTX: OSN
    assert resent == list(range(10, 15)), "only the packets since the switch's keyframe"
    sub.selector.set_target(-1)  # paused: the decoder waits for a keyframe anyway
    sent = len(down.rtp)
    sub.on_nack(tuple(range(10, 15)), now_ms=400)
    assert len(down.rtp) == sent


def test_rtx_retransmission_carries_the_original_sequence_number() -> None:
    track, sub, down = make()
    for s in range(5):
        feed(track, rtp(s, payload=bytes([s]) * 50), s)
    original = down.rtp[2]
    sub.on_nack((struct.unpack_from("!H", original, 2)[0],), now_ms=10)
    rtx = down.rtp[-1]
    assert rtx[1] & 0x7F == 97 and struct.unpack_from("!I", rtx, 8)[0] == 0xBBBB
    assert rtx[12:14] == original[2:4] and rtx[14:] == original[12:]


def test_late_packets_of_a_previous_ssrc_are_not_forwarded() -> None:
    track, sub, down = make()
    for s in range(5):
        feed(track, rtp(s), s)
    for s in range(100, 105):
        feed(track, rtp(s, ssrc=2222), 10 + s)
    feed(track, rtp(5), 200)  # late packet of the old SSRC
    for s in range(105, 108):
        feed(track, rtp(s, ssrc=2222), 300 + s)
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in down.rtp]
    assert seqs == list(range(13))
    assert sub.forwarder.switches == 1


def test_token_bucket() -> None:
    b = TokenBucket(10, 2)
    b.refill(0)
    assert [b.take() for _ in range(3)] == [True, True, False]
    b.refill(100)  # 0.1 s -> one token
    assert [b.take(), b.take()] == [True, False]


def test_restarted_numbering_reaches_subscribers_without_a_jump() -> None:
    track, _, down = make()
    for s in range(10):
        feed(track, rtp(s), s)
    for s in range(40000, 40005):
        feed(track, rtp(s), 100 + s)
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in down.rtp]
    assert seqs == list(range(14))  # 40000 itself is the dropped probe packet
