// The connection-quality indicator's reading of getStats (src/client/path.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { describePath, pathLabel } from "../src/client/path.js";

function report({ type = "host", protocol = "udp", relayProtocol, rtt = 0.012 } = {}) {
  return new Map(Object.entries({
    T1: { id: "T1", type: "transport", selectedCandidatePairId: "CP1" },
    CP1: { id: "CP1", type: "candidate-pair", localCandidateId: "L1", remoteCandidateId: "R1",
      nominated: true, state: "succeeded", currentRoundTripTime: rtt },
    CP2: { id: "CP2", type: "candidate-pair", localCandidateId: "L2", remoteCandidateId: "R1",
      state: "failed" },
    L1: { id: "L1", type: "local-candidate", candidateType: type, protocol, relayProtocol },
    L2: { id: "L2", type: "local-candidate", candidateType: "host", protocol: "udp" },
    R1: { id: "R1", type: "remote-candidate", candidateType: "host", protocol, port: 7882 },
  }));
}

test("a host UDP pair is direct UDP, with its round-trip time", () => {
  const p = describePath(report());
  assert.deepEqual(p, { kind: "udp", protocol: "udp", candidateType: "host",
    relayProtocol: null, remotePort: 7882, rttMs: 12 });
  assert.deepEqual(pathLabel([p, null]), { kind: "udp", text: "Direct UDP · 12 ms" });
});

test("ICE-TCP and TURN relays are told apart, the worst path is shown", () => {
  const tcp = describePath(report({ protocol: "tcp" }));
  const relay = describePath(report({ type: "relay", relayProtocol: "tls", rtt: 0.05 }));
  assert.equal(tcp.kind, "tcp");
  assert.equal(relay.kind, "relay");
  assert.equal(relay.relayProtocol, "tls");
  assert.deepEqual(pathLabel([tcp, relay]), { kind: "relay", text: "Relayed (TURN/TLS) · 50 ms" });
  assert.equal(pathLabel([tcp, describePath(report())]).kind, "tcp");
});

test("no selected pair yet: nothing to show", () => {
  const stats = report();
  stats.get("T1").selectedCandidatePairId = undefined;
  stats.get("CP1").nominated = false;
  assert.equal(describePath(stats), null);
  assert.equal(pathLabel([null, null]), null);
  // Firefox marks the pair itself
  stats.get("CP1").selected = true;
  assert.equal(describePath(stats).kind, "udp");
  // an array of stats works as well as a Map
  assert.equal(describePath([...report().values()]).kind, "udp");
});
