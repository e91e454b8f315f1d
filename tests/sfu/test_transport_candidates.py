"""Remote ICE candidates: garbage raises ValueError/IndexError (-> bad_sdp), never crashes."""

from __future__ import annotations

import random

import pytest
from aiortc.rtcdtlstransport import RTCCertificate

from sfu.transport import MediaTransport

GOOD = "candidate:1 1 udp 2122194687 127.0.0.1 38447 typ host generation 0"


def transport() -> MediaTransport:
    return MediaTransport(RTCCertificate.generateCertificate(), ["127.0.0.1"],
                          controlling=False, on_rtp=lambda d, t: None,
                          on_rtcp=lambda d: None, on_state=lambda s: None)


@pytest.mark.parametrize("line", [
    "", "candidate:", "candidate:garbage", "candidate:1 1 udp",
    "candidate:1 1 udp notanumber 127.0.0.1 1 typ host",
    "candidate:1 1 udp 1 127.0.0.1 notaport typ host",
])
async def test_garbage_candidates_raise_value_errors(line: str) -> None:
    t = transport()
    with pytest.raises((ValueError, IndexError)):
        await t.add_remote_candidate(line)
    await t.close()


async def test_random_candidate_lines_never_raise_anything_else() -> None:
    rng = random.Random(7)
    t = transport()
    words = GOOD.split() + ["typ", "srflx", "raddr", "rport", "::1", "-1", "99999999999", "x"]
    for _ in range(500):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
        try:
            await t.add_remote_candidate(line)
        except (ValueError, IndexError):
            pass
    await t.close()


async def test_good_candidate_after_end_of_candidates_is_accepted_and_ignored() -> None:
    t = transport()
    await t.add_remote_candidate(GOOD)
    await t.add_remote_candidate(None)
    await t.add_remote_candidate(GOOD)  # late: no error
    with pytest.raises(ValueError):
        await t.add_remote_candidate("candidate:bad")  # still validated
    await t.close()


async def test_remote_candidates_are_capped() -> None:
    from sfu.transport import MAX_REMOTE_CANDIDATES

    t = transport()
    for port in range(MAX_REMOTE_CANDIDATES):
        await t.add_remote_candidate(f"candidate:1 1 udp 1 127.0.0.1 {1000 + port} typ host")
    with pytest.raises(ValueError, match="more than"):
        await t.add_remote_candidate("candidate:1 1 udp 1 127.0.0.1 999 typ host")
    await t.close()
