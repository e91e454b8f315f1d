"""Room placement, sans-IO: the least loaded live node of the region, else anywhere; never
a draining, full or silent node; and when a placed room must move."""

from __future__ import annotations

import pytest

from cluster.placement import (
    NodeInfo,
    Placement,
    PlacementError,
    choose_origin,
    needs_moving,
)

NOW, TTL = 1000.0, 10.0


def node(id_: str, region: str = "a", *, rooms: int = 0, cpu: float = 0.0,
         draining: bool = False, age: float = 1.0, capacity: int = 10) -> NodeInfo:
    return NodeInfo(id_, region, f"https://{id_}.example", capacity, rooms=rooms, cpu=cpu,
                    draining=draining, at=NOW - age)


def test_least_loaded_in_the_region_by_rooms_or_cpu() -> None:
    nodes = [node("a1", rooms=5), node("a2", rooms=2), node("b1", "b")]
    assert choose_origin(nodes, "a", NOW, TTL).id == "a2"
    # CPU counts as much as rooms: a node with few rooms but a busy CPU is busy
    nodes = [node("a1", rooms=1, cpu=0.9), node("a2", rooms=4, cpu=0.1)]
    assert choose_origin(nodes, "a", NOW, TTL).id == "a2"
    # ties go to the smaller id: every node makes the same choice
    assert choose_origin([node("a9"), node("a3")], "a", NOW, TTL).id == "a3"


def test_another_region_rather_than_none_and_never_a_node_that_cannot_take_it() -> None:
    nodes = [node("a1", draining=True), node("a2", rooms=10), node("a3", age=11.0),
             node("b1", "b", rooms=3)]
    assert choose_origin(nodes, "a", NOW, TTL).id == "b1"
    with pytest.raises(PlacementError, match="no live node accepts rooms"):
        choose_origin(nodes[:3], "a", NOW, TTL)
    assert choose_origin([node("b1", "b")], None, NOW, TTL).id == "b1"


def test_a_placed_room_moves_when_its_node_is_gone_or_draining() -> None:
    placed = Placement("maths", "a1", "a", NOW - 60)
    assert needs_moving(placed, [node("a1")], NOW, TTL) is None
    assert needs_moving(placed, [node("a1", age=30.0)], NOW, TTL) == "node_gone"
    assert needs_moving(placed, [node("a2")], NOW, TTL) == "node_gone"
    assert needs_moving(placed, [node("a1", draining=True)], NOW, TTL) == "node_draining"


def test_announcements_and_placements_round_trip() -> None:
    n = node("a1", rooms=3, cpu=0.25)
    assert NodeInfo.from_bytes(n.to_bytes()) == n
    p = Placement("maths 7b", "a1", "a", NOW)
    assert Placement.from_bytes(p.to_bytes()) == p
    # an announcement from a newer node with more fields still reads
    newer = n.to_bytes()[:-1] + b',"gpu":1}'
    assert NodeInfo.from_bytes(newer) == n
