"""aioice's STUN implementation as the independent reference the tests read ours with."""

from __future__ import annotations

from aioice import stun as ref


def parse_checked(data: bytes, key: bytes | None = None) -> ref.Message:
    """aioice's reading of ``data`` (it checks FINGERPRINT), and its MESSAGE-INTEGRITY
    check with ``key``."""
    m = ref.parse_message(data)
    if key is not None:
        assert m.check_message_integrity(key)
    return m
