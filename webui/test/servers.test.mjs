import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_REDIRECTS,
  reconnectTarget,
  redirectTarget,
  socketUrl,
} from "../src/client/servers.js";

const page = { href: "https://a.school.example/?room=r" };

test("sockets go to the page's server until a redirect names another", () => {
  assert.equal(socketUrl("", "/ws", page), "wss://a.school.example/ws");
  assert.equal(socketUrl("http://10.0.0.2:8080", "/ws/whiteboard?token=t", page),
    "ws://10.0.0.2:8080/ws/whiteboard?token=t");
  assert.equal(socketUrl("https://b.school.example", "/ws", { href: "http://localhost/" }),
    "wss://b.school.example/ws");
});

test("a redirect is followed to its origin, a few times at most", () => {
  assert.equal(redirectTarget("https://b.school.example/some/path", 0),
    "https://b.school.example");
  assert.equal(redirectTarget("http://10.0.0.2:8080", MAX_REDIRECTS - 1), "http://10.0.0.2:8080");
  assert.equal(redirectTarget("http://10.0.0.2:8080", MAX_REDIRECTS), null);
});

test("a redirect to something that is not an http(s) URL is refused", () => {
  for (const bad of ["javascript:alert(1)", "not a url", "", null, 42, "ftp://x/"]) {
    assert.equal(redirectTarget(bad, 0), null, String(bad));
  }
});

test("reconnection tries the session's node first, then the others in turn", () => {
  const nodes = ["http://a:1/", "http://b:2", "http://c:3"];
  const order = [1, 2, 3, 4, 5].map((n) => reconnectTarget("http://b:2", nodes, n));
  assert.deepEqual(order, ["http://b:2", "http://a:1", "http://c:3", "http://b:2", "http://a:1"]);
  // a single node: always the same one
  assert.equal(reconnectTarget("https://x", [], 3), "https://x");
  assert.equal(reconnectTarget("https://x", ["javascript:1"], 2), "https://x");
});
