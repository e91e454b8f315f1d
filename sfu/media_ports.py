"""The server's shared media ports: every participant's ICE, DTLS and SRTP on one UDP port
(and ICE-TCP on one TCP port), per server process. The asyncio adapter of
:mod:`sfu.ice_lite`.

Demultiplexing (the design LiveKit's UDP mux and mediasoup's WebRtcServer use): a datagram
from a remote address already validated by a connectivity check goes to that address's
transport; any other datagram must be a STUN binding request whose USERNAME names a
transport's ICE ufrag and whose MESSAGE-INTEGRITY is right for its password, and only then
is the address added. Everything else is dropped and counted
(``sfu_media_port_rejected_total{reason}``): nobody's media notices.

ICE-TCP (RFC 6544 passive candidates, RFC 4571 framing: a 2-byte length before each
packet): the first frame on a connection must be such a check; the connection is then one
more path of that transport.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, cast

from . import stun
from .ice_lite import local_ufrag_of

log = logging.getLogger(__name__)

#: socket buffers asked for on the shared UDP socket (every participant's packets queue
#: here; the kernel caps it at net.core.rmem_max/wmem_max unless we may force it)
SOCKET_BUFFER_BYTES = 8 << 20
#: a TCP connection must present a valid check within this time, or it is closed
TCP_AUTH_TIMEOUT_S = 10.0
#: queued bytes beyond which packets to a slow ICE-TCP peer are dropped (not buffered)
TCP_MAX_BUFFERED = 512 << 10
#: candidate type preferences (RFC 8445 5.1.2.1; RFC 6544 4.2 for TCP: below UDP)
_UDP_TYPE_PREF = 126
_TCP_TYPE_PREF = 90


class PathOwner(Protocol):
    """What a transport on the shared ports implements (sfu.transport.LiteTransport)."""

    def on_check(self, data: bytes, message: stun.Message, path: Path) -> bool:
        """A STUN message naming this transport's ufrag arrived on ``path`` (not yet
        validated): answer it; True when the path is now the transport's."""

    def on_datagram(self, data: bytes, path: Path) -> None:
        """A datagram (or ICE-TCP frame) on one of its validated paths."""

    def on_path_closed(self, path: Path) -> None:
        """An ICE-TCP connection of its closed."""


class Path:
    """Where a transport's packets go: one remote address on a shared UDP socket, or one
    ICE-TCP connection."""

    __slots__ = ("owner", "remote")
    protocol = "udp"

    def __init__(self, owner: PathOwner, remote: tuple[Any, ...]) -> None:
        self.owner = owner
        self.remote = remote

    def sendto(self, data: bytes, _addr: Any = None) -> None:
        raise NotImplementedError

    def release(self) -> None:
        """Its transport closed: nothing reaches it this way any more."""
        raise NotImplementedError

    @property
    def socket(self) -> socket.socket | None:
        """The UDP socket (for the compiled send step), None for TCP."""
        return None


class UdpPath(Path):
    __slots__ = ("endpoint",)

    def __init__(self, owner: PathOwner, remote: tuple[Any, ...], endpoint: UdpEndpoint
                 ) -> None:
        super().__init__(owner, remote)
        self.endpoint = endpoint

    def sendto(self, data: bytes, _addr: Any = None) -> None:
        transport = self.endpoint.transport
        if transport is not None:
            transport.sendto(data, self.remote)

    def release(self) -> None:
        routes = self.endpoint.routes
        if routes.get(self.remote) is self:
            del routes[self.remote]

    @property
    def socket(self) -> socket.socket | None:
        transport = self.endpoint.transport
        return transport.get_extra_info("socket") if transport is not None else None


class TcpPath(Path):
    __slots__ = ("connection",)
    protocol = "tcp"

    def __init__(self, owner: PathOwner, remote: tuple[Any, ...], connection: TcpConnection
                 ) -> None:
        super().__init__(owner, remote)
        self.connection = connection

    def sendto(self, data: bytes, _addr: Any = None) -> None:
        self.connection.send_frame(data)

    def release(self) -> None:
        self.connection.close()


class MediaPorts:
    """The shared sockets of one server process and their demultiplexing tables."""

    def __init__(self, addresses: tuple[str, ...], udp_port: int, tcp_port: int | None,
                 announced: tuple[str, ...] = ()) -> None:
        self.addresses = addresses
        #: what the candidates say, per address (1:1 NAT, containers): default the same
        self.announced = announced or addresses
        self._udp_port_wanted = udp_port
        self._tcp_port_wanted = tcp_port
        self.udp_port = 0
        self.tcp_port: int | None = None
        self._owners: dict[str, PathOwner] = {}  # ICE ufrag -> transport
        self.endpoints: list[UdpEndpoint] = []
        self._servers: list[asyncio.AbstractServer] = []
        self.tcp_connections: set[TcpConnection] = set()
        #: dropped datagrams and frames by reason (sfu_media_port_rejected_total)
        self.rejected: Counter[str] = Counter()
        self.started = False

    async def start(self) -> None:
        """Bind the UDP socket on every address (one port number for all; the first
        address picks it when the configured port is 0) and the ICE-TCP listeners."""
        loop = asyncio.get_running_loop()
        port = self._udp_port_wanted
        try:
            for address in self.addresses:
                endpoint = UdpEndpoint(self, address)
                await loop.create_datagram_endpoint(lambda e=endpoint: e,  # type: ignore[misc]
                                                    local_addr=(address, port))
                self.endpoints.append(endpoint)
                if not endpoint.port:
                    raise OSError(0, "the UDP socket did not come up")
                port = endpoint.port
            self.udp_port = port
            if self._tcp_port_wanted is not None:
                tport = self._tcp_port_wanted
                for address in self.addresses:
                    server = await loop.create_server(
                        lambda: TcpConnection(self), host=address, port=tport,
                        reuse_address=True)
                    self._servers.append(server)
                    tport = server.sockets[0].getsockname()[1]
                self.tcp_port = tport
        except OSError as exc:
            await self.close()
            raise OSError(exc.errno, f"cannot bind the media ports ({exc.strerror}): udp "
                          f"{self._udp_port_wanted}, tcp {self._tcp_port_wanted} on "
                          f"{', '.join(self.addresses)}") from exc
        self.started = True
        log.info("media on udp %s port %d%s", ", ".join(self.addresses), self.udp_port,
                 f", ICE-TCP port {self.tcp_port}" if self.tcp_port else "")

    async def close(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        self.endpoints.clear()
        for server in self._servers:
            server.close()
        for conn in list(self.tcp_connections):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self.started = False

    # -- transports ---------------------------------------------------------------------

    def register(self, ufrag: str, owner: PathOwner) -> None:
        if ufrag in self._owners:
            raise ValueError(f"ICE ufrag {ufrag!r} is already in use")
        self._owners[ufrag] = owner

    def unregister(self, ufrag: str, paths: list[Path]) -> None:
        """A transport closed: its ufrag and paths go (its TCP connections are closed)."""
        self._owners.pop(ufrag, None)
        for path in paths:
            path.release()

    @property
    def transports(self) -> int:
        return len(self._owners)

    @property
    def routes(self) -> int:
        return sum(len(e.routes) for e in self.endpoints)

    def candidates(self, foundation_seed: str = "") -> list[str]:
        """The ICE candidate lines (without ``candidate:``) of the shared ports: one UDP host
        candidate per address and, with ICE-TCP, one passive TCP one (lower priority)."""
        lines = []
        for i, address in enumerate(self.announced):
            local_pref = 65535 - i
            prio = (_UDP_TYPE_PREF << 24) | (local_pref << 8) | 255
            lines.append(f"{1 + i} 1 udp {prio} {address} {self.udp_port} typ host")
            if self.tcp_port:
                prio = (_TCP_TYPE_PREF << 24) | (local_pref << 8) | 255
                lines.append(f"{101 + i} 1 tcp {prio} {address} {self.tcp_port} typ host "
                             "tcptype passive")
        return lines

    # -- demultiplexing -----------------------------------------------------------------

    def resolve(self, data: bytes, make_path: Callable[[PathOwner], Path]) -> Path | None:
        """A datagram from a path no transport knows: the transport its check names, and
        that transport's verdict; None (counted) for anything else."""
        if not stun.looks_like_stun(data):
            self.rejected["not_stun"] += 1
            return None
        try:
            message = stun.parse(data)
        except stun.StunError:
            self.rejected["malformed_stun"] += 1
            return None
        if message.type != stun.BINDING_REQUEST:
            self.rejected["not_a_request"] += 1
            return None
        owner = self._owners.get(local_ufrag_of(message.username) or "")
        if owner is None:
            self.rejected["unknown_ufrag"] += 1
            return None
        path = make_path(owner)
        if not owner.on_check(data, message, path):
            return None  # (the transport counted why)
        return path


class UdpEndpoint(asyncio.DatagramProtocol):
    """One shared UDP socket: validated remote address -> its path."""

    def __init__(self, ports: MediaPorts, address: str) -> None:
        self.ports = ports
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.routes: dict[tuple[Any, ...], Path] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # (uvloop's is not a
        # subclass)
        sock = transport.get_extra_info("socket")
        self.port = sock.getsockname()[1]
        for force, plain in ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF),
                             (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF)):
            for opt in (force, plain):
                if opt is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)
                    break
                except OSError:
                    continue

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        path = self.routes.get(addr)
        if path is not None:
            path.owner.on_datagram(data, path)
            return
        path = self.ports.resolve(data, lambda owner: UdpPath(owner, addr, self))
        if path is not None:
            self.routes[addr] = path

    def error_received(self, exc: Exception) -> None:
        # an ICMP error for one peer (port unreachable): not the socket's fault
        log.debug("media socket %s: %s", self.address, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


_FRAME_LEN = struct.Struct("!H")


class TcpConnection(asyncio.Protocol):
    """One ICE-TCP connection (RFC 4571 framing), bound to a transport by its first
    frame."""

    def __init__(self, ports: MediaPorts) -> None:
        self.ports = ports
        self.transport: asyncio.Transport | None = None
        self.path: Path | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self.remote: tuple[Any, ...] = ("", 0)
        #: frames dropped because the peer reads too slowly
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.remote = transport.get_extra_info("peername") or ("", 0)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ports.tcp_connections.add(self)
        self._timer = asyncio.get_running_loop().call_later(TCP_AUTH_TIMEOUT_S,
                                                           self._auth_timeout)

    def _auth_timeout(self) -> None:
        if self.path is None:
            self.ports.rejected["tcp_no_check"] += 1
            self.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            (length,) = _FRAME_LEN.unpack_from(buf, pos)
            if n - pos - 2 < length:
                break
            frame = bytes(buf[pos + 2:pos + 2 + length])
            pos += 2 + length
            if not self._frame(frame):
                return
        del buf[:pos]

    def _frame(self, frame: bytes) -> bool:
        path = self.path
        if path is not None:
            path.owner.on_datagram(frame, path)
            return True
        path = self.ports.resolve(frame, lambda owner: TcpPath(owner, self.remote, self))
        if path is None:
            self.ports.rejected["tcp_unauthenticated"] += 1
            self.close()
            return False
        self.path = path
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return True

    def send_frame(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > TCP_MAX_BUFFERED:
            self.dropped += 1
            return
        transport.write(_FRAME_LEN.pack(len(data)) + data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ports.tcp_connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport = None
        path, self.path = self.path, None
        if path is not None:
            try:
                path.owner.on_path_closed(path)
            except Exception:
                log.exception("ICE-TCP path close failed")
