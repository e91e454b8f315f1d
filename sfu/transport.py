"""The aiortc adapter: ICE (aioice) + DTLS + SRTP for one peer connection, RTP as bytes.

This is the only module that touches aiortc/aioice/pylibsrtp internals. It uses aiortc's
ORTC-level objects (``RTCIceGatherer``, ``RTCIceTransport``, ``RTCDtlsTransport``) and none
of ``RTCPeerConnection``'s media machinery: no receiver (no jitter buffer, no decoder), no
sender (no encoder), and our own SDP (see :mod:`sfu.negotiation`). Private hooks used, all
pinned by the version ranges in pyproject.toml and covered by tests/integration:

* ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data`` overridden to hand decrypted
  packets to the SFU;
* ``RTCDtlsTransport._rx_srtp`` (the keyed receive session) used by the fast receive path;
* ``pylibsrtp.Session``'s buffer (``_cdata``/``_buffer``/``_srtp``) used to protect a packet
  rewritten in place, and the nominated aioice pair's datagram transport used to send it
  synchronously (no coroutine per packet);
* ``aioice.Connection.get_component_candidates`` to gather on the configured addresses
  (aioice itself never offers 127.0.0.1);
* ``aioice.Connection.data_received`` replaced: once SRTP is keyed, SRTP/SRTCP datagrams are
  unprotected and dispatched synchronously from the socket callback (bypassing aioice's queue
  and aiortc's receive coroutine); DTLS still goes through aiortc; empty datagrams are
  dropped (aiortc's receive loop reads ``data[0]`` and dies on one);
* ``StunProtocol.datagram_received`` (``Connection._protocols``) wrapped per socket once SRTP
  is keyed: an RTP/RTCP datagram (first byte 128..191, never STUN) skips aioice's STUN parse
  attempt (an exception raised and caught per packet) and comes straight here.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any, Protocol

import pylibsrtp
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceParameters, RTCIceTransport
from aiortc.sdp import candidate_from_sdp
from pylibsrtp._binding import ffi, lib

from . import stun
from .codecs import TWCC_ID
from .engine import ENGINE, IngressSource
from .ice_lite import IceLiteAgent, new_credentials
from .media_ports import MediaPorts, Path
from .negotiation import LocalTransport
from .rtp_header import extension_offset
from .twcc import SendHistory

if TYPE_CHECKING:
    from .fastpath import Connection, Receiver, TwccHistory
    from .sdp import SessionDescription

log = logging.getLogger(__name__)
_compiled_ingress = ENGINE.ingress


class IngressOwner(Protocol):
    """Who a publisher transport's compiled ingress step works for (the participant)."""

    def ingress_sources(self) -> list[IngressSource]:
        """The sources it may take now."""

    def on_ingress(self, flags: int, rx: Any, data: bytes, handle: Any) -> None:
        """One packet it handled that left work to Python (``flags`` > 1; ``handle``: that
        of its source)."""

_PACK_B1_SEQ_TS_SSRC = struct.Struct("!BHII").pack_into
_PACK_H = struct.Struct("!H").pack_into
_fast_send = ENGINE.send
#: remote candidates accepted per connection (each one makes the server send STUN checks)
MAX_REMOTE_CANDIDATES = 32
SRTP_MAX_PACKET = 1500 - 16 - 4  # pylibsrtp buffer minus the largest SRTP trailer
#: a server transport with no valid connectivity check this long after it started failed
ICE_CONNECT_TIMEOUT_S = 30.0


class TransportStats:
    __slots__ = (
        "rtp_in", "rtcp_in", "rtp_out", "rtp_out_bytes", "rtcp_out", "srtp_auth_failures",
        "send_errors", "rtcp_invalid", "rtp_invalid",
    )

    def __init__(self) -> None:
        self.rtp_in = 0
        self.rtcp_in = 0
        self.rtp_out = 0
        self.rtp_out_bytes = 0
        self.rtcp_out = 0
        #: datagrams failing SRTP/SRTCP authentication: garbage or attacks on the port
        self.srtp_auth_failures = 0
        self.send_errors = 0
        self.rtcp_invalid = 0
        self.rtp_invalid = 0


class _SfuDtlsTransport(RTCDtlsTransport):
    """DTLS transport that hands decrypted RTP/RTCP to its owner as bytes."""

    _owner: MediaTransport

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        # only packets that arrive before the fast receive path is on come this way
        self._owner._deliver_rtp(data, _monotonic() * 1000.0)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self._owner._deliver_rtcp(data)


def _dtls_parameters(fingerprints: list[tuple[str, str]]) -> RTCDtlsParameters:
    return RTCDtlsParameters(
        fingerprints=[RTCDtlsFingerprint(algorithm=a, value=v) for a, v in fingerprints])


class MediaTransport:
    """One ICE/DTLS/SRTP connection. States: new, connecting, connected, failed, closed."""

    def __init__(
        self,
        certificate: RTCCertificate,
        addresses: list[str],
        *,
        controlling: bool,
        on_rtp: Callable[[bytes, float], None],
        on_rtcp: Callable[[bytes], None],
        on_state: Callable[[str], None],
        name: str = "",
    ) -> None:
        self._init_common(on_rtp, on_rtcp, on_state, name)
        self._addresses = addresses
        self._gatherer = RTCIceGatherer(iceServers=[])
        self._ice = RTCIceTransport(self._gatherer)
        self._ice._connection.ice_controlling = controlling
        self._ice._role_set = True
        conn = self._ice._connection
        self._queue_datagram = conn.data_received
        conn.data_received = self._datagram_received  # type: ignore[method-assign]
        # the browser's ICE checks (every ~2.5 s on a working pair) are signs of life too:
        # a subscriber receiving no media sends no RTCP, but keeps checking
        self._stun_request_received = conn.request_received
        conn.request_received = self._request_received  # type: ignore[method-assign]
        self._dtls = _SfuDtlsTransport(self._ice, [certificate])
        self._dtls._owner = self

    def _init_common(self, on_rtp: Callable[[bytes, float], None],
                     on_rtcp: Callable[[bytes], None], on_state: Callable[[str], None],
                     name: str) -> None:
        """What every transport has, whichever ICE agent it runs (the DTLS transport is
        made by the subclass, on its ICE side)."""
        self.name = name
        self.stats = TransportStats()
        self.state = "new"
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._on_state = on_state
        self._rx_srtp: Any = None  # set once DTLS has keyed SRTP
        self._rx_fast: Receiver | None = None  # its compiled unprotect step
        self._start_task: asyncio.Task[None] | None = None
        self._remote_candidates_done = False
        self._remote_candidates = 0
        # fast send path, set once DTLS is connected
        self._srtp_ptr: Any = None
        self._cdata: Any = None
        self._cbuf: Any = None
        self._len_p = ffi.new("int *")
        self._sendto: Callable[[bytes, Any], None] | None = None
        #: the compiled send step (sfu.fastpath), None on the Python engine or not connected
        self._fast: Any = None
        self._fast_conn: Connection | None = None  # keeps what _fast points into
        #: called after the compiled connection (``fast_connection``) changed: the
        #: subscriptions sending here, whose fan-out plans hold it
        self.route_listeners: list[Callable[[], None]] = []
        self._addr: Any = None
        #: transport-wide congestion control on what we send: set when the peer negotiated
        #: the transport-cc extension; every sent packet carrying the element gets our own
        #: sequence number and is remembered for the feedback
        self.twcc_history: SendHistory | TwccHistory | None = None
        self._twcc_seq = 0  # the Python send path's last transport-wide number
        #: the peer's ICE ufrag/pwd this transport was started with (new ones = ICE restart)
        self.remote_ice: tuple[str, str] | None = None
        #: when the last authenticated RTP/RTCP packet arrived (monotonic ms); see last_rx_ms
        self._last_rx_ms = 0.0
        #: the publishing participant, for the compiled ingress step (None: Python path)
        self.ingress: IngressOwner | None = None
        #: reached "connected" at some point (a failure then is a path that died)
        self.was_connected = False

    # -- set-up -----------------------------------------------------------------------

    async def gather(self) -> None:
        conn = self._gatherer._connection
        if conn._local_candidates_start or self.state == "closed":
            return
        conn._local_candidates_start = True
        conn._local_candidates += await conn.get_component_candidates(
            component=1, addresses=self._addresses
        )
        conn._local_candidates_end = True
        if self.state == "closed":  # closed while binding: release the new sockets
            await conn.close()
            return
        if not conn._local_candidates:
            raise OSError(f"could not bind a UDP socket on any of {self._addresses}")

    def local(self) -> LocalTransport:
        params = self._gatherer.getLocalParameters()
        fps = tuple(
            (f.algorithm, f.value) for f in self._dtls.getLocalParameters().fingerprints
        )
        cands = tuple(c.to_sdp() for c in self._gatherer._connection.local_candidates)
        assert params.usernameFragment is not None and params.password is not None
        return LocalTransport(params.usernameFragment, params.password, fps, cands)

    @property
    def local_ports(self) -> list[int]:
        return [c.port for c in self._gatherer._connection.local_candidates]

    def start(
        self, ice_ufrag: str, ice_pwd: str, fingerprints: list[tuple[str, str]], dtls_role: str,
        *, remote_lite: bool = False,
    ) -> None:
        """Begin ICE then DTLS in the background; ``on_state`` reports the outcome. Facing
        an ICE-lite peer (``remote_lite``: the server), this agent controls."""
        if self._start_task is not None:
            return
        self.remote_ice = (ice_ufrag, ice_pwd)
        self._dtls._set_role(dtls_role)
        if remote_lite:
            self._ice._connection.ice_controlling = True
        params = RTCIceParameters(usernameFragment=ice_ufrag, password=ice_pwd,
                                  iceLite=remote_lite)
        dtls_params = _dtls_parameters(fingerprints)
        self._start_task = asyncio.ensure_future(self._run(params, dtls_params))

    async def start_with(self, remote: SessionDescription, dtls_role: str) -> None:
        """Connect to the peer of an offer or answer (a client's side: a server's SDP,
        BUNDLE): its first active section's ICE credentials and fingerprints, the
        candidates of every section (once each), then the end of candidates."""
        first = next(m for m in remote.media if m.port != 0)
        ufrag, pwd = remote.ice_of(first)
        self.start(ufrag, pwd, remote.fingerprints_of(first), dtls_role=dtls_role,
                   remote_lite=remote.ice_lite)
        for cand in dict.fromkeys(c for m in remote.media for c in m.candidates):
            await self.add_remote_candidate(cand)
        await self.add_remote_candidate(None)

    async def _run(self, params: RTCIceParameters, dtls_params: RTCDtlsParameters) -> None:
        self._set_state("connecting")
        self._ice.on("statechange", self._on_ice_state)
        try:
            await self._ice.start(params)
        except Exception:  # aiortc raises assorted errors on teardown races
            if self.state != "closed":
                log.exception("transport %s: ICE failed to start", self.name)
                self._set_state("failed")
            return
        if self._ice.state != "completed":
            self._set_state("failed")
            return
        await self._secure(dtls_params)

    async def _secure(self, dtls_params: RTCDtlsParameters) -> None:
        """DTLS on the ICE path found, then the SRTP fast paths: connected (or failed)."""
        try:
            await self._dtls.start(dtls_params)
        except Exception:  # aiortc raises assorted errors on teardown races
            if self.state != "closed":
                log.exception("transport %s: DTLS failed to start", self.name)
                self._set_state("failed")
            return
        if self._dtls.state != "connected" or self.state == "closed":
            self._set_state("failed")
            return
        self._enable_fast_path()
        self._dtls.on("statechange", self._on_dtls_state)
        self.last_rx_ms = _monotonic() * 1000.0
        self.was_connected = True
        self._set_state("connected")

    def expire_if_silent(self, now_ms: float, timeout_ms: float) -> bool:
        """A connected transport that received no authenticated packet (SRTP, SRTCP, or an
        ICE check with valid integrity: browsers check a working pair every ~2.5 s) for
        ``timeout_ms`` is dead: fail it now instead of waiting for ICE consent to expire
        (~30 s) or for TCP."""
        if self.state != "connected" or now_ms - self.last_rx_ms < timeout_ms:
            return False
        log.info("transport %s: nothing received for %.1f s: failed", self.name,
                 (now_ms - self.last_rx_ms) / 1000)
        self._set_state("failed")
        asyncio.ensure_future(self.close())
        return True

    def _on_ice_state(self) -> None:
        if self._ice.state in ("failed", "closed") and self.state == "connected":
            self._set_state("failed")

    def _on_dtls_state(self) -> None:
        if self._dtls.state in ("failed", "closed") and self.state == "connected":
            self._set_state("failed")

    @property
    def last_rx_ms(self) -> float:
        """When the last authenticated RTP/RTCP packet (or ICE check) arrived (monotonic
        ms), also through the compiled ingress step."""
        fast = self._rx_fast
        if fast is not None and fast.ptr.now_ms > self._last_rx_ms:
            return float(fast.ptr.now_ms)
        return self._last_rx_ms

    @last_rx_ms.setter
    def last_rx_ms(self, ms: float) -> None:
        self._last_rx_ms = ms

    def _ingress(self, data: bytes, owner: IngressOwner, fast: Receiver) -> bool:
        """The compiled ingress step on one RTP/RTCP datagram; False: not taken (RTCP, bad
        length), for the path below."""
        rx = fast.ptr
        r = _compiled_ingress(rx, data, len(data))
        if r > 0:  # handled, up to what the owner does
            self.stats.rtp_in += 1
            if r != 1:
                try:
                    owner.on_ingress(r, rx, fast.clear_packet(), fast.handles[rx.src])
                except Exception:
                    self._rtp_handler_failed()
            return True
        if r == 0:  # authenticated; the Python path takes the clear packet
            self._deliver_rtp(fast.clear_packet(), float(rx.now_ms))
            if fast.stale:
                fast.set_sources(owner.ingress_sources())
            return True
        if r == -2:
            self.stats.srtp_auth_failures += 1
            return True
        return False

    def _datagram_received(self, data: bytes, component: int) -> None:
        """Every non-STUN datagram, from aioice's socket callback (synchronous).

        Once SRTP is keyed, SRTP/SRTCP is unprotected and dispatched right here: no asyncio
        queue and no coroutine per packet. DTLS, and anything before keying, goes to
        aiortc's receive loop as before. Empty datagrams are dropped: aiortc's loop reads
        ``data[0]`` and would die on one (anyone could stop a connection with it).
        """
        if not data:
            return
        rx = self._rx_srtp
        if rx is None or not 127 < data[0] < 192:
            self._queue_datagram(data, component)
            return
        owner, fast = self.ingress, self._rx_fast
        if owner is not None and fast is not None and _compiled_ingress is not None and \
                self._ingress(data, owner, fast):
            return
        if len(data) > 1 and 192 <= data[1] <= 223:
            try:
                plain = rx.unprotect_rtcp(data)
            except (pylibsrtp.Error, ValueError):  # ValueError: longer than pylibsrtp takes
                self.stats.srtp_auth_failures += 1
                return
            self.last_rx_ms = _monotonic() * 1000.0
            self._deliver_rtcp(plain)
        else:
            fast = self._rx_fast
            if fast is not None:
                clear = fast.unprotect(data)
                if clear is None:
                    self.stats.srtp_auth_failures += 1
                    return
                plain = clear
            else:
                try:
                    plain = rx.unprotect(data)
                except (pylibsrtp.Error, ValueError):
                    self.stats.srtp_auth_failures += 1
                    return
            now = self.last_rx_ms = _monotonic() * 1000.0
            self._deliver_rtp(plain, now)

    def _request_received(self, message: Any, addr: Any, protocol: Any) -> None:
        self._stun_request_received(message, addr, protocol)
        conn = self._ice._connection
        if (self.state == "connected" and "USERNAME" in message.attributes
                and message.check_message_integrity(conn.local_password.encode("utf8"))):
            self.last_rx_ms = _monotonic() * 1000.0

    def _enable_fast_path(self) -> None:
        self._rx_srtp = self._dtls._rx_srtp
        self._rx_fast = ENGINE.receiver(self._rx_srtp)
        self._bypass_stun_parse()
        session = self._dtls._tx_srtp
        self._srtp_ptr = session._srtp[0]
        self._cdata = session._cdata
        self._cbuf = session._buffer
        self._attach_send_path()

    def _send_target(self) -> tuple[Callable[[bytes, Any], None], Any, Any] | None:
        """(sendto, remote address, UDP socket or None) of the selected path."""
        pair = self._ice._connection._nominated.get(1)
        if pair is None:
            return None
        transport = pair.protocol.transport
        return transport.sendto, pair.remote_addr, transport.get_extra_info("socket")

    def _attach_send_path(self) -> None:
        """Send on the selected path from now on: the compiled send step on a UDP socket,
        the Python one otherwise (ICE-TCP); transport-wide numbering continues."""
        target = self._send_target()
        if target is None or self._srtp_ptr is None:
            return
        sendto, addr, sock = target
        last = self.twcc_last_seq
        self._sendto, self._addr = sendto, addr
        self._fast_conn = (ENGINE.connect(self._dtls._tx_srtp, sock, addr)
                           if sock is not None else None)
        self._fast = self._fast_conn.ptr if self._fast_conn is not None else None
        if self.twcc_history is not None:
            # from now on this connection's send step numbers and records
            self._twcc_seq = last
            self.twcc_history = (self._fast_conn.enable_twcc(last)
                                 if self._fast_conn is not None else SendHistory())
        self._route_changed()

    def _route_changed(self) -> None:
        for listener in list(self.route_listeners):
            try:
                listener()
            except Exception:
                log.exception("transport %s route listener failed", self.name)

    def invalidate_ingress(self) -> None:
        """Which sources the compiled ingress step may take changed (the publisher's SSRC
        table or a track's sources): its table is made again at the next packet."""
        if self._rx_fast is not None:
            self._rx_fast.invalidate()

    def _bypass_stun_parse(self) -> None:
        """RTP and RTCP datagrams go from each ICE socket straight to
        :meth:`_datagram_received`; everything else (STUN, DTLS) through aioice as before."""
        mine = self._datagram_received
        for proto in self._ice._connection._protocols:
            stun_first = proto.datagram_received

            def datagram_received(data: bytes, addr: Any, _aioice: Any = stun_first) -> None:
                if data and 127 < data[0] < 192:
                    mine(data, 1)
                else:
                    _aioice(data, addr)

            proto.datagram_received = datagram_received  # type: ignore[method-assign,assignment]

    async def add_remote_candidate(self, candidate: str | None) -> None:
        if candidate is None:
            if not self._remote_candidates_done:
                self._remote_candidates_done = True
                await self._ice.addRemoteCandidate(None)
            return
        cand = self._count_candidate(candidate)
        if cand is None:
            return  # late candidate after end-of-candidates: valid but unused
        cand.sdpMid = "0"
        await self._ice.addRemoteCandidate(cand)

    def _count_candidate(self, candidate: str) -> Any:
        """The parsed candidate (ValueError / IndexError on garbage, or past
        MAX_REMOTE_CANDIDATES); None after end-of-candidates (valid, unused)."""
        text = candidate[len("candidate:") :] if candidate.startswith("candidate:") else candidate
        if len(text.split()) < 8:  # aiortc's parser asserts on short lines
            raise ValueError("an ICE candidate line has at least 8 fields")
        cand = candidate_from_sdp(text)
        if self._remote_candidates_done:
            return None
        if self._remote_candidates >= MAX_REMOTE_CANDIDATES:
            raise ValueError(f"more than {MAX_REMOTE_CANDIDATES} ICE candidates")
        self._remote_candidates += 1
        return cand

    def _set_state(self, state: str) -> None:
        if state != self.state and self.state != "closed":
            self.state = state
            if state in ("failed", "closed"):
                # aioice closes its socket when consent expires: sending on would only
                # make asyncio log a warning per packet (and its fd may be reused)
                self._sendto = None
                self._fast = None
                self._route_changed()
            try:
                self._on_state(state)
            except Exception:
                log.exception("transport %s state listener failed", self.name)

    # -- data path --------------------------------------------------------------------

    def _deliver_rtp(self, data: bytes, arrival_ms: float) -> None:
        self.stats.rtp_in += 1
        try:
            self._on_rtp(data, arrival_ms)
        except Exception:
            self._rtp_handler_failed()

    def _rtp_handler_failed(self) -> None:
        self.stats.rtp_invalid += 1
        n = self.stats.rtp_invalid
        if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th...: never a log line per packet
            log.exception("RTP handler failed on %s (%d times)", self.name, n)

    def _deliver_rtcp(self, data: bytes) -> None:
        self.stats.rtcp_in += 1
        try:
            self._on_rtcp(data)
        except Exception:
            self.stats.rtcp_invalid += 1
            log.debug("RTCP handler failed on %s", self.name, exc_info=True)

    @property
    def remote_address(self) -> Any:
        """Where this transport sends (the selected path's remote address), once
        connected."""
        return self._addr

    @property
    def ready(self) -> bool:
        return self._sendto is not None and self.state == "connected"

    @property
    def twcc_last_seq(self) -> int:
        """The last transport-wide sequence number sent."""
        history = self.twcc_history
        if history is None or isinstance(history, SendHistory):
            return self._twcc_seq  # (numbered by the Python send path)
        return history.last_assigned

    def enable_twcc(self) -> None:
        if self.twcc_history is None:
            conn = self._fast_conn
            self.twcc_history = (conn.enable_twcc(self._twcc_seq) if conn is not None
                                 else SendHistory())

    @property
    def fast_connection(self) -> Any:
        """The compiled send step's ``sfu_conn *`` while connected (None otherwise)."""
        return self._fast

    def send_rewritten(
        self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int, twcc_off: int = 0
    ) -> bool:
        """Copy ``packet`` into the SRTP buffer, rewrite pt/seq/ts/ssrc, protect, send.

        The hot path: one memcpy, one struct write, one libsrtp call, one sendto; plus, when
        the peer does transport-cc and the packet has the element (at ``twcc_off``), our
        transport-wide sequence number written there and recorded (by the compiled step,
        when there is one).
        """
        sendto = self._sendto
        n = len(packet)
        if sendto is None or n > SRTP_MAX_PACKET:
            return False
        fast = self._fast
        out_len = (_fast_send(fast, packet, n, b1, seq, ts, ssrc, twcc_off) if fast is not None
                   else self._send_from_python(sendto, packet, n, b1, seq, ts, ssrc, twcc_off))
        if out_len < 0:
            self.stats.send_errors += 1
            return False
        stats = self.stats
        stats.rtp_out += 1
        stats.rtp_out_bytes += out_len
        return True

    def _send_from_python(self, sendto: Callable[[bytes, Any], None], packet: bytes, n: int,
                          b1: int, seq: int, ts: int, ssrc: int, twcc_off: int) -> int:
        """The compiled ``sfu_send``'s steps from Python (no compiled module): bytes sent,
        or -1. The transport-wide number and its record are kept in Python here."""
        history = self.twcc_history
        tseq = -1
        if twcc_off and history is not None:
            tseq = self._twcc_seq = (self._twcc_seq + 1) & 0xFFFF
        cbuf = self._cbuf
        cbuf[0:n] = packet
        _PACK_B1_SEQ_TS_SSRC(cbuf, 1, b1, seq, ts, ssrc)
        if tseq >= 0:
            _PACK_H(cbuf, twcc_off, tseq)
        len_p = self._len_p
        len_p[0] = n
        if lib.srtp_protect(self._srtp_ptr, self._cdata, len_p) != 0:
            return -1
        out_len = int(len_p[0])
        try:
            sendto(cbuf[0:out_len], self._addr)
        except OSError:
            return -1
        if tseq >= 0 and isinstance(history, SendHistory):
            history.record(tseq, n, _monotonic() * 1000.0)
        return out_len

    def send_rtp(self, packet: bytes) -> bool:
        """Send an already-rewritten RTP packet (retransmissions)."""
        twcc_off = (extension_offset(packet, TWCC_ID, 2)
                    if self.twcc_history is not None else 0)
        seq, ts, ssrc = struct.unpack_from("!HII", packet, 2)
        return self.send_rewritten(packet, packet[1], seq, ts, ssrc, twcc_off)

    def send_datagram(self, data: bytes) -> bool:
        """Send ``data`` as it is on the selected path (no SRTP): for probes and tests that
        must reach the peer from this transport's own validated address."""
        sendto = self._sendto
        if sendto is None:
            return False
        try:
            sendto(data, self._addr)
        except OSError:
            return False
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        sendto = self._sendto
        if sendto is None or self.state != "connected":
            return False
        try:
            data = self._dtls._tx_srtp.protect_rtcp(packet)
            sendto(data, self._addr)
        except (pylibsrtp.Error, OSError, ValueError):
            self.stats.send_errors += 1
            return False
        self.stats.rtcp_out += 1
        return True

    async def close(self) -> None:
        if self.state == "closed":
            return
        self._sendto = None
        self._fast = None
        self._route_changed()
        self._rx_srtp = None
        self._rx_fast = None
        self.state = "closed"
        try:
            await self._dtls.stop()
        except Exception:
            log.debug("DTLS stop failed", exc_info=True)
        try:
            await self._ice.stop()
        except Exception:
            log.debug("ICE stop failed", exc_info=True)
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        try:
            self._on_state("closed")
        except Exception:
            log.exception("transport %s state listener failed", self.name)


class _LiteIce:
    """The ICE side that aiortc's ``RTCDtlsTransport`` talks to (``role``, ``_recv``,
    ``_send``), over the shared media ports: DTLS datagrams queued by the transport, sent
    on its selected path."""

    role = "controlled"
    #: DTLS datagrams kept before the handshake reads them (a peer cannot grow it further)
    MAX_QUEUED = 64

    def __init__(self, owner: LiteTransport) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.state = "new"

    def put(self, data: bytes, _component: int = 1) -> None:
        if self.state != "closed" and self._queue.qsize() < self.MAX_QUEUED:
            self._queue.put_nowait(data)

    async def _recv(self) -> bytes:
        data = await self._queue.get()
        if data is None:
            raise ConnectionError("the transport is closed")
        return data

    async def _send(self, data: bytes) -> None:
        path = self._owner.selected_path
        if path is None or self.state == "closed":
            raise ConnectionError("no ICE path to send on")
        path.sendto(data)

    async def stop(self) -> None:
        if self.state != "closed":
            self.state = "closed"
            self._queue.put_nowait(None)


class LiteTransport(MediaTransport):
    """The server's transport: ICE-lite (sfu.ice_lite) on the server's shared media ports
    (sfu.media_ports), then aiortc's DTLS and our SRTP paths as for :class:`MediaTransport`.
    It never sends a connectivity check; it answers the peer's and sends on the path the
    peer nominated (UDP: the compiled send step on the shared socket; ICE-TCP: framed, from
    Python)."""

    def __init__(self, certificate: RTCCertificate, ports: MediaPorts, *,
                 on_rtp: Callable[[bytes, float], None], on_rtcp: Callable[[bytes], None],
                 on_state: Callable[[str], None], name: str = "",
                 connect_timeout_s: float = ICE_CONNECT_TIMEOUT_S) -> None:
        self._init_common(on_rtp, on_rtcp, on_state, name)
        self._ports = ports
        self._connect_timeout_s = connect_timeout_s
        ufrag, pwd = new_credentials()
        while True:
            try:
                ports.register(ufrag, self)
                break
            except ValueError:  # (one in 62**8: draw again)
                ufrag, pwd = new_credentials()
        self._agent = IceLiteAgent(ufrag, pwd)
        self._lite = _LiteIce(self)
        self._ice = self._lite  # type: ignore[assignment]
        self._queue_datagram = self._lite.put  # type: ignore[assignment]
        self._path_ready = asyncio.Event()
        self._dtls = _SfuDtlsTransport(self._lite, [certificate])  # type: ignore[arg-type]
        self._dtls._owner = self

    # -- set-up -----------------------------------------------------------------------

    async def gather(self) -> None:
        if not self._ports.started:
            raise OSError("the media ports are not bound")

    def local(self) -> LocalTransport:
        fps = tuple(
            (f.algorithm, f.value) for f in self._dtls.getLocalParameters().fingerprints
        )
        return LocalTransport(self._agent.ufrag, self._agent.pwd, fps,
                              tuple(self._ports.candidates()), ice_lite=True)

    @property
    def local_ports(self) -> list[int]:
        return [self._ports.udp_port]

    @property
    def selected_path(self) -> Path | None:
        selected = self._agent.selected
        return selected if isinstance(selected, Path) else None

    @property
    def path_protocol(self) -> str | None:
        """"udp" or "tcp": how the selected path reaches the peer (None: none yet)."""
        path = self.selected_path
        return path.protocol if path is not None else None

    def start(
        self, ice_ufrag: str, ice_pwd: str, fingerprints: list[tuple[str, str]], dtls_role: str,
        *, remote_lite: bool = False,
    ) -> None:
        if self._start_task is not None:
            return
        self.remote_ice = (ice_ufrag, ice_pwd)
        self._agent.remote_ufrag = ice_ufrag
        self._dtls._set_role(dtls_role)
        dtls_params = _dtls_parameters(fingerprints)
        self._start_task = asyncio.ensure_future(self._run_lite(dtls_params))

    async def _run_lite(self, dtls_params: RTCDtlsParameters) -> None:
        self._set_state("connecting")
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._path_ready.wait()
        except TimeoutError:
            if self.state != "closed":
                log.info("transport %s: no valid ICE check within %.0f s", self.name,
                         self._connect_timeout_s)
                self._set_state("failed")
            return
        await self._secure(dtls_params)

    def _bypass_stun_parse(self) -> None:
        pass  # the shared ports hand RTP straight to on_datagram already

    def _send_target(self) -> tuple[Callable[[bytes, Any], None], Any, Any] | None:
        path = self.selected_path
        if path is None:
            return None
        return path.sendto, path.remote, path.socket

    async def add_remote_candidate(self, candidate: str | None) -> None:
        """A lite agent sends no checks: the peer's candidates are only checked for form
        (a bad one is the client's error) and counted."""
        if candidate is None:
            self._remote_candidates_done = True
            return
        self._count_candidate(candidate)

    # -- the shared ports' side (sfu.media_ports.PathOwner) -----------------------------

    def on_check(self, data: bytes, message: stun.Message, path: Path) -> bool:
        if self.state == "closed":
            return False
        outcome = self._agent.handle(data, message, path, path.remote, _monotonic() * 1000.0)
        if outcome.response is not None:
            path.sendto(outcome.response)
        if outcome.refused is not None:
            self._ports.rejected[outcome.refused.value] += 1
        if outcome.accepted:
            if self.state == "connected":
                self.last_rx_ms = _monotonic() * 1000.0  # consent: the peer is alive
        if outcome.selected_changed:
            self._selected_changed()
        return outcome.accepted

    def on_datagram(self, data: bytes, path: Path) -> None:
        if not data:
            return
        first = data[0]
        if 127 < first < 192:
            self._datagram_received(data, 1)
        elif first < 4:
            try:
                message = stun.parse(data)
            except stun.StunError:
                self._ports.rejected["malformed_stun"] += 1
                return
            if message.type == stun.BINDING_REQUEST:
                self.on_check(data, message, path)
        elif 19 < first < 64:
            self._lite.put(data)
        else:
            self._ports.rejected["unknown_datagram"] += 1

    def on_path_closed(self, path: Path) -> None:
        if self._agent.forget(path):
            if self.selected_path is None and self.state == "connected":
                log.info("transport %s: its ICE-TCP connection closed", self.name)
                self._set_state("failed")
            else:
                self._selected_changed()

    def _selected_changed(self) -> None:
        if self._agent.selected is not None:
            self._path_ready.set()
        if self._srtp_ptr is not None and self.state == "connected":
            self._attach_send_path()  # the peer nominated another path

    async def close(self) -> None:
        if self.state != "closed":
            self._ports.unregister(self._agent.ufrag,
                                   [p for p in self._agent.paths if isinstance(p, Path)])
            self._agent.paths.clear()
        await super().close()  # (its ICE side is the _LiteIce: stop() ends the DTLS reads)


#: the DTLS identity of transports (aiortc's certificate type)
Certificate = RTCCertificate


def new_certificate() -> Certificate:
    """A fresh self-signed DTLS certificate (a new fingerprint makes a browser restart
    DTLS on an existing peer connection)."""
    return RTCCertificate.generateCertificate()


class TransportFactory(Protocol):
    """Makes a participant's transports (its publisher and subscriber connections). The
    server's is :class:`UdpTransports`; tests give participants their own."""

    def __call__(self, *, name: str, controlling: bool, fresh_certificate: bool,
                 on_rtp: Callable[[bytes, float], None], on_rtcp: Callable[[bytes], None],
                 on_state: Callable[[str], None]) -> MediaTransport: ...


class SharedPortTransports:
    """The server's transports: ICE-lite on its shared media ports, with the server's
    certificate (or, to replace a dead transport, a fresh one)."""

    def __init__(self, certificate: Certificate, ports: MediaPorts) -> None:
        self.certificate = certificate
        self.ports = ports

    def __call__(self, *, name: str, controlling: bool, fresh_certificate: bool,
                 on_rtp: Callable[[bytes, float], None], on_rtcp: Callable[[bytes], None],
                 on_state: Callable[[str], None]) -> MediaTransport:
        return LiteTransport(new_certificate() if fresh_certificate else self.certificate,
                             self.ports, on_rtp=on_rtp, on_rtcp=on_rtcp, on_state=on_state,
                             name=name)


class UdpTransports:
    """Full ICE agents (aioice) on UDP sockets of their own bound to ``ice_addresses``,
    with a shared certificate (or, to replace a dead transport, a fresh one): the clients'
    transports (bench and test clients) and in-process tests without shared ports."""

    def __init__(self, certificate: Certificate, ice_addresses: tuple[str, ...]) -> None:
        self.certificate = certificate
        self.ice_addresses = ice_addresses

    def __call__(self, *, name: str, controlling: bool, fresh_certificate: bool,
                 on_rtp: Callable[[bytes, float], None], on_rtcp: Callable[[bytes], None],
                 on_state: Callable[[str], None]) -> MediaTransport:
        return MediaTransport(new_certificate() if fresh_certificate else self.certificate,
                              list(self.ice_addresses), controlling=controlling,
                              on_rtp=on_rtp, on_rtcp=on_rtcp, on_state=on_state, name=name)
