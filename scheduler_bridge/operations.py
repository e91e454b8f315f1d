"""What the operations page shows, computed in the database (blocking; the bridge runs it in
its database thread): a day's rates, and the students at risk across lessons.

- attendance rate: of the booked student places of lessons that took place or should have
  (status ended or no_show), the share whose student joined;
- no-show rate: of those lessons, the share nobody booked came to (status no_show);
- students at risk: absent from, or flagged in, at least ``threshold`` of their last
  ``window`` lessons (ended or no_show; absent = never joined).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, exists, func, select

from .schema import attendance, exceptions, lessons, people
from .store import Store

TOOK_PLACE = ("ended", "no_show")
RECORDING_KINDS = ("recording_alarm", "recording_failed", "recording_not_running")


def rates(store: Store, start_from: float, start_to: float) -> dict[str, Any]:
    """Lessons by status, attendance and no-show rates, recording trouble, open exceptions,
    for lessons starting in [start_from, start_to)."""
    in_range = and_(lessons.c.start_ts >= start_from, lessons.c.start_ts < start_to)
    with store.engine.connect() as conn:
        by_status = {r.status: int(r.n) for r in conn.execute(
            select(lessons.c.status, func.count().label("n")).where(in_range)
            .group_by(lessons.c.status))}
        attended = exists().where(attendance.c.lesson_id == people.c.lesson_id,
                                  attendance.c.identity == people.c.identity)
        places = conn.execute(
            select(func.count().label("booked"),
                   func.sum(case((attended, 1), else_=0)).label("came"))
            .select_from(people.join(lessons, lessons.c.id == people.c.lesson_id))
            .where(in_range, lessons.c.status.in_(TOOK_PLACE), people.c.role == "student")
        ).one()
        trouble = conn.execute(
            select(func.count()).select_from(exceptions).where(
                exceptions.c.kind.in_(RECORDING_KINDS), exceptions.c.raised_ts >= start_from,
                exceptions.c.raised_ts < start_to)).scalar_one()
    took_place = sum(by_status.get(s, 0) for s in TOOK_PLACE)
    booked, came = int(places.booked or 0), int(places.came or 0)
    return {
        "lessons": sum(by_status.values()), "byStatus": by_status,
        "attendanceRate": round(came / booked, 4) if booked else None,
        "studentPlaces": booked, "studentsCame": came,
        "noShowRate": round(by_status.get("no_show", 0) / took_place, 4) if took_place
        else None,
        "recordingFailures": int(trouble),
    }


def at_risk(store: Store, *, window: int = 4, threshold: int = 2, limit: int = 200
            ) -> list[dict[str, Any]]:
    """Students absent or flagged in at least ``threshold`` of their last ``window``
    lessons, worst first: ``{identity, name, lessons, absent, flagged, missed, last:
    [{lessonId, start, absent, flagged}]}``."""
    absent = ~exists().where(attendance.c.lesson_id == people.c.lesson_id,
                             attendance.c.identity == people.c.identity)
    flagged = exists().where(exceptions.c.lesson_id == people.c.lesson_id,
                             exceptions.c.person == people.c.identity,
                             exceptions.c.kind == "student_flagged")
    ranked = (
        select(people.c.identity, people.c.name, people.c.lesson_id, lessons.c.start_ts,
               case((absent, 1), else_=0).label("absent"),
               case((flagged, 1), else_=0).label("flagged"),
               func.row_number().over(partition_by=people.c.identity,
                                      order_by=lessons.c.start_ts.desc()).label("rn"))
        .select_from(people.join(lessons, lessons.c.id == people.c.lesson_id))
        .where(people.c.role == "student", lessons.c.status.in_(TOOK_PLACE))
    ).subquery()
    recent = select(ranked).where(ranked.c.rn <= window).subquery()
    missed = func.sum(case(((recent.c.absent + recent.c.flagged) > 0, 1), else_=0))
    worst = (select(recent.c.identity, missed.label("missed"))
             .group_by(recent.c.identity).having(missed >= threshold)
             .order_by(missed.desc(), recent.c.identity).limit(limit))
    with store.engine.connect() as conn:
        rows = conn.execute(worst).all()
        if not rows:
            return []
        detail: dict[str, list[Any]] = {}
        for r in conn.execute(select(recent).where(recent.c.identity.in_(
                [row.identity for row in rows])).order_by(recent.c.identity, recent.c.rn)):
            detail.setdefault(r.identity, []).append(r)
    out = []
    for row in rows:
        last = detail.get(row.identity, [])
        out.append({
            "identity": row.identity, "name": last[0].name if last else row.identity,
            "lessons": len(last), "missed": int(row.missed),
            "absent": sum(r.absent for r in last), "flagged": sum(r.flagged for r in last),
            "last": [{"lessonId": r.lesson_id, "start": r.start_ts, "absent": bool(r.absent),
                      "flagged": bool(r.flagged)} for r in last]})
    return out
