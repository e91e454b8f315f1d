"""Print event logs as JSON lines.

    python -m events data/events                      # every event, oldest first
    python -m events --type participant. --room math data/events
    python -m events --follow data/events             # then wait for new ones (tail -f)

Each line is one envelope ``{v, id, type, room, ts, seq, data}`` (``docs/events.md``).
Unreadable records (a torn last record after a crash, a corrupt file) are reported on
stderr and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .filelog import log_files, records


def _matches(env: dict[str, Any], args: argparse.Namespace) -> bool:
    return ((not args.type or str(env.get("type", "")).startswith(args.type))
            and (not args.room or env.get("room") == args.room))


def _line(env: dict[str, Any]) -> str:
    return json.dumps(env, separators=(",", ":"), ensure_ascii=False, default=repr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m events", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="log folders or files")
    ap.add_argument("--type", help="only event types starting with this")
    ap.add_argument("--room", help="only this room")
    ap.add_argument("--follow", action="store_true", help="keep printing new events")
    args = ap.parse_args(argv)
    problems: list[str] = []
    done: dict[Path, int] = {}  # file -> bytes read (for --follow)
    try:
        while True:
            for path in log_files(args.paths):
                # while following, a record still being written is not a problem yet
                for end, env in records(path, None if args.follow else problems,
                                        done.get(path, 0)):
                    done[path] = end
                    if _matches(env, args):
                        print(_line(env), flush=args.follow)
            if not args.follow:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into head
        return 0
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


