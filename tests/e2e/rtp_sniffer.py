"""Record when audio RTP packets reach a network interface (run inside the test namespace).

``python rtp_sniffer.py <interface> <dst address> <payload type> <out.json>`` captures IPv4
UDP datagrams to ``<dst address>`` on ``<interface>`` with an AF_PACKET socket, keeps the
kernel receive timestamp of every RTP packet with ``<payload type>`` (SRTP leaves the RTP
header in the clear; RTCP is skipped), and on SIGTERM writes ``{"times": [seconds...]}``.

This measures audio continuity where the page receives it, with kernel timestamps, so the
figure does not depend on how often a busy browser can be polled with getStats().
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys

SO_TIMESTAMPNS = 35
ETH_P_IP = 0x0800


def main() -> None:
    iface, dst, pt, out = sys.argv[1], socket.inet_aton(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((iface, 0))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    times: list[float] = []
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    sock.settimeout(0.2)
    print("ready", flush=True)
    while running:
        try:
            data, anc, _flags, _addr = sock.recvmsg(2048, 64)
        except TimeoutError:
            continue
        except InterruptedError:
            continue
        ip = data[14:]
        if len(ip) < 20 or ip[9] != 17 or ip[16:20] != dst:
            continue
        udp = ip[4 * (ip[0] & 0x0F):]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or 192 <= rtp[1] <= 223:
            continue
        if rtp[1] & 0x7F != pt:
            continue
        stamp = None
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                stamp = sec + nsec / 1e9
        times.append(stamp if stamp is not None else 0.0)
    with open(out, "w") as f:
        json.dump({"times": times}, f)


if __name__ == "__main__":
    main()
