"""Engagement capture for one session (one room, from its creation to its close), sans-IO.

Fed the room's own events (:meth:`Engagement.on_event`: type, data, time in ms), so it
sees exactly what operators see in the event stream; :meth:`Engagement.report` turns them
into the session report (``docs/engagement.md``), with exception flags. Participants are
keyed by identity, so a student who leaves and comes back is one line of the report.

What counts:

* **attendance**: time between ``participant.joined`` and ``participant.left``, minus the
  time spent ``reconnecting`` (until ``participant.resumed``, or until the leave when the
  reconnection window ran out);
* **talk time**: time among the room's current speakers (``room.speakers``; the server's
  active-speaker detector works on every microphone's audio level, RFC 6464);
* **camera-on time**: a published ``camera`` video track, not muted;
* **polls**: named polls created while present (anonymous polls identify no one, so they
  count for no one), answers, response rate, mean answer latency, right answers of
  comprehension checks;
* **hand raises, chat messages, reactions, whiteboard contributions** (counts);
* **inactivity**: stretches of at least ``inactivity_ms`` while present without an activity
  signal (joining, starting to speak, camera on, an answer, a hand, a chat message, a
  reaction, a whiteboard edit);
* **activity score** (students, 0–10, as BigBlueButton's learning dashboard, plus the
  whiteboard): talk time, chat messages, hand raises, reactions and whiteboard updates each
  give ``2 × (the student's / the most of any student)``, poll answers ``2 × response
  rate``; the sum is scaled from 12 to 10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: activity signals counted per participant (the ``participant`` of their data): event
#: type -> the counter
_COUNTED = {"hand.raised": "hand_raises", "chat.message": "chat_messages",
            "reaction.sent": "reactions", "whiteboard.update": "whiteboard_updates"}
STUDENT_ROLES = ("student",)


@dataclass
class Thresholds:
    #: no activity signal for this long while present is an inactivity period
    inactivity_ms: float = 5 * 60_000.0
    #: a student present for less than this share of the session is flagged
    attendance_fraction: float = 0.75
    #: a student present at least this long without a word, an answer, a hand, a chat
    #: message or a reaction is flagged silent and unresponsive
    silent_after_ms: float = 10 * 60_000.0


@dataclass
class _Person:
    identity: str
    role: str
    ids: set[str] = field(default_factory=set)
    intervals: list[list[float]] = field(default_factory=list)  # [start, end or -1]
    absent_since: float | None = None  # reconnecting since
    outage_ms: float = 0.0
    talk_ms: float = 0.0
    talking_since: float | None = None
    camera_ms: float = 0.0
    cameras_on: dict[str, float] = field(default_factory=dict)  # track id -> since
    polls_asked: int = 0
    answers: dict[str, tuple[int, bool | None]] = field(default_factory=dict)
    hand_raises: int = 0
    chat_messages: int = 0
    reactions: int = 0
    whiteboard_updates: int = 0
    last_activity: float = 0.0
    inactive: list[tuple[float, float]] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return bool(self.intervals) and self.intervals[-1][1] < 0


class Engagement:
    def __init__(self, room: str, start_ms: float, thresholds: Thresholds | None = None
                 ) -> None:
        self.room = room
        self.start_ms = start_ms
        self.t = thresholds or Thresholds()
        self._people: dict[str, _Person] = {}  # by identity
        self._by_id: dict[str, _Person] = {}  # participant id -> person
        self._tracks: dict[str, tuple[_Person, bool]] = {}  # track id -> (owner, camera)
        self._polls: dict[str, bool] = {}  # poll id -> anonymous
        self._speaking: set[str] = set()  # participant ids among the current speakers

    # -- feeding ---------------------------------------------------------------------

    def on_event(self, type_: str, data: dict[str, Any], now_ms: float) -> None:
        handler = getattr(self, "_on_" + type_.replace(".", "_"), None)
        if handler is not None:
            handler(data, now_ms)
        elif type_ in _COUNTED:
            person = self._by_id.get(data.get("participant", ""))
            if person is not None:  # (whiteboard.update carries a count of updates)
                setattr(person, _COUNTED[type_],
                        getattr(person, _COUNTED[type_]) + int(data.get("updates", 1)))
                self._active(person, now_ms)

    def _on_participant_joined(self, data: dict[str, Any], now_ms: float) -> None:
        identity = data["identity"]
        person = self._people.get(identity)
        if person is None:
            person = self._people[identity] = _Person(identity, data["role"])
        person.ids.add(data["participant"])
        self._by_id[data["participant"]] = person
        if not person.present:
            person.intervals.append([now_ms, -1.0])
            person.last_activity = now_ms

    def _on_participant_left(self, data: dict[str, Any], now_ms: float) -> None:
        person = self._by_id.get(data["participant"])
        if person is None or not person.present:
            return
        pid = data["participant"]
        self._stop_talking(person, pid, now_ms)
        for track_id in [t for t, (p, _) in self._tracks.items() if p is person]:
            self._camera_off(track_id, now_ms)
        end = person.absent_since if person.absent_since is not None else now_ms
        self._close_inactivity(person, end)
        person.intervals[-1][1] = end
        person.absent_since = None

    def _on_participant_reconnecting(self, data: dict[str, Any], now_ms: float) -> None:
        person = self._by_id.get(data["participant"])
        if person is not None and person.present and person.absent_since is None:
            person.absent_since = now_ms

    def _on_participant_resumed(self, data: dict[str, Any], now_ms: float) -> None:
        person = self._by_id.get(data["participant"])
        if person is not None and person.absent_since is not None:
            person.outage_ms += now_ms - person.absent_since
            person.absent_since = None

    def _on_track_published(self, data: dict[str, Any], now_ms: float) -> None:
        person = self._by_id.get(data["participant"])
        if person is None:
            return
        camera = data.get("kind") == "video" and data.get("source") == "camera"
        self._tracks[data["id"]] = (person, camera)
        if camera and not data.get("muted"):
            self._camera_on(data["id"], now_ms)

    def _on_track_muted(self, data: dict[str, Any], now_ms: float) -> None:
        if data["muted"]:
            self._camera_off(data["id"], now_ms)
        else:
            self._camera_on(data["id"], now_ms)

    def _on_track_unpublished(self, data: dict[str, Any], now_ms: float) -> None:
        self._camera_off(data["id"], now_ms)
        self._tracks.pop(data["id"], None)

    def _on_room_speakers(self, data: dict[str, Any], now_ms: float) -> None:
        now_speaking = {s["participantId"] for s in data["speakers"]}
        for pid in self._speaking - now_speaking:
            person = self._by_id.get(pid)
            if person is not None:
                self._stop_talking(person, pid, now_ms)
        for pid in now_speaking - self._speaking:
            person = self._by_id.get(pid)
            if person is not None and person.present:
                self._active(person, now_ms)
                person.talking_since = now_ms
        self._speaking = {pid for pid in now_speaking if pid in self._by_id}

    def _on_poll_created(self, data: dict[str, Any], now_ms: float) -> None:
        self._polls[data["pollId"]] = data["anonymous"]
        if not data["anonymous"]:
            for person in self._people.values():
                if person.present and person.role in STUDENT_ROLES:
                    person.polls_asked += 1

    def _on_poll_answered(self, data: dict[str, Any], now_ms: float) -> None:
        person = self._by_id.get(data.get("participant", ""))
        if person is None:
            return  # an anonymous poll: no one to count it for
        person.answers[data["pollId"]] = (data["latencyMs"], data.get("correct"))
        self._active(person, now_ms)

    # -- bookkeeping -----------------------------------------------------------------

    def _active(self, person: _Person, now_ms: float) -> None:
        self._close_inactivity(person, now_ms)
        person.last_activity = now_ms

    def _close_inactivity(self, person: _Person, now_ms: float) -> None:
        """The stretch since the last signal ends at ``now_ms``: an inactivity period if
        it was long enough and nobody was talking for them (talk is activity throughout)."""
        if person.talking_since is not None:
            return
        if now_ms - person.last_activity >= self.t.inactivity_ms:
            person.inactive.append((person.last_activity, now_ms))

    def _stop_talking(self, person: _Person, pid: str, now_ms: float) -> None:
        if person.talking_since is not None:
            person.talk_ms += now_ms - person.talking_since
            person.talking_since = None
            person.last_activity = now_ms
        self._speaking.discard(pid)

    def _camera_on(self, track_id: str, now_ms: float) -> None:
        owner = self._tracks.get(track_id)
        if owner is not None and owner[1] and track_id not in owner[0].cameras_on:
            owner[0].cameras_on[track_id] = now_ms
            self._active(owner[0], now_ms)

    def _camera_off(self, track_id: str, now_ms: float) -> None:
        owner = self._tracks.get(track_id)
        if owner is not None:
            since = owner[0].cameras_on.pop(track_id, None)
            if since is not None:
                owner[0].camera_ms += now_ms - since

    # -- across nodes (docs/cluster.md: a room that moves keeps its session) ----------

    def snapshot(self) -> dict[str, Any]:
        """The whole capture as JSON-ready data (:meth:`restore` makes it again)."""
        people = []
        for p in self._people.values():
            people.append({
                "identity": p.identity, "role": p.role, "ids": sorted(p.ids),
                "intervals": p.intervals, "absentSince": p.absent_since,
                "outageMs": p.outage_ms, "talkMs": p.talk_ms, "talkingSince": p.talking_since,
                "cameraMs": p.camera_ms, "camerasOn": p.cameras_on,
                "pollsAsked": p.polls_asked,
                "answers": {k: list(v) for k, v in p.answers.items()},
                "handRaises": p.hand_raises, "chatMessages": p.chat_messages,
                "reactions": p.reactions, "whiteboardUpdates": p.whiteboard_updates,
                "lastActivity": p.last_activity, "inactive": [list(x) for x in p.inactive]})
        return {"room": self.room, "startMs": self.start_ms, "people": people,
                "tracks": {t: [owner.identity, camera]
                           for t, (owner, camera) in self._tracks.items()},
                "polls": self._polls, "speaking": sorted(self._speaking)}

    @classmethod
    def restore(cls, data: dict[str, Any], thresholds: Thresholds | None = None
                ) -> Engagement:
        """The capture a :meth:`snapshot` describes (KeyError/TypeError/ValueError if it
        is not one)."""
        e = cls(str(data["room"]), float(data["startMs"]), thresholds)
        for raw in data["people"]:
            p = _Person(str(raw["identity"]), str(raw["role"]), set(raw["ids"]),
                        [[float(a), float(b)] for a, b in raw["intervals"]],
                        _opt(raw["absentSince"]), float(raw["outageMs"]),
                        float(raw["talkMs"]), _opt(raw["talkingSince"]),
                        float(raw["cameraMs"]),
                        {str(k): float(v) for k, v in raw["camerasOn"].items()},
                        int(raw["pollsAsked"]),
                        {str(k): (int(v[0]), None if v[1] is None else bool(v[1]))
                         for k, v in raw["answers"].items()},
                        int(raw["handRaises"]), int(raw["chatMessages"]),
                        int(raw["reactions"]), int(raw["whiteboardUpdates"]),
                        float(raw["lastActivity"]),
                        [(float(a), float(b)) for a, b in raw["inactive"]])
            e._people[p.identity] = p
            for pid in p.ids:
                e._by_id[pid] = p
        for track, (identity, camera) in data["tracks"].items():
            if identity in e._people:
                e._tracks[str(track)] = (e._people[identity], bool(camera))
        e._polls = {str(k): bool(v) for k, v in data["polls"].items()}
        e._speaking = {str(pid) for pid in data["speaking"] if pid in e._by_id}
        return e

    # -- the report ------------------------------------------------------------------

    def report(self, end_ms: float) -> dict[str, Any]:
        """The session report at ``end_ms`` (everyone still present is counted up to it;
        the state is not changed, so a report can be taken mid-session too)."""
        duration = max(0.0, end_ms - self.start_ms)
        people = [self._person_report(p, end_ms, duration) for p in self._people.values()]
        _score(people)
        flags = [{"identity": p["identity"], "flag": flag, "detail": detail}
                 for p in people for flag, detail in p.pop("_flags")]
        return {"room": self.room, "startMs": round(self.start_ms), "endMs": round(end_ms),
                "durationMs": round(duration), "polls": len(self._polls),
                "participants": people, "flags": flags}

    def _person_report(self, p: _Person, end_ms: float, duration: float) -> dict[str, Any]:
        attendance = -p.outage_ms
        intervals = []
        for start, end in p.intervals:
            stop = end if end >= 0 else (p.absent_since if p.absent_since is not None
                                         else end_ms)
            attendance += stop - start
            intervals.append([round(start), round(stop)])
        talk = p.talk_ms + (end_ms - p.talking_since if p.talking_since is not None else 0)
        camera = p.camera_ms + sum(end_ms - s for s in p.cameras_on.values())
        inactive = list(p.inactive)
        if p.present and p.talking_since is None and \
                end_ms - p.last_activity >= self.t.inactivity_ms:
            inactive.append((p.last_activity, end_ms))
        answered = len(p.answers)
        latencies = [lat for lat, _ in p.answers.values()]
        checked = [ok for _, ok in p.answers.values() if ok is not None]
        out: dict[str, Any] = {
            "identity": p.identity, "role": p.role, "participantIds": sorted(p.ids),
            "intervals": intervals, "attendanceMs": round(attendance),
            "attendanceMinutes": round(attendance / 60_000, 1),
            "talkMs": round(talk), "cameraOnMs": round(camera),
            "polls": {"asked": p.polls_asked, "answered": answered,
                      "responseRate": (round(answered / p.polls_asked, 3)
                                       if p.polls_asked else None),
                      "meanLatencyMs": (round(sum(latencies) / len(latencies))
                                        if latencies else None),
                      "checked": len(checked), "correct": sum(checked)},
            "handRaises": p.hand_raises, "chatMessages": p.chat_messages,
            "reactions": p.reactions, "whiteboardUpdates": p.whiteboard_updates,
            "inactivity": [[round(a), round(b)] for a, b in inactive],
            "inactiveMs": round(sum(b - a for a, b in inactive)),
        }
        flags: list[tuple[str, str]] = []
        if p.role in STUDENT_ROLES and duration > 0:
            share = attendance / duration
            if share < self.t.attendance_fraction:
                flags.append(("low_attendance",
                              f"present {share:.0%} of the session "
                              f"(threshold {self.t.attendance_fraction:.0%})"))
            if (attendance >= self.t.silent_after_ms and talk == 0 and answered == 0
                    and not (p.hand_raises or p.chat_messages or p.reactions)):
                flags.append(("silent_unresponsive",
                              f"present {attendance / 60_000:.0f} min without speaking, "
                              f"answering ({p.polls_asked} polls asked), a hand, a chat "
                              "message or a reaction"))
        out["_flags"] = flags
        return out


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


_SCORED = ("talkMs", "chatMessages", "handRaises", "reactions", "whiteboardUpdates")


def _score(people: list[dict[str, Any]]) -> None:
    """``activityScore`` of every student (see the module's docstring); None for others."""
    students = [p for p in people if p["role"] in STUDENT_ROLES]
    most = {k: max((p[k] for p in students), default=0) for k in _SCORED}
    for p in people:
        if p["role"] not in STUDENT_ROLES:
            p["activityScore"] = None
            continue
        points = sum(2 * p[k] / most[k] for k in _SCORED if most[k])
        points += 2 * (p["polls"]["responseRate"] or 0)
        p["activityScore"] = round(points * 10 / 12, 1)
