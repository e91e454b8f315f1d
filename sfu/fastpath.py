"""The compiled steps of the forwarding path (``sfu._fastpath``: sfu/fastpath.c through
cffi, built by the package build), wrapped for Python. Importing this module fails when the
extension is not built; :mod:`sfu.engine` decides, once, whether it is used.

:func:`connect` binds one SRTP session, ICE socket and peer address into a C struct;
:data:`send` (``sfu_send``) then rewrites, protects and sends one packet in one call;
:data:`fanout` does that for every subscriber of a layer. :func:`receiver` unprotects
received SRTP packets in one call, and its ``ingress`` runs the whole steady-case ingress
step. The C structs that hold per-packet state (``sfu_fwd``, ``sfu_seq``, ``sfu_track``,
``sfu_layer``, ``sfu_cache``, ``sfu_twcc_rx``) are made here and read by the Python objects
that own them through the same field names as their Python stand-ins.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from sfu import _fastpath  # type: ignore[attr-defined]

from .engine import MAX_SOURCES, IngressSource
from .twcc import DEFAULT_RECORDER_SIZE, SEQ_MOD, TwccRecorder

ffi: Any = _fastpath.ffi
lib: Any = _fastpath.lib

#: sfu_send(conn, packet, len, b1, seq, ts, ssrc, twcc_off) -> bytes sent, or -1 bad
#: length, -2 srtp_protect failed, -3 sendto failed (with transport-cc on the connection and
#: ``twcc_off`` > 0: the next transport-wide number is written there and recorded)
send: Any = lib.sfu_send
#: sfu_fanout(packet, len, b1, ssrc, ext_seq, ts, now_ms, twcc_off, dests, n) -> how many
#: were left to Python (their ``status`` is 1); its sends go out in one batch (io_uring)
fanout: Any = lib.sfu_fanout
#: sfu_rewrite(packet, len, id_map, a_id, b_id, pt, out) -> offsets: rewrite_extension_ids
#: and the payload type on a copy written to ``out`` (``SCRATCH``)
rewrite: Any = lib.sfu_rewrite
#: sfu_vp8_keyframe(packet, len) -> 1 if the packet starts a VP8 keyframe
vp8_keyframe: Any = lib.sfu_vp8_keyframe
#: where :data:`rewrite` writes (one event loop per process: one buffer), and how to read it
SCRATCH: Any = ffi.new("char[1536]")
unpack: Any = ffi.unpack
NULL: Any = ffi.NULL
#: sfu_seq_update(state, seq, ts, now_ms) -> ext seq or -1: SequenceTracker.update in C
sequence_update: Any = lib.sfu_seq_update
#: sfu_ingress(rx, datagram, len) -> flags (> 0: handled), 0, 2, -1, -2 (see the C source)
ingress: Any = lib.sfu_ingress
#: sfu_twcc_rx_packet(state, seq, arrival_ms): TwccRecorder.on_packet in C
twcc_receive: Any = lib.sfu_twcc_rx_packet
_cache_put = lib.sfu_cache_put
_cache_get = lib.sfu_cache_get
_CACHE_OUT = ffi.new("char[1536]")  # SFU_CACHE_MAX
_unpack_bytes = ffi.unpack


def disable_batch() -> None:
    """Send each fan-out's packets with sendto, never io_uring (for A/B measurements)."""
    lib.sfu_batch_disable()


def batch_state() -> str:
    """How the compiled fan-out sends: ``io_uring`` (one system call per fan-out),
    ``sendto`` (one per packet: no io_uring here, or it failed, or disabled) or
    ``unknown`` (nothing fanned out yet)."""
    return {1: "io_uring", -1: "sendto"}.get(int(lib.sfu_batch_state()), "unknown")


def ingress_handled() -> int:
    """Packets the compiled ingress step handled in this process."""
    return int(lib.sfu_ingress_handled)


def forwarder_state() -> Any:
    """A C ``sfu_fwd`` for an RtpForwarder's per-packet fields."""
    return ffi.new("sfu_fwd *")


def dest(state: Any, out_ssrc: int) -> Any:
    """A C ``sfu_dest`` for one subscription (``state`` from :func:`forwarder_state`, kept
    alive by the caller)."""
    d = ffi.new("sfu_dest *")
    d.fwd = state
    d.out_ssrc = out_ssrc
    d.conn = ffi.NULL
    return d


def dest_array(dests: list[Any]) -> Any:
    return ffi.new("sfu_dest *[]", dests)


def sequence_state(clock_rate: int) -> Any:
    """A C ``sfu_seq`` for a SequenceTracker's fields."""
    state = ffi.new("sfu_seq *")
    lib.sfu_seq_init(state, clock_rate)
    return state


def track_state(publisher_pt: int, pt: int, id_map: bytes, *, video: bool, twcc: bool,
                level: bool) -> Any:
    """A C ``sfu_track``: a published track's ingress settings and counters."""
    t = ffi.new("sfu_track *")
    t.publisher_pt = publisher_pt
    t.pt = pt
    t.video = int(video)
    t.twcc = int(twcc)
    t.level = int(level)
    ffi.memmove(t.id_map, id_map, 256)
    return t


def layer_state() -> Any:
    """A C ``sfu_layer``: a layer's ingress counters and fan-out plan (none yet)."""
    la = ffi.new("sfu_layer *")
    la.last_packet_ms = -1e12
    la.plan_version = -1
    la.dests = ffi.NULL
    return la


def _address(addr: tuple[Any, ...]) -> bytes:
    """``struct sockaddr_in``/``sockaddr_in6`` (Linux layout) of a (host, port) tuple."""
    host, port = addr[0], int(addr[1])
    try:
        return (struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
                + socket.inet_pton(socket.AF_INET, host) + bytes(8))
    except OSError:
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
                + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0))


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
        if self._twcc is None:
            self._twcc = ffi.new("sfu_twcc *")
            self._twcc.assigned = last_assigned & 0xFFFF
            self._twcc.last_recorded = -1
            ffi.memmove(self._twcc.seqs, b"\xff" * (4 * TwccHistory.SIZE),
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
        ptr = lib.sfu_cache_new()
        if ptr == ffi.NULL:
            raise MemoryError("retransmission cache")
        self.ptr = ffi.gc(ptr, lib.sfu_cache_free)

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
    t = ffi.new("sfu_twcc_rx *")
    arrivals = ffi.new("double[]", [float("nan")] * size)
    t.arrivals = arrivals
    t.size = size
    t.max_ext = -1
    return t, arrivals


class CompiledTwccRecorder(TwccRecorder):
    """:class:`TwccRecorder` with its state in C (``sfu_twcc_rx``), so that the compiled
    ingress step records a packet's arrival without Python; the Python path records
    through the same C function, and feedback is built here from the C arrays. Same
    behaviour and interface."""

    __slots__ = ("state", "_keep")

    def __init__(self, size: int = DEFAULT_RECORDER_SIZE) -> None:
        if size <= 0 or size & (size - 1) or size > SEQ_MOD // 2:
            raise ValueError("recorder size must be a power of two <= 32768")
        self._mask = size - 1
        self._size = size
        self._fb_count = 0
        self._last_ref = 0
        #: the C struct (``sfu_track.twcc_rx`` of the publisher's tracks points at it)
        self.state, self._keep = twcc_receive_state(size)

    def on_packet(self, seq: int, arrival_ms: float) -> None:
        twcc_receive(self.state, seq, arrival_ms)

    @property
    def _arrivals(self) -> Any:  # type: ignore[override]
        return self._keep

    @property
    def _next_ext(self) -> int:
        return int(self.state.next_ext)

    @_next_ext.setter
    def _next_ext(self, value: int) -> None:
        self.state.next_ext = value

    @property
    def _max_ext(self) -> int:  # type: ignore[override]
        return int(self.state.max_ext)

    @property
    def _reported(self) -> bool:
        return bool(self.state.reported)

    @_reported.setter
    def _reported(self, value: bool) -> None:
        self.state.reported = int(value)

    @property
    def duplicates(self) -> int:  # type: ignore[override]
        return int(self.state.duplicates)

    @property
    def late(self) -> int:  # type: ignore[override]
        return int(self.state.late)

    @property
    def forgotten(self) -> int:  # type: ignore[override]
        return int(self.state.forgotten)


class Receiver:
    """A ``sfu_rx`` for unprotecting with one pylibsrtp session (kept alive with it):
    :meth:`unprotect` returns the clear packet, or None when it does not authenticate.
    :data:`ingress` on ``ptr`` runs the compiled ingress step for the sources given to
    :meth:`set_sources`."""

    __slots__ = ("ptr", "buf", "handles", "_session", "_call", "_unpack", "_sources")

    def __init__(self, ptr: Any, session: Any) -> None:
        self.ptr = ptr
        #: where the clear packet is (``ptr.len`` bytes) after :meth:`unprotect` or ingress
        self.buf = ffi.cast("char *", ptr.buf)
        self._session = session
        self._call = lib.sfu_unprotect
        self._unpack = ffi.unpack
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


def receiver(session: Any) -> Receiver:
    """A :class:`Receiver` for ``session`` (a keyed inbound pylibsrtp.Session)."""
    rx = ffi.new("sfu_rx *")
    rx.srtp = ffi.cast("void *", int(_srtp_ffi.cast("uintptr_t", session._srtp[0])))
    rx.unprotect = _function_pointer("srtp_unprotect")
    rx.version = -1
    return Receiver(rx, session)


def _function_pointer(name: str) -> Any:
    """A libsrtp function, as the ``void *`` the compiled steps call it through."""
    return ffi.cast("void *", int(_srtp_ffi.cast(
        "uintptr_t", _srtp_ffi.addressof(_srtp_lib, name))))


def connect(session: Any, sock: Any, remote_addr: tuple[Any, ...]) -> Connection | None:
    """A connection for sending with ``session`` (a pylibsrtp.Session) on ``sock`` (the ICE
    socket, anything with ``fileno()``) to ``remote_addr``; None without a socket."""
    if sock is None:
        return None
    conn = ffi.new("sfu_conn *")
    conn.srtp = ffi.cast("void *", int(_srtp_ffi.cast("uintptr_t", session._srtp[0])))
    conn.protect = _function_pointer("srtp_protect")
    conn.fd = sock.fileno()
    raw = _address(remote_addr)
    conn.addrlen = len(raw)
    ffi.memmove(conn.addr, raw, len(raw))
    return Connection(conn, session)
