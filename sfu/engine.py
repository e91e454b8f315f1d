"""The forwarding engine, chosen once when the process starts: the compiled steps
(:mod:`sfu.fastpath`, the C of ``sfu/fastpath.c``) or the same logic in Python.

Everything on the media path that has two implementations gets its per-packet state and
its steps from :data:`ENGINE`: the forwarder's, sequence tracker's, track's and layer's
fields (C structs or Python objects with the same field names), the retransmission cache,
the publisher's transport-cc recorder, a transport's compiled receiver and connection, the
fan-out. The rest of the code asks the engine and never checks which one it is; the tests
hold both byte for byte to the same output (tests/sfu/test_fastpath.py, test_fanout.py,
test_ingress.py).

The choice is read here and nowhere else: the compiled engine when ``sfu._fastpath`` is
built (the package build does it), unless ``SFU_FASTPATH=0``; ``SFU_BATCH_SEND=0`` makes it
send with ``sendto`` instead of io_uring, ``SFU_FASTPATH_INGRESS=0`` turns its ingress step
off (both for A/B measurements, docs/configuration.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from .codecs import AUDIO_LEVEL_ID, TWCC_ID
from .forwarder import ForwarderState
from .retransmit import Cache, RetransmitCache
from .rtp_header import rewrite_extension_ids
from .sequence import SequenceTracker
from .twcc import TwccRecorder

log = logging.getLogger(__name__)

#: flags of a packet the compiled ingress step handled (> 0): what is left to Python
IN_TWCC = 2
IN_LEVEL = 4
IN_NACK = 8
IN_LEFT = 16
#: a closed speech gate's loud packet, not forwarded: Python asks the room (sfu.speech_gate)
IN_GATE = 32
#: sources one receiver's compiled ingress step knows (more take the Python path)
MAX_SOURCES = 32


class IngressSource(NamedTuple):
    """One source for the compiled ingress step: its SSRC, the C structs it updates
    (``sfu_seq``, ``sfu_track``, ``sfu_layer``), its retransmission cache (where the step
    puts its packets: a ``fastpath.CompiledCache``), and what the owner wants back with its
    packets (``handle``)."""

    ssrc: int
    seq: Any
    track: Any
    layer: Any
    cache: Any
    handle: Any


class LayerCounters:
    """A layer's per-packet fields in Python. The compiled engine keeps them in a C
    ``sfu_layer`` (same names), which its ingress step updates, with the fan-out plan it
    forwards with (``dests``, ``n``, ``python_subs``, ``plan_version``: kept here too, unused,
    so that the owner writes them the same way on both engines)."""

    __slots__ = ("packets", "bytes", "frames", "last_packet_ms", "dests", "n", "python_subs",
                 "plan_version")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.frames = 0
        self.last_packet_ms = -1e12
        self.dests: Any = None
        self.n = 0
        self.python_subs = 0
        self.plan_version = -1


class Engine(Protocol):
    """What the media path asks of its engine."""

    #: "compiled" or "python" (the metric sfu_fastpath_enabled, the start-up log)
    name: str
    #: the compiled ingress step, sfu_ingress(rx, datagram, len), or None (off)
    ingress: Any
    #: the compiled fan-out, sfu_fanout(...); called only with subscribers that have a
    #: compiled view (``dest``), which the Python engine never gives
    fanout: Any
    #: the compiled send, sfu_send(conn, ...); called only with a compiled connection
    #: (``connect``), which the Python engine never gives
    send: Any
    #: the C value of "no pointer" (None on the Python engine)
    null: Any
    #: sfu_vp8_keyframe(packet, len), or None (the Python detector is used)
    vp8_keyframe: Any

    def forwarder_state(self) -> Any: ...

    def dest(self, state: Any, out_ssrc: int) -> Any: ...

    def dest_array(self, dests: list[Any]) -> Any: ...

    def layer_counters(self) -> Any: ...

    def track_state(self, publisher_pt: int, pt: int, id_map: bytes, *, video: bool,
                    twcc: TwccRecorder | None, level: bool) -> Any: ...

    def sequence_tracker(self, clock_rate: int) -> SequenceTracker: ...

    def retransmit_cache(self) -> Cache: ...

    def twcc_recorder(self) -> TwccRecorder: ...

    def receiver(self, session: Any) -> Any: ...

    def connect(self, session: Any, sock: Any, remote_addr: tuple[Any, ...]) -> Any: ...

    def rewrite(self, data: bytes, id_map: bytes, pt: int) -> tuple[bytes, int]: ...

    def batch_state(self) -> str: ...

    def ingress_handled(self) -> int: ...


class PythonEngine:
    """Every step in Python: same bytes on the wire and the same state, more CPU."""

    name = "python"
    ingress = None
    fanout = None
    send = None
    null = None
    vp8_keyframe = None

    def forwarder_state(self) -> ForwarderState:
        return ForwarderState()

    def dest(self, state: Any, out_ssrc: int) -> None:
        return None  # no compiled view: the subscription takes the Python path

    def dest_array(self, dests: list[Any]) -> None:
        return None

    def layer_counters(self) -> LayerCounters:
        return LayerCounters()

    def track_state(self, publisher_pt: int, pt: int, id_map: bytes, *, video: bool,
                    twcc: TwccRecorder | None, level: bool) -> None:
        return None  # no compiled ingress step

    def sequence_tracker(self, clock_rate: int) -> SequenceTracker:
        return SequenceTracker(clock_rate)

    def retransmit_cache(self) -> Cache:
        return RetransmitCache()

    def twcc_recorder(self) -> TwccRecorder:
        return TwccRecorder()

    def receiver(self, session: Any) -> None:
        return None  # pylibsrtp unprotects, the Python path routes

    def connect(self, session: Any, sock: Any, remote_addr: tuple[Any, ...]) -> None:
        return None  # the transport sends through the event loop

    def rewrite(self, data: bytes, id_map: bytes, pt: int) -> tuple[bytes, int]:
        """Header-extension ids to canonical ones and the payload type, on a copy; the
        offsets of the transport-cc (low 16 bits) and audio-level (high) values."""
        buf = bytearray(data)
        offsets = rewrite_extension_ids(buf, id_map, TWCC_ID, AUDIO_LEVEL_ID)
        buf[1] = (buf[1] & 0x80) | pt
        return bytes(buf), offsets

    def batch_state(self) -> str:
        return "off"

    def ingress_handled(self) -> int:
        return 0


class CompiledEngine:
    """The C steps of :mod:`sfu.fastpath`."""

    name = "compiled"

    def __init__(self, *, batch_send: bool = True, ingress: bool = True) -> None:
        from . import fastpath

        self._fp = fastpath
        if not batch_send:
            fastpath.disable_batch()
        self.ingress = fastpath.ingress if ingress else None
        self.fanout = fastpath.fanout
        self.send = fastpath.send
        self.null = fastpath.NULL
        self.vp8_keyframe = fastpath.vp8_keyframe
        self._rewrite = fastpath.rewrite
        self._scratch = fastpath.SCRATCH
        self._unpack = fastpath.unpack
        self.forwarder_state = fastpath.forwarder_state
        self.dest = fastpath.dest
        self.dest_array = fastpath.dest_array
        self.layer_counters = fastpath.layer_state
        self.retransmit_cache = fastpath.CompiledCache
        self.twcc_recorder = fastpath.CompiledTwccRecorder
        self.receiver = fastpath.receiver
        self.connect = fastpath.connect
        self.batch_state = fastpath.batch_state
        self.ingress_handled = fastpath.ingress_handled

    def track_state(self, publisher_pt: int, pt: int, id_map: bytes, *, video: bool,
                    twcc: TwccRecorder | None, level: bool) -> Any:
        """A track's C ingress state; a compiled transport-cc recorder of the publisher is
        linked to it, so that the ingress step records arrivals in C."""
        fp = self._fp
        state = fp.track_state(publisher_pt, pt, id_map, video=video, twcc=twcc is not None,
                               level=level)
        if isinstance(twcc, fp.CompiledTwccRecorder):
            state.twcc_rx = twcc.state  # (the recorder keeps it alive)
        return state

    def sequence_tracker(self, clock_rate: int) -> SequenceTracker:
        fp = self._fp
        return SequenceTracker(clock_rate, fp.sequence_state(clock_rate), fp.sequence_update)

    def rewrite(self, data: bytes, id_map: bytes, pt: int) -> tuple[bytes, int]:
        n = len(data)
        offsets = self._rewrite(data, n, id_map, TWCC_ID, AUDIO_LEVEL_ID, pt, self._scratch)
        if offsets < 0:  # a malformed extension block: the Python rewrite says how
            return PythonEngine.rewrite(PythonEngine(), data, id_map, pt)
        return self._unpack(self._scratch, n), offsets


def select_engine(environ: Mapping[str, str]) -> Engine:
    """The compiled engine if ``sfu._fastpath`` is built and ``SFU_FASTPATH`` is not "0";
    else the Python engine."""
    if environ.get("SFU_FASTPATH", "1") == "0":
        return PythonEngine()
    try:
        return CompiledEngine(batch_send=environ.get("SFU_BATCH_SEND", "1") != "0",
                              ingress=environ.get("SFU_FASTPATH_INGRESS", "1") != "0")
    except ImportError as exc:
        log.warning("compiled forwarding steps not built (%s): Python engine", exc)
        return PythonEngine()


#: the engine of this process
ENGINE: Engine = select_engine(os.environ)
