"""Who talks when in a bench lesson: the RFC 6464 level each microphone's packets carry.

A browser puts its microphone's level (-dBov: 0 loudest, 127 silence) on every audio
packet; a room that forwards audio by speech goes by it. The bench's browser-like
publishers follow a lesson's rhythm, the same for every server under test:

- the instructor talks in phrases (4.5 s of speech, 1 s pause) except while a student
  answers;
- every ``CYCLE_S`` one student answers for ``ANSWER_S`` (round robin over the students),
  and another one says something short (``AFTERTHOUGHT_S``) over the end of the answer;
- speech is syllables: mostly loud (20..40 dBov) with short dips between words; silence
  is a room's noise floor (~85 dBov), never digital zero.

Deterministic: a function of the participant's index and the time since the lesson
started, so two runs (and the two servers) see the same lesson.
"""

from __future__ import annotations

CYCLE_S = 20.0
ANSWER_S = 6.0
ANSWER_AT_S = 12.0  # into each cycle
AFTERTHOUGHT_S = 1.2
PHRASE_S, PAUSE_S = 4.5, 1.0
NOISE_FLOOR = 85
#: levels of the 20 ms packets of a syllable cycle (250 ms): loud, with one dip
SYLLABLE = (38, 30, 24, 22, 25, 31, 36, 40, 44, 48, 58, 62)


def speaking(index: int, students: int, t_s: float) -> bool:
    """Whether participant ``index`` (0: the instructor, 1..students) speaks at ``t_s``."""
    cycle, into = divmod(t_s, CYCLE_S)
    answering = ANSWER_AT_S <= into < ANSWER_AT_S + ANSWER_S
    if index == 0:
        return not answering and (into % (PHRASE_S + PAUSE_S)) < PHRASE_S
    if students < 1:
        return False
    n = int(cycle)
    if answering and index == 1 + n % students:
        return True
    end = ANSWER_AT_S + ANSWER_S
    return (students > 1 and index == 1 + (n + students // 2) % students
            and end - AFTERTHOUGHT_S / 2 <= into < end + AFTERTHOUGHT_S / 2)


def level(index: int, students: int, t_s: float) -> int:
    """The level byte's value (without the V bit) of a packet sent at ``t_s``."""
    if not speaking(index, students, t_s):
        return NOISE_FLOOR + int(t_s * 50) % 5
    return SYLLABLE[int(t_s * 50) % len(SYLLABLE)]


def talk_share(index: int, students: int, seconds: float = CYCLE_S * 10) -> float:
    """The share of the time participant ``index`` speaks (for reports)."""
    steps = int(seconds * 50)
    return sum(speaking(index, students, k / 50) for k in range(steps)) / steps
