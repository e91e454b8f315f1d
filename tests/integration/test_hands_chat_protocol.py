"""Hands, chat and reactions over the real signalling protocol: an instructor and students
on WebSockets to a real server process; who sees what, late joiners get the state, and
every refusal is a clear, non-fatal error."""

from __future__ import annotations

import pytest
from sfu_harness import WsProbe
from test_polls_protocol import joined

from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


async def test_hands_chat_and_reactions_over_the_protocol(server: ServerProcess) -> None:
    teacher, _ = await joined(server, "teacher", "instructor", room="hands-room")
    ann, _ = await joined(server, "ann", room="hands-room")
    probes: list[WsProbe] = [teacher, ann]
    try:
        ann_id = (await teacher.expect("participant_joined"))["participant"]["id"]
        await ann.send({"type": "hand_raise"})
        for p in probes:
            raised = await p.expect("hand_raised")
            assert raised["participantId"] == ann_id
        await ann.send({"type": "chat_send", "text": "may I ask something?"})
        for p in probes:
            msg = await p.expect("chat")
            assert msg["from"] == ann_id and msg["text"] == "may I ask something?"
            assert msg["name"] == "ann"  # (the token's name defaults to the identity)
        bob, hello = await joined(server, "bob", room="hands-room")  # a late joiner
        probes.append(bob)
        assert [h["participantId"] for h in hello["hands"]] == [ann_id]  # type: ignore[index,union-attr]
        assert [m["messageId"] for m in hello["chat"]] == [msg["messageId"]]  # type: ignore[index,union-attr]
        # students cannot moderate
        await bob.send({"type": "hand_lower", "participantId": ann_id})
        await bob.expect_error("permission_denied", fatal=False)
        await bob.send({"type": "chat_delete", "messageId": msg["messageId"]})
        await bob.expect_error("permission_denied", fatal=False)
        await bob.send({"type": "hand_lower", "participantId": "PA_nobody"})
        await bob.expect_error("unknown_participant", fatal=False)
        await bob.send({"type": "chat_send", "text": ""})
        await bob.expect_error("bad_chat", fatal=False)
        await bob.send({"type": "react", "reaction": "<img onerror>"})
        await bob.expect_error("bad_chat", fatal=False)
        await bob.send({"type": "chat_delete", "messageId": "CM999"})
        await bob.expect_error("unknown_message", fatal=False)
        await bob.send({"type": "react", "reaction": "clap"})
        for p in probes:
            assert (await p.expect("reaction"))["reaction"] == "clap"
        # the instructor moderates
        await teacher.send({"type": "chat_delete", "messageId": msg["messageId"]})
        for p in probes:
            assert (await p.expect("chat_deleted"))["messageId"] == msg["messageId"]
        await teacher.send({"type": "hand_lower", "participantId": ann_id})
        for p in probes:
            lowered = await p.expect("hand_lowered")
            assert lowered["participantId"] == ann_id and lowered["reason"] == "lowered"
        await bob.send({"type": "ping"})  # every refusal left the socket working
        await bob.expect("pong")
        await bob.send({"type": "hand_raise"})
        for p in probes:
            await p.expect("hand_raised")
        await bob.send({"type": "leave"})
        for p in (teacher, ann):  # leaving lowers the hand
            lowered = await p.expect("hand_lowered")
            assert lowered["reason"] == "left"
    finally:
        for p in probes:
            await p.close()
