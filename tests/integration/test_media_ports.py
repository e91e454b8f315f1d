"""Every participant's media on one UDP port, ICE-TCP on one TCP port (sfu.media_ports).

Real server process, real ICE/DTLS/SRTP clients on loopback; the sockets are read with
``ss``, as an operator opening a firewall would.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
import subprocess

import pytest
from aioice import stun as ref
from sfu_harness import HealthyPair, Http, unique

from sfu import stun
from tests.stun_reference import parse_checked

pytestmark = pytest.mark.integration



def sockets_of(pid: int, flags: str) -> set[int]:
    """Local ports of the sockets ``ss`` lists for process ``pid``."""
    ss = shutil.which("ss") or "/usr/sbin/ss"
    out = subprocess.run([ss, "-H", "-n", "-p", flags], check=True, capture_output=True,
                         text=True).stdout
    ports = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[3]  # State Recv-Q Send-Q Local Peer Process
            ports.add(int(local.rsplit(":", 1)[1]))
    return ports


async def test_every_participant_uses_the_one_udp_port(server, http: Http) -> None:  # type: ignore[no-untyped-def]
    pairs = [HealthyPair(server, unique("room")) for _ in range(2)]
    try:
        for p in pairs:
            await p.start()
        udp_port, tcp_port = await http.media_ports()
        assert udp_port > 0 and tcp_port > 0
        # the server process has one UDP socket (on the one ICE address) and it is that port
        assert sockets_of(server.proc.pid, "-uan") == {udp_port}
        assert tcp_port in sockets_of(server.proc.pid, "-tln")
        # every client transport sends to it
        transports = [t for p in pairs for c in (p.pub, p.sub)
                      for t in (c.publisher, c.subscriber) if t is not None]
        assert len(transports) >= 4
        assert {t.remote_address[1] for t in transports} == {udp_port}
        connected = await http.metric("sfu_media_transports_connected", protocol="udp")
        assert connected >= len(transports)
        assert await http.metric("sfu_media_transports_connected", protocol="tcp") == 0
        assert await http.metric("sfu_media_port_routes") >= len(transports)
        for p in pairs:
            await p.assert_flowing()
    finally:
        for p in pairs:
            await p.stop()


def server_credentials(pair: HealthyPair) -> tuple[str, str]:
    """The server's ICE ufrag and password in its offer to the pair's subscriber."""
    offer = next(m["sdp"] for m in pair.sub.log if m["type"] == "offer")
    return (re.search(r"a=ice-ufrag:(\S+)", offer).group(1),  # type: ignore[union-attr]
            re.search(r"a=ice-pwd:(\S+)", offer).group(1))  # type: ignore[union-attr]


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = struct.unpack("!H", await reader.readexactly(2))
    return await reader.readexactly(n)


async def test_ice_tcp_answers_checks_and_closes_on_garbage(pair: HealthyPair,
                                                            http: Http) -> None:
    _, tcp_port = await http.media_ports()
    rejected = await http.metric("sfu_media_port_rejected_total", reason="tcp_unauthenticated")
    # garbage as the first frame: the server closes the connection, counted
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
    writer.write(struct.pack("!H", 5) + b"hello")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # EOF
    writer.close()
    assert await http.metric("sfu_media_port_rejected_total",
                             reason="tcp_unauthenticated") == rejected + 1
    # a connectivity check (RFC 4571 framing) for the subscriber's transport is answered
    ufrag, pwd = server_credentials(pair)
    assert pair.sub.subscriber is not None
    client_ufrag = pair.sub.subscriber.local().ice_ufrag
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
    try:
        check = stun.binding_request(b"tcp-check-01", f"{ufrag}:{client_ufrag}",
                                     pwd.encode(), priority=5, controlling=7)
        writer.write(struct.pack("!H", len(check)) + check)
        await writer.drain()
        response = parse_checked(await asyncio.wait_for(read_frame(reader), 10), pwd.encode())
        assert response.message_class == ref.Class.RESPONSE
        assert response.transaction_id == b"tcp-check-01"
        assert response.attributes["XOR-MAPPED-ADDRESS"] == writer.get_extra_info("sockname")
        assert await http.metric("sfu_ice_tcp_connections") >= 1
    finally:
        writer.close()
    await pair.assert_flowing()  # the subscriber still receives on its UDP path
