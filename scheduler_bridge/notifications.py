"""Reminders and exception emails: each recorded in the notification log before it goes
out (under a unique key, so none is sent twice, even across a restart), emailed from a
worker thread, retried with a doubling delay (docs/scheduling.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from events import EventBus
from sfu.config import SchedulerConfig

from .booking import Booking, iso_utc
from .notifier import Mailer
from .planner import Remind
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifyParams:
    #: runs a store call in the bridge's database thread
    db: Callable[..., Awaitable[Any]]
    store: Store
    mailer: Mailer | None
    bus: EventBus
    config: SchedulerConfig
    #: (channel, state) -> count, the bridge's metrics
    stats: dict[tuple[str, str], int]
    clock: Callable[[], float]
    #: runs a coroutine as a task the bridge keeps (and awaits when it closes)
    spawn: Callable[[Awaitable[Any]], None]
    #: wakes the bridge's loop (a retry time came nearer)
    wake: Callable[[], None]


class Notifications:
    def __init__(self, params: NotifyParams) -> None:
        self.p = params
        #: when the next failed email is due again (None: none)
        self.next_retry: float | None = None

    async def reminder(self, b: Booking, action: Remind, personal: list[dict[str, Any]],
                       now: float) -> bool:
        """Record the reminder (and the skipped offsets), email it to every booked person
        with an address (their link in it) and to students' guardians; True if it is new
        (then the caller emits ``lesson.reminder``)."""
        db, store = self.p.db, self.p.store
        base = f"reminder:{b.lesson_id}:{b.revision}:"
        for offset in action.skipped:
            await db(store.claim_notification, f"{base}{int(offset)}:skipped",
                     lesson_id=b.lesson_id, kind="reminder", channel="none", recipient="",
                     subject="skipped: a nearer reminder was due", body="", now=now,
                     state="skipped")
        key = f"{base}{int(action.offset_s)}:"
        start_local = datetime.fromtimestamp(b.start_ts, ZoneInfo(b.time_zone))
        subject = f"Reminder: {b.title} at {start_local:%Y-%m-%d %H:%M} ({b.time_zone})"
        new = await db(store.claim_notification, key + "event", lesson_id=b.lesson_id,
                       kind="reminder", channel="event", recipient="", subject=subject,
                       body="", now=now, state="sent") is not None
        if self.p.mailer is None:
            return new
        when = f"{start_local:%A %d %B %Y, %H:%M} ({b.time_zone})"
        lead = round(self.p.config.provision_lead_s / 60)
        for (person, _), link in zip(b.people(), personal, strict=True):
            letters = []
            if person.email:
                letters.append((person.email, f"Hello {person.name},\n\n{b.title} starts at "
                                f"{when}.\n\nYour personal link (opens {lead} minutes before "
                                f"the start):\n{link['url']}\n"))
            letters += [(g.email, f"Hello {g.name or 'there'},\n\n{person.name} has {b.title} "
                         f"at {when}.\n") for g in person.guardians if g.email]
            for address, body in letters:
                await self._email(key + f"email:{address}", b.lesson_id, "reminder", address,
                                  subject, body, now)
        return new

    async def summary(self, b: Booking, summary: dict[str, Any], now: float) -> None:
        """Email the approved summary of a lesson to its students' guardians (once each)."""
        if self.p.mailer is None:
            return
        start_local = datetime.fromtimestamp(b.start_ts, ZoneInfo(b.time_zone))
        subject = f"Lesson summary: {b.title}, {start_local:%Y-%m-%d}"
        text = str(summary.get("text") or "")
        for person in b.students:
            for g in person.guardians:
                if g.email:
                    body = (f"Hello {g.name or 'there'},\n\nHere is the summary of "
                            f"{b.title} ({start_local:%A %d %B %Y}), which {person.name} "
                            f"attended or was booked for.\n\n{text}")
                    await self._email(f"summary:{b.lesson_id}:{person.id}:{g.email}",
                                      b.lesson_id, "summary", g.email, subject, body, now)

    async def exception(self, row: dict[str, Any]) -> None:
        """Email an exception to ``scheduler.operator_emails``."""
        if self.p.mailer is None or not self.p.config.operator_emails:
            return
        subject = f"[{row['kind']}] lesson {row['lessonId'] or row['room']}" + (
            f": {row['person']}" if row["person"] else "")
        body = (f"Exception {row['id']} ({row['kind']}) was raised at "
                f"{iso_utc(row['raisedAt'])}.\nLesson: {row['lessonId']}\n"
                f"Room: {row['room']}\nPerson: {row['person'] or '-'}\n"
                f"Evidence: {row['evidence']}\n")
        for address in self.p.config.operator_emails:
            await self._email(f"exception:{row['id']}:email:{address}", row["lessonId"],
                              "exception", address, subject, body, self.p.clock())

    async def retry(self, now: float) -> None:
        """Send again the failed emails whose retry time has come."""
        for row in await self.p.db(self.p.store.notifications_due, now):
            self.p.spawn(self._send(row["id"], row["lesson_id"], row["kind"], row["recipient"],
                                    row["subject"], row["body"], row["attempts"]))
        self.next_retry = await self.p.db(self.p.store.next_retry)

    async def _email(self, key: str, lesson_id: str | None, kind: str, to: str, subject: str,
                     body: str, now: float) -> None:
        nid = await self.p.db(self.p.store.claim_notification, key, lesson_id=lesson_id,
                              kind=kind, channel="email", recipient=to, subject=subject,
                              body=body, now=now)
        if nid is not None:
            self.p.spawn(self._send(nid, lesson_id, kind, to, subject, body, 0))

    async def _send(self, nid: int, lesson_id: str | None, kind: str, to: str, subject: str,
                    body: str, attempts: int) -> None:
        p = self.p
        assert p.mailer is not None
        data = {"notification": nid, "kind": kind, "channel": "email", "recipient": to,
                "lessonId": lesson_id}
        try:
            await asyncio.get_running_loop().run_in_executor(None, p.mailer.send, to,
                                                             subject, body)
        except Exception as exc:  # noqa: BLE001 (SMTP, socket, DNS: all retried)
            attempts += 1
            final = attempts >= p.config.notify_max_attempts
            now = p.clock()
            retry_at = None if final else now + p.config.notify_retry_s * 2 ** (attempts - 1)
            error = f"{type(exc).__name__}: {exc}"
            await p.db(p.store.notification_done, nid, "dead" if final else "failed",
                       now=now, error=error, next_attempt_ts=retry_at)
            self._count("dead" if final else "failed")
            log.warning("notification %d to %s failed (attempt %d%s): %s", nid, to, attempts,
                        ", giving up" if final else "", exc)
            p.bus.emit("notification.failed", lesson_id or "", {
                **data, "error": error[:500], "attempts": attempts, "final": final})
            if retry_at is not None and (self.next_retry is None
                                         or retry_at < self.next_retry):
                self.next_retry = retry_at
                p.wake()
            return
        await p.db(p.store.notification_done, nid, "sent", now=p.clock())
        self._count("sent")
        p.bus.emit("notification.sent", lesson_id or "", data)

    def _count(self, state: str) -> None:
        key = ("email", state)
        self.p.stats[key] = self.p.stats.get(key, 0) + 1
