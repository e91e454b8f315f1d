"""The compiled steps of the forwarding path, when they are built (``sfu.fastpath_build``).

:func:`connect` binds one SRTP session, ICE socket and peer address into a C struct;
:data:`send` (``sfu_send``) then rewrites, protects and sends one packet in one call;
:data:`fanout` does that for every subscriber of a layer. :func:`receiver` unprotects
received SRTP packets in one call.
Without the compiled module :data:`ENABLED` is False and :class:`sfu.transport.
MediaTransport` keeps its Python send path (same bytes on the wire, more CPU).
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any, NamedTuple

from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

try:
    from sfu import _fastpath  # type: ignore[attr-defined]
except ImportError:  # not built: the Python path is used
    _fastpath = None
if os.environ.get("SFU_FASTPATH", "1") == "0":  # for A/B measurements
    _fastpath = None

ENABLED = _fastpath is not None
#: sfu_send(conn, packet, len, b1, seq, ts, ssrc, twcc_off) -> bytes sent, or -1 bad
#: length, -2 srtp_protect failed, -3 sendto failed (with transport-cc on the connection and
#: ``twcc_off`` > 0: the next transport-wide number is written there and recorded)
send: Any = _fastpath.lib.sfu_send if _fastpath is not None else None


#: sfu_fanout(packet, len, b1, ssrc, ext_seq, ts, now_ms, twcc_off, dests, n) -> how many
#: were left to Python (their ``status`` is 1); its sends go out in one batch (io_uring)
fanout: Any = _fastpath.lib.sfu_fanout if _fastpath is not None else None
if _fastpath is not None and os.environ.get("SFU_BATCH_SEND", "1") == "0":  # A/B
    _fastpath.lib.sfu_batch_disable()


def batch_state() -> str:
    """How the compiled fan-out sends: ``io_uring`` (one system call per fan-out),
    ``sendto`` (one per packet: no io_uring here, or it failed, or ``SFU_BATCH_SEND=0``),
    ``unknown`` (nothing fanned out yet) or ``off`` (no compiled module)."""
    if _fastpath is None:
        return "off"
    return {1: "io_uring", -1: "sendto"}.get(int(_fastpath.lib.sfu_batch_state()), "unknown")


#: sfu_rewrite(packet, len, id_map, a_id, b_id, pt, out) -> offsets: rewrite_extension_ids
#: and the payload type on a copy written to ``out`` (``SCRATCH``)
rewrite: Any = _fastpath.lib.sfu_rewrite if _fastpath is not None else None
#: sfu_vp8_keyframe(packet, len) -> 1 if the packet starts a VP8 keyframe
vp8_keyframe: Any = _fastpath.lib.sfu_vp8_keyframe if _fastpath is not None else None
#: where :data:`rewrite` writes (one event loop per process: one buffer), and how to read it
SCRATCH: Any = _fastpath.ffi.new("char[1536]") if _fastpath is not None else None
unpack: Any = _fastpath.ffi.unpack if _fastpath is not None else None


def forwarder_state() -> Any:
    """A C ``sfu_fwd`` for an RtpForwarder's per-packet fields, or None (Python fields)."""
    return _fastpath.ffi.new("sfu_fwd *") if _fastpath is not None else None


def dest(state: Any, out_ssrc: int) -> Any:
    """A C ``sfu_dest`` for one subscription (``state`` from :func:`forwarder_state`, kept
    alive by the caller), or None."""
    if _fastpath is None or state is None:
        return None
    d = _fastpath.ffi.new("sfu_dest *")
    d.fwd = state
    d.out_ssrc = out_ssrc
    d.conn = _fastpath.ffi.NULL
    return d


def dest_array(dests: list[Any]) -> Any:
    assert _fastpath is not None
    return _fastpath.ffi.new("sfu_dest *[]", dests)


NULL: Any = _fastpath.ffi.NULL if _fastpath is not None else None


def _address(addr: tuple[Any, ...]) -> bytes:
    """``struct sockaddr_in``/``sockaddr_in6`` (Linux layout) of a (host, port) tuple."""
    host, port = addr[0], int(addr[1])
    try:
        return (struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
                + socket.inet_pton(socket.AF_INET, host) + bytes(8))
    except OSError:
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
                + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0))


#: sfu_seq_update(state, seq, ts, now_ms) -> ext seq or -1: SequenceTracker.update in C
sequence_update: Any = _fastpath.lib.sfu_seq_update if _fastpath is not None else None
#: sfu_ingress(rx, datagram, len) -> flags (> 0: handled), 0, 2, -1, -2 (see the C source)
ingress: Any = _fastpath.lib.sfu_ingress if _fastpath is not None else None
if os.environ.get("SFU_FASTPATH_INGRESS", "1") == "0":  # the ingress step alone off (A/B)
    ingress = None
#: flags of a handled packet (:data:`ingress` > 0): what is left to Python
IN_TWCC = 2
IN_LEVEL = 4
IN_NACK = 8
IN_LEFT = 16
#: sources one receiver's compiled ingress step knows (more take the Python path)
MAX_SOURCES = 32


def ingress_handled() -> int:
    """Packets the compiled ingress step handled in this process (0 without it)."""
    return int(_fastpath.lib.sfu_ingress_handled) if _fastpath is not None else 0


def sequence_state(clock_rate: int) -> Any:
    """A C ``sfu_seq`` for a SequenceTracker's fields, or None (Python fields)."""
    if _fastpath is None:
        return None
    state = _fastpath.ffi.new("sfu_seq *")
    _fastpath.lib.sfu_seq_init(state, clock_rate)
    return state


def track_state(publisher_pt: int, pt: int, id_map: bytes, *, video: bool, twcc: bool,
                level: bool) -> Any:
    """A C ``sfu_track``: a published track's ingress settings and counters, or None."""
    if _fastpath is None:
        return None
    t = _fastpath.ffi.new("sfu_track *")
    t.publisher_pt = publisher_pt
    t.pt = pt
    t.video = int(video)
    t.twcc = int(twcc)
    t.level = int(level)
    _fastpath.ffi.memmove(t.id_map, id_map, 256)
    return t


def layer_state() -> Any:
    """A C ``sfu_layer``: a layer's ingress counters and fan-out plan, or None."""
    if _fastpath is None:
        return None
    la = _fastpath.ffi.new("sfu_layer *")
    la.last_packet_ms = -1e12
    la.plan_version = -1
    la.dests = _fastpath.ffi.NULL
    return la


class TwccHistory:
    """The send history of a connection doing transport-cc, kept by the compiled send step
    (``sfu_twcc``): the same answers as :class:`sfu.twcc.SendHistory`, which the Python
    send path keeps instead."""

    __slots__ = ("_t",)
    SIZE = 8192

    def __init__(self, twcc: Any) -> None:
        self._t = twcc

    @property
    def last_assigned(self) -> int:
        """The last transport-wide sequence number written in a packet (0 before any)."""
        return int(self._t.assigned)

    def lookup(self, seq: int) -> tuple[float, int] | None:
        """(send time ms, size bytes), or None if never sent or no longer remembered."""
        seq &= 0xFFFF
        t = self._t
        last = t.last_recorded
        if last < 0 or ((last - seq) & 0xFFFF) >= self.SIZE:
            return None
        i = seq & (self.SIZE - 1)
        if t.seqs[i] != seq:
            return None
        return float(t.times[i]), int(t.sizes[i])


class Connection:
    """A ``sfu_conn`` (``ptr``, what :data:`send` takes) and the pylibsrtp session it
    points into, kept alive with it; :meth:`enable_twcc` adds a send history."""

    __slots__ = ("ptr", "_session", "_twcc")

    def __init__(self, ptr: Any, session: Any) -> None:
        self.ptr = ptr
        self._session = session
        self._twcc: Any = None

    def enable_twcc(self, last_assigned: int = 0) -> TwccHistory:
        """From now on, packets sent with a transport-cc element get transport-wide sequence
        numbers (continuing after ``last_assigned``), recorded in the returned history."""
        assert _fastpath is not None
        if self._twcc is None:
            self._twcc = _fastpath.ffi.new("sfu_twcc *")
            self._twcc.assigned = last_assigned & 0xFFFF
            self._twcc.last_recorded = -1
            _fastpath.ffi.memmove(self._twcc.seqs, b"\xff" * (4 * TwccHistory.SIZE),
                                  4 * TwccHistory.SIZE)  # every slot -1: never sent
            self.ptr.twcc = self._twcc
        return TwccHistory(self._twcc)


class CompiledCache:
    """:class:`sfu.retransmit.RetransmitCache` in C (``sfu_cache``): the compiled ingress
    step puts the packets it handles there itself, so the steady case needs no Python per
    packet. Same interface; the capacity is fixed (``SFU_CACHE_SIZE``, the Python cache's
    default)."""

    __slots__ = ("ptr",)

    def __init__(self) -> None:
        assert _fastpath is not None
        ptr = _fastpath.lib.sfu_cache_new()
        if ptr == _fastpath.ffi.NULL:
            raise MemoryError("retransmission cache")
        self.ptr = _fastpath.ffi.gc(ptr, _fastpath.lib.sfu_cache_free)

    def put(self, ext_seq: int, packet: bytes) -> None:
        _cache_put(self.ptr, ext_seq, packet, len(packet))

    def get(self, ext_seq: int) -> bytes | None:
        n = _cache_get(self.ptr, ext_seq, _CACHE_OUT)
        return _unpack_bytes(_CACHE_OUT, n) if n >= 0 else None

    @property
    def hits(self) -> int:
        return int(self.ptr.hits)

    @property
    def misses(self) -> int:
        return int(self.ptr.misses)


def twcc_receive_state(size: int) -> tuple[Any, Any]:
    """A C ``sfu_twcc_rx`` (transport-cc arrivals of a publisher transport) with ``size``
    slots, all NaN, and its arrivals array (kept alive by the caller with the struct)."""
    assert _fastpath is not None
    t = _fastpath.ffi.new("sfu_twcc_rx *")
    arrivals = _fastpath.ffi.new("double[]", [float("nan")] * size)
    t.arrivals = arrivals
    t.size = size
    t.max_ext = -1
    return t, arrivals


if _fastpath is not None:
    #: sfu_twcc_rx_packet(state, seq, arrival_ms): TwccRecorder.on_packet in C
    twcc_receive = _fastpath.lib.sfu_twcc_rx_packet
    _cache_put = _fastpath.lib.sfu_cache_put
    _cache_get = _fastpath.lib.sfu_cache_get
    _CACHE_OUT = _fastpath.ffi.new("char[1536]")  # SFU_CACHE_MAX
    _unpack_bytes = _fastpath.ffi.unpack


class IngressSource(NamedTuple):
    """One source for the compiled ingress step: its SSRC, the C structs it updates
    (``sfu_seq``, ``sfu_track``, ``sfu_layer``), its retransmission cache (where the step
    puts its packets), and what the owner wants back with its packets (``handle``)."""

    ssrc: int
    seq: Any
    track: Any
    layer: Any
    cache: CompiledCache
    handle: Any


class Receiver:
    """A ``sfu_rx`` for unprotecting with one pylibsrtp session (kept alive with it):
    :meth:`unprotect` returns the clear packet, or None when it does not authenticate.
    :data:`ingress` on ``ptr`` runs the compiled ingress step for the sources given to
    :meth:`set_sources`."""

    __slots__ = ("ptr", "buf", "handles", "_session", "_call", "_unpack", "_sources")

    def __init__(self, ptr: Any, session: Any) -> None:
        assert _fastpath is not None
        self.ptr = ptr
        #: where the clear packet is (``ptr.len`` bytes) after :meth:`unprotect` or ingress
        self.buf = _fastpath.ffi.cast("char *", ptr.buf)
        self._session = session
        self._call = _fastpath.lib.sfu_unprotect
        self._unpack = _fastpath.ffi.unpack
        self._sources: list[IngressSource] = []
        #: the ``handle`` of each source given to :meth:`set_sources`, by index
        self.handles: list[Any] = []

    def unprotect(self, data: bytes) -> bytes | None:
        n = self._call(self.ptr, data, len(data))
        return self._unpack(self.buf, n) if n >= 0 else None

    def clear_packet(self) -> bytes:
        """The packet :data:`ingress` left in the buffer (as rewritten, when handled)."""
        return self._unpack(self.buf, self.ptr.len)  # type: ignore[no-any-return]

    @property
    def stale(self) -> bool:
        """The sources must be set again (never set, or :meth:`invalidate` since)."""
        return int(self.ptr.version) < 0

    def invalidate(self) -> None:
        """What the sources were made from changed: until :meth:`set_sources` is called
        again, the ingress step leaves every packet to Python."""
        self.ptr.version = -1

    def set_sources(self, sources: list[IngressSource]) -> None:
        """The sources the ingress step handles, as of now; a packet of source i is reported
        with ``ptr.src`` i (``handles[i]`` is its handle). The structs are kept alive here
        until the next call."""
        rx = self.ptr
        sources = sources[:MAX_SOURCES]
        for i, source in enumerate(sources):
            entry = rx.srcs[i]
            entry.ssrc = source.ssrc
            entry.index = i
            entry.seq = source.seq
            entry.track = source.track
            entry.layer = source.layer
            entry.cache = source.cache.ptr
        rx.nsrc = len(sources)
        rx.version = 0  # valid (-1: stale)
        self._sources = sources
        self.handles = [source.handle for source in sources]


def receiver(session: Any) -> Receiver | None:
    """A :class:`Receiver` for ``session`` (a keyed inbound pylibsrtp.Session); None if the
    compiled module is not built."""
    if _fastpath is None:
        return None
    rx = _fastpath.ffi.new("sfu_rx *")
    rx.srtp = _fastpath.ffi.cast("void *", int(_srtp_ffi.cast("uintptr_t", session._srtp[0])))
    rx.unprotect = _function_pointer("srtp_unprotect")
    rx.version = -1
    return Receiver(rx, session)


def _function_pointer(name: str) -> Any:
    """A libsrtp function, as the ``void *`` the compiled steps call it through."""
    assert _fastpath is not None
    return _fastpath.ffi.cast("void *", int(_srtp_ffi.cast(
        "uintptr_t", _srtp_ffi.addressof(_srtp_lib, name))))


def connect(session: Any, sock: Any, remote_addr: tuple[Any, ...]) -> Connection | None:
    """A connection for sending with ``session`` (a pylibsrtp.Session) on ``sock`` (the ICE
    socket, anything with ``fileno()``) to ``remote_addr``; None if not built."""
    if _fastpath is None or sock is None:
        return None
    ffi = _fastpath.ffi
    conn = ffi.new("sfu_conn *")
    conn.srtp = ffi.cast("void *", int(_srtp_ffi.cast("uintptr_t", session._srtp[0])))
    conn.protect = _function_pointer("srtp_protect")
    conn.fd = sock.fileno()
    raw = _address(remote_addr)
    conn.addrlen = len(raw)
    ffi.memmove(conn.addr, raw, len(raw))
    return Connection(conn, session)
