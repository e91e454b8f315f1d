"""Command line: ``classroom-sfu serve`` starts the server on uvloop; ``token`` mints a token;
``drain`` moves a running node's rooms to the other nodes of its cluster."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import signal
import sys
from typing import Any

from sfu import config as config_mod
from sfu.engine import ENGINE

from . import tokens


def _serve(args: argparse.Namespace) -> int:
    import uvloop
    from aiohttp import web

    from scheduler_bridge import api as schedule_api

    from .app import STATE, create_app

    cfg = config_mod.load(args.config)
    server = cfg.server
    if args.host:
        server = dataclasses.replace(server, host=args.host)
    if args.port is not None:
        server = dataclasses.replace(server, port=args.port)
    if args.dev:
        server = dataclasses.replace(server, dev_mode=True)
    cfg = dataclasses.replace(cfg, server=server)
    if args.ice_address:
        cfg = dataclasses.replace(
            cfg, media=dataclasses.replace(cfg.media, ice_addresses=tuple(args.ice_address)))
    cfg = cfg.validate().with_secret()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    app = create_app(cfg)

    async def main() -> None:
        # our own SIGTERM/SIGINT handling: aiohttp's raises GracefulExit from the signal
        # callback, which skipped on_shutdown (participants were never told) and exited 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, cfg.server.host, cfg.server.port)
        await site.start()
        server_obj: Any = site._server
        sockets = server_obj.sockets if server_obj is not None else []
        port = sockets[0].getsockname()[1] if sockets else cfg.server.port
        url = cfg.server.public_url or f"http://{cfg.server.host}:{port}"
        app[STATE].base_url = url  # what the cluster registry announces
        if schedule_api.BRIDGE in app:  # lesson links carry the URL the server listens on
            app[schedule_api.BRIDGE].set_base_url(url)
        # everything loaded so far (modules, the app) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it (~20 ms each, a pause
        # of the forwarding path; see docs/architecture.md)
        gc.freeze()
        print(f"classroom-sfu listening on {url}/", flush=True)
        if ENGINE.name != "compiled":
            print("compiled forwarding steps not built (pip install . builds them) or "
                  "disabled (SFU_FASTPATH=0): forwarding on the slower Python engine",
                  flush=True)
        if cfg.server.dev_mode:
            print(f"dev mode: open {url}/ and join with the form", flush=True)
        else:
            print(f"API key {cfg.auth.api_key!r}; mint join tokens with "
                  "`classroom-sfu token` or POST /api/tokens", flush=True)
        try:
            await stop.wait()
            print("classroom-sfu stopping: closing rooms", flush=True)
        finally:
            await runner.cleanup()

    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def _has_secret(cfg: config_mod.Config, to: str) -> bool:
    """Whether the API secret is configured (what ``to`` needs); says so if not."""
    if cfg.auth.api_secret:
        return True
    print(f"auth.api_secret (or SFU_AUTH_API_SECRET) must be set to {to}", file=sys.stderr)
    return False


def _token(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    if not _has_secret(cfg, "mint tokens"):
        return 2
    print(tokens.mint(cfg.auth.api_key, cfg.auth.api_secret, room=args.room,
                      identity=args.identity, name=args.name or args.identity, role=args.role,
                      ttl_s=args.ttl, region=args.region or ""))
    return 0


def _drain(args: argparse.Namespace) -> int:
    """Ask a running node to drain (docs/cluster.md): its rooms move to other nodes."""
    import json
    import urllib.error
    import urllib.request

    cfg = config_mod.load(args.config)
    if not _has_secret(cfg, "drain a node"):
        return 2
    host = "127.0.0.1" if cfg.server.host in ("0.0.0.0", "::", "") else cfg.server.host
    url = (args.url or f"http://{host}:{cfg.server.port}").rstrip("/")
    request = urllib.request.Request(url + "/api/cluster/drain", method="POST", data=b"{}",
                                     headers={"Authorization": f"Bearer {cfg.auth.api_secret}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as res:
            result = json.load(res)
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 2
    for moved in result["moved"]:
        print(f"moved {moved['room']} to {moved['node']} ({moved['participants']} "
              "participants)")
    for stayed in result["stayed"]:
        print(f"stayed {stayed['room']}: {stayed['reason']}", file=sys.stderr)
    print(f"node {result['node']} drained: {len(result['moved'])} rooms moved, "
          f"{len(result['stayed'])} stayed; it takes no new rooms (stop it now)")
    return 1 if result["stayed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classroom-sfu")
    parser.add_argument("--config", help="TOML configuration file (see config.sample.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--dev", action="store_true", help="enable the dev join form")
    serve.add_argument("--ice-address", action="append",
                       help="address for ICE host candidates (repeatable)")
    serve.add_argument("-v", "--verbose", action="store_true")
    serve.set_defaults(func=_serve)
    tok = sub.add_parser("token", help="mint a join token")
    tok.add_argument("--room", required=True)
    tok.add_argument("--identity", required=True)
    tok.add_argument("--name")
    tok.add_argument("--role", default="student", choices=["instructor", "student", "observer"])
    tok.add_argument("--ttl", type=int, default=6 * 3600)
    tok.add_argument("--region", help="where the participant is (a cluster places a room "
                     "its join opens in this region)")
    tok.set_defaults(func=_token)
    drain = sub.add_parser("drain", help="move a running node's rooms to other nodes of its "
                           "cluster (then stop it)")
    drain.add_argument("--url", help="the node's signalling URL (default: this config's "
                       "host and port)")
    drain.add_argument("--timeout", type=float, default=60.0)
    drain.set_defaults(func=_drain)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
