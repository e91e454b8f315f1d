// The client's reconnection policy (src/client/reconnect.js), with given times and
// randomness: what the page does after its signalling socket closes, when it retries,
// when it gives up, and how often it restarts a peer connection.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  GIVE_UP_MARGIN_MS,
  ICE_RESTART_MIN_INTERVAL_MS,
  NO_REJOIN,
  RECONNECT_DELAYS_MS,
  RECONNECT_JITTER_MS,
  Reconnector,
  RestartPacer,
  SOCKET_DEAD_MS,
  afterSocketClosed,
  connectionStuck,
  socketSilent,
} from "../src/client/reconnect.js";

test("a closed socket: left when leaving, reconnect once joined, else the session ends", () => {
  assert.equal(afterSocketClosed({ leaving: true, joined: true, failed: false }), "left");
  assert.equal(afterSocketClosed({ leaving: false, joined: true, failed: false }), "reconnect");
  // a fatal error (already shown) ends it even after joining
  assert.equal(afterSocketClosed({ leaving: false, joined: true, failed: true }), "ended");
  // never joined: nothing to resume
  assert.equal(afterSocketClosed({ leaving: false, joined: false, failed: false }), "ended");
});

test("retries follow 0/3/5/7 s, then every 7 s, each with jitter below 500 ms", () => {
  const random = () => 0.5;
  const r = new Reconnector({ windowMs: 120_000, random });
  let now = 10_000;
  const delays = [];
  for (let i = 0; i < 7; i++) {
    const step = r.next(now);
    assert.equal(step.action, "retry");
    assert.equal(step.began, i === 0);
    delays.push(step.delayMs);
    now += step.delayMs + 100; // the attempt fails 100 ms after it started
  }
  const base = [...RECONNECT_DELAYS_MS, 7000, 7000, 7000];
  assert.deepEqual(delays, base.map((d) => d + 0.5 * RECONNECT_JITTER_MS));
  assert.equal(r.attempts, 7);
  assert.ok(r.reconnecting);
});

test("jitter stays within its bound whatever the random source gives", () => {
  for (const x of [0, 0.25, 0.999999]) {
    const r = new Reconnector({ windowMs: 60_000, random: () => x });
    r.next(1000); // 0 + jitter
    const { delayMs } = r.next(1000);
    assert.ok(delayMs >= RECONNECT_DELAYS_MS[1] && delayMs < RECONNECT_DELAYS_MS[1] + RECONNECT_JITTER_MS);
  }
});

test("the page gives up once the next attempt would come after the server's window", () => {
  const windowMs = 20_000;
  const r = new Reconnector({ windowMs, random: () => 0 });
  const lostAt = 50_000;
  for (let i = 0; i < RECONNECT_DELAYS_MS.length; i++) {
    assert.equal(r.next(lostAt).action, "retry"); // past the first delays: 7 s apart now
  }
  // an attempt due exactly at the end of window + margin is still made
  const inside = lostAt + windowMs + GIVE_UP_MARGIN_MS - 7000;
  assert.equal(r.next(inside).action, "retry");
  // the next one (7 s later) would be past it: give up
  const step = r.next(inside + 1);
  assert.deepEqual(step, { began: false, action: "give_up", delayMs: 0 });
});

test("the network coming back makes the next attempt immediate, counted all the same", () => {
  const r = new Reconnector({ windowMs: 20_000, random: () => 0.9 });
  r.next(0);
  r.next(100);
  const step = r.next(200, { immediate: true });
  assert.equal(step.delayMs, 0);
  assert.equal(r.attempts, 3);
});

test("a resume ends the outage and says how long the page was away", () => {
  const r = new Reconnector({ windowMs: 20_000, random: () => 0 });
  r.next(5000);
  r.next(8000);
  assert.equal(r.resumed(9500, 30_000), 4500);
  assert.equal(r.reconnecting, false);
  assert.equal(r.attempts, 0);
  assert.equal(r.windowMs, 30_000);
  // the next outage starts again from the first delay
  const again = r.next(20_000);
  assert.ok(again.began);
  assert.equal(again.delayMs, RECONNECT_DELAYS_MS[0]);
});

test("a silent socket is dead after SOCKET_DEAD_MS; a peer connection stuck when down", () => {
  assert.equal(socketSilent(10_000, 10_000 - SOCKET_DEAD_MS), false);
  assert.equal(socketSilent(10_001, 10_000 - SOCKET_DEAD_MS), true);
  assert.ok(connectionStuck("disconnected") && connectionStuck("failed"));
  assert.ok(!connectionStuck("connected") && !connectionStuck("connecting") && !connectionStuck("new"));
});

test("ICE restarts are paced: one per interval, the first at once", () => {
  const pacer = new RestartPacer();
  assert.ok(pacer.due(0));
  pacer.mark(1000);
  assert.ok(!pacer.due(1000 + ICE_RESTART_MIN_INTERVAL_MS - 1));
  assert.ok(pacer.due(1000 + ICE_RESTART_MIN_INTERVAL_MS));
});

test("errors that a rejoin cannot fix hide the Rejoin button", () => {
  for (const code of ["invalid_token", "token_expired", "room_not_found", "room_closed"]) {
    assert.ok(NO_REJOIN.has(code), code);
  }
  assert.ok(!NO_REJOIN.has("disconnected") && !NO_REJOIN.has("room_full"));
});
