"""Transcription through the real server: raw clients publish espeak-ng sentences as Opus
over real ICE/DTLS/SRTP; a listener's socket gets the captions (partial, then final); the
transcript attributes each line to its speaker; the recording carries the transcript in
both copies; the room's end writes WebVTT and JSON; metrics and events tell the operator.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sfu_harness import WsProbe, parse_metrics
from test_polls_protocol import joined

from benches import speech
from benches.rawclient import RawClient
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration

TEACHER = "We will have a short test on Friday."
STUDENT = "The water cycle has three parts."
WER_BOUND = 0.6


async def _api(server: ServerProcess, method: str, path: str,
               body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=server.auth_header) as http:
        async with http.request(method, server.base_url + path, json=body) as res:
            return res.status, (await res.json() if res.status != 204 else None)


def _packets(text: str, folder: Path) -> list[bytes]:
    samples, rate = speech.read_wav(speech.say(text, folder / "s.wav", lead_s=0.3,
                                               tail_s=1.2))
    return [p for _, p in speech.opus_packets(samples, rate)]


async def _speak(client: RawClient, payloads: list[bytes]) -> float:
    """Send the payloads in real time (20 ms apart); the wall-clock time of the first."""
    start = time.time()
    t0 = time.monotonic()
    for i, payload in enumerate(payloads):
        client.send_packet(client.build_packet("audio", payload, audio_level=20))
        delay = t0 + (i + 1) * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return start


async def _captions(probe: WsProbe, until_final_of: str, timeout: float = 30.0
                    ) -> list[tuple[float, dict[str, Any]]]:
    """Caption messages (with their arrival time) until a final one of that participant."""
    got: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await probe.expect("caption", max(0.1, deadline - time.monotonic()))
        got.append((time.time(), msg))
        if msg["final"] and msg["participantId"] == until_final_of:
            return got


async def test_captions_and_the_transcript_of_two_speakers(
        server: ServerProcess, tmp_path: Path) -> None:
    room = "transcribed"
    status, body = await _api(server, "POST", "/api/rooms", {
        "name": room, "transcription": "everyone", "recordingPolicy": "always"})
    assert status == 201 and body["transcriptionPolicy"] == "everyone", body
    teacher_audio = _packets(TEACHER, tmp_path)
    student_audio = _packets(STUDENT, tmp_path)
    listener, _ = await joined(server, "listener", "observer", room=room)
    teacher = RawClient(server.ws_url, server.mint_token(room, "teacher", "Ms Smith",
                                                         role="instructor"))
    student = RawClient(server.ws_url, server.mint_token(room, "ann", "Ann"))
    try:
        t_joined = await teacher.connect()
        s_joined = await student.connect()
        teacher_id, student_id = t_joined["participant"]["id"], s_joined["participant"]["id"]
        await teacher.publish(video=False)
        await student.publish(video=False)

        # the teacher speaks: the listener's page gets partial captions, then the final
        speaking = asyncio.ensure_future(_speak(teacher, teacher_audio))
        caps = await _captions(listener, teacher_id)
        started = await speaking
        partial = [m for _, m in caps if not m["final"] and m["participantId"] == teacher_id]
        final = caps[-1][1]
        first_at = next(t for t, m in caps if m["participantId"] == teacher_id)
        wer = speech.word_error_rate(TEACHER, final["text"])
        print(f"teacher: first caption {first_at - started:.2f} s after the first packet "
              f"({len(partial)} partials); final {final['text']!r}, WER {wer:.2f}")
        assert partial, "no partial caption before the final one"
        assert final["name"] == "Ms Smith" and wer <= WER_BOUND
        assert partial[0]["utterance"] == final["utterance"]

        # then the student
        speaking = asyncio.ensure_future(_speak(student, student_audio))
        caps = await _captions(listener, student_id)
        await speaking
        final = caps[-1][1]
        wer = speech.word_error_rate(STUDENT, final["text"])
        print(f"student: final {final['text']!r}, WER {wer:.2f}")
        assert final["name"] == "Ann" and wer <= WER_BOUND

        # the live transcript: one line each, in order, attributed to the right person
        status, live = await _api(server, "GET", f"/api/rooms/{room}/transcript")
        assert status == 200
        who = [(ln["identity"], ln["role"]) for ln in live["lines"]]
        assert who == [("teacher", "instructor"), ("ann", "student")], live["lines"]
        assert live["lines"][0]["end"] <= live["lines"][1]["start"]
        assert all(s["real_time_factor"] < 1 for s in live["streams"])

        # the recording carries the transcript of its minutes, in both copies
        status, manifest = await _api(server, "DELETE", f"/api/rooms/{room}/recording")
        assert status == 200, manifest
        assert manifest["attachments"] == ["transcript.vtt", "transcript.json"]
        for key in ("SFU_RECORDING_DIR", "SFU_RECORDING_SECOND_DIR"):
            folder = Path(server.env[key]) / manifest["folder"]
            vtt = (folder / "transcript.vtt").read_text()
            assert vtt.startswith("WEBVTT") and "<v Ms Smith>" in vtt and "<v Ann>" in vtt
            lines = json.loads((folder / "transcript.json").read_text())["lines"]
            # on the recording's timeline: the first words came after it started
            assert 0 < lines[0]["start"] < lines[1]["start"]
    finally:
        await teacher.close()
        await student.close()
        await listener.close()

    # the room's end writes the session's transcript; the events say so
    status, _ = await _api(server, "DELETE", f"/api/rooms/{room}")
    assert status in (200, 204)
    done = await _until_event(server, room, "transcript.completed")
    assert done["data"]["lines"] == 2 and done["data"]["speakers"] == 2
    vtt_path, json_path = (Path(f) for f in done["data"]["files"])
    assert vtt_path.suffix == ".vtt" and "<v Ann>" in vtt_path.read_text()
    assert len(json.loads(json_path.read_text())["lines"]) == 2
    types = [e["type"] for e in await _events(server, room)]
    assert types.count("transcript.started") == 2 and types.count("transcript.line") == 2
    async with aiohttp.ClientSession() as http:
        async with http.get(server.base_url + "/metrics") as res:
            metrics = {name: v for (name, _), v in parse_metrics(await res.text()).items()}
    assert metrics["sfu_transcription_words_total"] >= 8
    assert metrics["sfu_transcription_audio_seconds_total"] > 5
    assert metrics["sfu_transcription_failures_total"] == 0


async def test_policy_errors_are_clear(server: ServerProcess) -> None:
    status, body = await _api(server, "POST", "/api/rooms",
                              {"name": "bad-tx", "transcription": "loud"})
    assert status == 400 and "transcription must be one of off, instructor, everyone" in \
        body["error"]["message"], body
    status, body = await _api(server, "POST", "/api/rooms", {"name": "quiet-tx"})
    assert status == 201 and body["transcriptionPolicy"] == "off"
    status, body = await _api(server, "GET", "/api/rooms/quiet-tx/transcript")
    assert status == 404 and body["error"]["code"] == "not_transcribed"


async def _events(server: ServerProcess, room: str) -> list[dict[str, Any]]:
    status, body = await _api(server, "GET", f"/api/events?room={room}")
    assert status == 200
    return list(body["events"])


async def _until_event(server: ServerProcess, room: str, etype: str,
                       timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in await _events(server, room) if e["type"] == etype]
        if found:
            return found[-1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {etype} event for {room}")
