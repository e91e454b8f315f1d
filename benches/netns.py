"""A private network namespace for the bench: ``lo`` plus a veth pair with one address.

Janus's libnice gathers no ICE candidates on a loopback interface, so the comparison runs in
a namespace of its own where a veth end carries the bench address; traffic to it still goes
through the kernel's local path, as on loopback. Nothing in the namespace can reach outside.
Both servers run in that namespace, measured alike.

The clients can run in a second namespace (:class:`ClientNamespace`, ``--split`` of the
harness and the capacity bench), joined to the first by a veth pair, with the server and the
clients on separate CPUs (:func:`split_cpus`): then the clients' work cannot starve the
server, and the harness's own CPU is counted on its own CPUs.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

INTERFACE = "bench0"
ADDRESS = "10.77.0.1"
_MARK = "SFU_BENCH_NETNS"
#: the clients' address in their own namespace (the far end of the bench veth pair)
CLIENT_ADDRESS = "10.77.1.2"
_CLONE_NEWNET = 0x40000000


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


@dataclass
class ClientNamespace:
    """A second network namespace for the clients, made from inside the bench namespace.
    The far end of the bench veth pair moves into it and carries ``CLIENT_ADDRESS``, so the
    clients reach the servers' ``ADDRESS`` over the veth link, as from another host (and
    through the interface Janus is told to use). A sleeping process holds it; :func:`enter`
    moves a process into it. :meth:`close` brings the veth end back."""

    holder: subprocess.Popen[bytes]

    @property
    def path(self) -> str:
        return f"/proc/{self.holder.pid}/ns/net"

    @classmethod
    def open(cls) -> ClientNamespace:
        if not inside():
            raise RuntimeError("the clients' namespace is made from inside the bench one")
        unshare = shutil.which("unshare")
        if unshare is None:
            raise RuntimeError("unshare (util-linux) is needed for the clients' namespace")
        holder = subprocess.Popen([unshare, "-n", "sh", "-c", "echo ready; exec sleep 1000000"],
                                  stdout=subprocess.PIPE)
        ns = cls(holder)
        try:
            assert holder.stdout is not None
            if holder.stdout.readline().strip() != b"ready":
                raise RuntimeError("unshare -n did not start (root is needed)")
            peer = f"{INTERFACE}p"
            _sh(f"ip link set {peer} netns {holder.pid} && "
                f"ip route add {CLIENT_ADDRESS}/32 dev {INTERFACE}")
            ns._inside(f"ip link set lo up && ip addr add {CLIENT_ADDRESS}/32 dev {peer} && "
                       f"ip link set {peer} up && ip route add {ADDRESS}/32 dev {peer}")
        except BaseException:
            ns.close()
            raise
        return ns

    def _inside(self, command: str) -> None:
        _sh(f"nsenter -t {self.holder.pid} -n sh -c '{command}'")

    def close(self) -> None:
        peer = f"{INTERFACE}p"
        try:  # the veth end back home (else it would die with this namespace, and bench0)
            self._inside(f"ip link set {peer} netns {os.getpid()}")
            _sh(f"ip addr flush dev {peer} && ip link set {peer} up")
        except RuntimeError:
            pass  # it never left
        subprocess.run(["ip", "route", "del", f"{CLIENT_ADDRESS}/32"], capture_output=True)
        self.holder.kill()
        self.holder.wait()


def enter(path: str) -> None:
    """Move the calling thread (call it first thing in a process) into the network
    namespace at ``path``; threads it starts afterwards are there too."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def split_cpus() -> tuple[set[int], set[int]]:
    """The CPUs this process may use, split: the first half for the server, the rest for
    the clients (both all of them on a single CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def _sh(command: str) -> None:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command}: {done.stderr.strip()}")
