"""Join tokens (signalling/tokens.py): mint/verify, expiry, signatures, issuer, roles, grants."""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import jwt
import jwt.warnings
import pytest

from sfu.participant import ROLES, Grants
from signalling import tokens

KEY = "unit-key"
SECRET = "unit-secret-0123456789abcdef0123456789"


def mint(**kw: Any) -> str:
    args: dict[str, Any] = {"room": "maths-7b", "identity": "alice"}
    args.update(kw)
    return tokens.mint(KEY, SECRET, **args)


def encode(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def base_claims(**kw: Any) -> dict[str, Any]:
    t = int(time.time())
    claims: dict[str, Any] = {"iss": KEY, "sub": "alice", "room": "maths-7b", "role": "student",
                              "iat": t, "nbf": t - 5, "exp": t + 600}
    claims.update(kw)
    return claims


def refused(token: object, code: str = "invalid_token") -> tokens.TokenError:
    with pytest.raises(tokens.TokenError) as info:
        tokens.verify(token, KEY, SECRET)
    assert info.value.code == code
    return info.value


def test_roundtrip() -> None:
    before = time.time()
    token = mint(name="Alice A.", role="instructor", ttl_s=120)
    claims = tokens.verify(token, KEY, SECRET)
    assert claims.room == "maths-7b"
    assert claims.identity == "alice"
    assert claims.name == "Alice A."
    assert claims.role == "instructor"
    assert int(before) + 120 <= claims.expires_at <= time.time() + 120
    raw = jwt.decode(token, options={"verify_signature": False})
    assert raw["iss"] == KEY and raw["sub"] == "alice"
    assert raw["nbf"] == raw["iat"] - 5 and raw["exp"] == raw["iat"] + 120
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_name_defaults_to_identity() -> None:
    assert tokens.verify(mint(), KEY, SECRET).name == "alice"
    token = encode({k: v for k, v in base_claims().items() if k != "name"})
    assert tokens.verify(token, KEY, SECRET).name == "alice"


def test_expired() -> None:
    err = refused(mint(ttl_s=60, now=time.time() - 3600), "token_expired")
    assert isinstance(err, tokens.TokenExpired)
    refused(encode(base_claims(exp=int(time.time()) - 1)), "token_expired")


def test_not_before_in_the_future() -> None:
    # minted "an hour from now": nbf (iat - 5 s) is still in the future
    err = refused(mint(now=time.time() + 3600), "token_expired")
    assert "nbf" in str(err)
    refused(encode(base_claims(nbf=int(time.time()) + 60)), "token_expired")


def test_just_minted_token_is_valid_despite_small_clock_skew() -> None:
    # nbf is iat - 5 s, so a verifier whose clock is a little behind still accepts it
    tokens.verify(mint(now=time.time() + 3), KEY, SECRET)


def test_forged_signature() -> None:
    refused(tokens.mint(KEY, "another-secret-0123456789abcdef012345", room="r",
                        identity="mallory"))
    good = mint()
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "instructor"  # privilege escalation with the old signature
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    refused(f"{header}.{forged_payload.decode()}.{sig}")
    refused(f"{header}.{payload}.{sig[:-4]}AAAA" if not sig.endswith("AAAA")
            else f"{header}.{payload}.{sig[:-4]}BBBB")


def test_wrong_algorithm() -> None:
    with warnings.catch_warnings():  # the right secret is short for HS384/HS512
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        for alg in ("HS384", "HS512"):
            refused(encode(base_claims(), algorithm=alg))
    unsigned = jwt.encode(base_claims(), None, algorithm="none")  # type: ignore[arg-type]
    refused(unsigned)


def test_wrong_issuer() -> None:
    refused(tokens.mint("another-key", SECRET, room="maths-7b", identity="alice"))
    refused(encode({k: v for k, v in base_claims().items() if k != "iss"}))


@pytest.mark.parametrize("token", [None, "", 42, b"bytes", "garbage", "a.b.c", "x" * 5000,
                                   ["a.b.c"]])
def test_garbage(token: object) -> None:
    refused(token)


@pytest.mark.parametrize("missing", ["exp", "sub", "room"])
def test_required_claims(missing: str) -> None:
    refused(encode({k: v for k, v in base_claims().items() if k != missing}))


def test_room_must_be_a_non_empty_string() -> None:
    refused(encode(base_claims(room="")))
    refused(encode(base_claims(room=["a", "b"])))


@pytest.mark.parametrize("role", ["admin", "", None, "Instructor"])
def test_wrong_role(role: object) -> None:
    claims = base_claims(role=role)
    if role is None:
        claims["role"] = None
    refused(encode(claims))


def test_mint_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        mint(role="admin")
    with pytest.raises(ValueError):
        mint(room="")
    with pytest.raises(ValueError):
        mint(identity="")


EXPECTED_DEFAULTS = {
    "instructor": Grants(publish=True, subscribe=True, moderate=True, record=True),
    "student": Grants(publish=True, subscribe=True, moderate=False, record=False),
    "observer": Grants(publish=False, subscribe=True, moderate=False, record=False),
}


@pytest.mark.parametrize("role", ROLES)
def test_grants_default_per_role(role: str) -> None:
    assert tokens.verify(mint(role=role), KEY, SECRET).grants == EXPECTED_DEFAULTS[role]
    # a token without grants gets the role's defaults too
    token = encode({k: v for k, v in base_claims(role=role).items() if k != "grants"})
    assert tokens.verify(token, KEY, SECRET).grants == EXPECTED_DEFAULTS[role]
    # and a partial grants object is completed from them
    token = encode(base_claims(role=role, grants={"record": not EXPECTED_DEFAULTS[role].record}))
    g = tokens.verify(token, KEY, SECRET).grants
    assert g.record is not EXPECTED_DEFAULTS[role].record
    assert (g.publish, g.subscribe, g.moderate) == (
        EXPECTED_DEFAULTS[role].publish, EXPECTED_DEFAULTS[role].subscribe,
        EXPECTED_DEFAULTS[role].moderate)


def test_role_defaults_to_student() -> None:
    token = encode({k: v for k, v in base_claims().items() if k != "role"})
    claims = tokens.verify(token, KEY, SECRET)
    assert claims.role == "student" and claims.grants == EXPECTED_DEFAULTS["student"]


def test_explicit_grants_are_kept() -> None:
    muted_student = Grants(publish=False, subscribe=True, moderate=False, record=False)
    claims = tokens.verify(mint(role="student", grants=muted_student), KEY, SECRET)
    assert claims.grants == muted_student
    helper = Grants(publish=True, subscribe=True, moderate=True, record=False)
    assert tokens.verify(mint(role="observer", grants=helper), KEY, SECRET).grants == helper


def test_grants_must_be_an_object() -> None:
    refused(encode(base_claims(grants=["publish"])))
    refused(encode(base_claims(grants="all")))


@pytest.mark.parametrize("value", ["false", 0, 1, None, [True]])
def test_grant_values_must_be_booleans(value: object) -> None:
    # "false" would otherwise read as a truthy string and grant publishing
    refused(encode(base_claims(grants={"publish": value})))


def test_region_claim() -> None:
    """A participant's region (docs/cluster.md): carried when given, absent otherwise, and a
    malformed one refused at minting and at verification."""
    assert tokens.verify(mint(region="eu-north"), KEY, SECRET).region == "eu-north"
    plain = mint()
    assert tokens.verify(plain, KEY, SECRET).region == ""
    assert "region" not in jwt.decode(plain, options={"verify_signature": False})
    with pytest.raises(ValueError, match="region"):
        mint(region="eu north")
    for bad in ("", "x" * 33, "eu/1", 7):
        if bad == "":
            continue  # (an empty claim is the same as none)
        assert "region" in str(refused(encode(base_claims(region=bad))))


@pytest.mark.parametrize("claim", ["relay", "via"])
def test_relay_and_via_claims(claim: str) -> None:
    """A node's claims (docs/cluster.md, "Edge relays"): the node id carried when given,
    absent otherwise, a malformed one refused at minting and at verification."""
    claims = tokens.verify(mint(**{claim: "us-1.b"}), KEY, SECRET)
    assert getattr(claims, claim) == "us-1.b"
    assert getattr(tokens.verify(mint(), KEY, SECRET), claim) == ""
    with pytest.raises(ValueError, match=claim):
        mint(**{claim: "us 1"})
    for bad in ("x" * 65, "us/1", 7, ["us"]):
        assert claim in str(refused(encode(base_claims(**{claim: bad}))))
