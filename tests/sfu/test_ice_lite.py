"""The ICE-lite agent: which checks it accepts, what it answers, which path it selects."""

from __future__ import annotations

from aioice import stun as ref

from sfu import stun
from sfu.ice_lite import MAX_PATHS, IceLiteAgent, Refusal, local_ufrag_of, new_credentials
from tests.stun_reference import parse_checked

UFRAG, PWD = "srvUfrag", "server-password-24-chars"
A, B = ("10.0.0.1", 5000), ("10.0.0.2", 6000)



def check(*, username: str = f"{UFRAG}:cli", key: str = PWD, nominate: bool = False,
          controlled: bool = False, priority: bool = True, txid: bytes = b"t" * 12) -> bytes:
    msg = ref.Message(message_method=ref.Method.BINDING, message_class=ref.Class.REQUEST,
                      transaction_id=txid)
    msg.attributes["USERNAME"] = username
    if priority:
        msg.attributes["PRIORITY"] = 100
    if controlled:
        msg.attributes["ICE-CONTROLLED"] = 1
    else:
        msg.attributes["ICE-CONTROLLING"] = 1
    if nominate:
        msg.attributes["USE-CANDIDATE"] = None
    msg.add_message_integrity(key.encode())
    msg.add_fingerprint()
    return bytes(msg)


def feed(agent: IceLiteAgent, data: bytes, path: object, addr: tuple[str, int] = A,
         now: float = 1000.0):  # type: ignore[no-untyped-def]
    return agent.handle(data, stun.parse(data), path, addr, now)


def test_valid_check_is_answered_and_selects_the_path_tentatively() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    out = feed(agent, check(), "path-a")
    assert out.accepted and out.refused is None and out.selected_changed
    response = parse_checked(out.response, PWD.encode())
    assert response.message_class == ref.Class.RESPONSE
    assert response.attributes["XOR-MAPPED-ADDRESS"] == A
    assert agent.selected == "path-a" and not agent.nominated


def test_nomination_moves_the_selected_path() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    feed(agent, check(), "path-a")
    out = feed(agent, check(nominate=True), "path-b", B)
    assert out.selected_changed and agent.selected == "path-b" and agent.nominated
    # a later plain check on the first path does not take the selection back
    out = feed(agent, check(), "path-a")
    assert out.accepted and not out.selected_changed and agent.selected == "path-b"


def test_wrong_password_is_refused_with_401() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    out = feed(agent, check(key="not-the-right-password!!"), "p")
    assert not out.accepted and out.refused is Refusal.UNAUTHENTICATED
    assert parse_checked(out.response).attributes["ERROR-CODE"][0] == 401
    assert agent.selected is None and not agent.paths


def test_checks_for_another_ufrag_or_peer_are_refused() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    assert feed(agent, check(username="other:cli"), "p").refused is Refusal.WRONG_USERNAME
    agent.remote_ufrag = "cli"
    assert feed(agent, check(username=f"{UFRAG}:intruder"), "p").refused is \
        Refusal.WRONG_USERNAME
    assert feed(agent, check(username=f"{UFRAG}:cli"), "p").accepted


def test_a_controlled_peer_gets_a_role_conflict() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    out = feed(agent, check(controlled=True), "p")
    assert out.refused is Refusal.ROLE_CONFLICT
    assert parse_checked(out.response, PWD.encode()
                             ).attributes["ERROR-CODE"][0] == 487


def test_check_without_priority_is_a_bad_request() -> None:
    out = feed(IceLiteAgent(UFRAG, PWD), check(priority=False), "p")
    assert out.refused is Refusal.NO_PRIORITY and not out.accepted


def test_responses_and_indications_are_not_checks() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    data = stun.binding_success(b"x" * 12, A, PWD.encode())
    out = feed(agent, data, "p")
    assert out.refused is Refusal.NOT_A_REQUEST and out.response is None


def test_paths_are_bounded() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    for i in range(MAX_PATHS):
        assert feed(agent, check(), f"p{i}").accepted
    out = feed(agent, check(), "one-too-many")
    assert out.refused is Refusal.TOO_MANY_PATHS and out.response is None
    assert feed(agent, check(), "p0").accepted  # known paths still are


def test_forgetting_the_selected_path_falls_back() -> None:
    agent = IceLiteAgent(UFRAG, PWD)
    feed(agent, check(), "udp")
    feed(agent, check(nominate=True), "tcp")
    assert not agent.forget("udp")
    feed(agent, check(), "udp")
    assert agent.forget("tcp") and agent.selected == "udp" and not agent.nominated
    assert agent.forget("udp") and agent.selected is None


def test_credentials_and_username_parts() -> None:
    u1, p1 = new_credentials()
    u2, _ = new_credentials()
    assert len(u1) == 8 and len(p1) == 24 and u1 != u2 and u1.isalnum()
    assert local_ufrag_of("abc:def") == "abc"
    assert local_ufrag_of("abc") is None and local_ufrag_of(None) is None

