"""TURN credentials in the TURN REST convention that coturn's use-auth-secret checks:
username ``<expiry>:<identity>``, password base64(HMAC-SHA1(secret, username))."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sfu.config import Config, ConfigError, TurnConfig, load
from signalling.turn import credential, ice_servers

SECRET = "coturn-static-auth-secret-0123"


def test_credentials_follow_the_rest_convention() -> None:
    turn = TurnConfig(urls=("stun:turn.example:3478", "turns:turn.example:443?transport=tcp",
                            "turn:turn.example:3478"), secret=SECRET, ttl_s=3600)
    servers = ice_servers(turn, "alice", now=1_800_000_000)
    assert servers[0] == {"urls": ["stun:turn.example:3478"]}
    relay = servers[1]
    assert relay["urls"] == ["turns:turn.example:443?transport=tcp", "turn:turn.example:3478"]
    assert relay["username"] == "1800003600:alice"
    expected = base64.b64encode(hmac.new(SECRET.encode(), b"1800003600:alice",
                                         hashlib.sha1).digest()).decode()
    assert relay["credential"] == expected == credential(SECRET, "1800003600:alice")
    assert ice_servers(TurnConfig(), "alice") == []


def test_turn_configuration_is_checked() -> None:
    env = {"SFU_TURN_URLS": "turns:turn.example:443", "SFU_TURN_SECRET": SECRET}
    assert load(env=env).turn.urls == ("turns:turn.example:443",)
    with pytest.raises(ConfigError, match="static-auth-secret"):
        load(env={"SFU_TURN_URLS": "turn:turn.example:3478"})
    with pytest.raises(ConfigError, match="not a turn:"):
        load(env={"SFU_TURN_URLS": "http://turn.example"})
    with pytest.raises(ConfigError, match="ttl_s"):
        load(env={**env, "SFU_TURN_TTL_S": "5"})
    assert Config().turn.urls == ()
