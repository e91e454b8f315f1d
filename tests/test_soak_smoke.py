"""A short soak (benches/soak.py): participants join, publish, leave and rejoin, lose
their signalling and resume, and mute, against a real server process; once everyone left,
the server's descriptors, sockets, asyncio tasks, media-port routes and transports and rooms
are back where they were. (The 10-minute, 100-participant run and its RSS figure are in
benches/README.md.)"""

from __future__ import annotations

from benches.soak import render, soak


async def test_churn_leaves_nothing_behind() -> None:
    report = await soak(participants=10, seconds=30, sample_s=5, room_size=5)
    print(render(report))
    assert not report.errors, report.errors
    assert {"join", "leave", "resume", "mute"} <= set(report.actions), report.actions
    assert report.samples and max(s.participants for s in report.samples) >= 8
    assert not report.leaks(), render(report)
