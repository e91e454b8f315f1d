"""The inter-node link over QUIC (aioquic), a thin asyncio adapter around the sans-IO
format of :mod:`benches.quic_link.wire` (benches/README.md, "The relay link"): media as
QUIC datagrams (unreliable, unordered, no head-of-line blocking: what RTP wants),
control messages on one bidirectional stream (reliable, ordered), one connection per
node pair.

Each node has a self-signed certificate made at start-up; its PEM is announced in the
registry, and a node connecting to it trusts exactly that certificate (pinned, not a CA).
The connecting node proves it belongs to the cluster in its ``hello``: an HMAC of both node
ids with the cluster's shared API secret."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    QuicEvent,
    StreamDataReceived,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .wire import VERSION, ControlReader, LinkError, encode

log = logging.getLogger(__name__)
ALPN = "classroom-relay/1"
#: the largest datagram a link carries (an RTP packet of a browser is at most ~1200 bytes)
MAX_DATAGRAM = 1500


def make_certificate(node: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``node`` (its name in the SAN), PEM, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(node)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def proof(secret: str, client: str, server: str) -> str:
    """What a connecting node shows: that it knows the cluster's secret."""
    return hmac.new(secret.encode(), f"{client}|{server}".encode(), hashlib.sha256).hexdigest()


class Link(QuicConnectionProtocol):
    """One end of a node pair's link. ``on_control(link, message)`` and
    ``on_datagram(link, data)`` are called for what arrives; a protocol error closes the
    link."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_control: Callable[[Link, dict[str, Any]], None] = lambda link, msg: None
        self.on_datagram: Callable[[Link, bytes], None] = lambda link, data: None
        self.on_closed: Callable[[Link], None] = lambda link: None
        self.peer = ""  # the other node's id, once its hello came
        self._reader = ControlReader()
        self._stream: int | None = None
        self.closed = asyncio.Event()
        # figures
        self.datagrams_in = self.datagrams_out = self.dropped = 0

    def send_control(self, message: dict[str, Any]) -> None:
        if self._stream is None:
            self._stream = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(self._stream, encode(message))
        self.transmit()

    def send_datagram(self, data: bytes, flush: bool = True) -> None:
        """Queue a datagram (``flush``: send now; a burst flushes once at its end)."""
        self._quic.send_datagram_frame(data)
        self.datagrams_out += 1
        if flush:
            self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, DatagramFrameReceived):
            self.datagrams_in += 1
            self.on_datagram(self, event.data)
        elif isinstance(event, StreamDataReceived):
            if self._stream is None:
                self._stream = event.stream_id
            try:
                for message in self._reader.feed(event.data):
                    self.on_control(self, message)
            except LinkError as exc:
                log.warning("relay link with %s: %s; closing it", self.peer or "?", exc)
                self._quic.close(error_code=0x100, reason_phrase=str(exc)[:200])
                self.transmit()
        elif isinstance(event, ConnectionTerminated):
            if not self.closed.is_set():
                self.closed.set()
                self.on_closed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.closed.is_set():
            self.closed.set()
            self.on_closed(self)


def _configuration(is_client: bool) -> QuicConfiguration:
    return QuicConfiguration(is_client=is_client, alpn_protocols=[ALPN],
                             max_datagram_frame_size=65536, idle_timeout=15.0)


async def listen(host: str, port: int, cert_pem: bytes, key_pem: bytes,
                 on_link: Callable[[Link], None]) -> QuicServer:
    """Accept links on ``host:port`` (UDP); ``on_link`` gets each new one."""
    config = _configuration(is_client=False)
    config.certificate = x509.load_pem_x509_certificate(cert_pem)
    config.private_key = serialization.load_pem_private_key(key_pem, password=None)

    def create(*args: Any, **kwargs: Any) -> Link:
        link = Link(*args, **kwargs)
        on_link(link)
        return link

    return await serve(host, port, configuration=config, create_protocol=create)


@asynccontextmanager
async def dial(host: str, port: int, server_node: str, server_cert_pem: bytes
               ) -> AsyncIterator[Link]:
    """A link to the node at ``host:port``, whose certificate must be ``server_cert_pem``."""
    config = _configuration(is_client=True)
    config.cadata = server_cert_pem
    config.server_name = server_node
    async with connect(host, port, configuration=config, create_protocol=Link) as link:
        assert isinstance(link, Link)
        yield link


def hello(node: str, peer: str, secret: str) -> dict[str, Any]:
    return {"t": "hello", "node": node, "version": VERSION,
            "proof": proof(secret, node, peer)}
