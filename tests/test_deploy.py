"""The shipped alert rules only name metrics the server exports and docs/metrics.md lists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_alert_rules_use_documented_metrics() -> None:
    rules = (ROOT / "deploy" / "prometheus-alerts.yml").read_text()
    documented = set(re.findall(r"`(sfu_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text()))
    used = set(re.findall(r"\b(sfu_[a-z_]+)", rules))
    assert used, "no sfu_ metrics in the alert rules"
    assert used <= documented, used - documented


def test_documented_metrics_are_exported(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from events import EventBus
    from events.filelog import FileLog
    from events.metrics import EventSinkCollector
    from events.nats_sink import NatsSink
    from events.webhook_sink import WebhookSink
    from recorder.alarms import Alarms
    from recorder.service import RecordingCollector, Recordings
    from recorder.sinks import LocalSink
    from sfu.media_ports import MediaPorts
    from sfu.metrics import LoopCollector, MediaPortsCollector, Retired, SfuCollector
    from sfu.room import RoomRegistry

    registry = CollectorRegistry()
    media_rooms = RoomRegistry(EventBus(), max_participants=5, auto_create=True)
    registry.register(SfuCollector(media_rooms, Retired(), {"x": 1}))
    registry.register(MediaPortsCollector(MediaPorts(("127.0.0.1",), 0, 0), media_rooms))
    registry.register(LoopCollector())
    sink = FileLog(tmp_path)
    registry.register(EventSinkCollector(  # (the network sinks are never started here)
        sink, NatsSink("nats://127.0.0.1:1"),
        WebhookSink(["http://127.0.0.1:1/"], "secret", tmp_path / "dead.jsonl")))
    bus = EventBus()
    registry.register(RecordingCollector(Recordings(
        bus, lambda: [LocalSink("a", tmp_path / "a"), LocalSink("b", tmp_path / "b")],
        Alarms(bus, None))))
    from classroom.rooms import Classrooms
    from scheduler_bridge.metrics import ScheduleCollector
    from scheduler_bridge.service import Bridge
    from sfu.config import Config, SchedulerConfig
    schedule_bus = EventBus()
    bridge = Bridge(Config(scheduler=SchedulerConfig(
        sqlite_path=str(tmp_path / "schedule.sqlite3"))), schedule_bus, Classrooms(
            RoomRegistry(schedule_bus, max_participants=5, auto_create=False), schedule_bus))
    registry.register(ScheduleCollector(bridge))
    from transcription.engines import EngineConfig
    from transcription.metrics import TranscriptionCollector
    from transcription.service import Transcriptions
    registry.register(TranscriptionCollector(Transcriptions(EventBus(), EngineConfig())))
    from cluster.metrics import ClusterCollector
    from cluster.placement import NodeInfo
    from cluster.registry import ClusterRegistry
    from cluster.rooms import ClusterRooms
    from cluster.state import StateStore, StateWriter
    cluster = ClusterRegistry(  # (never started here)
        "nats://127.0.0.1:1", lambda: NodeInfo("n", "r", "http://n", 1))
    registry.register(ClusterCollector(cluster, ClusterRooms(cluster, "r", list), StateWriter(
        StateStore(cluster), lambda room: {}, list)))
    from cluster.edge import Edges
    from cluster.metrics import RelayCollector
    from sfu.participant import MediaParams
    from sfu.transport import new_certificate
    edges = Edges(RoomRegistry(EventBus(), max_participants=5, auto_create=True),
                  MediaParams(new_certificate(), ("127.0.0.1",)), lambda room: "")
    registry.register(RelayCollector(media_rooms, lambda: edges))
    exported = generate_latest(registry).decode()
    documented = set(re.findall(r"`(sfu_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text()))
    types = set(re.findall(r"^# TYPE (\S+) ", exported, re.M))
    missing = {name for name in documented
               if name not in types and name.removesuffix("_total") not in types}
    sink.close()
    assert not missing, missing


def _compose() -> dict:  # type: ignore[type-arg]
    import yaml

    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _substituted(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}`` / ``${NAME:?message}`` substitution with ``env``."""
    return re.sub(r"\$\{([A-Z_]+)(:\?[^}]*)?\}", lambda m: env[m.group(1)], value)


def test_compose_server_environment_is_a_valid_configuration() -> None:
    """Every SFU_* variable compose.yaml gives the server names a real setting, and with the
    example .env the whole configuration validates (e.g. 0.0.0.0 needs announced
    addresses)."""
    from sfu.config import load

    example = dict(line.split("=", 1) for line in
                   (ROOT / "deploy" / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    example.update(SFU_API_SECRET="x" * 40, TURN_SECRET="y" * 40)
    services = _compose()["services"]
    assert {"sfu", "coturn", "nats", "prometheus", "grafana", "nginx"} <= set(services)
    env = {k: _substituted(str(v), example) for k, v in services["sfu"]["environment"].items()}
    assert all(k.startswith("SFU_") for k in env)
    cfg = load(None, env=env).validate()  # unknown names or bad values raise ConfigError
    assert cfg.media.announced_addresses == (example["PUBLIC_IP"],)
    assert cfg.turn.urls[0] == f"turns:{example['TURN_DOMAIN']}:443?transport=tcp"
    # the files the services mount are in deploy/
    for name in ("coturn", "prometheus", "grafana", "nginx"):
        for volume in services[name].get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./") and source != "./certs":
                assert (ROOT / "deploy" / source).exists(), (name, source)


def test_nginx_example_proxies_websockets_and_routes_turn_by_name() -> None:
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf.template").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "ssl_preread on;" in conf and "${TURN_DOMAIN} 127.0.0.1:5349;" in conf
    coturn = (ROOT / "deploy" / "coturn" / "turnserver.conf").read_text()
    assert "tls-listening-port=5349" in coturn and "use-auth-secret" in coturn


def test_three_node_cluster_example_is_valid() -> None:
    """deploy/cluster: three valid node configurations in two regions that share the NATS
    of their host, with distinct ids and URLs, and replicated buckets."""
    from sfu.config import load

    nodes = [load(path, env={"SFU_AUTH_API_SECRET": "s" * 40}).validate()
             for path in sorted((ROOT / "deploy" / "cluster").glob("node-*.toml"))]
    assert len(nodes) == 3
    assert sorted(n.cluster.node_id for n in nodes) == ["a1", "a2", "b1"]
    assert sorted(n.cluster.region for n in nodes) == ["eu-north", "eu-west", "eu-west"]
    assert len({n.cluster.public_url for n in nodes}) == 3
    assert {n.auth.api_key for n in nodes} == {"school"}
    for n in nodes:
        assert n.cluster.nats_url and n.cluster.kv_replicas == 3
        assert n.cluster.ttl_s < n.rooms.reconnect_window_s  # a crash is survived
