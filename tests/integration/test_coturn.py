"""The TURN credentials the server hands out, checked by a real coturn (Debian coturn):
configured as docs/operations.md shows (use-auth-secret, TLS, private peers denied but the
SFU's address), over UDP and over TLS. Valid ones allocate a relay; expired and forged ones
are refused by coturn itself."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator

import pytest
from aioice import stun as ice_stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from sfu.config import TurnConfig
from signalling.turn import credential, ice_servers
from tests.coturn import Coturn

pytestmark = pytest.mark.integration

SECRET = "coturn-shared-secret-for-the-tests-0123"


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with Coturn("127.0.0.1", SECRET) as server:
        yield server


def config(turn: Coturn, ttl_s: int = 600) -> TurnConfig:
    return TurnConfig(urls=(f"turn:{turn.ip}:{turn.port}",
                            f"turns:{turn.ip}:{turn.tls_port}?transport=tcp"),
                      secret=SECRET, ttl_s=ttl_s)


def creds(turn: Coturn, identity: str = "alice", **kw: float) -> tuple[str, str]:
    (server,) = ice_servers(config(turn), identity, **kw)  # type: ignore[arg-type]
    return server["username"], server["credential"]


class _Lost:
    """A TURN client protocol of aioice that says when its connection is gone (so that the
    test closes what it opened before its loop ends)."""

    lost: asyncio.Future[None]

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        if not self.lost.done():
            self.lost.set_result(None)


class _Tcp(_Lost, TurnClientTcpProtocol):
    pass


class _Udp(_Lost, TurnClientUdpProtocol):
    pass


async def allocate(turn: Coturn, username: str, password: str, *, tls: bool
                   ) -> tuple[str, int]:
    """A TURN allocation with these credentials (over TLS to the TLS port, else UDP), made
    by aioice's TURN client: the relayed address coturn gave."""
    loop = asyncio.get_running_loop()
    args = {"username": username, "password": password, "lifetime": 600,
            "channel_refresh_time": 300}
    protocol: _Tcp | _Udp
    if tls:
        context = ssl.create_default_context(cafile=turn.cert)
        transport, protocol = await loop.create_connection(
            lambda: _Tcp((turn.ip, turn.tls_port), **args), host=turn.ip, port=turn.tls_port,
            ssl=context)
    else:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Udp((turn.ip, turn.port), **args), remote_addr=(turn.ip, turn.port))
    protocol.lost = loop.create_future()
    try:
        return await protocol.connect()
    finally:
        transport.close()
        await asyncio.wait_for(protocol.lost, 10)


@pytest.mark.parametrize("tls", [False, True], ids=["udp", "tls"])
async def test_handed_out_credentials_allocate_a_relay(coturn: Coturn, tls: bool) -> None:
    username, password = creds(coturn)
    host, port = await asyncio.wait_for(allocate(coturn, username, password, tls=tls), 15)
    assert host == coturn.ip and 49160 <= port <= 49400


async def refused(turn: Coturn, username: str, password: str, tls: bool) -> int:
    """The error code coturn refused the allocation with."""
    with pytest.raises(ice_stun.TransactionFailed) as info:
        await asyncio.wait_for(allocate(turn, username, password, tls=tls), 15)
    return int(info.value.response.attributes["ERROR-CODE"][0])


@pytest.mark.parametrize("tls", [False, True], ids=["udp", "tls"])
async def test_expired_and_forged_credentials_are_refused_by_coturn(coturn: Coturn,
                                                                     tls: bool) -> None:
    # expired: made an hour ago with a 10-minute lifetime
    username, password = creds(coturn, now=time.time() - 3600)
    assert await refused(coturn, username, password, tls) == 401
    # forged: signed with another secret
    username, _ = creds(coturn)
    assert await refused(coturn, username, credential("not-the-secret", username), tls) == 401
    # a valid password with another username (someone else's identity, a later expiry)
    _, password = creds(coturn)
    later = f"{int(time.time()) + 86400}:mallory"
    assert await refused(coturn, later, password, tls) == 401
