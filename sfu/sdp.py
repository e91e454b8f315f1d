"""SDP parsing (RFC 8866 subset that WebRTC uses) into plain dataclasses.

Only what an SFU needs is kept; anything malformed raises :class:`SdpError` with a message
that names the line, so the signalling layer can answer ``bad_sdp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_SDP_BYTES = 256 * 1024
MAX_MEDIA_SECTIONS = 256
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(ValueError):
    """The SDP cannot be used; the message says why."""


@dataclass(slots=True)
class Codec:
    pt: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str = ""
    rtcp_fb: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in self.fmtp.split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip().lower()] = v.strip()
        return out


@dataclass(slots=True)
class MediaSection:
    kind: str
    port: int
    proto: str
    formats: list[str]
    mid: str | None = None
    direction: str = "sendrecv"
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None
    rtcp_mux: bool = False
    codecs: dict[int, Codec] = field(default_factory=dict)
    extmap: dict[int, str] = field(default_factory=dict)
    ssrcs: list[int] = field(default_factory=list)
    ssrc_groups: list[tuple[str, list[int]]] = field(default_factory=list)
    msid: str | None = None
    candidates: list[str] = field(default_factory=list)
    end_of_candidates: bool = False
    rids: list[tuple[str, str]] = field(default_factory=list)
    simulcast: str | None = None

    def media_ssrc(self) -> int | None:
        """The primary SSRC (first of the FID group if any, else the first listed)."""
        for semantics, ssrcs in self.ssrc_groups:
            if semantics == "FID" and ssrcs:
                return ssrcs[0]
        return self.ssrcs[0] if self.ssrcs else None

    def rtx_ssrc(self) -> int | None:
        for semantics, ssrcs in self.ssrc_groups:
            if semantics == "FID" and len(ssrcs) > 1:
                return ssrcs[1]
        return None


@dataclass(slots=True)
class SessionDescription:
    media: list[MediaSection] = field(default_factory=list)
    bundle: list[str] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_lite: bool = False
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None

    # session-level values are inherited by media sections that lack their own
    def ice_of(self, m: MediaSection) -> tuple[str, str]:
        ufrag = m.ice_ufrag or self.ice_ufrag
        pwd = m.ice_pwd or self.ice_pwd
        if not ufrag or not pwd:
            raise SdpError(f"media section {m.mid!r} has no a=ice-ufrag/a=ice-pwd")
        return ufrag, pwd

    def fingerprints_of(self, m: MediaSection) -> list[tuple[str, str]]:
        fps = m.fingerprints or self.fingerprints
        if not fps:
            raise SdpError(f"media section {m.mid!r} has no a=fingerprint")
        return fps

    def setup_of(self, m: MediaSection) -> str:
        return m.setup or self.setup or "actpass"


def _int(value: str, what: str, lineno: int, lo: int = 0, hi: int = 2**32 - 1) -> int:
    try:
        n = int(value)
    except ValueError:
        raise SdpError(f"line {lineno}: {what} is not a number: {value[:40]!r}") from None
    if not lo <= n <= hi:
        raise SdpError(f"line {lineno}: {what} out of range: {n}")
    return n


def parse(text: str) -> SessionDescription:
    if not isinstance(text, str) or not text.strip():
        raise SdpError("empty SDP")
    if len(text) > MAX_SDP_BYTES:
        raise SdpError(f"SDP larger than {MAX_SDP_BYTES} bytes")
    if not text.endswith("\n"):
        raise SdpError("SDP is truncated: the last line has no line terminator")
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines[0].startswith("v=0"):
        raise SdpError("SDP must start with v=0")
    session = SessionDescription()
    current: MediaSection | None = None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"line {lineno}: not a <type>=<value> line: {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"line {lineno}: bad m= line: {line[:60]!r}")
            if len(session.media) >= MAX_MEDIA_SECTIONS:
                raise SdpError(f"more than {MAX_MEDIA_SECTIONS} media sections")
            current = MediaSection(
                kind=parts[0],
                port=_int(parts[1].split("/")[0], "port", lineno, 0, 65535),
                proto=parts[2],
                formats=parts[3:],
            )
            session.media.append(current)
            continue
        if kind != "a":
            continue
        name, _, arg = value.partition(":")
        if current is None:
            _session_attr(session, name, arg, lineno)
        else:
            _media_attr(current, name, arg, lineno)
    for m in session.media:
        for fmt in m.formats:
            if m.kind in ("audio", "video") and fmt.isdigit() and m.port != 0:
                pt = int(fmt)
                if pt >= 96 and not (pt in m.codecs and m.codecs[pt].name):
                    raise SdpError(
                        f"media section {m.mid!r}: payload type {pt} has no a=rtpmap "
                        "(truncated or malformed SDP)"
                    )
                if pt not in m.codecs and pt < 96:
                    static = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}
                    if pt in static:
                        m.codecs[pt] = Codec(pt, static[pt][0], static[pt][1])
    return session


def _session_attr(s: SessionDescription, name: str, arg: str, lineno: int) -> None:
    if name == "group":
        parts = arg.split()
        if parts and parts[0] == "BUNDLE":
            s.bundle = parts[1:]
    elif name == "ice-ufrag":
        s.ice_ufrag = arg
    elif name == "ice-pwd":
        s.ice_pwd = arg
    elif name == "ice-lite":
        s.ice_lite = True
    elif name == "fingerprint":
        s.fingerprints.append(_fingerprint(arg, lineno))
    elif name == "setup":
        s.setup = arg


def _fingerprint(arg: str, lineno: int) -> tuple[str, str]:
    parts = arg.split()
    if len(parts) != 2:
        raise SdpError(f"line {lineno}: bad a=fingerprint")
    return parts[0].lower(), parts[1].upper()


def _media_attr(m: MediaSection, name: str, arg: str, lineno: int) -> None:
    if name == "mid":
        m.mid = arg
    elif name in DIRECTIONS:
        m.direction = name
    elif name == "ice-ufrag":
        m.ice_ufrag = arg
    elif name == "ice-pwd":
        m.ice_pwd = arg
    elif name == "fingerprint":
        m.fingerprints.append(_fingerprint(arg, lineno))
    elif name == "setup":
        m.setup = arg
    elif name == "rtcp-mux":
        m.rtcp_mux = True
    elif name == "rtpmap":
        pt_s, _, enc = arg.partition(" ")
        pt = _int(pt_s, "payload type", lineno, 0, 127)
        fields = enc.split("/")
        if len(fields) < 2:
            raise SdpError(f"line {lineno}: bad a=rtpmap")
        channels = _int(fields[2], "channels", lineno, 1, 8) if len(fields) > 2 else 1
        codec = m.codecs.get(pt)
        clock = _int(fields[1], "clock rate", lineno, 1, 10_000_000)
        if codec is None:
            m.codecs[pt] = Codec(pt, fields[0], clock, channels)
        else:
            codec.name, codec.clock_rate, codec.channels = fields[0], clock, channels
    elif name == "fmtp":
        pt_s, _, params = arg.partition(" ")
        pt = _int(pt_s, "payload type", lineno, 0, 127)
        m.codecs.setdefault(pt, Codec(pt, "", 0)).fmtp = params
    elif name == "rtcp-fb":
        pt_s, _, fb = arg.partition(" ")
        if pt_s == "*":
            for c in m.codecs.values():
                c.rtcp_fb.append(fb)
        else:
            pt = _int(pt_s, "payload type", lineno, 0, 127)
            m.codecs.setdefault(pt, Codec(pt, "", 0)).rtcp_fb.append(fb)
    elif name == "extmap":
        id_s, _, rest = arg.partition(" ")
        ext_id = _int(id_s.split("/")[0], "extmap id", lineno, 1, 255)
        uri = rest.split()[0] if rest.split() else ""
        if not uri:
            raise SdpError(f"line {lineno}: a=extmap without URI")
        m.extmap[ext_id] = uri
    elif name == "ssrc":
        ssrc_s = arg.split(" ", 1)[0]
        ssrc = _int(ssrc_s, "ssrc", lineno)
        if ssrc not in m.ssrcs:
            m.ssrcs.append(ssrc)
    elif name == "ssrc-group":
        parts = arg.split()
        if parts:
            m.ssrc_groups.append(
                (parts[0], [_int(p, "ssrc", lineno) for p in parts[1:]])
            )
    elif name == "msid":
        m.msid = arg
    elif name == "candidate":
        m.candidates.append(arg)
    elif name == "end-of-candidates":
        m.end_of_candidates = True
    elif name == "rid":
        parts = arg.split()
        if len(parts) >= 2:
            m.rids.append((parts[0], parts[1]))
    elif name == "simulcast":
        m.simulcast = arg
