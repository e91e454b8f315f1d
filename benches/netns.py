"""A private network namespace for the bench: ``lo`` plus a veth pair with one address.

Janus's libnice gathers no ICE candidates on a loopback interface, so the comparison runs in
a namespace of its own where a veth end carries the bench address; traffic to it still goes
through the kernel's local path, as on loopback. Nothing in the namespace can reach outside.
Both servers and every client run in the same namespace, so they are measured alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

INTERFACE = "bench0"
ADDRESS = "10.77.0.1"
_MARK = "SFU_BENCH_NETNS"


def inside() -> bool:
    return os.environ.get(_MARK) == "1"


def reexec_inside(module: str, argv: list[str]) -> int:
    """Run ``python -m module argv...`` in a new network namespace (``unshare -n``, needs
    root or CAP_SYS_ADMIN) after setting it up; returns its exit status."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("unshare (util-linux) is needed for the bench network namespace")
    setup = (f"ip link set lo up && ip link add {INTERFACE} type veth peer name {INTERFACE}p"
             f" && ip addr add {ADDRESS}/32 dev {INTERFACE} && ip link set {INTERFACE} up"
             f" && ip link set {INTERFACE}p up && exec \"$0\" -m {module} \"$@\"")
    env = {**os.environ, _MARK: "1"}
    return subprocess.call([unshare, "-n", "sh", "-c", setup, sys.executable, *argv],
                           env=env)
