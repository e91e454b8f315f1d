// The reconnection policy (docs/protocol.md, "Reconnection"), sans-IO: every decision is a
// function of what happened and of the time (and randomness) it is given, so that Node's
// test runner can check it without a browser (webui/test/reconnect.test.mjs). The page's
// timers and sockets act on what it returns (main.js).

// Liveness of the signalling socket: a ping every HEARTBEAT_MS; nothing heard for
// SOCKET_DEAD_MS means the socket is dead even if the browser has not noticed yet.
export const HEARTBEAT_MS = 2000;
export const SOCKET_DEAD_MS = 6000;
// Reconnection attempts after a lost socket (like LiveKit's 0/3/5/7 s), then every 7 s
// while the server's reconnection window lasts; each with up to 500 ms of jitter.
export const RECONNECT_DELAYS_MS = [0, 3000, 5000, 7000];
export const RECONNECT_JITTER_MS = 500;
// A reconnection socket not open by then is abandoned for a fresh attempt (a connect into
// a dead network hangs for minutes, and its retries back off exponentially).
export const RECONNECT_CONNECT_TIMEOUT_MS = 4000;
// The server decides when its window is over; the page stops trying this long after it.
export const GIVE_UP_MARGIN_MS = 5000;
// A peer connection is restarted at most this often.
export const ICE_RESTART_MIN_INTERVAL_MS = 5000;
// A peer connection "disconnected" (or "failed") this long while joined is restarted.
export const CONNECTION_STUCK_MS = 3000;
// Errors after which the same link cannot work again: no "Rejoin" button.
export const NO_REJOIN = new Set(["invalid_token", "token_expired", "room_not_found", "room_closed"]);

// What the page does when its signalling socket has closed (after any queued messages):
// "left" (it was leaving), "reconnect" (it had joined and no error ended the session: the
// server keeps it for its window) or "ended" (never joined, or a fatal error).
export function afterSocketClosed({ leaving, joined, failed }) {
  if (leaving) return "left";
  if (joined && !failed) return "reconnect";
  return "ended";
}

// The socket is dead although the browser still calls it open: nothing heard for too long.
export function socketSilent(nowMs, lastHeardMs) {
  return nowMs - lastHeardMs > SOCKET_DEAD_MS;
}

// A peer connection in this state for CONNECTION_STUCK_MS needs a restart.
export function connectionStuck(connectionState) {
  return connectionState === "disconnected" || connectionState === "failed";
}

// One outage of the signalling socket: when it began, how many attempts were made, and
// when the next one is due. `windowMs`: the server's reconnection window (from `joined`).
export class Reconnector {
  constructor({ windowMs, random = Math.random }) {
    this.windowMs = windowMs;
    this.random = random;
    this.lostAt = 0; // 0: connected
    this.attempts = 0;
  }

  get reconnecting() {
    return this.lostAt !== 0;
  }

  // The socket was lost (or an attempt failed). Returns {began, action, delayMs}: `began`
  // when this starts an outage; action "retry" after delayMs, or "give_up" when the next
  // attempt would come after the server's window. `immediate`: the network is back (a
  // media connection reconnected): try now.
  next(nowMs, { immediate = false } = {}) {
    const began = !this.lostAt;
    if (began) {
      this.lostAt = nowMs || Number.MIN_VALUE; // (never 0: 0 means connected)
      this.attempts = 0;
    }
    const delayMs = immediate
      ? 0
      : RECONNECT_DELAYS_MS[Math.min(this.attempts, RECONNECT_DELAYS_MS.length - 1)] +
        this.random() * RECONNECT_JITTER_MS;
    if (nowMs + delayMs - this.lostAt > this.windowMs + GIVE_UP_MARGIN_MS) {
      return { began, action: "give_up", delayMs: 0 };
    }
    this.attempts += 1;
    return { began, action: "retry", delayMs };
  }

  // The server resumed the session: how long the page was away (ms); the outage is over.
  resumed(nowMs, windowMs = this.windowMs) {
    const away = this.lostAt ? Math.round(nowMs - this.lostAt) : 0;
    this.lostAt = 0;
    this.attempts = 0;
    this.windowMs = windowMs;
    return away;
  }
}

// At most one restart per ICE_RESTART_MIN_INTERVAL_MS for one peer connection: the
// server's request and the page's own "failed" often coincide.
export class RestartPacer {
  constructor(minIntervalMs = ICE_RESTART_MIN_INTERVAL_MS) {
    this.minIntervalMs = minIntervalMs;
    this.lastAt = -Infinity;
  }

  due(nowMs) {
    return nowMs - this.lastAt >= this.minIntervalMs;
  }

  mark(nowMs) {
    this.lastAt = nowMs;
  }
}
