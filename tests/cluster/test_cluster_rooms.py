"""Where a node's joins go (cluster/rooms.py) while NATS misbehaves: a join is served here
when placing fails, and the room is claimed once NATS answers again; a room another node
placed meanwhile is counted as open on both. The registry is a stand-in with the
registry's interface (NATS failing on cue is what cannot be staged with the real one
mid-call); the real registry's placements are tested in test_registry_nats.py."""

from __future__ import annotations

from cluster.placement import Placement
from cluster.rooms import ClusterRooms


class FlakyRegistry:
    node_id = "here"
    connected = True

    def __init__(self) -> None:
        self.up = False
        self.placed_elsewhere: set[str] = set()
        self.claimed: list[str] = []

    async def place(self, room: str, region: str | None = None) -> Placement:
        if not self.up:
            raise ConnectionError("nats: timeout")
        return Placement(room, "here", "eu", 0.0)

    async def claim(self, room: str) -> Placement:
        if not self.up:
            raise ConnectionError("nats: timeout")
        self.claimed.append(room)
        node = "there" if room in self.placed_elsewhere else "here"
        return Placement(room, node, "eu", 0.0)

    def url_of(self, node: str) -> str:
        return f"https://{node}.example"


async def test_rooms_served_without_nats_are_claimed_when_it_answers() -> None:
    registry = FlakyRegistry()
    open_here = ["a", "b"]
    rooms = ClusterRooms(registry, "eu", lambda: list(open_here))  # type: ignore[arg-type]
    assert await rooms.route("a") is None and await rooms.route("b") is None
    assert rooms.unplaced_joins == 2 and rooms.unclaimed == {"a", "b"}
    assert await rooms.claim_pending() == [] and registry.claimed == []  # still down
    assert rooms.unclaimed == {"a", "b"}  # tried again next round
    open_here.remove("b")  # closed meanwhile: nothing to claim
    registry.up = True
    registry.placed_elsewhere.add("a")
    assert await rooms.claim_pending() == ["a"]  # another node placed it: open on both
    assert registry.claimed == ["a"] and rooms.claims_lost == 1 and not rooms.unclaimed
