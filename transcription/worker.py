"""A transcription worker process: the streams given to it, each a
:class:`~transcription.stream.StreamTranscriber`, fed in order.

Commands arrive on a multiprocessing queue (the server never blocks on it); results go back
on a pipe the server reads from its event loop. A failing engine costs its stream (an
``error`` result), never the process; a crash of the process is the pool's to handle.

Commands: ``("open", stream, engine_config)``, ``("audio", stream, [(rtp_ts, payload)])``,
``("close", stream)``, ``("stop",)``. Results: ``("ready", pid)``, ``("partial", stream,
utterance, start_s, text)``, ``("final", stream, utterance, start_s, end_s, text, words)``
(words as ``(text, start_s, end_s)``), ``("done", stream, figures)`` after each audio batch,
``("error", stream, text)``, ``("closed", stream, figures)``.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import asdict
from typing import Any

from .engines import EngineConfig, EngineUnavailable, make_engine
from .stream import Final, Partial, Result, StreamTranscriber


def main(commands: Any, results: Any) -> None:
    streams: dict[str, StreamTranscriber] = {}
    results.send(("ready", os.getpid()))
    while True:
        cmd = commands.get()
        kind = cmd[0]
        if kind == "stop":
            break
        stream = cmd[1]
        try:
            if kind == "open":
                streams[stream] = StreamTranscriber(make_engine(EngineConfig(**cmd[2])))
            elif kind == "audio":
                st = streams.get(stream)
                if st is None:
                    continue
                out: list[Result] = []
                for ts, payload in cmd[2]:
                    out += st.feed(ts, payload)
                _send(results, stream, out)
                results.send(("done", stream, _figures(st)))
            elif kind == "close":
                st = streams.pop(stream, None)
                if st is not None:
                    _send(results, stream, st.flush())
                    results.send(("closed", stream, _figures(st)))
        except EngineUnavailable as exc:
            streams.pop(stream, None)
            results.send(("error", stream, str(exc)))
        except Exception:
            streams.pop(stream, None)
            results.send(("error", stream, traceback.format_exc(limit=3)[-500:]))


def _send(results: Any, stream: str, out: list[Result]) -> None:
    for r in out:
        if isinstance(r, Partial):
            results.send(("partial", stream, r.utterance, r.start_s, r.text))
        elif isinstance(r, Final):
            results.send(("final", stream, r.utterance, r.start_s, r.end_s, r.text,
                          [(w.text, w.start_s, w.end_s) for w in r.words]))


def _figures(st: StreamTranscriber) -> dict[str, Any]:
    return {**asdict(st.figures), "real_time_factor": st.figures.real_time_factor}
