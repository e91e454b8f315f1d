"""A session's transcript: recognised lines per speaker, and its two renderings.

Times are wall-clock seconds (``time.time()``); a rendering puts them on a timeline whose
zero is ``origin`` (the recording's start for the files beside a recording, the
transcript's first line otherwise). WebVTT cues carry the speaker as a voice span
(``<v Name>``), the convention players and BigBlueButton's caption tracks follow; the JSON
keeps the participant id, identity and every word's times too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Line:
    participant: str
    identity: str
    name: str
    role: str
    track: str
    start: float
    end: float
    text: str
    #: (word, start, end), wall-clock seconds
    words: tuple[tuple[str, float, float], ...] = ()


@dataclass
class Transcript:
    room: str
    lines: list[Line] = field(default_factory=list)

    def add(self, line: Line) -> None:
        """Lines are kept in start order (two speakers' lines interleave)."""
        i = len(self.lines)
        while i and self.lines[i - 1].start > line.start:
            i -= 1
        self.lines.insert(i, line)

    def between(self, start: float, end: float | None = None) -> list[Line]:
        return [ln for ln in self.lines
                if ln.end >= start and (end is None or ln.start <= end)]

    def webvtt(self, origin: float, lines: list[Line] | None = None) -> str:
        out = ["WEBVTT", ""]
        for n, ln in enumerate(self.lines if lines is None else lines, 1):
            start, end = max(0.0, ln.start - origin), max(0.0, ln.end - origin)
            out += [str(n), f"{_vtt_time(start)} --> {_vtt_time(max(end, start + 0.5))}",
                    f"<v {_vtt_escape(ln.name or ln.identity)}>{_vtt_escape(ln.text)}", ""]
        return "\n".join(out)

    def to_json(self, origin: float, lines: list[Line] | None = None,
                **extra: Any) -> dict[str, Any]:
        chosen = self.lines if lines is None else lines
        return {
            "room": self.room, "origin": origin, **extra,
            "speakers": sorted({ln.participant for ln in chosen}),
            "lines": [{
                "participant": ln.participant, "identity": ln.identity, "name": ln.name,
                "role": ln.role, "track": ln.track,
                "start": round(ln.start - origin, 3), "end": round(ln.end - origin, 3),
                "text": ln.text,
                "words": [[w, round(s - origin, 3), round(e - origin, 3)]
                          for w, s, e in ln.words],
            } for ln in chosen],
        }

    def json_bytes(self, origin: float, lines: list[Line] | None = None,
                   **extra: Any) -> bytes:
        return json.dumps(self.to_json(origin, lines, **extra), indent=2).encode()


def _vtt_time(s: float) -> str:
    ms = round(s * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    sec, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{sec:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    # a cue's text must not hold "-->" and escapes &, < and > (WebVTT section 4.2.2)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\n", " "))
