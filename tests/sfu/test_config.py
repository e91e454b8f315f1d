from __future__ import annotations

from pathlib import Path

import pytest

from sfu.config import Config, ConfigError, load

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_file_and_run_on_loopback() -> None:
    cfg = load(None, env={})
    assert cfg == Config()
    assert cfg.server.host == "127.0.0.1" and cfg.media.ice_addresses == ("127.0.0.1",)
    assert cfg.server.dev_mode is False


def test_sample_config_loads_and_matches_defaults() -> None:
    assert load(ROOT / "config.sample.toml", env={}) == Config()


def test_toml_then_environment_override(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9000\n[media]\nice_addresses = ["10.0.0.5"]\n')
    cfg = load(f, env={"SFU_SERVER_PORT": "9100", "SFU_SERVER_DEV_MODE": "true",
                       "SFU_MEDIA_ICE_ADDRESSES": "10.0.0.6, 127.0.0.1"})
    assert cfg.server.port == 9100 and cfg.server.dev_mode is True
    assert cfg.media.ice_addresses == ("10.0.0.6", "127.0.0.1")


@pytest.mark.parametrize("text, message", [
    ("[server]\nprot = 1\n", "unknown key server.prot"),
    ("[servers]\nport = 1\n", "unknown section"),
    ("[server]\nport = 'x'\n", "expected an integer"),
    ("[server]\nport = 70000\n", "port"),
    ("[server]\ndev_mode = 'maybe'\n", "expected a boolean"),
    ("[auth]\napi_secret = 'short'\n", "at least 32"),
    ("[media]\nice_addresses = []\n", "at least one address"),
    ("[media]\nudp_port = 70000\n", "udp_port"),
    ("[media]\nice_addresses = ['0.0.0.0']\n", "announced_addresses"),
    ("[media]\nannounced_addresses = ['1.2.3.4', '5.6.7.8']\n", "one address per"),
    ("server = 1\n", "must be a table"),
])
def test_bad_configuration_is_rejected_with_a_clear_message(tmp_path: Path, text: str,
                                                             message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(f, env={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SFU_ROOMS_MAX_PARTICIPANTS"):
        load(None, env={"SFU_ROOMS_MAX_PARTICIPANTS": "lots"})
