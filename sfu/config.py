"""Configuration: one frozen dataclass tree, loaded from TOML + ``SFU_<SECTION>_<KEY>`` env.

Defaults run on a laptop with nothing else installed. Every option is documented in
docs/configuration.md; unknown keys are rejected.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7880
    #: URL printed at start-up and used in links; default http://host:port
    public_url: str = ""
    #: enables the join form and POST /api/dev/token; never in production
    dev_mode: bool = False
    max_message_bytes: int = 65536
    #: offers and answers carry SDP that grows with the room (~350 bytes per track)
    max_sdp_message_bytes: int = 262144
    #: a socket that has not joined within this time is closed (not_joined)
    join_timeout_s: float = 10.0
    #: WebSocket ping interval; a socket that does not answer within half of it is dead
    ws_heartbeat_s: float = 5.0


@dataclass(frozen=True)
class AuthConfig:
    #: API key id (the token "iss") and secret; generated at start-up when empty
    api_key: str = "devkey"
    api_secret: str = ""
    token_ttl_s: int = 6 * 3600


@dataclass(frozen=True)
class MediaConfig:
    #: addresses to bind the media ports on and announce as ICE host candidates
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    #: what ICE candidates announce instead of ``ice_addresses`` (same order): a server
    #: behind 1:1 NAT or in a container binds 0.0.0.0 and announces its public address;
    #: empty = announce ``ice_addresses`` themselves
    announced_addresses: tuple[str, ...] = ()
    #: the one UDP port every participant's ICE/DTLS/SRTP uses (0: any free port)
    udp_port: int = 7882
    #: the one TCP port for ICE-TCP (RFC 6544 passive candidates; 0: any free port)
    tcp_port: int = 7881
    #: offer ICE-TCP candidates (for networks that block UDP)
    ice_tcp: bool = True
    keyframe_interval_ms: float = 500.0
    publisher_max_bitrate_bps: int = 2_500_000
    #: dynacast: switch a simulcast layer off at the publisher after nobody needed it this long
    dynacast_delay_ms: float = 3000.0
    #: the downlink estimate a new subscriber starts from (before its feedback says more)
    initial_downlink_bps: int = 1_000_000
    #: a media connection that should be receiving and got nothing this long is dead and
    #: replaced (ICE restart on a fresh transport)
    transport_timeout_s: float = 10.0


@dataclass(frozen=True)
class RoomsConfig:
    auto_create: bool = True
    max_participants: int = 60
    #: how long a participant whose connection is lost stays in the room (reconnecting)
    #: before it is removed with reason "timeout"; per room via the room API
    reconnect_window_s: float = 20.0
    #: audio by speech: students' microphones forwarded besides the instructor's, only
    #: while they speak, at most this many at once; 0 = forward every microphone always;
    #: per room via the room API ("audioSpeakers")
    audio_speakers: int = 3
    #: a microphone packet whose RFC 6464 level is under this (-dBov) is speech
    speech_threshold_dbov: int = 50
    #: a speaker's microphone stays forwarded this long after its last loud packet
    speech_hold_ms: float = 800.0


@dataclass(frozen=True)
class EventsConfig:
    #: the append-only event log (docs/events.md), relative to the working directory;
    #: "" turns it off
    log_dir: str = "data/events"
    #: a new file starts past this size
    log_max_bytes: int = 64 << 20
    #: rotated files kept (the oldest are deleted); 0 keeps every file
    log_keep_files: int = 200
    #: NATS server for the JetStream sink, e.g. nats://127.0.0.1:4222; "" = off
    nats_url: str = ""
    #: the JetStream stream (created if missing, file storage, 2 min dedup window)
    nats_stream: str = "SFU_EVENTS"
    #: events go to <prefix>.<room>.<type>
    nats_subject_prefix: str = "sfu.events"
    #: URLs every event is POSTed to (signed); empty = no webhooks
    webhook_urls: tuple[str, ...] = ()
    #: HMAC-SHA256 key of X-SFU-Signature; "" = auth.api_secret
    webhook_secret: str = ""
    #: deliveries given up (refused, or out of attempts) are appended here (JSON lines)
    webhook_dead_letter: str = "data/events/webhooks-dead-letter.jsonl"
    webhook_max_attempts: int = 10


@dataclass(frozen=True)
class ClassroomConfig:
    #: session reports (docs/engagement.md) are written here as JSON, one file per room
    #: session, relative to the working directory; "" = events only, no files
    reports_dir: str = "data/reports"
    #: whiteboard snapshots (<room>.ybin), so a reopened room or a restarted server gets
    #: its board back; "" = kept in memory only
    whiteboards_dir: str = "data/whiteboards"
    #: no activity signal for this long while present is an inactivity period
    inactivity_minutes: float = 5.0
    #: a student present for less than this share of the session is flagged
    attendance_threshold: float = 0.75
    #: a student present this long without a word, an answer, a hand, a chat message or a
    #: reaction is flagged silent_unresponsive
    silent_after_minutes: float = 10.0


@dataclass(frozen=True)
class RecordingConfig:
    #: when rooms are recorded unless the room API says otherwise: "always" (from creation
    #: to end), "on_request" (the instructor or the room API starts and stops it), "off"
    policy: str = "on_request"
    #: the first copy of every recording (docs/recording.md): <dir>/<room>/<UTC start>-<id>/,
    #: relative to the working directory
    dir: str = "data/recordings"
    #: the second copy, when no S3 bucket is set: another folder, best on another volume
    second_dir: str = "data/recordings-copy"
    #: the second copy in an S3-compatible bucket (S3, MinIO) instead of second_dir
    s3_bucket: str = ""
    s3_endpoint: str = ""  # "" = AWS S3; e.g. http://minio:9000
    s3_prefix: str = "recordings/"
    s3_region: str = "us-east-1"
    s3_access_key: str = ""  # "" = boto3's own lookup (environment, instance role)
    s3_secret_key: str = ""
    #: the operations exception queue: one JSON line per alarm ("" = events only)
    alarms_file: str = "data/exceptions.jsonl"
    #: a published, unmuted track of a connected publisher without packets this long
    stall_s: float = 10.0
    #: a local copy's disk with less free space than this raises disk_low
    min_free_mb: int = 1024
    #: at the end, how long both copies may take to finish (back-fill included)
    finish_timeout_s: float = 60.0


@dataclass(frozen=True)
class TranscriptionConfig:
    """Captions and transcripts, on premise (docs/transcription.md)."""
    #: whose microphones rooms transcribe unless the room API says otherwise: "off",
    #: "instructor", "everyone"
    policy: str = "off"
    #: "pocketsphinx" (its US English model ships in its wheel) or "whisper"
    #: (faster-whisper, the extra classroom-sfu[whisper], with model_dir)
    engine: str = "pocketsphinx"
    #: the engine's model directory: a CTranslate2 Whisper model for "whisper"; for
    #: "pocketsphinx" another language's model (hmm/, lm.bin, dict), "" = US English
    model_dir: str = ""
    language: str = "en"
    #: recognition processes (each holds its streams' engines; one stream uses about a
    #: fifth of a core with pocketsphinx)
    workers: int = 1
    #: every session's transcript (WebVTT and JSON): <dir>/<room>/<UTC start>-transcript.*
    dir: str = "data/transcripts"
    #: recognised text goes to the room's pages as caption messages
    captions: bool = True


@dataclass(frozen=True)
class ClusterConfig:
    """Several nodes (docs/cluster.md): off unless ``nats_url`` is set."""
    #: NATS with JetStream holding the node registry and the room placements; "" = a
    #: single node, no NATS needed
    nats_url: str = ""
    #: this node's id in the registry ("" = the host name)
    node_id: str = ""
    #: the region rooms are placed in by preference (a join's region hint, later)
    region: str = "default"
    #: where browsers and other nodes reach this node's signalling ("" = its own address)
    public_url: str = ""
    #: rooms this node accepts at most (placement goes elsewhere beyond it)
    capacity_rooms: int = 100
    #: a node that has not announced itself for this long is gone (it announces every
    #: third of it)
    ttl_s: float = 10.0
    #: the JetStream key-value buckets' prefix (<prefix>_NODES, <prefix>_ROOMS,
    #: <prefix>_STATE)
    prefix: str = "SFU"
    #: how often a live room's changed state (chat, polls, hands, board, settings) is
    #: replicated for a take-over: what a crash can lose at most
    state_interval_s: float = 0.5
    #: a replica older than this is not taken over (a crashed room nobody came back to)
    state_max_age_s: float = 3600.0
    #: copies JetStream keeps of each bucket (3 on a three-server NATS cluster: the
    #: registry survives a NATS server; only used when the buckets are first created)
    kv_replicas: int = 1
    #: serve a page of this node's region here when its room's origin is in another
    #: region, pulling the room's media from the origin once for all such pages (an edge
    #: relay, docs/cluster.md); off: such pages are redirected to the origin
    relays: bool = False


@dataclass(frozen=True)
class TurnConfig:
    """TURN servers handed to every participant (docs/operations.md): coturn with
    ``use-auth-secret``; each join gets time-limited credentials (the TURN REST convention)."""
    #: e.g. ["turns:turn.school.example:443?transport=tcp", "turn:turn.school.example:3478"];
    #: empty = no TURN (browsers use direct paths only)
    urls: tuple[str, ...] = ()
    #: coturn's static-auth-secret
    secret: str = ""
    #: how long a participant's credentials stay valid
    ttl_s: int = 6 * 3600


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler bridge (docs/scheduling.md): bookings, provisioning, attendance watch,
    exception queue, reminders."""
    #: false: no bookings API, no provisioning (rooms only through the room API)
    enabled: bool = True
    #: SQLAlchemy URL of the bookings database; "" = the SQLite file ``sqlite_path``.
    #: Production: postgresql+psycopg://user:password@host/dbname
    database_url: str = ""
    sqlite_path: str = "data/schedule.sqlite3"
    #: a lesson's room exists this long before its start
    provision_lead_s: float = 600.0
    #: and is closed this long after its booked end (join links expire then too)
    close_after_s: float = 600.0
    #: the instructor not in the room this long after the start: instructor_no_show
    instructor_grace_s: float = 180.0
    #: a student whose first join is this long after the start joined late
    late_join_s: float = 300.0
    #: the room empty at the booked end and since this long before it: early_end
    early_end_s: float = 300.0
    #: reminders before each lesson's start ("24h", "15m", "90s"); the nearest one due
    #: is sent, earlier ones that were missed are skipped
    reminder_offsets: tuple[str, ...] = ("24h", "15m")
    #: two lessons of one instructor may overlap (refused with instructor_conflict if false)
    allow_instructor_overlap: bool = False
    #: bulk imports: at most this many rows and bytes per request
    max_import_rows: int = 20000
    max_import_bytes: int = 16 << 20
    #: SMTP server for email notifications; "" = no email (events and webhooks only)
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "classroom@localhost"
    #: addresses that get an email for every exception raised
    operator_emails: tuple[str, ...] = ()
    #: a failed notification is retried after this long, doubling, this many times in all
    notify_retry_s: float = 30.0
    notify_max_attempts: int = 5


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    classroom: ClassroomConfig = field(default_factory=ClassroomConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def validate(self) -> Config:
        rc = self.recording
        if not rc.dir or not (rc.second_dir or rc.s3_bucket):
            raise ConfigError("recording.dir and recording.second_dir (or s3_bucket) are "
                              "both needed: every recording is written twice")
        if rc.policy not in ("always", "on_request", "off"):
            raise ConfigError("recording.policy must be always, on_request or off")
        if rc.stall_s <= 0 or rc.finish_timeout_s <= 0 or rc.min_free_mb < 0:
            raise ConfigError("recording.stall_s and finish_timeout_s must be > 0, "
                              "min_free_mb >= 0")
        cc = self.cluster
        if cc.nats_url and not cc.nats_url.startswith(("nats://", "tls://")):
            raise ConfigError("cluster.nats_url must be a nats:// or tls:// URL")
        if cc.capacity_rooms < 1 or not 1 <= cc.ttl_s <= 300:
            raise ConfigError("cluster.capacity_rooms must be >= 1, cluster.ttl_s 1..300")
        if not re.fullmatch(r"[-_a-zA-Z0-9]{0,64}", cc.node_id) or \
                not re.fullmatch(r"[A-Za-z0-9]{1,32}", cc.prefix):
            raise ConfigError("cluster.node_id must be [-_a-zA-Z0-9]{0,64}, cluster.prefix "
                              "[A-Za-z0-9]{1,32}")
        if not 0.05 <= cc.state_interval_s <= 60 or cc.state_max_age_s <= 0 or \
                not 1 <= cc.kv_replicas <= 5:
            raise ConfigError("cluster.state_interval_s must be 0.05..60, "
                              "cluster.state_max_age_s > 0, cluster.kv_replicas 1..5")
        tc = self.transcription
        if tc.policy not in ("off", "instructor", "everyone"):
            raise ConfigError("transcription.policy must be off, instructor or everyone")
        if tc.engine not in ("pocketsphinx", "whisper"):
            raise ConfigError("transcription.engine must be pocketsphinx or whisper")
        if tc.engine == "whisper" and not tc.model_dir:
            raise ConfigError("transcription.engine whisper needs transcription.model_dir "
                              "(a CTranslate2 Whisper model directory)")
        if not 1 <= tc.workers <= 64:
            raise ConfigError("transcription.workers must be 1..64")
        if not 0 <= self.server.port <= 65535:
            raise ConfigError("server.port must be 0..65535")
        if not self.media.ice_addresses:
            raise ConfigError("media.ice_addresses must list at least one address")
        announced = self.media.announced_addresses
        if announced and len(announced) != len(self.media.ice_addresses):
            raise ConfigError("media.announced_addresses must list one address per "
                              "media.ice_addresses entry")
        for i, address in enumerate(self.media.ice_addresses):
            if address in ("0.0.0.0", "::") and not announced:
                raise ConfigError(f"media.ice_addresses has {address}: set "
                                  "media.announced_addresses to the address browsers reach")
            if announced and announced[i] in ("0.0.0.0", "::"):
                raise ConfigError("media.announced_addresses must be reachable addresses")
        if not (0 <= self.media.udp_port <= 65535 and 0 <= self.media.tcp_port <= 65535):
            raise ConfigError("media.udp_port and media.tcp_port must be 0..65535")
        if self.server.join_timeout_s <= 0:
            raise ConfigError("server.join_timeout_s must be > 0")
        if self.rooms.max_participants < 1:
            raise ConfigError("rooms.max_participants must be >= 1")
        if not 0 <= self.rooms.reconnect_window_s <= 600:
            raise ConfigError("rooms.reconnect_window_s must be 0..600")
        if not 0 <= self.rooms.audio_speakers <= 50:
            raise ConfigError("rooms.audio_speakers must be 0..50 (0: every microphone)")
        if not 1 <= self.rooms.speech_threshold_dbov <= 127:
            raise ConfigError("rooms.speech_threshold_dbov must be 1..127")
        if not 0 <= self.rooms.speech_hold_ms <= 10_000:
            raise ConfigError("rooms.speech_hold_ms must be 0..10000")
        if self.media.transport_timeout_s < 2:
            raise ConfigError("media.transport_timeout_s must be >= 2")
        if self.server.ws_heartbeat_s <= 0:
            raise ConfigError("server.ws_heartbeat_s must be > 0")
        if self.events.log_max_bytes < 4096:
            raise ConfigError("events.log_max_bytes must be >= 4096")
        if self.events.webhook_max_attempts < 1:
            raise ConfigError("events.webhook_max_attempts must be >= 1")
        for url in self.events.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"events.webhook_urls: {url!r} is not an http(s) URL")
        if self.events.log_keep_files < 0:
            raise ConfigError("events.log_keep_files must be >= 0")
        if self.classroom.inactivity_minutes <= 0 or self.classroom.silent_after_minutes <= 0:
            raise ConfigError("classroom.inactivity_minutes and silent_after_minutes must "
                              "be > 0")
        if not 0 <= self.classroom.attendance_threshold <= 1:
            raise ConfigError("classroom.attendance_threshold must be 0..1")
        for url in self.turn.urls:
            if not url.startswith(("turn:", "turns:", "stun:")):
                raise ConfigError(f"turn.urls: {url!r} is not a turn:, turns: or stun: URL")
        if any(u.startswith("turn") for u in self.turn.urls) and len(self.turn.secret) < 16:
            raise ConfigError("turn.secret (coturn's static-auth-secret, 16+ characters) is "
                              "needed with turn: URLs")
        if not 60 <= self.turn.ttl_s <= 7 * 86400:
            raise ConfigError("turn.ttl_s must be 60..604800")
        sc = self.scheduler
        if min(sc.provision_lead_s, sc.close_after_s, sc.instructor_grace_s, sc.late_join_s,
               sc.early_end_s, sc.notify_retry_s) < 0:
            raise ConfigError("scheduler: durations must be >= 0")
        for offset in sc.reminder_offsets:
            parse_duration_s(offset, "scheduler.reminder_offsets")
        if sc.database_url and not sc.database_url.startswith(("sqlite", "postgresql")):
            raise ConfigError("scheduler.database_url must be a sqlite:// or postgresql:// URL")
        if sc.notify_max_attempts < 1 or sc.max_import_rows < 1:
            raise ConfigError("scheduler.notify_max_attempts and max_import_rows must be >= 1")
        if self.auth.api_secret and len(self.auth.api_secret) < 32:
            raise ConfigError("auth.api_secret must be at least 32 characters")
        return self

    def with_secret(self) -> Config:
        if self.auth.api_secret:
            return self
        auth = dataclasses.replace(self.auth, api_secret=secrets.token_urlsafe(32))
        return dataclasses.replace(self, auth=auth)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str, where: str = "duration") -> float:
    """``"24h"``, ``"15m"``, ``"90s"``, ``"2d"`` or plain seconds, as seconds."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    try:
        value = float(text[:-1]) * unit if unit is not None else float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a duration like 24h, 15m or 90s") from None
    if value < 0:
        raise ConfigError(f"{where}: {text!r} is negative")
    return value


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected a boolean")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        raise ConfigError(f"{where}: expected a list")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string")
    return value


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    base = Config()
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        section_default = getattr(base, f.name)
        values = raw.pop(f.name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{f.name}] must be a table")
        kwargs: dict[str, Any] = {}
        names = {sf.name for sf in dataclasses.fields(section_default)}
        for key in values:
            if key not in names:
                raise ConfigError(f"unknown key {f.name}.{key}")
        for sf in dataclasses.fields(section_default):
            default = getattr(section_default, sf.name)
            env_key = f"SFU_{f.name}_{sf.name}".upper()
            if env_key in env:
                kwargs[sf.name] = _coerce(env[env_key], default, env_key)
            elif sf.name in values:
                kwargs[sf.name] = _coerce(values[sf.name], default, f"{f.name}.{sf.name}")
        sections[f.name] = dataclasses.replace(section_default, **kwargs)
    if raw:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(raw))}")
    return Config(**sections).validate()
