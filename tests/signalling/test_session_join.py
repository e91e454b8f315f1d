"""Join handling of SignallingSession with an in-memory WebSocket (no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sfu.config import Config, EventsConfig, MediaConfig
from signalling import tokens
from signalling.app import STATE, create_app
from signalling.session import SignallingSession

OFFER = (Path(__file__).parents[1] / "sfu" / "fixtures" / "chrome_offer.sdp").read_text()


class MemoryWebSocket:
    closed = False

    async def close(self, code: int | None = None) -> None:
        self.closed = True

    async def send_str(self, text: str) -> None:
        pass


async def test_simultaneous_rejoins_with_one_identity_leave_exactly_one_participant(
        tmp_path: Path) -> None:
    app = create_app(Config(events=EventsConfig(log_dir=str(tmp_path / "events")),
                            media=MediaConfig(udp_port=0, tcp_port=0)))
    state = app[STATE]
    ports = state.media.transport_factory.ports  # type: ignore[union-attr]
    await ports.start()  # (what the app's start-up does)
    token = tokens.mint(state.config.auth.api_key, state.config.auth.api_secret,
                        room="r", identity="alice")
    first, second, third = (SignallingSession(state, MemoryWebSocket()) for _ in range(3))  # type: ignore[arg-type]
    msg: dict[str, Any] = {"token": token}
    await first._on_join(msg)
    assert first.participant is not None
    await first.participant.handle_publisher_offer(OFFER, None)  # its close() now awaits
    # two reconnects of the same identity arrive together (e.g. two tabs restored)
    await asyncio.gather(second._on_join(msg), third._on_join(msg))
    room = state.rooms.rooms["r"]
    assert [p.info.identity for p in room.participants.values()] == ["alice"]
    for p in list(room.participants.values()):
        await room.remove(p, "left")
    await ports.close()
