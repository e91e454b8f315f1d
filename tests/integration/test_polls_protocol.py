"""Polls over the real signalling protocol: an instructor and students on WebSockets to a
real server process; who sees what, and every refusal a clear, non-fatal error."""

from __future__ import annotations

import pytest
from sfu_harness import WsProbe

from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


async def joined(server: ServerProcess, identity: str, role: str = "student",
                 room: str = "poll-room") -> tuple[WsProbe, dict[str, object]]:
    probe = await WsProbe(server).open()
    await probe.send({"type": "join", "token": server.mint_token(room, identity, role=role)})
    return probe, await probe.expect("joined")


async def test_a_poll_over_the_protocol(server: ServerProcess) -> None:
    teacher, _ = await joined(server, "teacher", "instructor")
    ann, _ = await joined(server, "ann")
    probes = [teacher, ann]
    try:
        await ann.send({"type": "poll_create", "poll": {"kind": "text", "question": "Q?"}})
        await ann.expect_error("permission_denied", fatal=False)  # students do not run polls
        await teacher.send({"type": "poll_create", "poll": {
            "kind": "single", "question": "2 + 2?", "options": ["3", "4"], "correct": [1]}})
        shown = [await p.expect("poll") for p in probes]
        assert shown[0] == shown[1] and "correct" not in shown[1]
        poll_id = shown[0]["pollId"]
        bob, hello = await joined(server, "bob")  # a late joiner sees the open poll
        probes.append(bob)
        assert [p["pollId"] for p in hello["polls"]] == [poll_id]  # type: ignore[attr-defined]
        await ann.send({"type": "poll_answer", "pollId": poll_id, "answer": [1]})
        await ann.expect("poll_answered")
        live = await teacher.expect("poll_results")  # the instructor's live view
        assert live["counts"] == [0, 1] and live["correctRate"] == 1.0
        assert list(live["byParticipant"].values()) == [
            {"choice": [1], "text": "", "correct": True}]
        await ann.send({"type": "poll_answer", "pollId": poll_id, "answer": [0]})
        await ann.expect_error("already_answered", fatal=False)
        await bob.send({"type": "poll_results", "pollId": poll_id})
        await bob.expect_error("permission_denied", fatal=False)  # not published yet
        await bob.send({"type": "poll_answer", "pollId": "PL999", "answer": [0]})
        await bob.expect_error("unknown_poll", fatal=False)
        await bob.send({"type": "poll_answer", "pollId": poll_id, "answer": "four"})
        await bob.expect_error("bad_poll", fatal=False)
        await teacher.send({"type": "poll_close", "pollId": poll_id})
        for p in probes:
            assert (await p.expect("poll_closed"))["reason"] == "instructor"
        assert (await teacher.expect("poll_results"))["open"] is False  # final, her view
        await bob.send({"type": "poll_answer", "pollId": poll_id, "answer": [1]})
        await bob.expect_error("poll_closed", fatal=False)
        await teacher.send({"type": "poll_publish", "pollId": poll_id})
        for p in probes:
            shared = await p.expect("poll_results")
            assert shared["counts"] == [0, 1] and shared["correctRate"] == 1.0
            assert "byParticipant" not in shared and shared["correct"] == [1]
        await bob.send({"type": "ping"})  # every refusal left the socket working
        await bob.expect("pong")
    finally:
        for p in probes:
            await p.close()
