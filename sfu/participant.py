"""A participant: who it is, its presence (active, reconnecting, gone), its client
connection, and its media in three parts:

* :class:`sfu.publisher.PublisherSide`: the publisher connection and the tracks it
  publishes;
* :class:`sfu.subscriber.SubscriberSide`: the subscriber connection (its negotiation a
  state machine, :mod:`sfu.offer_state`) and the subscriptions it carries;
* :class:`sfu.downlink.DownlinkController`: the subscriber's bandwidth estimate and the
  allocation of its subscriptions' layers.

The signalling layer calls the ``handle_*`` coroutines with parsed client messages and gets
protocol messages back through ``send``. The participant tells its room what happened
through :class:`RoomLink`, makes its transports with the server's
:class:`sfu.transport.TransportFactory`, and keeps every task it starts (cancelled on
close). Only :mod:`sfu.transport` touches aiortc.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import rtcp, sdp
from .downlink import QUALITIES, DownlinkController
from .errors import InvalidState
from .metrics import Retired
from .presence import Presence, new_resume_token
from .publisher import PublisherSide
from .subscriber import SubscriberSide
from .track import PublishedTrack, Subscription
from .transport import Certificate, MediaTransport, TransportFactory, UdpTransports

log = logging.getLogger(__name__)

ROLES = ("instructor", "student", "observer")
#: the control tick: TWCC feedback to publishers; every ALLOCATE_EVERY ticks the layer
#: figures, allocation and dynacast; every REPORT_EVERY ticks the RTCP reports
TICK_S = 0.1
ALLOCATE_EVERY = 5
REPORT_EVERY = 10
#: a transport is replaced at most this often (each one binds sockets and makes a
#: certificate: a client must not be able to make the server do that in a loop)
MIN_RESTART_INTERVAL_MS = 2000.0

__all__ = ["QUALITIES", "ROLES", "Grants", "MediaParams", "Participant", "ParticipantInfo",
           "RoomLink", "now_ms"]


def now_ms() -> float:
    return time.monotonic() * 1000.0


class RoomLink(Protocol):
    """What a participant may tell its room (sfu.room.Room), and the two things it reads."""

    @property
    def reconnect_window_s(self) -> float: ...

    @property
    def on_audio_level(self) -> Callable[[str, int, float], None]:
        """Where its microphones' RFC 6464 levels go (participant id, level byte, now ms)."""

    def track_published(self, p: Participant, track: PublishedTrack) -> None: ...

    def track_unpublished(self, p: Participant, track: PublishedTrack) -> None: ...

    def track_muted(self, p: Participant, track: PublishedTrack) -> None: ...

    def transport_failed(self, p: Participant, which: str) -> None: ...

    def subscription_paused(self, p: Participant, sub: Subscription, paused: bool,
                            estimate_bps: int) -> None: ...

    def layers_changed(self, p: Participant, track: PublishedTrack) -> None: ...


@dataclass(frozen=True, slots=True)
class Grants:
    publish: bool = True
    subscribe: bool = True
    moderate: bool = False
    record: bool = False


@dataclass(frozen=True, slots=True)
class MediaParams:
    """What every participant's media needs from the server (one instance per server)."""

    certificate: Certificate
    #: addresses to bind UDP sockets on and announce as ICE host candidates
    ice_addresses: tuple[str, ...]
    keyframe_interval_ms: float = 500.0
    publisher_max_bitrate_bps: int = 2_500_000
    #: dynacast: a simulcast layer nobody receives for this long is switched off at the
    #: publisher (and back on as soon as someone needs it)
    dynacast_delay_ms: float = 3000.0
    #: the downlink estimate a new subscriber starts from
    initial_downlink_bps: int = 1_000_000
    #: a transport that should be receiving (RTP from a publisher, RTCP feedback from a
    #: subscriber) and received nothing this long is dead: it is replaced
    transport_timeout_ms: float = 10_000.0
    #: where the counters of closed tracks/subscriptions go (metrics never go down)
    retired: Retired = field(default_factory=Retired)
    #: makes the participants' transports (None: sfu.transport.UdpTransports on
    #: ``ice_addresses`` with ``certificate``)
    transport_factory: TransportFactory | None = None


@dataclass(slots=True)
class ParticipantInfo:
    id: str
    identity: str
    name: str
    role: str
    grants: Grants = field(default_factory=Grants)
    #: the edge node this participant's page is on (its media served there; "" = here)
    via: str = ""
    #: a relay session's edge node: it receives the room's tracks for that node's pages
    #: and is no participant of the lesson (docs/cluster.md, "Edge relays")
    relay: str = ""



class Participant:
    #: another server's participant, as an edge node's room shows it (sfu.remote)
    remote = False

    def __init__(
        self,
        info: ParticipantInfo,
        room: RoomLink,
        params: MediaParams,
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        self.info = info
        self.id = info.id
        self.room = room
        self.send = send
        self.params = params
        #: active / reconnecting (grace window) / gone; see sfu.presence
        self.presence = Presence(room.reconnect_window_s * 1000.0)
        #: what the client presents to resume this participant after a lost connection
        self.resume_token = new_resume_token()
        self._on_detached: Callable[[], None] | None = None
        #: handed off to another server (a drain): its connection closes without a leave
        self.handed_off = False
        #: transports replaced (ICE restart, or dead after an outage)
        self.transport_restarts = 0
        self._last_restart_ms: dict[str, float] = {}
        self._transports = params.transport_factory or UdpTransports(
            params.certificate, params.ice_addresses)
        self.closed = False
        self.joined_at = time.time()
        #: the SSRCs this participant sends with (its RTCP, its subscriptions' m-lines)
        self._ssrcs: set[int] = set()
        self.rtcp_ssrc = self.new_ssrc()
        self.publishing = PublisherSide(self)
        self.downlink = DownlinkController(self.id, params.initial_downlink_bps, self)
        self.subscribing = SubscriberSide(self, self.downlink)
        self._ticks = 0
        self._control_task: asyncio.Task[None] | None = None
        #: every task this participant started and that still runs (cancelled on close)
        self._tasks: set[asyncio.Task[Any]] = set()
        #: called once when the participant is closed (by leave, removal or room close)
        self.on_closed: Callable[[], None] | None = None

    # -- the parts, as the room, the API and the metrics see them ----------------------

    @property
    def publisher(self) -> MediaTransport | None:
        """The publisher connection's transport (None before the first offer)."""
        return self.publishing.transport

    @property
    def subscriber(self) -> MediaTransport | None:
        """The subscriber connection's transport (None before the first subscription)."""
        return self.subscribing.transport

    @property
    def tracks(self) -> dict[str, PublishedTrack]:
        """Published tracks by mid."""
        return self.publishing.tracks

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """Subscriptions by track id."""
        return self.subscribing.subscriptions

    def track_by_id(self, track_id: str) -> PublishedTrack | None:
        return self.publishing.track_by_id(track_id)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identity": self.info.identity,
            "name": self.info.name,
            "role": self.info.role,
            "state": self.presence.state,
            "tracks": [t.describe() for t in self.tracks.values()],
        }

    def media_stats(self) -> dict[str, Any]:
        """Live media figures for operators (room service API): layers received from this
        participant, what it receives and its downlink estimate."""
        t = now_ms()
        return {
            "published": self.publishing.media_stats(t),
            "subscriptions": self.subscribing.media_stats(),
            "downlinkEstimateBps": self.downlink.estimate(t),
            "twccFeedback": self.downlink.twcc_feedback,
        }

    # -- what the parts share ----------------------------------------------------------

    @staticmethod
    def clock() -> float:
        """The media clock (monotonic ms) the parts read; the cores are given it."""
        return now_ms()

    def new_ssrc(self) -> int:
        while True:
            ssrc = secrets.randbits(32)
            if ssrc and ssrc not in self._ssrcs:
                self._ssrcs.add(ssrc)
                return ssrc

    def release_ssrc(self, ssrc: int) -> None:
        self._ssrcs.discard(ssrc)

    def new_transport(self, which: str, *, controlling: bool, fresh_certificate: bool,
                      on_rtp: Callable[[bytes, float], None], on_rtcp: Callable[[bytes], None],
                      on_state: Callable[[str], None]) -> MediaTransport:
        return self._transports(name=f"{self.id}/{which}", controlling=controlling,
                                fresh_certificate=fresh_certificate, on_rtp=on_rtp,
                                on_rtcp=on_rtcp, on_state=on_state)

    def check_restart_rate(self, which: str) -> None:
        t = now_ms()
        if t - self._last_restart_ms.get(which, float("-inf")) < MIN_RESTART_INTERVAL_MS:
            raise InvalidState(f"the {which} connection was restarted less than "
                               f"{MIN_RESTART_INTERVAL_MS / 1000:g} s ago")
        self._last_restart_ms[which] = t

    def ensure_open(self) -> None:
        """Coroutines re-check after each await: the participant may have been removed."""
        if self.closed:
            raise InvalidState("the participant has left the room")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of this participant: kept until it ends, cancelled when
        the participant closes, its exception logged."""
        if self.closed:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("participant %s: task failed", self.id, exc_info=task.exception())

    async def add_candidate(self, transport: MediaTransport, cand: str) -> None:
        try:
            await transport.add_remote_candidate(cand)
        except (ValueError, IndexError) as exc:
            raise sdp.SdpError(f"bad ICE candidate: {cand[:80]!r}") from exc

    def subscription_paused(self, sub: Subscription, paused: bool, estimate_bps: int) -> None:
        """The downlink controller paused or resumed a subscription (DownlinkListener)."""
        message: dict[str, Any] = {"type": "track_paused" if paused else "track_resumed",
                                   "trackId": sub.track.id}
        if paused:
            message["reason"] = "bandwidth"
        self.send(message)
        self.room.subscription_paused(self, sub, paused, estimate_bps)

    # -- the client connection ----------------------------------------------------------

    def attach(self, send: Callable[[dict[str, Any]], None], on_closed: Callable[[], None],
               on_detached: Callable[[], None]) -> None:
        """A (new) client connection carries this participant's messages from now on. One
        still attached (a client may reconnect before the server sees its old socket die)
        is told through its ``on_detached`` and must let go."""
        previous = self._on_detached
        self.send, self.on_closed, self._on_detached = send, on_closed, on_detached
        if previous is not None:
            previous()

    def hand_off(self, message: dict[str, Any]) -> None:
        """The participant goes on on another server: ``message`` tells its client where,
        then its connection lets go of it without a ``left`` (the client resumes there)."""
        self.handed_off = True
        self.send(message)
        let_go = self._on_detached
        self.detach()
        if let_go is not None:
            let_go()

    def detach(self) -> None:
        """The connection is gone: messages are dropped until one attaches and resyncs."""
        self.send = _discard
        self.on_closed = None
        self._on_detached = None

    def resync(self) -> None:
        """After a resume: what the client missed while detached. The room state comes with
        the ``resumed`` message; the subscriber negotiation is redone (an offer sent while
        detached was lost; one that was answered is harmlessly repeated)."""
        self.subscribing.resync()
        if self.publisher is not None and self.publisher.state in ("failed", "closed"):
            self.send({"type": "restart_ice", "target": "publisher"})

    # -- client messages ---------------------------------------------------------------

    async def handle_publisher_offer(
        self, sdp_text: str, declared: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        return await self.publishing.handle_offer(sdp_text, declared)

    async def handle_subscriber_answer(self, sdp_text: str) -> None:
        await self.subscribing.handle_answer(sdp_text)

    async def restart_subscriber(self) -> None:
        await self.subscribing.restart()

    def set_track_muted(self, track_id: str, muted: bool, by: Participant) -> PublishedTrack:
        return self.publishing.set_track_muted(track_id, muted, by)

    def set_quality(self, track_id: str, quality: str) -> None:
        """The subscriber's wish for one track (its view size): off, low, medium, high."""
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}")
        self.subscribing.set_quality(track_id, QUALITIES[quality], now_ms())

    async def handle_candidate(self, target: str, candidate: dict[str, Any] | None) -> None:
        transport = self.publisher if target == "publisher" else self.subscriber
        if transport is None:
            raise InvalidState(f"no {target} connection yet")
        ufrag = candidate.get("usernameFragment") if candidate is not None else None
        if ufrag and transport.remote_ice is not None and ufrag != transport.remote_ice[0]:
            return  # of an ICE generation before a restart: stale, not an error
        if candidate is None or not candidate.get("candidate"):
            await transport.add_remote_candidate(None)
            return
        await self.add_candidate(transport, str(candidate["candidate"]))

    # -- the room's fan-out ------------------------------------------------------------

    def subscribe(self, track: PublishedTrack) -> None:
        self.subscribing.subscribe(track)

    def unsubscribe(self, track_id: str) -> None:
        self.subscribing.unsubscribe(track_id)

    # -- periodic work -----------------------------------------------------------------

    def ensure_control_loop(self) -> None:
        if self._control_task is None and not self.closed:
            self._control_task = asyncio.ensure_future(self._control_loop())

    async def _control_loop(self) -> None:
        while not self.closed:
            # 100 ms while we owe a publisher transport-cc feedback, else every allocation
            # period: fewer wake-ups for the many participants that only listen
            step = 1 if self.publishing.twcc_rx is not None else ALLOCATE_EVERY
            await asyncio.sleep(TICK_S * step)
            try:
                self.tick(now_ms(), step)
            except Exception:
                log.exception("control tick failed for %s", self.id)

    def tick(self, t: float, step: int = 1) -> None:
        """Periodic work (sans-IO apart from the sends): feedback, allocation, reports.
        ``step``: how many 100 ms ticks this call stands for (1 or ALLOCATE_EVERY)."""
        self._ticks += step
        self.publishing.send_twcc_feedback(t)
        if self._ticks % ALLOCATE_EVERY == 0:
            self.publishing.sample_layers(t)
            self.downlink.allocate(t, self.subscriptions)
            self.publishing.dynacast(t)
            self._expire_silent_transports(t)
        if self._ticks % REPORT_EVERY == 0:
            self.send_reports()

    def _expire_silent_transports(self, t: float) -> None:
        """Transports that heard nothing, not even ICE checks, for the timeout are dead."""
        timeout = self.params.transport_timeout_ms
        for transport in (self.publisher, self.subscriber):
            if transport is not None:
                transport.expire_if_silent(t, timeout)

    def send_reports(self) -> None:
        t = now_ms()
        self.subscribing.send_reports(t, rtcp.ntp_from_unix(time.time()))
        self.publishing.send_reports(t)

    # -- the end ---------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.publishing.unpublish_all()
        self.subscribing.close_subscriptions()
        current = asyncio.current_task()
        for task in [self._control_task, *self._tasks]:
            if task is not None and task is not current:
                task.cancel()
        for transport in (self.publisher, self.subscriber):
            if transport is not None:
                await transport.close()
        self.params.retired.add_participant(self)
        if self.on_closed is not None:
            self.on_closed()


def _discard(message: dict[str, Any]) -> None:
    """Where messages go while no client connection is attached."""
