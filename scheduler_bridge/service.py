"""The scheduler bridge's asyncio adapter: the database in one worker thread, the planner
and the watch on the event loop, rooms made and closed through the classrooms, events out
(docs/scheduling.md).

Every booking change goes through :class:`Bridge` (the HTTP API calls it), so that the
database, the planner, the watch, the room and the links stay in step. One bridge per
database: two servers sharing one bookings database would both provision (the cluster issue
places lessons on nodes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from classroom.rooms import Classrooms
from events import EventBus
from events.bus import Event
from sfu.config import Config, parse_duration_s
from signalling.tokens import JoinClaims

from . import links, records
from .booking import (
    CHANGEABLE,
    Booking,
    Person,
    Status,
    check_times,
    iso_utc,
    parse_booking,
    parse_person,
    parse_time,
    zone,
)
from .errors import BadTransition, LessonNotFound, SchedulerError
from .exception_queue import ExceptionState, Raised
from .imports import Parsed, RowError
from .notifications import Notifications, NotifyParams
from .notifier import Mailer, SmtpParams
from .planner import Close, Planner, Provision, Remind
from .store import ImportResult, Lesson, Store, database_url
from .watch import AttendanceWatch, Expected, Outcome, Started

log = logging.getLogger(__name__)
T = TypeVar("T")
#: room closing reasons that are the bridge's own doing (not an early end)
OWN_CLOSE = ("lesson_over", "lesson_cancelled", "lesson_rescheduled", "server_shutdown")
RELOAD_S = 60.0
#: how far back the first load after a start looks for lessons left open by downtime
CATCH_UP_S = 7 * 86400.0
UPDATABLE = ("title", "students", "recordingPolicy", "room", "seriesId")
#: events kept in the lesson's session record, under these keys
RECORDED = {"session.report": "report", "recording.completed": "recording",
            "recording.failed": "recording", "summary.approved": "summary"}


@dataclass
class BridgeStats:
    exceptions_raised: dict[str, int] = field(default_factory=dict)
    notifications: dict[tuple[str, str], int] = field(default_factory=dict)
    provisioned: int = 0
    errors: int = 0
    #: event (or due time) to exception in the queue, seconds
    lag_sum_s: float = 0.0
    lag_count: int = 0
    lag_max_s: float = 0.0
    lag_samples: list[float] = field(default_factory=list)
    #: from the database, refreshed every RELOAD_S and after changes
    lessons_by_status: dict[str, int] = field(default_factory=dict)
    exceptions_by_state: dict[tuple[str, str], int] = field(default_factory=dict)

    def lag(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.lag_sum_s += seconds
        self.lag_count += 1
        self.lag_max_s = max(self.lag_max_s, seconds)
        if len(self.lag_samples) < 100_000:
            self.lag_samples.append(seconds)


class Bridge:
    def __init__(self, config: Config, bus: EventBus, classrooms: Classrooms, *,
                 clock: Callable[[], float] = time.time, store: Store | None = None) -> None:
        sc = self.sc = config.scheduler
        self.bus = bus
        self.classrooms = classrooms
        self.clock = clock
        self.store = store or Store(database_url(sc.database_url, sc.sqlite_path))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="schedule-db")
        offsets = [parse_duration_s(o) for o in sc.reminder_offsets]
        self.planner = Planner(sc.provision_lead_s, sc.close_after_s, offsets)
        self.watch = AttendanceWatch(instructor_grace_s=sc.instructor_grace_s,
                                     late_join_s=sc.late_join_s, early_end_s=sc.early_end_s)
        base = config.server.public_url or f"http://{config.server.host}:{config.server.port}"
        self.link_params = links.LinkParams(config.auth.api_key, config.auth.api_secret, base,
                                            sc.provision_lead_s, sc.close_after_s)
        mailer = Mailer(SmtpParams(sc.smtp_host, sc.smtp_port, sc.smtp_user,
                                   sc.smtp_password, sc.smtp_starttls, sc.smtp_from)
                        ) if sc.smtp_host else None
        self.horizon_s = max([sc.provision_lead_s, *offsets]) + 2 * RELOAD_S
        #: the lessons the planner and the watch hold, by id
        self.lessons: dict[str, Lesson] = {}
        self.stats = BridgeStats()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self.notify = Notifications(NotifyParams(
            db=self.db, store=self.store, mailer=mailer, bus=bus, config=sc,
            stats=self.stats.notifications, clock=clock, spawn=self._spawn,
            wake=self._wake.set))
        self._next_reload = 0.0
        self._closing = False
        self._raising: list[tuple[Raised, float]] = []
        self._raiser: asyncio.Task[None] | None = None
        #: lesson or exception counts changed: refresh the metrics' copy at the next tick
        self._counts_stale = False

    def set_base_url(self, url: str) -> None:
        """The server's public URL, known once it listens (links are made with it)."""
        self.link_params = replace(self.link_params, base_url=url)

    # -- life cycle -----------------------------------------------------------------------

    async def db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run a store call in the database thread (one at a time, in order)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool,
                                                                partial(fn, *args, **kw))

    async def start(self) -> None:
        await self.db(self.store.migrate)
        interrupted = await self.db(self.store.interrupted_notifications)
        if interrupted:
            log.warning("%d notifications were being sent when the server stopped: marked "
                        "uncertain, not sent again", interrupted)
        self.notify.next_retry = await self.db(self.store.next_retry)
        await self.reload(catch_up=True)
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run(), name="scheduler-bridge")

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._flush_attendance()
        await self.db(self.store.close)
        self._pool.shutdown(wait=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.errors += 1
            log.error("scheduler bridge task failed", exc_info=task.exception())

    async def reload(self, *, catch_up: bool = False) -> None:
        """Hold every lesson near enough to act on (and, after a start, those that
        downtime left open)."""
        now = self.clock()
        found = await self.db(self.store.active, now + self.horizon_s,
                              now - (CATCH_UP_S if catch_up else self.sc.close_after_s))
        new = [lesson for lesson in found if lesson.id not in self.lessons]
        if new:
            ids = [lesson.id for lesson in new]
            done: dict[str, set[tuple[int, int]]] = {}
            for key in await self.db(self.store.reminder_keys, ids):
                _, lesson_id, revision, offset, *_ = key.split(":")  # (ids have no ":")
                done.setdefault(lesson_id, set()).add((int(revision), int(offset)))
            seen = await self.db(self.store.attendance, ids)
            for lesson in new:
                self._hold(lesson, done.get(lesson.id), seen.get(lesson.id))
        await self._refresh_counts()
        self._next_reload = now + RELOAD_S

    async def _refresh_counts(self) -> None:
        self._counts_stale = False
        self.stats.lessons_by_status = await self.db(self.store.lesson_counts)
        self.stats.exceptions_by_state = await self.db(self.store.exception_counts)

    def _hold(self, lesson: Lesson, reminded: set[tuple[int, int]] | None = None,
              attendance: dict[str, dict[str, Any]] | None = None) -> None:
        """Give a lesson to the planner and the watch; ``reminded``: the (revision, offset)
        of the reminders already in the notification log."""
        b = lesson.booking
        held = b.lesson_id in self.lessons
        self.lessons[b.lesson_id] = lesson
        done = {o for o in self.planner.offsets if (b.revision, int(o)) in (reminded or ())}
        self.planner.put(b.lesson_id, b.start_ts, b.end_ts, reminders_done=done,
                         provisioned=None if held else b.lesson_id in self.classrooms.rooms)
        self.watch.expect(Expected(b.lesson_id, b.start_ts, b.end_ts, b.instructor.id,
                                   tuple(s.id for s in b.students),
                                   b.recording_policy == "always"),
                          attendance, started=b.status == Status.LIVE)
        self._wake.set()

    def _consider(self, lesson: Lesson) -> None:
        """Hold a lesson that is booked or changed now, if it is near enough."""
        if lesson.booking.start_ts < self.clock() + self.horizon_s:
            self._hold(lesson)

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            self._wake.clear()  # (set again by anything that happens during the tick)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.errors += 1
                log.exception("scheduler bridge tick failed (retried in 5 s)")
                self._next_reload = min(self._next_reload, self.clock() + 5.0)
            times = [t for t in (self.planner.get_timer(), self.watch.get_timer(),
                                 self.notify.next_retry, self._next_reload) if t is not None]
            delay = max(0.0, min(times) - self.clock()) if times else RELOAD_S
            try:  # (not wait_for: before 3.12 it can swallow the cancel of close())
                async with asyncio.timeout(min(delay, RELOAD_S)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _tick(self) -> None:
        now = self.clock()
        if now >= self._next_reload:
            await self.reload()
        for action in self.planner.due(now):
            try:
                if isinstance(action, Provision):
                    await self._provision(action.lesson_id, now)
                elif isinstance(action, Remind):
                    await self._remind(action, now)
                elif isinstance(action, Close):
                    await self._end(action.lesson_id, "lesson_over")
            except Exception:
                self.stats.errors += 1
                log.exception("scheduler action %s failed", action)
        due = self.watch.get_timer()
        outcomes = self.watch.handle_timer(now)
        if outcomes:
            await self._outcomes(outcomes, due if due is not None else now)
        for lesson_id in [i for i, w in self.watch.lessons.items()
                          if i not in self.lessons and w.end_checked]:
            self.watch.forget(lesson_id)
        if self.notify.next_retry is not None and self.notify.next_retry <= now:
            await self.notify.retry(now)
        await self._flush_attendance()
        if self._counts_stale:
            await self._refresh_counts()

    async def _flush_attendance(self) -> None:
        rows = self.watch.take_changed()
        if rows:
            await self.db(self.store.save_attendance, rows)

    # -- events in ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type.startswith(("lesson.", "exception.", "notification.")):
            return
        outcomes = self.watch.on_event(event.type, event.room, event.data, self.clock())
        for outcome in outcomes:
            if isinstance(outcome, Started):
                self._spawn(self._started(outcome))
            else:
                self._queue_raise(outcome, event.ts)
        if (event.type == "room.closed" and event.room in self.lessons
                and event.data.get("reason") not in OWN_CLOSE):
            self._spawn(self._end(event.room, str(event.data.get("reason"))))
        if event.type in ("participant.joined", "participant.left", "room.closed"):
            self._wake.set()
        if event.type == "summary.approved":
            self._spawn(self._summary_approved(event.room, dict(event.data["summary"])))
        key = RECORDED.get(event.type)
        if key is not None:  # the lesson's session record (no-op for an unbooked room)
            self._spawn(self.db(self.store.merge_record, event.room, key,
                                {"type": event.type, **event.data}))

    async def _outcomes(self, outcomes: list[Outcome], origin_ts: float) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Started):
                await self._started(outcome)
            else:
                self._queue_raise(outcome, origin_ts)

    def _queue_raise(self, raised: Raised, origin_ts: float) -> None:
        """Exceptions go to the database in batches, by one task: a burst of them (500
        lessons starting at once) costs one transaction, not one each."""
        self._raising.append((raised, origin_ts))
        if self._raiser is None or self._raiser.done():
            self._raiser = asyncio.ensure_future(self._drain_raising())
            self._tasks.add(self._raiser)
            self._raiser.add_done_callback(self._done)

    async def _drain_raising(self) -> None:
        while self._raising:
            batch, self._raising = self._raising, []
            origins: dict[str, tuple[Raised, float]] = {}
            for raised, origin_ts in batch:
                origins.setdefault(raised.dedup_key, (raised, origin_ts))
            added = await self.db(self.store.add_exceptions, [r for r, _ in batch])
            now = self.clock()
            for key, row in added:
                raised, origin_ts = origins[key]
                self.stats.lag(now - origin_ts)
                self.stats.exceptions_raised[raised.kind] = (
                    self.stats.exceptions_raised.get(raised.kind, 0) + 1)
                log.warning("exception %s: %s in %s %s", row["id"], raised.kind, raised.room,
                            raised.person)
                self.bus.emit("exception.raised", raised.room, {
                    "exception": row["id"], "kind": raised.kind, "lessonId": raised.lesson_id,
                    "person": raised.person, "evidence": raised.evidence})
                await self.notify.exception(row)
            if added:
                self._counts_stale = True
                self._wake.set()

    async def _started(self, started: Started) -> None:
        lesson = self.lessons.get(started.lesson_id)
        if lesson is None or lesson.booking.status != Status.SCHEDULED:
            return
        try:
            _, new = await self.db(self.store.set_status, started.lesson_id, Status.LIVE,
                                   started.ts, started_ts=started.ts)
        except SchedulerError as exc:
            log.warning("lesson %s could not go live: %s", started.lesson_id, exc)
            return
        self.lessons[started.lesson_id] = new
        self._emit("lesson.started", new.booking, by=started.identity)

    # -- actions --------------------------------------------------------------------------

    async def _provision(self, lesson_id: str, now: float) -> None:
        lesson = self.lessons.get(lesson_id)
        if lesson is None:
            return
        b = lesson.booking
        room = self.classrooms.create(lesson_id, b.max_participants,
                                      reconnect_window_s=b.reconnect_window_s,
                                      recording_policy=b.recording_policy)
        room.media.auto_created = False  # (made by an early join: it is the lesson's now)
        self._apply_room_options(b)
        first = await self.db(self.store.mark, lesson_id, only_if_null="provisioned_ts",
                              provisioned_ts=now)
        if first:
            self.stats.provisioned += 1
            self._emit("lesson.provisioned", b, recordingPolicy=room.recording_policy,
                       maxParticipants=room.media.max_participants,
                       reconnectWindowS=room.media.reconnect_window_s)
        else:
            log.info("lesson %s: room restored (provisioned before this start)", lesson_id)

    async def _end(self, lesson_id: str, reason: str) -> None:
        """The lesson is over: its room closed (if it is still open) and its status set."""
        lesson = self.lessons.pop(lesson_id, None)
        self.planner.remove(lesson_id)
        if lesson_id in self.classrooms.rooms:
            await self.classrooms.close(lesson_id, reason)
        if lesson is None:
            lesson = await self.db(self.store.get, lesson_id)
            if lesson is None:
                return
        watched = self.watch.lessons.get(lesson_id)
        started = lesson.booking.status == Status.LIVE or (watched is not None
                                                          and watched.started)
        status = Status.ENDED if started else Status.NO_SHOW
        now = self.clock()
        try:
            if started and lesson.booking.status == Status.SCHEDULED:
                await self.db(self.store.set_status, lesson_id, Status.LIVE, now)
            _, new = await self.db(self.store.set_status, lesson_id, status, now,
                                   closed_ts=now)
        except BadTransition:
            return  # cancelled or ended already
        if watched is not None and watched.end_checked:
            self.watch.forget(lesson_id)
        self._emit("lesson.ended", new.booking, status=status.value, reason=reason)

    def _emit(self, type_: str, b: Booking, **data: Any) -> None:
        self._counts_stale = True
        self._wake.set()
        self.bus.emit(type_, b.lesson_id, {"lessonId": b.lesson_id, "revision": b.revision,
                                           **data})

    # -- notifications --------------------------------------------------------------------

    async def _remind(self, action: Remind, now: float) -> None:
        lesson = self.lessons.get(action.lesson_id)
        if lesson is None:
            return
        b = lesson.booking
        personal = links.links(b, self.link_params)
        if await self.notify.reminder(b, action, personal, now):
            self._emit("lesson.reminder", b, offsetS=int(action.offset_s),
                       start=iso_utc(b.start_ts), title=b.title,
                       people=[{"identity": p["identity"], "role": p["role"], "url": p["url"]}
                               for p in personal])

    # -- the API's operations -------------------------------------------------------------

    async def book(self, booking: Booking) -> Lesson:
        lesson = await self.db(self.store.create, booking, self.clock(),
                               allow_overlap=self.sc.allow_instructor_overlap)
        self._booked(booking)
        self._consider(lesson)
        return lesson

    def _booked(self, b: Booking) -> None:
        self._emit("lesson.booked", b, title=b.title, start=iso_utc(b.start_ts),
                   end=iso_utc(b.end_ts), instructor=b.instructor.id, students=len(b.students))

    async def get(self, lesson_id: str) -> Lesson:
        lesson = await self.db(self.store.get, lesson_id)
        if lesson is None:
            raise LessonNotFound(f"no lesson {lesson_id!r}")
        return lesson

    async def _changeable(self, lesson_id: str) -> Lesson:
        lesson = await self.get(lesson_id)
        if lesson.booking.status not in CHANGEABLE:
            raise BadTransition(f"lesson {lesson_id} is {lesson.booking.status}: it cannot "
                                "change any more")
        return lesson

    async def update(self, lesson_id: str, patch: dict[str, Any]) -> Lesson:
        """Change what a booking says besides its times and instructor (the links stay
        valid; a student taken off the booking can no longer join)."""
        unknown = sorted(set(patch) - set(UPDATABLE))
        if unknown:
            raise SchedulerError(f"cannot change {', '.join(unknown)} here (times: "
                                 "reschedule; instructor: substitute); changeable: "
                                 f"{', '.join(UPDATABLE)}")
        lesson = await self._changeable(lesson_id)
        b = lesson.booking
        current = b.to_json()
        if isinstance(patch.get("room"), dict):  # room options are merged, not replaced
            patch = {**patch, "room": {**current["room"], **patch["room"]}}
        merged = parse_booking({**current, **patch})
        new = replace(merged, start_ts=b.start_ts, end_ts=b.end_ts, revision=b.revision)
        _, changed = await self.db(self.store.change, lesson_id, new, self.clock(),
                                   allow_overlap=self.sc.allow_instructor_overlap)
        self._emit("lesson.updated", new, fields=sorted(patch))
        self._apply_room_options(changed.booking)
        self._refresh(changed)
        return changed

    async def reschedule(self, lesson_id: str, body: dict[str, Any]) -> Lesson:
        lesson = await self._changeable(lesson_id)
        b = lesson.booking
        tz_name = body.get("timeZone", b.time_zone)
        tz = zone(tz_name)
        start = parse_time(body.get("start"), tz, "start")
        end = parse_time(body.get("end"), tz, "end")
        check_times(start, end)
        new = replace(b, start_ts=start, end_ts=end, time_zone=tz_name, revision=b.revision + 1)
        _, changed = await self.db(self.store.change, lesson_id, new, self.clock(),
                                   allow_overlap=self.sc.allow_instructor_overlap)
        self._emit("lesson.rescheduled", new, start=iso_utc(start), end=iso_utc(end),
                   previousStart=iso_utc(b.start_ts), previousEnd=iso_utc(b.end_ts))
        now = self.clock()
        if lesson_id in self.classrooms.rooms and now < start - self.sc.provision_lead_s:
            # moved well away: the room goes, and is made again before the new start
            await self.classrooms.close(lesson_id, "lesson_rescheduled")
            await self.db(self.store.mark, lesson_id, provisioned_ts=None)
            changed.provisioned_ts = None
            self.planner.put(lesson_id, start, end, provisioned=False)
        self._refresh(changed)
        return changed

    async def substitute(self, lesson_id: str, body: dict[str, Any]) -> Lesson:
        lesson = await self._changeable(lesson_id)
        b = lesson.booking
        instructor: Person = parse_person(body.get("instructor"), "instructor")
        if any(s.id == instructor.id for s in b.students):
            raise SchedulerError(f"{instructor.id!r} is a student of this lesson")
        new = replace(b, instructor=instructor, revision=b.revision + 1)
        _, changed = await self.db(self.store.change, lesson_id, new, self.clock(),
                                   allow_overlap=self.sc.allow_instructor_overlap)
        self._emit("lesson.instructor_substituted", new, instructor=instructor.id,
                   previous=b.instructor.id)
        self._refresh(changed)
        return changed

    async def cancel(self, lesson_id: str, reason: str) -> Lesson:
        _, new = await self.db(self.store.set_status, lesson_id, Status.CANCELLED,
                               self.clock(), cancel_reason=reason)
        self._emit("lesson.cancelled", new.booking, reason=reason)
        self.lessons.pop(lesson_id, None)
        self.planner.remove(lesson_id)
        self.watch.forget(lesson_id)
        if lesson_id in self.classrooms.rooms:
            await self.classrooms.close(lesson_id, "lesson_cancelled")
        return new

    def _refresh(self, lesson: Lesson) -> None:
        if lesson.id in self.lessons:
            self._hold(lesson)
        else:
            self._consider(lesson)

    def _apply_room_options(self, b: Booking) -> None:
        room = self.classrooms.get(b.lesson_id)
        if room is None:
            return
        if b.max_participants is not None:
            room.media.max_participants = b.max_participants
        if b.reconnect_window_s is not None:
            room.media.reconnect_window_s = b.reconnect_window_s

    async def import_parsed(self, parsed: Parsed) -> tuple[ImportResult, list[RowError]]:
        result = await self.db(self.store.import_bookings, parsed.good, self.clock(),
                               allow_overlap=self.sc.allow_instructor_overlap)
        errors = list(parsed.errors) + [
            RowError(row, lesson_id, getattr(exc, "code", "bad_booking"), str(exc))
            for row, lesson_id, exc in result.refused]
        errors.sort(key=lambda e: e.row)
        created = set(result.created)
        for _, b in parsed.good:
            if b.lesson_id in created:
                self._booked(b)
        for old, new in result.changes:
            ob, nb = old.booking, new.booking
            if (ob.start_ts, ob.end_ts) != (nb.start_ts, nb.end_ts):
                self._emit("lesson.rescheduled", nb, start=iso_utc(nb.start_ts),
                           end=iso_utc(nb.end_ts), previousStart=iso_utc(ob.start_ts),
                           previousEnd=iso_utc(ob.end_ts))
            if ob.instructor.id != nb.instructor.id:
                self._emit("lesson.instructor_substituted", nb, instructor=nb.instructor.id,
                           previous=ob.instructor.id)
            self._refresh(new)
        now = self.clock()
        for _, b in parsed.good:
            if b.lesson_id in created and b.start_ts < now + self.horizon_s:
                self._hold(Lesson(b))
        return result, errors

    def links(self, lesson: Lesson) -> list[dict[str, Any]]:
        return links.links(lesson.booking, self.link_params)

    async def check_join(self, claims: JoinClaims) -> dict[str, Any]:
        """The join gate: a lesson link is admitted only as its booking stands now. Returns
        what the ``joined`` message says of the lesson (``{lesson: {..., brief}}``: the
        instructor's brief of the previous lesson)."""
        if not claims.lesson:
            return {}
        lesson = self.lessons.get(claims.lesson)
        if lesson is None:
            lesson = await self.db(self.store.get, claims.lesson)
        links.check(claims, lesson.booking if lesson is not None else None)
        assert lesson is not None
        if claims.lesson not in self.classrooms.rooms and claims.lesson in self.lessons:
            # a join a moment before the loop provisioned the room: make it now, as booked
            await self._provision(claims.lesson, self.clock())
        b = lesson.booking
        about: dict[str, Any] = {"id": b.lesson_id, "title": b.title,
                                 "start": iso_utc(b.start_ts), "end": iso_utc(b.end_ts)}
        if claims.role == "instructor":
            about["brief"] = await self.db(records.brief, self.store, lesson)
        return {"lesson": about}

    async def roster(self, room: str) -> list[dict[str, str]] | None:
        """The booked students of the lesson held in ``room`` (None: not a lesson)."""
        lesson = await self.db(self.store.get, room)
        if lesson is None:
            return None
        return [{"identity": s.id, "name": s.name} for s in lesson.booking.students]

    async def _summary_approved(self, room: str, summary: dict[str, Any]) -> None:
        """An approved summary of a lesson goes to its students' guardians."""
        lesson = await self.db(self.store.get, room)
        if lesson is not None:
            await self.notify.summary(lesson.booking, summary, self.clock())

    async def record(self, lesson_id: str) -> dict[str, Any]:
        return await self.db(records.session_record, self.store, await self.get(lesson_id))

    async def set_notes(self, lesson_id: str, notes: str) -> None:
        if not await self.db(self.store.mark, lesson_id, notes=notes):
            raise LessonNotFound(f"no lesson {lesson_id!r}")

    async def transition(self, exception_id: str, to: ExceptionState, by: str, note: str
                         ) -> dict[str, Any]:
        row = await self.db(self.store.exception_transition, exception_id, to, by, note,
                            self.clock())
        self.bus.emit(f"exception.{to.value}", row["room"], {
            "exception": row["id"], "kind": row["kind"], "lessonId": row["lessonId"],
            "person": row["person"], "by": by, "note": note})
        self._counts_stale = True
        self._wake.set()
        return row
