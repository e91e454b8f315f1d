"""Bench scenarios as data: ``benches/scenarios/*.toml`` expanded into participants.

A scenario has an ``[instructor]`` and ``[students]`` (``count``); each says what it
publishes (``audio``: bool, ``video``: a layer of :mod:`benches.media` or ``""``;
``simulcast``: bool, the video sent as three layers up to that one, as a browser does) and
whose video it receives (``sees_instructor``; ``sees_students``: a number, or ``"all"``). Everyone
hears every microphone but their own (both servers under test forward all audio).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benches.media import LAYERS

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


@dataclass(frozen=True)
class Participant:
    name: str
    role: str  # instructor | student
    audio: bool
    video: str  # layer name, "" for none
    sees: tuple[str, ...]  # whose video it receives
    simulcast: bool = False  # video in three layers (180p, 360p, 720p)
    room: int = 0  # which classroom (benches.capacity runs several at once)

    @property
    def publishes(self) -> bool:
        return self.audio or bool(self.video)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    participants: tuple[Participant, ...]
    #: audio by speech: students' microphones reach listeners only while they speak, so
    #: a listener is sure to receive only the instructor's (our server's default; the
    #: comparison with Janus forwards every microphone)
    speech: bool = False

    def by_name(self) -> dict[str, Participant]:
        return {p.name: p for p in self.participants}

    def index(self, p: Participant) -> int:
        """``p``'s place in its classroom for :mod:`benches.talk`: 0 the instructor, 1..
        the students."""
        return [q for q in self.participants if q.room == p.room].index(p)

    @property
    def students(self) -> int:
        """Students per classroom."""
        return sum(1 for q in self.participants if q.room == 0) - 1

    def expected_streams(self, p: Participant) -> int:
        """How many RTP streams ``p`` is sure to receive: every other microphone of its
        classroom (with ``speech``: the instructor's), the videos it sees."""
        others = self.by_name()
        return (sum(1 for q in self.participants
                    if q.audio and q.name != p.name and q.room == p.room
                    and (not self.speech or q.role == "instructor"))
                + sum(1 for n in p.sees if others[n].video))

    @property
    def rooms(self) -> int:
        return 1 + max(p.room for p in self.participants)

    @property
    def subscribers(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if self.expected_streams(p))

    @property
    def publishers(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.publishes)


def available() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def _count(value: Any, limit: int, what: str) -> int:
    if value == "all":
        return limit
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative number or \"all\", not {value!r}")
    return min(value, limit)


def _media(section: dict[str, Any], what: str) -> tuple[bool, str]:
    audio, video = section.get("audio", False), section.get("video", "")
    if not isinstance(audio, bool):
        raise ValueError(f"{what}.audio must be true or false")
    if video and video not in LAYERS:
        raise ValueError(f"{what}.video must be one of {sorted(LAYERS)} or \"\", not {video!r}")
    return audio, video


def expand(data: dict[str, Any], students: int | None = None) -> Scenario:
    """A scenario from its TOML table; ``students`` overrides ``[students].count``."""
    inst, stud = data.get("instructor", {}), data.get("students", {})
    n = students if students is not None else stud.get("count", 0)
    if not isinstance(n, int) or n < 1:
        raise ValueError("a scenario needs at least one student")
    names = [f"student{i:03d}" for i in range(n)]
    i_audio, i_video = _media(inst, "instructor")
    s_audio, s_video = _media(stud, "students")
    k_inst = _count(inst.get("sees_students", 0), n, "instructor.sees_students")
    k_stud = _count(stud.get("sees_students", 0), n - 1, "students.sees_students")
    simulcast = inst.get("simulcast", False)
    if not isinstance(simulcast, bool) or simulcast and i_video != "720p":
        raise ValueError("instructor.simulcast must be true or false (true: with 720p video)")
    people = [Participant("instructor", "instructor", i_audio, i_video,
                          tuple(names[:k_inst]) if s_video else (), simulcast)]
    for i, name in enumerate(names):
        sees = ["instructor"] if stud.get("sees_instructor", True) and i_video else []
        if s_video:
            sees += [names[(i + j) % n] for j in range(1, k_stud + 1)]
        people.append(Participant(name, "student", s_audio, s_video, tuple(sees)))
    return Scenario(str(data.get("name", "custom")), str(data.get("description", "")),
                    tuple(people))


def replicate(scenario: Scenario, classrooms: int, *, speech: bool = False) -> Scenario:
    """``classrooms`` copies of a one-room scenario at once (names prefixed ``cNN-``)."""
    if classrooms < 1:
        raise ValueError("at least one classroom")
    if classrooms == 1:
        return replace(scenario, speech=speech)
    people = []
    for k in range(classrooms):
        prefix = f"c{k:02d}-"
        people += [replace(p, name=prefix + p.name, sees=tuple(prefix + n for n in p.sees),
                           room=k) for p in scenario.participants]
    return Scenario(scenario.name, f"{scenario.description}, x {classrooms} classrooms",
                    tuple(people), speech)


def load(name_or_path: str, students: int | None = None) -> Scenario:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise ValueError(f"no scenario {name_or_path!r}; have {available()}")
    with open(path, "rb") as fh:
        return expand(tomllib.load(fh), students)
