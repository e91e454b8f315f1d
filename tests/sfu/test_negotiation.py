"""SDP parsing and offer/answer against a real Chromium offer (golden fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfu import codecs, sdp
from sfu.negotiation import (
    LocalTransport,
    NoCommonCodecError,
    SubscriberSlot,
    answer_publisher,
    build_subscriber_offer,
    read_subscriber_answer,
)

CHROME_OFFER = (Path(__file__).parent / "fixtures" / "chrome_offer.sdp").read_text()
LOCAL = LocalTransport("ufrag", "pwdpwdpwdpwdpwdpwdpwdpwd", (("sha-256", "AA:BB"),),
                       ("1 1 udp 2130706431 127.0.0.1 40000 typ host",))


def test_parse_chrome_offer() -> None:
    offer = sdp.parse(CHROME_OFFER)
    kinds = [m.kind for m in offer.media]
    assert kinds == ["audio", "video"]
    assert offer.bundle == [m.mid for m in offer.media]
    audio, video = offer.media
    assert audio.codecs[111].name == "opus" and audio.codecs[111].channels == 2
    assert audio.rtcp_mux and audio.direction == "sendonly"
    assert audio.media_ssrc() is not None
    assert video.rtx_ssrc() is not None
    assert offer.ice_of(audio)[0] and offer.fingerprints_of(video)


def test_answer_chrome_offer_keeps_publisher_numbers_and_maps_extensions() -> None:
    offer = sdp.parse(CHROME_OFFER)
    answer = answer_publisher(offer, LOCAL)
    assert [a.kind for a in answer.accepted] == ["audio", "video"]
    audio, video = answer.accepted
    assert audio.codec is codecs.OPUS and video.codec is codecs.VP8
    assert video.pt == 96 and audio.pt == 111
    level_id = next(i for i, u in offer.media[0].extmap.items() if u == codecs.EXT_AUDIO_LEVEL)
    twcc_id = next(i for i, u in offer.media[0].extmap.items() if u == codecs.EXT_TWCC)
    assert audio.ext_map == {level_id: 1, twcc_id: codecs.TWCC_ID}
    assert audio.twcc_ext_id == twcc_id and video.rids == ()
    parsed = sdp.parse(answer.sdp)
    assert [m.direction for m in parsed.media] == ["recvonly", "recvonly"]
    assert parsed.media[1].formats == ["96"]
    assert parsed.setup_of(parsed.media[0]) == "active"
    # abs-send-time is not accepted (the SFU gives transport-cc feedback instead); no rid
    # extension without simulcast
    uris = set(parsed.media[1].extmap.values())
    assert codecs.EXT_MID in uris and codecs.EXT_TWCC in uris
    assert codecs.EXT_ABS_SEND_TIME not in uris and codecs.EXT_RID not in uris
    assert "transport-cc" in parsed.media[1].codecs[96].rtcp_fb
    assert "a=simulcast" not in answer.sdp
    assert parsed.bundle == [m.mid for m in offer.media]


def test_h264_only_offer_is_accepted_with_packetization_mode_1() -> None:
    text = CHROME_OFFER
    offer = sdp.parse(text)
    video = offer.media[1]
    h264 = [c.pt for c in video.codecs.values()
            if c.name == "H264" and c.params.get("packetization-mode") == "1"
            and c.params.get("profile-level-id", "").startswith("42")]
    assert h264
    video.formats = [str(h264[0])]
    answer = answer_publisher(offer, LOCAL)
    assert answer.accepted[1].codec is codecs.H264 and answer.accepted[1].pt == h264[0]


def test_offer_without_common_codec_is_refused() -> None:
    offer = sdp.parse(CHROME_OFFER)
    offer.media[0].formats = ["0"]  # PCMU only
    offer.media[1].formats = [str(pt) for pt, c in offer.media[1].codecs.items()
                              if c.name in ("AV1", "rtx")]
    with pytest.raises(NoCommonCodecError):
        answer_publisher(offer, LOCAL)


def test_one_unusable_section_is_rejected_not_the_whole_offer() -> None:
    offer = sdp.parse(CHROME_OFFER)
    offer.media[0].formats = ["0"]
    answer = answer_publisher(offer, LOCAL)
    assert [a.kind for a in answer.accepted] == ["video"]
    parsed = sdp.parse(answer.sdp)
    assert parsed.media[0].port == 0 and parsed.bundle == [offer.media[1].mid]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("hello world\r\n", "v=0"),
        ("v=0\r\nm=audio\r\n", "bad m= line"),
        ("v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=mid:0", "truncated"),
        ("v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=rtpmap:abc opus/48000\r\n", "not a number"),
        ("v=0\r\nm=audio 99999 RTP/SAVPF 111\r\n", "out of range"),
        ("v=0\r\nthis is not sdp\r\n", "not a <type>=<value>"),
    ],
)
def test_malformed_sdp_raises_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(sdp.SdpError, match=message):
        sdp.parse(text)


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.75])
def test_truncated_offer_is_refused(cut: int) -> None:
    text = CHROME_OFFER[: int(len(CHROME_OFFER) * cut)]
    with pytest.raises(sdp.SdpError):
        answer_publisher(sdp.parse(text), LOCAL)


def test_offer_without_bundle_or_rtcp_mux_is_refused() -> None:
    no_bundle = "".join(x + "\n" for x in CHROME_OFFER.splitlines() if "group:BUNDLE" not in x)
    with pytest.raises(sdp.SdpError, match="BUNDLE"):
        answer_publisher(sdp.parse(no_bundle), LOCAL)
    no_mux = "".join(x + "\n" for x in CHROME_OFFER.splitlines() if x.strip() != "a=rtcp-mux")
    with pytest.raises(sdp.SdpError, match="rtcp-mux"):
        answer_publisher(sdp.parse(no_mux), LOCAL)


def test_subscriber_offer_and_answer_roundtrip() -> None:
    slots = [
        SubscriberSlot("0", "audio", 11, 12, "PA_x", "TR_a", "PA_x"),
        SubscriberSlot("1", "video", 21, 22, "PA_x", "TR_v", "PA_x"),
        SubscriberSlot("2", "video", 31, 32, "PA_y", None, "PA_y"),
    ]
    offer = sdp.parse(build_subscriber_offer(slots, LOCAL))
    assert [m.direction for m in offer.media] == ["sendonly", "sendonly", "inactive"]
    assert offer.media[1].msid == "PA_x TR_v"
    assert offer.media[1].ssrc_groups == [("FID", [21, 22])]
    assert offer.media[0].extmap == {1: codecs.EXT_AUDIO_LEVEL, 3: codecs.EXT_TWCC}
    assert offer.media[1].extmap == {4: codecs.EXT_VIDEO_ORIENTATION, 3: codecs.EXT_TWCC}
    assert offer.setup_of(offer.media[0]) == "actpass"
    answer_text = "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1 2",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=ice-ufrag:u", "a=ice-pwd:p",
        "a=fingerprint:sha-256 CC:DD", "a=setup:active", "a=recvonly", "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2", "a=extmap:1 " + codecs.EXT_AUDIO_LEVEL,
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:1", "a=recvonly",
        "a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000",
        "m=video 0 UDP/TLS/RTP/SAVPF 96", "a=mid:2", "a=inactive", "",
    ])
    info = read_subscriber_answer(sdp.parse(answer_text), slots)
    assert (info.ice_ufrag, info.dtls_role) == ("u", "server")
    assert slots[0].accepted_pts == {111} and slots[1].accepted_pts == {96, 97}
    assert slots[2].rejected

    # a non-trickle client repeats its candidates in every section: counted once
    cand = "a=candidate:1 1 udp 2130706431 10.0.0.9 5000 typ host"
    repeated = answer_text.replace("a=recvonly", f"a=recvonly\r\n{cand}")
    for s in slots:
        s.rejected = False  # (as offered again)
    info = read_subscriber_answer(sdp.parse(repeated), slots)
    assert info.candidates == [cand[len("a=candidate:"):]]


def _simulcast_offer(simulcast: str, rids: tuple[str, ...] = ("q", "h", "f")) -> str:
    lines = CHROME_OFFER.replace("\r\n", "\n").split("\n")
    # the fixture's video section ends the offer: drop its a=ssrc lines (Chromium sends
    # none with rids) and append the rid lines
    lines = [ln for ln in lines if ln and not ln.startswith(("a=ssrc", "a=ssrc-group"))]
    lines += [f"a=rid:{r} send" for r in rids]
    lines.append(f"a=simulcast:{simulcast}")
    return "\r\n".join(lines) + "\r\n"


def test_simulcast_offer_is_answered_with_rids_and_layers_lowest_first() -> None:
    offer = sdp.parse(_simulcast_offer("send q;h;f"))
    answer = answer_publisher(offer, LOCAL)
    video = answer.accepted[1]
    assert video.rids == ("q", "h", "f")
    assert video.ssrc is None  # learned from the rid extension of the first packets
    rid_id = next(i for i, u in offer.media[1].extmap.items() if u == codecs.EXT_RID)
    assert video.rid_ext_id == rid_id
    parsed = sdp.parse(answer.sdp)
    assert parsed.media[1].rids == [("q", "recv"), ("h", "recv"), ("f", "recv")]
    assert parsed.media[1].simulcast == "recv q;h;f"
    assert codecs.EXT_RID in parsed.media[1].extmap.values()
    assert answer.accepted[0].rids == ()


def test_simulcast_alternatives_paused_and_undeclared_rids() -> None:
    offer = sdp.parse(_simulcast_offer("send ~q,x;h;z", rids=("q", "h", "x")))
    video = answer_publisher(offer, LOCAL).accepted[1]
    assert video.rids == ("q", "h")  # first alternative, paused kept, undeclared z dropped


def test_simulcast_with_too_many_layers_or_bad_rid_is_refused() -> None:
    with pytest.raises(sdp.SdpError, match="at most 3"):
        answer_publisher(sdp.parse(_simulcast_offer("send a;b;c;d", ("a", "b", "c", "d"))),
                         LOCAL)
    with pytest.raises(sdp.SdpError, match="bad rid"):
        answer_publisher(sdp.parse(_simulcast_offer("send q;h!;f")), LOCAL)
