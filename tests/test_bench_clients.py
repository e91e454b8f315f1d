"""The browser-like bench clients' parts, without a server: the feedback a subscriber sends
(benches/feedback.py, checked by parsing it back with the server's own RTCP and transport-cc
parsers) and the lesson's talk (benches/talk.py)."""

from __future__ import annotations

import struct

from benches import talk
from benches.feedback import ReceiverFeedback
from benches.rawclient import PUB_TWCC_ID, RtpSource, publisher_offer
from sfu import rtcp, sdp
from sfu.codecs import EXT_TWCC
from sfu.twcc import parse_feedback

OFFER = sdp.parse("\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
    f"a=extmap:3 {EXT_TWCC}", "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:1", "a=sendonly",
    f"a=extmap:3 {EXT_TWCC}", "a=rtpmap:96 VP8/90000", ""]))


def packet(pt: int, seq: int, ssrc: int, twcc: int) -> bytes:
    ext = bytes([(3 << 4) | 1]) + struct.pack("!H", twcc) + bytes(1)
    return (struct.pack("!BBHII", 0x90, pt, seq & 0xFFFF, seq * 3000, ssrc)
            + struct.pack("!HH", 0xBEDE, 1) + ext + b"payload")


def test_feedback_nacks_video_gaps_reports_every_packet_and_sends_receiver_reports() -> None:
    sent: list[bytes] = []
    fb = ReceiverFeedback(lambda p: sent.append(p) or True)
    fb.learn(OFFER)
    assert fb.twcc_ext_id == 3 and fb.video_pts == {96}
    twcc = 100
    # gaps of 2 and 30 (NACKed), then of 185 (not: a browser asks for a keyframe instead)
    for seq in [*range(10), *range(12, 20), *range(50, 55), *range(240, 245)]:
        fb.on_packet(packet(96, seq, 0xAAAA, twcc), seq * 10.0)
        twcc += 1
    for seq in [0, 1, 5]:  # audio is never NACKed
        fb.on_packet(packet(111, seq, 0xBBBB, twcc), 300.0 + seq)
        twcc += 1
    nacks = [m for p in sent for m in rtcp.parse(p) if m.pt == 205 and m.fmt == 1]
    assert [sorted(m.items) for m in nacks] == [[10, 11], list(range(20, 50))]
    assert all(m.media_ssrc == 0xAAAA for m in nacks)
    sent.clear()
    for _ in range(10):
        fb.tick(1000.0)
    twccs = [m for p in sent for m in rtcp.parse(p) if m.pt == 205 and m.fmt == 15]
    assert len(twccs) == 1  # everything since the start, then nothing new
    feedback = parse_feedback(twccs[0].fci)
    assert feedback.base_seq == 100
    assert sum(1 for _, arrival in feedback.packets if arrival is not None) == twcc - 100
    rrs = [m for p in sent for m in rtcp.parse(p) if m.pt == 201]
    assert len(rrs) == 1
    by_ssrc = {b.ssrc: b for b in rrs[0].reports}
    assert set(by_ssrc) == {0xAAAA, 0xBBBB}
    assert by_ssrc[0xAAAA].cumulative_lost == 217 and by_ssrc[0xBBBB].cumulative_lost == 3
    assert fb.sent == {"twcc": 1, "rr": 1, "nack": 2, "nacked": 32}


def test_browser_like_publishers_number_every_packet_and_offer_simulcast() -> None:
    src = RtpSource()
    src.twcc_seq = 65534
    numbers = []
    for p in (src.build_packet("audio", b"x"), src.build_layer_packet(2, b"y"),
              src.build_packet("video", b"z")):
        ext = p[16:16 + 4 * struct.unpack_from("!H", p, 14)[0]]
        i = ext.index(bytes([(PUB_TWCC_ID << 4) | 1]))
        numbers.append(struct.unpack_from("!H", ext, i + 1)[0])
    assert numbers == [65535, 0, 1]
    offer = sdp.parse(publisher_offer(_LOCAL, 1, 2, twcc=True, simulcast=True))
    video = next(m for m in offer.media if m.kind == "video")
    assert EXT_TWCC in video.extmap.values()
    assert "a=simulcast:send q;h;f" in publisher_offer(_LOCAL, 1, 2, simulcast=True)


class _Local:
    ice_ufrag, ice_pwd = "ufrag", "p" * 22
    fingerprints = [("sha-256", "AA:" * 31 + "AA")]
    candidates: list[str] = []


_LOCAL = _Local()  # type: ignore[assignment]


def test_the_lesson_talks_like_a_lesson() -> None:
    students = 30
    steps = [k / 50 for k in range(int(talk.CYCLE_S * students * 50))]
    speaking = [[i for i in range(students + 1) if talk.speaking(i, students, t)]
                for t in steps]
    # the instructor talks most of the time; never more than two people at once
    assert 0.4 < talk.talk_share(0, students) < 0.7
    assert max(len(s) for s in speaking) == 2
    # every student answers once per students x CYCLE_S
    assert {i for s in speaking for i in s} == set(range(students + 1))
    # levels: speech is loud (under the server's 50 dBov) most of the time, silence never
    loud = [talk.level(0, students, t) < 50 for t in steps if talk.speaking(0, students, t)]
    assert sum(loud) / len(loud) > 0.7
    assert all(talk.level(5, students, t) >= talk.NOISE_FLOOR for t in steps
               if not talk.speaking(5, students, t))
