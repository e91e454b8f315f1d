"""The state writer (cluster/state.py): a part is written when its version changes and not
otherwise, a closed room is never written again once forgotten, and a room whose state
cannot be made does not stop the others from being replicated. The store is a stand-in
recording what it was given (the real store runs against nats-server in the drain and
take-over tests)."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.state import Part, StateWriter


class Store:
    def __init__(self) -> None:
        self.registry = type("Registry", (), {"connected": True})()
        self.puts: list[tuple[str, str, bytes]] = []
        self.forgotten: list[str] = []
        self.written = asyncio.Event()

    async def put(self, room: str, part: str, data: bytes) -> None:
        self.puts.append((room, part, data))
        self.written.set()

    async def forget(self, room: str) -> None:
        self.forgotten.append(room)


async def test_only_changed_parts_are_written_and_a_forgotten_room_never_again() -> None:
    store = Store()
    rooms = {"maths": 1}
    versions: dict[str, Any] = {"maths": 1}

    def parts(room: str) -> dict[str, Part]:
        v = versions[room]
        return {"classroom": (v, lambda: f"v{v}".encode())}

    writer = StateWriter(store, parts, lambda: list(rooms))  # type: ignore[arg-type]
    assert await writer.flush("maths")
    assert await writer.flush("maths")  # unchanged: nothing written
    versions["maths"] = 2
    assert await writer.flush("maths")
    assert store.puts == [("maths", "classroom", b"v1"), ("maths", "classroom", b"v2")]
    assert (writer.writes, writer.bytes) == (2, 4)
    del rooms["maths"]
    await writer.forget("maths")
    versions["maths"] = 3
    assert await writer.flush("maths")  # closed and forgotten: not written back
    assert store.forgotten == ["maths"] and len(store.puts) == 2


async def test_a_room_that_cannot_be_replicated_does_not_stop_the_others() -> None:
    store = Store()

    def parts(room: str) -> dict[str, Part]:
        if room == "broken":
            raise RuntimeError("a bug in an export")
        return {"classroom": (1, lambda: b"fine")}

    writer = StateWriter(store, parts, lambda: ["broken", "fine"],  # type: ignore[arg-type]
                         interval_s=0.05)
    writer.start()
    try:
        await asyncio.wait_for(store.written.wait(), 5)
    finally:
        await writer.stop()
    assert store.puts[0] == ("fine", "classroom", b"fine")
    assert writer.failures >= 1
