"""The codecs and RTP header extensions the SFU negotiates, with their canonical numbers.

Publishers keep their own payload types and extension ids (the answer echoes the offer);
subscribers always get the canonical ones below because the server writes their offers.
Forwarding maps publisher numbers to canonical numbers once per packet at ingress.
"""

from __future__ import annotations

from dataclasses import dataclass

EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
EXT_VIDEO_ORIENTATION = "urn:3gpp:video-orientation"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
EXT_TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

#: canonical (subscriber-side) extension ids
AUDIO_LEVEL_ID = 1
TWCC_ID = 3
VIDEO_ORIENTATION_ID = 4

#: extensions accepted from publishers, by kind
PUBLISHER_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "audio": (EXT_MID, EXT_AUDIO_LEVEL, EXT_TWCC),
    "video": (EXT_MID, EXT_VIDEO_ORIENTATION, EXT_TWCC, EXT_RID),
}
#: extensions offered to subscribers, by kind, with the canonical id used on the wire
#: (the transport-cc element keeps its slot: the SFU writes its own transport-wide sequence
#: number into it per subscriber transport, see sfu/transport.py)
SUBSCRIBER_EXTENSIONS: dict[str, dict[str, int]] = {
    "audio": {EXT_AUDIO_LEVEL: AUDIO_LEVEL_ID, EXT_TWCC: TWCC_ID},
    "video": {EXT_VIDEO_ORIENTATION: VIDEO_ORIENTATION_ID, EXT_TWCC: TWCC_ID},
}

VIDEO_FEEDBACK = ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
AUDIO_FEEDBACK: tuple[str, ...] = ("transport-cc",)


@dataclass(frozen=True, slots=True)
class CodecSpec:
    name: str
    kind: str
    clock_rate: int
    pt: int
    rtx_pt: int | None = None
    channels: int = 1
    fmtp: str = ""

    @property
    def feedback(self) -> tuple[str, ...]:
        return VIDEO_FEEDBACK if self.kind == "video" else AUDIO_FEEDBACK

    def rtpmap(self) -> str:
        suffix = f"/{self.channels}" if self.channels > 1 else ""
        return f"{self.name}/{self.clock_rate}{suffix}"


OPUS = CodecSpec("opus", "audio", 48000, 111, channels=2, fmtp="minptime=10;useinbandfec=1")
VP8 = CodecSpec("VP8", "video", 90000, 96, rtx_pt=97)
H264 = CodecSpec(
    "H264", "video", 90000, 102, rtx_pt=103,
    fmtp="level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
)

#: in order of preference
SUPPORTED: dict[str, tuple[CodecSpec, ...]] = {"audio": (OPUS,), "video": (VP8, H264)}


def match(kind: str, name: str, clock_rate: int, params: dict[str, str]) -> CodecSpec | None:
    """The supported codec an offered one corresponds to, or None."""
    for spec in SUPPORTED.get(kind, ()):
        if spec.name.lower() != name.lower() or spec.clock_rate != clock_rate:
            continue
        if spec.name == "H264":
            # forwarding cannot transcode: only packetization-mode=1, constrained baseline
            if params.get("packetization-mode") != "1":
                continue
            profile = params.get("profile-level-id", "42e01f").lower()
            if profile[:2] != "42":
                continue
        return spec
    return None
