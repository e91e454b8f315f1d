// The connection-quality indicator: which path each peer connection uses (direct UDP, TCP
// to the server's ICE-TCP port, or a TURN relay), read from getStats every few seconds.
// describePath() is pure (tested under Node); PathIndicator polls and draws.

export const PATH_POLL_MS = 2000;

// Worst first: what the indicator shows when the two connections differ.
const RANK = { relay: 0, tcp: 1, udp: 2 };

// The selected candidate pair of one getStats() report (an iterable of stats objects, or a
// Map as browsers return): {kind: "udp"|"tcp"|"relay", protocol, candidateType,
// relayProtocol, rttMs}, or null while no pair is selected.
export function describePath(report) {
  const stats = new Map();
  for (const entry of report.values ? report.values() : report) stats.set(entry.id, entry);
  let pair = null;
  for (const s of stats.values()) {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = stats.get(s.selectedCandidatePairId) || null;
      if (pair) break;
    }
  }
  if (!pair) {
    for (const s of stats.values()) {
      if (s.type === "candidate-pair" && (s.selected || (s.nominated && s.state === "succeeded"))) {
        pair = s;
        break;
      }
    }
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId) || {};
  const remote = stats.get(pair.remoteCandidateId) || {};
  const candidateType = local.candidateType || "unknown";
  const protocol = local.protocol || remote.protocol || "udp";
  const relayProtocol = local.relayProtocol || null;
  const kind = candidateType === "relay" ? "relay" : protocol === "tcp" ? "tcp" : "udp";
  const rtt = pair.currentRoundTripTime;
  return {
    kind,
    protocol,
    candidateType,
    relayProtocol,
    remotePort: remote.port ?? null,
    rttMs: typeof rtt === "number" ? Math.round(rtt * 1000) : null,
  };
}

// The text for one or two described paths (null: not connected yet).
export function pathLabel(paths) {
  const known = paths.filter(Boolean);
  if (!known.length) return null;
  known.sort((a, b) => RANK[a.kind] - RANK[b.kind]);
  const worst = known[0];
  const name = worst.kind === "relay"
    ? `Relayed (TURN${worst.relayProtocol ? "/" + worst.relayProtocol.toUpperCase() : ""})`
    : worst.kind === "tcp" ? "TCP" : "Direct UDP";
  const rtts = known.map((p) => p.rttMs).filter((v) => v !== null);
  return { kind: worst.kind, text: rtts.length ? `${name} · ${Math.max(...rtts)} ms` : name };
}

export class PathIndicator {
  // element: where the label goes (its data-path says udp|tcp|relay, for styling and tests)
  constructor(element) {
    this.element = element;
    this.timer = null;
    this.latest = { publisher: null, subscriber: null };
  }

  start(session) {
    this.stop();
    const poll = async () => {
      if (session.closed) return this.stop();
      const entries = [["publisher", session.publisherPc], ["subscriber", session.subscriberPc]];
      for (const [name, pc] of entries) {
        try {
          this.latest[name] = pc ? describePath(await pc.getStats()) : null;
        } catch {
          this.latest[name] = null; // closed meanwhile
        }
      }
      this.draw();
    };
    poll();
    this.timer = setInterval(poll, PATH_POLL_MS);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.latest = { publisher: null, subscriber: null };
    this.draw();
  }

  draw() {
    if (!this.element) return;
    const label = pathLabel([this.latest.publisher, this.latest.subscriber]);
    if (!label) {
      delete this.element.dataset.path; // (hidden by visibility: the layout never moves)
      return;
    }
    this.element.textContent = label.text;
    this.element.dataset.path = label.kind;
    const detail = (name, p) => p
      ? `${name}: ${p.candidateType} ${p.protocol}${p.relayProtocol ? " via " + p.relayProtocol : ""}`
      : `${name}: not connected`;
    this.element.title = [detail("sending", this.latest.publisher),
      detail("receiving", this.latest.subscriber)].join("\n");
  }
}
