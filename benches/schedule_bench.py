"""The scheduler bridge at an online school's scale (benches/README.md, "Scheduling").

1. **Import**: a week of lessons (default 10,000: 200 instructors, 8:00–20:00, 50 minutes,
   10 students each) as one CSV through ``POST /api/schedule/import`` of a real server
   process, timed; then the same file again (idempotent: all unchanged), timed.
2. **Watch lag**: a bridge in this process (its real database, planner, watch and exception
   queue) holds 500 concurrent lessons that started a moment ago; their participants'
   joins and leaves are emitted on the event bus as fast as the bridge takes them, some
   students late (``late_join``: raised at the event) and some instructors absent
   (``instructor_no_show``: raised at the check's due time). The lag is from the event (or
   the due time) to the exception stored in the queue.

    python -m benches.schedule_bench                      # SQLite
    python -m benches.schedule_bench --database postgresql+psycopg://postgres@127.0.0.1/db
    python -m benches.schedule_bench --quick              # 500 lessons, 50 concurrent
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from benches.server_process import start_server, stop_server
from classroom.rooms import Classrooms
from events import EventBus
from scheduler_bridge.booking import parse_booking
from scheduler_bridge.service import Bridge
from sfu.config import Config, SchedulerConfig
from sfu.room import RoomRegistry


def week_csv(lessons: int, students: int = 10, instructors: int = 200) -> str:
    """``lessons`` lessons over the next week, no instructor teaching two at once."""
    monday = (datetime.now(UTC) + timedelta(days=7)).replace(hour=0, minute=0, second=0,
                                                             microsecond=0)
    slots = [(d, h) for d in range(7) for h in range(8, 20)]  # 84 hourly slots a week
    lines = ["lesson_id,title,start,end,time_zone,instructor_id,instructor_name,students"]
    for i in range(lessons):
        teacher = i % instructors
        day, hour = slots[(i // instructors) % len(slots)]
        start = monday + timedelta(days=day, hours=hour)
        end = start + timedelta(minutes=50)
        kids = ";".join(f"s{(i * students + k) % 5000}" for k in range(students))
        lines.append(f"W{i},Lesson {i},{start.isoformat()},{end.isoformat()},Europe/Berlin,"
                     f"t{teacher},Teacher {teacher},{kids}")
    return "\n".join(lines) + "\n"


async def bench_import(lessons: int, database: str | None) -> dict[str, Any]:
    env = {"SFU_SCHEDULER_DATABASE_URL": database} if database else {}
    server = start_server(env)
    body = week_csv(lessons).encode()
    out: dict[str, Any] = {"lessons": lessons, "bytes": len(body)}
    try:
        async with aiohttp.ClientSession(headers={**server.auth_header,
                                                  "Content-Type": "text/csv"}) as s:
            for label in ("first", "again"):
                t0 = time.perf_counter()
                async with s.post(server.base_url + "/api/schedule/import",
                                  data=io.BytesIO(body)) as resp:
                    result = await resp.json()
                    assert resp.status == 200, result
                out[f"{label}_s"] = round(time.perf_counter() - t0, 2)
                out[f"{label}_result"] = {k: result[k] for k in
                                          ("created", "updated", "unchanged", "rejected")}
    finally:
        stop_server(server)
    out["lessons_per_s"] = round(lessons / out["first_s"])
    return out


async def bench_watch(concurrent: int, students: int, database: str | None) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="sfu-schedule-bench-")
    sc = SchedulerConfig(database_url=database or "",
                         sqlite_path=str(Path(folder) / "schedule.sqlite3"),
                         provision_lead_s=60, instructor_grace_s=2.0, late_join_s=1.0,
                         reminder_offsets=())
    bus = EventBus(history=10)
    rooms = Classrooms(RoomRegistry(bus, max_participants=100, auto_create=False), bus)
    bridge = Bridge(Config(scheduler=sc), bus, rooms)
    await bridge.start()
    now = time.time()
    # far enough ahead that the rooms are made and everyone on time has joined before it
    started = now + 10.0 + concurrent * (students + 1) / 2000
    bookings = []
    for i in range(concurrent):
        bookings.append(parse_booking({
            "lessonId": f"C{i}-{int(now)}", "start": datetime.fromtimestamp(started, UTC)
            .isoformat(), "end": datetime.fromtimestamp(started + 3600, UTC).isoformat(),
            "instructor": {"id": f"ct{i}-{int(now)}"},
            "students": [{"id": f"cs{i}-{k}"} for k in range(students)]}))
    for b in bookings:
        await bridge.book(b)
    # every room is provisioned by the bridge's loop
    while sum(1 for b in bookings if b.lesson_id in rooms.rooms) < concurrent:
        await asyncio.sleep(0.05)
    events = 0
    t0 = time.perf_counter()
    for i, b in enumerate(bookings):
        if i % 10 != 0:  # one instructor in ten never comes
            bus.emit("participant.joined", b.lesson_id, {
                "participant": "PA", "identity": b.instructor.id, "role": "instructor"})
            events += 1
        for k, s in enumerate(b.students):
            if k == 0 and i % 5 == 0:
                continue  # late, below
            bus.emit("participant.joined", b.lesson_id, {
                "participant": "PA", "identity": s.id, "role": "student"})
            events += 1
        if i % 20 == 0:
            await asyncio.sleep(0)  # let the bridge's tasks run, as the server's loop would
    emit_s = time.perf_counter() - t0
    assert time.time() < started, "the joins took longer than planned: raise the margin"
    await asyncio.sleep(max(0.0, started + 1.2 - time.time()))
    for i, b in enumerate(bookings):  # the late students (after start + late_join_s)
        if i % 5 == 0:
            bus.emit("participant.joined", b.lesson_id, {
                "participant": "PA", "identity": b.students[0].id, "role": "student"})
            events += 1
        for s in b.students[1:4]:  # and some churn: leave and come back
            bus.emit("participant.left", b.lesson_id, {
                "participant": "PA", "identity": s.id, "reason": "left", "speakingMs": 0})
            bus.emit("participant.joined", b.lesson_id, {
                "participant": "PA", "identity": s.id, "role": "student"})
            events += 2
    expected = concurrent // 5 + concurrent // 10
    deadline = time.time() + 60
    while sum(bridge.stats.exceptions_raised.values()) < expected and time.time() < deadline:
        await asyncio.sleep(0.05)
    lags = sorted(bridge.stats.lag_samples)
    raised = dict(bridge.stats.exceptions_raised)
    await bridge.close()
    for name in list(rooms.rooms):
        await rooms.close(name)

    def pct(p: float) -> float:
        return round(lags[min(len(lags) - 1, int(p * len(lags)))] * 1000, 1) if lags else 0.0

    return {"concurrent": concurrent, "participants": concurrent * (students + 1),
            "events": events, "emit_events_per_s": round(events / emit_s),
            "raised": raised, "expected": expected,
            "lag_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
                       "max": round(lags[-1] * 1000, 1) if lags else 0.0,
                       "mean": round(statistics.fmean(lags) * 1000, 1) if lags else 0.0}}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report = {"database": "postgresql" if args.database else "sqlite",
              "import": await bench_import(args.lessons, args.database),
              "watch": await bench_watch(args.concurrent, args.students, args.database)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", type=int, default=10_000)
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite)")
    parser.add_argument("--quick", action="store_true", help="500 lessons, 50 concurrent")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args()
    logging.getLogger("scheduler_bridge").setLevel(logging.ERROR)  # one line per exception
    if args.quick:
        args.lessons, args.concurrent, args.students = 500, 50, 10
    report = asyncio.run(main_async(args))
    imp, watch = report["import"], report["watch"]
    print(f"database: {report['database']}")
    print(f"import {imp['lessons']} lessons ({imp['bytes'] >> 10} KiB CSV): {imp['first_s']} s "
          f"({imp['lessons_per_s']} lessons/s), {imp['first_result']}; again (idempotent): "
          f"{imp['again_s']} s, {imp['again_result']}")
    lag = watch["lag_ms"]
    print(f"watch: {watch['concurrent']} concurrent lessons, {watch['participants']} "
          f"participants, {watch['events']} join/leave events (emitted at "
          f"{watch['emit_events_per_s']}/s); exceptions {watch['raised']} (expected "
          f"{watch['expected']}); lag ms p50 {lag['p50']} p95 {lag['p95']} p99 {lag['p99']} "
          f"max {lag['max']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
