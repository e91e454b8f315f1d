"""Prometheus metrics of the transcriptions (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .service import Transcriptions


class TranscriptionCollector(Collector):
    def __init__(self, transcriptions: Transcriptions) -> None:
        self.t = transcriptions

    def collect(self) -> Iterator[Any]:
        t = self.t
        live = t.live_streams()
        pool = t._pool
        yield GaugeMetricFamily("sfu_transcription_streams", "microphones being transcribed",
                                value=len(live))
        yield GaugeMetricFamily("sfu_transcription_workers", "transcription worker "
                                "processes running", value=pool.workers_alive() if pool else 0)
        yield GaugeMetricFamily("sfu_transcription_queue_depth", "audio batches sent to the "
                                "workers and not yet recognised (10 a second per stream)",
                                value=pool.backlog if pool else 0)
        audio = t.finished_audio_s + sum(float(s.figures.get("audio_s", 0.0)) for s in live)
        cpu = t.finished_cpu_s + sum(float(s.figures.get("engine_cpu_s", 0.0)) for s in live)
        yield CounterMetricFamily("sfu_transcription_audio_seconds", "seconds of microphone "
                                  "audio the workers decoded", value=audio)
        yield CounterMetricFamily("sfu_transcription_engine_cpu_seconds", "CPU seconds the "
                                  "workers spent segmenting and recognising", value=cpu)
        rtf = GaugeMetricFamily("sfu_transcription_real_time_factor", "engine CPU seconds per "
                                "second of audio, per live stream (1 = a core per stream)",
                                labels=["room", "track"])
        wpm = GaugeMetricFamily("sfu_transcription_words_per_minute", "recognised words per "
                                "minute of audio, per live stream", labels=["room", "track"])
        for s in live:
            audio_s = float(s.figures.get("audio_s", 0.0))
            labels = [s.room.room.id, s.track.id]
            rtf.add_metric(labels, float(s.figures.get("real_time_factor", 0.0)))
            wpm.add_metric(labels, 60.0 * s.figures.get("words", 0) / audio_s if audio_s
                           else 0.0)
        yield rtf
        yield wpm
        yield CounterMetricFamily("sfu_transcription_words", "words recognised (final)",
                                  value=t.words)
        yield CounterMetricFamily("sfu_transcription_failures", "streams whose engine or "
                                  "worker failed", value=t.failures)
        yield CounterMetricFamily("sfu_transcription_worker_restarts", "worker processes "
                                  "replaced after exiting", value=pool.worker_restarts
                                  if pool else 0)
        yield CounterMetricFamily("sfu_transcription_dropped_packets", "packets not sent to "
                                  "a worker that was too far behind",
                                  value=pool.dropped_packets if pool else 0)
