"""A private network namespace joined to the host by a veth pair, for shaping one browser.

The host end of the veth gets ``host_addr``, the namespace end ``ns_addr``; a Chromium
started through ``chromium_wrapper`` runs inside the namespace, so everything it sends and
receives crosses the veth. ``shape(rate_kbit)`` puts a token-bucket filter on the host end:
that caps the server → browser direction (the browser's downlink); ``unshape()`` lifts it.
``cut()`` drops everything both ways until ``restore()``.
Everything is removed on exit, also when the test fails. Needs root (CI runs as root).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from types import TracebackType

from browser_flags import CHROMIUM_PATH as CHROMIUM


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class NetNs:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"sfu-e2e-{tag}"
        self.host_if = f"vh{tag}"
        self.ns_if = f"vn{tag}"
        subnet = 1 + secrets.randbelow(250)
        self.host_addr = f"10.231.{subnet}.1"
        self.ns_addr = f"10.231.{subnet}.2"
        self._dir = tempfile.mkdtemp(prefix="sfu-netns-")
        self.chromium_wrapper = os.path.join(self._dir, "chromium-in-netns")
        self.shaped = False
        self.cut_active = False

    def __enter__(self) -> NetNs:
        if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
            raise RuntimeError("network namespace tests need root and iproute2 (ip, tc)")
        try:
            _run("ip", "netns", "add", self.name)
            _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _run("ip", "link", "set", self.ns_if, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host_addr}/24", "dev", self.host_if)
            _run("ip", "link", "set", self.host_if, "up")
            _run("ip", "-n", self.name, "addr", "add", f"{self.ns_addr}/24", "dev", self.ns_if)
            _run("ip", "-n", self.name, "link", "set", self.ns_if, "up")
            _run("ip", "-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        with open(self.chromium_wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec ip netns exec {self.name} {CHROMIUM} "$@"\n')
        os.chmod(self.chromium_wrapper, 0o755)
        return self

    def shape(self, rate_kbit: int) -> None:
        """Cap the host → namespace direction at ``rate_kbit`` (tbf, 100 ms of queue)."""
        burst = max(4000, rate_kbit * 1000 // 8 // 50)  # ~20 ms of tokens, at least 4 kB
        verb = "change" if self.shaped else "add"
        _run("tc", "qdisc", verb, "dev", self.host_if, "root", "tbf", "rate",
             f"{rate_kbit}kbit", "burst", str(burst), "latency", "100ms")
        self.shaped = True

    def cut(self) -> None:
        """Drop every packet between the namespace and the host, both ways, without any
        change of link state (the browser sees no network change, only silence): a tc BPF
        filter returning TC_ACT_SHOT on the host end's ingress and egress."""
        _run("tc", "qdisc", "add", "dev", self.host_if, "clsact")
        for hook in ("ingress", "egress"):
            _run("tc", "filter", "add", "dev", self.host_if, hook, "bpf", "da", "bytecode",
                 "1,6 0 0 2,")  # one classic BPF instruction: return 2 (TC_ACT_SHOT)
        self.cut_active = True

    def restore(self) -> None:
        if getattr(self, "cut_active", False):
            _run("tc", "qdisc", "del", "dev", self.host_if, "clsact")
            self.cut_active = False

    def route_via_host(self) -> None:
        """A default route through the host end: every address of the host (not only the
        veth's) is reachable from inside, so that only the filters decide what gets out."""
        _run("ip", "-n", self.name, "route", "add", "default", "via", self.host_addr)

    def block_udp(self) -> None:
        """Drop every UDP datagram into and out of the namespace (nftables inside it), as a
        school or hotel network that lets only TCP through; counted (``udp_dropped``)."""
        self._nft(" meta l4proto udp counter drop;", " meta l4proto udp counter drop;")

    def allow_only_tcp_to(self, address: str, ports: tuple[int, ...]) -> None:
        """Drop everything but TCP to ``address`` on ``ports`` (and its replies), as a
        network that lets only HTTPS out; UDP drops are counted (``udp_dropped``)."""
        allowed = ", ".join(str(p) for p in ports)
        self._nft(f' oif "lo" accept; meta l4proto udp counter drop;'
                  f" ip daddr {address} tcp dport {{ {allowed} }} accept; drop;",
                  ' iif "lo" accept; meta l4proto udp counter drop;'
                  " ct state established,related accept; drop;")

    def _nft(self, out_rules: str, in_rules: str) -> None:
        if shutil.which("nft") is None and not os.path.exists("/usr/sbin/nft"):
            raise RuntimeError("nft (Debian nftables) is needed to filter the namespace")
        rules = ("table inet sfu_block_udp {\n"
                 " chain out { type filter hook output priority 0; policy accept;"
                 f"{out_rules} }}\n"
                 " chain in { type filter hook input priority 0; policy accept;"
                 f"{in_rules} }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules,
                       check=True, capture_output=True, text=True)

    def udp_dropped(self) -> int:
        """UDP datagrams the block of ``block_udp`` dropped so far (both ways)."""
        out = subprocess.run(["ip", "netns", "exec", self.name, "nft", "list", "table", "inet",
                              "sfu_block_udp"], check=True, capture_output=True,
                             text=True).stdout
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))

    def unshape(self) -> None:
        if self.shaped:
            _run("tc", "qdisc", "del", "dev", self.host_if, "root")
            self.shaped = False

    def start_capture(self, payload_type: int) -> None:
        """Start recording arrival times of RTP packets of ``payload_type`` at the page."""
        self._capture_out = os.path.join(self._dir, "capture.json")
        sniffer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtp_sniffer.py")
        self._capture = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, sniffer, self.ns_if,
             self.ns_addr, str(payload_type), self._capture_out],
            stdout=subprocess.PIPE, text=True)
        assert self._capture.stdout is not None
        if self._capture.stdout.readline().strip() != "ready":
            raise RuntimeError("the RTP sniffer did not start")

    def stop_capture(self) -> list[float]:
        """Stop recording; the kernel arrival times (seconds) of the captured packets."""
        self._capture.terminate()
        self._capture.wait(10)
        self._release_capture()
        with open(self._capture_out) as f:
            times: list[float] = json.load(f)["times"]
        return times

    def _release_capture(self) -> None:
        capture = getattr(self, "_capture", None)
        if capture is not None and capture.stdout is not None:
            capture.stdout.close()

    def close(self) -> None:
        capture = getattr(self, "_capture", None)
        if capture is not None and capture.poll() is None:
            capture.kill()
            capture.wait(5)
        self._release_capture()
        for args in (("ip", "link", "del", self.host_if), ("ip", "netns", "del", self.name)):
            subprocess.run(args, capture_output=True)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
