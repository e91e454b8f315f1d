"""Offer/answer for the two peer connections of a participant (sans-IO, strings in and out).

* publisher connection: the browser offers, :func:`answer_publisher` answers recvonly with one
  codec per m-line and returns what was accepted;
* subscriber connection: :func:`build_subscriber_offer` writes a sendonly m-line per remote
  track (canonical payload types and extension ids, ``a=ssrc`` so the browser demuxes by
  SSRC), :func:`read_subscriber_answer` reads back what the browser accepted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from . import codecs
from .sdp import MediaSection, SdpError, SessionDescription

_session_ids = itertools.count(1)


class NoCommonCodecError(SdpError):
    """No media section of an offer has a codec the SFU forwards."""


@dataclass(frozen=True, slots=True)
class LocalTransport:
    ice_ufrag: str
    ice_pwd: str
    fingerprints: tuple[tuple[str, str], ...]
    candidates: tuple[str, ...]
    #: an ICE-lite agent (the server on its shared ports): ``a=ice-lite`` in the session
    ice_lite: bool = False


@dataclass(slots=True)
class AcceptedMedia:
    """One publisher m-line the SFU receives."""

    mid: str
    kind: str
    codec: codecs.CodecSpec
    pt: int  # the publisher's payload type for it
    ssrc: int | None
    rtx_ssrc: int | None
    #: publisher extension id -> canonical (subscriber) id; unlisted ids are dropped
    ext_map: dict[int, int]
    mid_ext_id: int | None
    msid: str | None
    #: simulcast: the rids received, lowest layer first (empty: one layer, no rid)
    rids: tuple[str, ...] = ()
    rid_ext_id: int | None = None
    #: the publisher's transport-wide-cc extension id (the SFU sends it TWCC feedback)
    twcc_ext_id: int | None = None


@dataclass(slots=True)
class PublisherAnswer:
    sdp: str
    accepted: list[AcceptedMedia]
    rejected_mids: list[str]


def require_transport(offer: SessionDescription) -> None:
    if not offer.media:
        raise SdpError("offer has no media sections")
    for m in offer.media:
        if m.port == 0:
            continue
        if m.mid is None:
            raise SdpError("every media section needs a=mid")
        offer.ice_of(m)
        offer.fingerprints_of(m)
        if m.kind in ("audio", "video") and not m.rtcp_mux:
            raise SdpError(f"media section {m.mid!r} lacks a=rtcp-mux (required)")
    if not offer.bundle:
        raise SdpError("offer lacks a=group:BUNDLE (required)")


def _session_header(kind: str, bundle: list[str], local: LocalTransport) -> list[str]:
    sid = next(_session_ids)
    lines = ["v=0", f"o=- {sid} 2 IN IP4 0.0.0.0", f"s=classroom-sfu {kind}", "t=0 0"]
    if local.ice_lite:
        lines.append("a=ice-lite")
    if bundle:
        lines.append("a=group:BUNDLE " + " ".join(bundle))
    lines.append("a=msid-semantic: WMS *")
    return lines


def _transport_lines(local: LocalTransport, setup: str, with_candidates: bool) -> list[str]:
    lines = [
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}",
        "a=ice-options:trickle",
    ]
    lines += [f"a=fingerprint:{alg} {value}" for alg, value in local.fingerprints]
    lines.append(f"a=setup:{setup}")
    if with_candidates:
        lines += [f"a=candidate:{c}" for c in local.candidates]
        lines.append("a=end-of-candidates")
    return lines


def _codec_lines(spec: codecs.CodecSpec, pt: int, rtx_pt: int | None) -> list[str]:
    lines = [f"a=rtpmap:{pt} {spec.rtpmap()}"]
    if spec.fmtp:
        lines.append(f"a=fmtp:{pt} {spec.fmtp}")
    lines += [f"a=rtcp-fb:{pt} {fb}" for fb in spec.feedback]
    if rtx_pt is not None:
        lines.append(f"a=rtpmap:{rtx_pt} rtx/{spec.clock_rate}")
        lines.append(f"a=fmtp:{rtx_pt} apt={pt}")
    return lines


def _choose_codec(m: MediaSection) -> tuple[codecs.CodecSpec, int] | None:
    offered = [m.codecs[int(f)] for f in m.formats if f.isdigit() and int(f) in m.codecs]
    for spec in codecs.SUPPORTED.get(m.kind, ()):
        for c in offered:
            if codecs.match(m.kind, c.name, c.clock_rate, c.params) is spec:
                return spec, c.pt
    return None


#: simulcast layers received per video track
MAX_SIMULCAST_LAYERS = 3
_RID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _simulcast_rids(m: MediaSection) -> tuple[str, ...]:
    """The rids a publisher offers to send, in its ``a=simulcast:send`` order.

    Alternatives (``q,x``) keep the first; a paused rid (``~q``) is still received. Only rids
    declared with ``a=rid:<id> send`` count. The order is taken as lowest layer first, which
    is the order of ``sendEncodings`` in the shipped client (scaleResolutionDownBy 4, 2, 1).
    """
    if m.simulcast is None:
        return ()
    parts = m.simulcast.split()
    declared = {rid for rid, direction in m.rids if direction == "send"}
    rids: list[str] = []
    for i in range(0, len(parts) - 1, 2):
        if parts[i] != "send":
            continue
        for stream in parts[i + 1].split(";"):
            rid = stream.split(",")[0].lstrip("~")
            if not rid or len(rid) > 16 or not set(rid) <= _RID_CHARS:
                raise SdpError(f"mid {m.mid}: bad rid {rid[:20]!r} in a=simulcast")
            if rid in declared and rid not in rids:
                rids.append(rid)
    if len(rids) > MAX_SIMULCAST_LAYERS:
        raise SdpError(
            f"mid {m.mid}: {len(rids)} simulcast layers offered; at most "
            f"{MAX_SIMULCAST_LAYERS} are received"
        )
    return tuple(rids)


def _rejected(m: MediaSection) -> list[str]:
    lines = [f"m={m.kind} 0 {m.proto} {' '.join(m.formats) or '0'}", "c=IN IP4 0.0.0.0"]
    if m.mid is not None:
        lines.append(f"a=mid:{m.mid}")
    if m.kind in ("audio", "video"):
        lines.append("a=inactive")
    return lines


def answer_publisher(offer: SessionDescription, local: LocalTransport) -> PublisherAnswer:
    """Answer a publisher offer: receive one codec per audio/video m-line, reject the rest."""
    require_transport(offer)
    sections: list[list[str]] = []
    accepted: list[AcceptedMedia] = []
    rejected: list[str] = []
    for m in offer.media:
        choice = _choose_codec(m) if m.kind in ("audio", "video") and m.port != 0 else None
        if choice is None:
            sections.append(_rejected(m))
            if m.mid is not None:
                rejected.append(m.mid)
            continue
        spec, pt = choice
        assert m.mid is not None
        direction = "recvonly" if m.direction in ("sendrecv", "sendonly") else "inactive"
        wanted = codecs.PUBLISHER_EXTENSIONS[m.kind]
        canonical = codecs.SUBSCRIBER_EXTENSIONS[m.kind]
        ext_lines: list[str] = []
        ext_map: dict[int, int] = {}
        by_uri: dict[str, int] = {}
        for ext_id, uri in sorted(m.extmap.items()):
            if uri in wanted:
                ext_lines.append(f"a=extmap:{ext_id} {uri}")
                by_uri[uri] = ext_id
                if uri in canonical:
                    ext_map[ext_id] = canonical[uri]
        rids = _simulcast_rids(m) if codecs.EXT_RID in by_uri else ()
        if not rids:
            # no simulcast: do not ask for the rid extension
            ext_lines = [ln for ln in ext_lines if not ln.endswith(" " + codecs.EXT_RID)]
        lines = [f"m={m.kind} 9 {m.proto} {pt}"]
        lines += _transport_lines(local, "active", with_candidates=True)
        lines += [f"a=mid:{m.mid}", f"a={direction}", "a=rtcp-mux", "a=rtcp-rsize"]
        lines += ext_lines
        lines += _codec_lines(spec, pt, None)
        if rids:
            lines += [f"a=rid:{rid} recv" for rid in rids]
            lines.append("a=simulcast:recv " + ";".join(rids))
        sections.append(lines)
        if direction == "recvonly":
            accepted.append(
                AcceptedMedia(
                    mid=m.mid, kind=m.kind, codec=spec, pt=pt,
                    ssrc=None if rids else m.media_ssrc(), rtx_ssrc=m.rtx_ssrc(),
                    ext_map=ext_map, mid_ext_id=by_uri.get(codecs.EXT_MID), msid=m.msid,
                    rids=rids, rid_ext_id=by_uri.get(codecs.EXT_RID) if rids else None,
                    twcc_ext_id=by_uri.get(codecs.EXT_TWCC),
                )
            )
    if not accepted and not any(
        m.port != 0 and m.direction in ("recvonly", "inactive") for m in offer.media
    ):
        raise NoCommonCodecError(
            "no media section offers a codec the server forwards (opus, VP8, H264 "
            "packetization-mode=1)"
        )
    bundle = [m.mid for m in offer.media if m.mid is not None and m.mid not in rejected]
    lines = _session_header("publisher", bundle, local)
    for section in sections:
        lines += section
    return PublisherAnswer("\r\n".join(lines) + "\r\n", accepted, rejected)


# --- subscriber side -------------------------------------------------------------------


@dataclass(slots=True)
class SubscriberSlot:
    """One m-line of the subscriber connection; ``track_id`` None once the track is gone."""

    mid: str
    kind: str
    ssrc: int
    rtx_ssrc: int
    stream_id: str
    track_id: str | None
    cname: str
    #: the codec of the track; the m-line offers only it (and its RTX), which keeps the
    #: browser's answer small (rooms of 50 reach the signalling frame limit otherwise)
    codec: codecs.CodecSpec | None = None
    #: filled from the answer
    accepted_pts: set[int] = field(default_factory=set)
    accepted_ext_ids: set[int] = field(default_factory=set)
    rejected: bool = False
    #: the slot was answered as inactive and may carry a new track (m-line recycling)
    reusable: bool = False

    @property
    def active(self) -> bool:
        return self.track_id is not None and not self.rejected


def build_subscriber_offer(slots: list[SubscriberSlot], local: LocalTransport) -> str:
    if not slots:
        raise ValueError("a subscriber offer needs at least one m-line")
    bundle = [s.mid for s in slots if not s.rejected]
    lines = _session_header("subscriber", bundle, local)
    for s in slots:
        specs = (s.codec,) if s.codec is not None else codecs.SUPPORTED[s.kind]
        pts: list[int] = []
        for spec in specs:
            pts.append(spec.pt)
            if spec.rtx_pt is not None:
                pts.append(spec.rtx_pt)
        if s.rejected:
            lines += [f"m={s.kind} 0 UDP/TLS/RTP/SAVPF {' '.join(map(str, pts))}",
                      "c=IN IP4 0.0.0.0", f"a=mid:{s.mid}", "a=inactive"]
            continue
        lines.append(f"m={s.kind} 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, pts))}")
        lines += _transport_lines(local, "actpass", with_candidates=True)
        lines.append(f"a=mid:{s.mid}")
        lines += [
            f"a=extmap:{ext_id} {uri}"
            for uri, ext_id in codecs.SUBSCRIBER_EXTENSIONS[s.kind].items()
        ]
        if s.track_id is not None:
            lines.append("a=sendonly")
            lines.append(f"a=msid:{s.stream_id} {s.track_id}")
        else:
            lines.append("a=inactive")
        lines += ["a=rtcp-mux", "a=rtcp-rsize"]
        for spec in specs:
            lines += _codec_lines(spec, spec.pt, spec.rtx_pt)
        if s.track_id is not None:
            if s.kind == "video":
                lines.append(f"a=ssrc-group:FID {s.ssrc} {s.rtx_ssrc}")
            ssrcs = [s.ssrc, s.rtx_ssrc] if s.kind == "video" else [s.ssrc]
            for ssrc in ssrcs:
                lines.append(f"a=ssrc:{ssrc} cname:{s.cname}")
                lines.append(f"a=ssrc:{ssrc} msid:{s.stream_id} {s.track_id}")
    return "\r\n".join(lines) + "\r\n"


@dataclass(slots=True)
class SubscriberAnswerInfo:
    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[tuple[str, str]]
    #: our DTLS role: "server" if the browser is active, else "client"
    dtls_role: str
    candidates: list[str]


def read_subscriber_answer(
    answer: SessionDescription, slots: list[SubscriberSlot]
) -> SubscriberAnswerInfo:
    """Check the answer to an offer of ``slots`` and note what each m-line accepted.

    Raises SdpError before changing any slot when the answer does not fit the offer.
    """
    by_mid = {m.mid: m for m in answer.media}
    for s in slots:
        if not s.rejected and s.mid not in by_mid:
            raise SdpError(f"answer lacks media section mid={s.mid!r}")
    first: MediaSection | None = None
    candidates: list[str] = []
    for s in slots:
        if s.rejected:
            continue
        m = by_mid[s.mid]
        if m.port == 0:
            s.rejected = True
            continue
        if first is None:
            first = m
        s.accepted_pts = {int(f) for f in m.formats if f.isdigit()}
        s.accepted_ext_ids = set(m.extmap)
        candidates += m.candidates
    if first is None:
        raise SdpError("answer rejected every media section")
    # BUNDLE: one transport; a client repeating its candidates in every section (as
    # non-trickle answers do) must not count each one once per m-line
    candidates = list(dict.fromkeys(candidates))
    ufrag, pwd = answer.ice_of(first)
    setup = answer.setup_of(first)
    if setup not in ("active", "passive"):
        raise SdpError(f"answer has a=setup:{setup}; expected active or passive")
    return SubscriberAnswerInfo(
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        fingerprints=answer.fingerprints_of(first),
        dtls_role="server" if setup == "active" else "client",
        candidates=candidates,
    )
