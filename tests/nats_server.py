"""The tests' real ``nats-server -js`` (benches/nats_process.py)."""

from benches.nats_process import NATS, NatsServer, free_port

__all__ = ["NATS", "NatsServer", "free_port"]
