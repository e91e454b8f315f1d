"""The shared media ports' candidates (sfu.media_ports; their sockets are tested in
tests/integration/test_media_ports.py)."""

from __future__ import annotations

from sfu.media_ports import MediaPorts


def test_candidates_announce_the_shared_ports() -> None:
    ports = MediaPorts(("0.0.0.0",), 7882, 7881, announced=("203.0.113.7",))
    ports.udp_port, ports.tcp_port = 7882, 7881  # (as bound)
    udp, tcp = ports.candidates()
    assert udp.split()[2:] == ["udp", udp.split()[3], "203.0.113.7", "7882", "typ", "host"]
    assert tcp.endswith("203.0.113.7 7881 typ host tcptype passive")
    assert int(udp.split()[3]) > int(tcp.split()[3])  # ICE-TCP below UDP
