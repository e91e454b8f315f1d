"""Every event type the server emits is declared (events.schemas) and documented
(docs/events.md), and validation catches what a consumer would trip over."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from events import EventBus
from events.schemas import SCHEMAS, SchemaError, validate

ROOT = Path(__file__).resolve().parents[2]


def emitted_types() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("sfu/*.py"), *ROOT.glob("signalling/*.py"),
                 *ROOT.glob("scheduler_bridge/*.py")]:
        text = path.read_text()
        for call in re.finditer(r"\.emit\((.*?),", text, re.S):
            found |= set(re.findall(r'"([a-z_]+\.[a-z_.]+)"', call.group(1)))
    return found


def test_every_emitted_type_is_declared_and_documented() -> None:
    emitted = emitted_types()
    assert len(emitted) >= 14  # the scan finds the server's events
    assert emitted <= set(SCHEMAS), emitted - set(SCHEMAS)
    table = (ROOT / "docs" / "events.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.]+)` \| (\d+) \|", table, re.M))
    assert documented == {(t, str(s.version)) for t, s in SCHEMAS.items()}


def test_validation() -> None:
    validate("track.muted", {"participant": "p", "id": "t", "muted": True})
    validate("track.published", {"participant": "p", "id": "t", "participantId": "p",
                                 "kind": "video", "source": "camera", "muted": False,
                                 "layers": ["q", "h", "f"]})  # an optional field
    with pytest.raises(SchemaError, match="missing"):
        validate("track.muted", {"participant": "p", "id": "t"})
    with pytest.raises(SchemaError, match="boolean"):
        validate("room.created", {"maxParticipants": True})
    with pytest.raises(SchemaError, match="must be"):
        validate("room.created", {"maxParticipants": "60"})
    with pytest.raises(SchemaError, match="not in its schema"):
        validate("room.closed", {"reason": "empty", "extra": 1})
    with pytest.raises(SchemaError, match="not declared"):
        validate("room.exploded", {})


def test_the_bus_raises_in_strict_mode_and_still_emits_otherwise() -> None:
    with pytest.raises(SchemaError):
        EventBus(strict=True).emit("room.closed", "r", {})
    seen = []
    lenient = EventBus(strict=False)
    lenient.subscribe(seen.append)
    lenient.emit("room.closed", "r", {})
    assert len(seen) == 1 and lenient.schema_errors == 1
