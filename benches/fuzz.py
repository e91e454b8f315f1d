"""Coverage-guided fuzzing (atheris, libFuzzer) of every parser that reads outside input.

    .venv/bin/python -m benches.fuzz                      # every target, 10**6 inputs each
    .venv/bin/python -m benches.fuzz --runs 20000 stun    # one target, a short run

Each target is the parser's entry point plus what the server does next with its result,
fed bytes that libFuzzer mutates towards new coverage from a seed corpus of valid inputs.
A target may raise only the errors the server handles for that input (its documented
error types); anything else, or a crash of the interpreter, fails the run. Each target runs
in its own process (libFuzzer exits when done) and prints inputs/s; the summary is one line
per target. ``tests/test_fuzz_smoke.py`` runs every target briefly in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("rtp", "rtcp", "sdp", "stun", "whiteboard", "token", "signalling")
DEFAULT_RUNS = 1_000_000
#: the longest input per target (an SDP offer of a big room is ~10 kB; datagrams < 1500 B)
MAX_LEN = {"sdp": 16384, "signalling": 16384, "token": 2048}


# -- seeds: one or more valid inputs per target ---------------------------------------


def _seeds(target: str) -> list[bytes]:
    import struct

    from sfu import rtcp, stun

    if target == "rtp":
        ext = struct.pack("!HH", 0xBEDE, 2) + bytes([0x10, 0xAA, 0x21, 1, 2, 0, 0, 0])
        return [bytes([0x90, 96]) + struct.pack("!HII", 1, 2, 3) + ext + b"payload",
                bytes([0x80, 111]) + struct.pack("!HII", 7, 960, 99) + b"\x00" * 20]
    if target == "rtcp":
        twcc = (struct.pack("!BBH", 0x80 | 15, 205, 5) + struct.pack("!II", 1, 2)
                + struct.pack("!HHI", 10, 3, (5 << 8) | 1) + struct.pack("!H", 0x2003)
                + bytes([4, 8, 12, 0]))
        return [rtcp.build_rr(1, [rtcp.ReportBlock(2, 0, 0, 100, 3, 0, 0)])
                + rtcp.build_pli(1, 2) + rtcp.build_nack(1, 2, [5, 7, 9]),
                rtcp.build_remb(1, 500_000, [2, 3]), twcc,
                rtcp.build_sr(1, rtcp.ntp_from_unix(1700000000.0), 90000, 10, 1000)
                + rtcp.build_bye([1])]
    if target == "sdp":
        return [(ROOT / "tests" / "sfu" / "fixtures" / name).read_bytes()
                for name in sorted(os.listdir(ROOT / "tests" / "sfu" / "fixtures"))
                if name.endswith(".sdp")] or [_FALLBACK_SDP.encode()]
    if target == "stun":
        return [stun.binding_request(b"t" * 12, "srvUfrag:cli", b"p" * 24, priority=5,
                                     use_candidate=True, controlling=1)]
    if target == "whiteboard":
        from whiteboard import protocol
        awareness = protocol.encode_awareness([protocol.AwarenessEntry(1, 2, '{"u":1}')])
        return [protocol.sync_message(0, b"\x00"), protocol.sync_message(2, b"\x00\x00"),
                protocol.awareness_message(awareness), b"\x03"]
    if target == "token":
        from signalling import tokens
        return [tokens.mint("devkey", "s" * 32, room="r", identity="a", name="A",
                            role="student").encode()]
    if target == "signalling":
        return [json.dumps(m).encode() for m in (
            {"type": "ping", "id": "1"}, {"type": "chat", "text": "hi"},
            {"type": "raise_hand"}, {"type": "set_quality", "trackId": "TR_1",
                                     "quality": "low"},
            {"type": "candidate", "target": "publisher",
             "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"}},
            {"type": "poll_answer", "pollId": "p", "choices": [0]},
            {"type": "offer", "target": "publisher", "sdp": "v=0\r\n"},
        )]
    raise ValueError(target)


_FALLBACK_SDP = ("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
                 "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
                 "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
                 "a=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=rtcp-mux\r\n"
                 "a=sendonly\r\na=rtpmap:111 opus/48000/2\r\n")


# -- targets: parse, then what the server does with the result ------------------------


def _target(name: str) -> Callable[[bytes], None]:

    if name == "rtp":
        from sfu import rtp_header as rh

        id_map = rh.build_id_map({1: 3, 2: 4, 9: 1})

        def rtp(data: bytes) -> None:
            try:
                rh.header_length(data)
                rh.payload_bounds(data)
                rh.extension_ids(data)
                rh.find_extension(data, 1)
                rh.extension_offset(data, 2, 2)
                buf = bytearray(data)
                rh.rewrite_extension_ids(buf, id_map)
                rh.rtx_unwrap(data, 96, 1234)
            except rh.RtpHeaderError:
                pass
        return rtp

    if name == "rtcp":
        from sfu import rtcp, twcc

        def rtcp_target(data: bytes) -> None:
            try:
                for message in rtcp.parse(data):
                    if message.fci:
                        try:
                            twcc.parse_feedback(message.fci)
                        except twcc.TwccError:
                            pass
            except rtcp.RtcpError:
                pass
            try:  # the transport-cc feedback parser on raw bytes as well
                twcc.parse_feedback(data)
            except twcc.TwccError:
                pass
        return rtcp_target

    if name == "sdp":
        from sfu import sdp
        from sfu.negotiation import LocalTransport, answer_publisher, require_transport

        local = LocalTransport("ufrag", "p" * 24, (("sha-256", "AB:CD"),),
                               ("1 1 udp 2130706431 127.0.0.1 7882 typ host",), ice_lite=True)

        def sdp_target(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            try:
                offer = sdp.parse(text)
                require_transport(offer)
                answer_publisher(offer, local)
            except sdp.SdpError:
                pass
        return sdp_target

    if name == "stun":
        from sfu import stun
        from sfu.ice_lite import IceLiteAgent

        agent = IceLiteAgent("srvUfrag", "p" * 24)

        def stun_target(data: bytes) -> None:
            if not stun.looks_like_stun(data) and data[:1] != b"\x00":
                return
            try:
                message = stun.parse(data)
            except stun.StunError:
                return
            agent.handle(data, message, ("udp", 1), ("192.0.2.1", 5000), 0.0)
            if len(agent.paths) >= 8:
                agent.paths.clear()
        return stun_target

    if name == "whiteboard":
        from whiteboard import protocol

        def whiteboard_target(data: bytes) -> None:
            try:
                frame = protocol.parse(data)
                if frame.kind == "awareness":
                    protocol.parse_awareness(frame.payload)
            except protocol.ProtocolError:
                pass
        return whiteboard_target

    if name == "token":
        from signalling import tokens

        def token_target(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            for verify in (lambda: tokens.verify(text, "devkey", "s" * 32),
                           lambda: tokens.verify_operator(text, "devkey", "s" * 32)):
                try:
                    verify()
                except tokens.TokenError:
                    pass
        return token_target

    if name == "signalling":
        return _signalling_target()
    raise ValueError(name)


def _signalling_target() -> Callable[[bytes], None]:
    """A joined participant's signalling session on an in-process server: every fuzzed
    frame must get a documented answer, never ``internal_error`` (which is what the
    session sends when a handler raised something unexpected)."""
    import asyncio

    from sfu.config import Config, EventsConfig, MediaConfig
    from signalling import tokens
    from signalling.app import STATE, create_app
    from signalling.session import SignallingSession

    class Socket:
        closed = False

        async def send_str(self, text: str) -> None:
            pass

        async def close(self, code: int | None = None) -> None:
            self.closed = True

    folder = tempfile.mkdtemp(prefix="sfu-fuzz-")
    loop = asyncio.new_event_loop()
    app = create_app(Config(events=EventsConfig(log_dir=os.path.join(folder, "events")),
                            media=MediaConfig(udp_port=0, tcp_port=0)))
    state = app[STATE]
    ports = state.media.transport_factory.ports  # type: ignore[union-attr]
    loop.run_until_complete(ports.start())
    token = tokens.mint(state.config.auth.api_key, state.config.auth.api_secret, room="fuzz",
                        identity="f", name="F", role="instructor")
    session = SignallingSession(state, Socket())  # type: ignore[arg-type]
    loop.run_until_complete(session._on_join({"token": token}))

    def signalling_target(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if session.participant is None:  # (it left, or was refused): join again
            loop.run_until_complete(session._on_join({"token": token}))
        loop.run_until_complete(session._handle_text(text, len(data)))
        while not session._outbox.empty():  # (the server's writer task sends these)
            session._outbox.get_nowait()
        if state.metrics_errors.get("internal_error", 0):
            raise RuntimeError(f"internal_error on {text[:200]!r}")
    return signalling_target


# -- garbage for a live server (tests/integration/test_fuzz_live.py) ------------------


def mutants(target: str, n: int, seed: int = 1) -> list[bytes]:
    """``n`` inputs made from ``target``'s seeds by libFuzzer-like mutations (bit flips,
    byte runs, truncation, splicing, length fields), deterministic for ``seed``."""
    import random

    rng = random.Random(seed)
    seeds = _seeds(target)
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(6)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[pos:pos] = bytes([rng.randrange(256)]) * rng.randint(1, 32)
            elif op == 2:
                del data[pos:pos + rng.randint(1, 64)]
            elif op == 3:
                other = rng.choice(seeds)
                data[pos:] = other[rng.randrange(len(other) + 1):]
            elif op == 4 and len(data) > 4:
                i = rng.randrange(len(data) - 1)
                data[i:i + 2] = rng.choice((b"\x00\x00", b"\xff\xff", b"\x7f\xff"))
            elif op == 5:
                data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        out.append(bytes(data))
    return out


# -- running ---------------------------------------------------------------------------


def run_one(target: str, runs: int, max_len: int) -> None:
    """In this process: fuzz ``target`` for ``runs`` inputs (libFuzzer exits at the end)."""
    import atheris

    # import everything once (the standard library and third-party modules stay loaded,
    # uninstrumented), then drop our own packages and import them again instrumented:
    # coverage is measured on our code only, and start-up takes a second, not half a minute
    _target(target)
    ours = ("sfu", "signalling", "whiteboard", "classroom", "events", "recorder",
            "scheduler_bridge")
    for name in [n for n in sys.modules if n.split(".")[0] in ours]:
        del sys.modules[name]
    with atheris.instrument_imports(include=list(ours)):
        fn = _target(target)
    corpus = tempfile.mkdtemp(prefix=f"sfu-fuzz-{target}-")
    for i, seed in enumerate(_seeds(target)):
        Path(corpus, f"seed{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-max_len={max_len}",
                   "-print_final_stats=1", "-rss_limit_mb=4096", corpus], fn)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", choices=[*TARGETS, []], default=[])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--max-len", type=int, default=0,
                        help="longest input (default: per target, 1500 for datagrams)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # (the child process)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.runs, args.max_len or MAX_LEN.get(args.one, 1500))
        return 0
    failed = 0
    for target in args.targets or TARGETS:
        start = time.monotonic()
        max_len = args.max_len or MAX_LEN.get(target, 1500)
        proc = subprocess.run([sys.executable, "-m", "benches.fuzz", "--one", target,
                               "--runs", str(args.runs), "--max-len", str(max_len)],
                              cwd=ROOT, capture_output=True, text=True)
        took = time.monotonic() - start
        out = proc.stdout + proc.stderr
        done = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
        cov = re.findall(r"cov: (\d+)", out)
        executed = int(done[-1]) if done else 0
        ok = proc.returncode == 0 and executed >= args.runs
        failed += not ok
        print(f"{target:11s} {'ok' if ok else 'FAILED'}: {executed} inputs in {took:.0f} s "
              f"({executed / took:,.0f}/s), coverage {cov[-1] if cov else '?'} edges",
              flush=True)
        if not ok:
            print(out[-4000:], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
