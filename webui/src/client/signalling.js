// The signalling socket of a session (docs/protocol.md): open it, keep it alive with
// pings, run server messages strictly in arrival order (most lead to asynchronous SDP
// work), send, and keep a short log of summarised frames for debugging (window.sfu).

import { HEARTBEAT_MS, socketSilent } from "./reconnect.js";
import { socketUrl } from "./servers.js";

const MESSAGE_LOG_SIZE = 200;

// SDP bodies reduced to their m-lines: [{m, mid, dir, msid}].
export function summarizeSdp(sdp) {
  const out = [];
  let current = null;
  for (const line of String(sdp).split(/\r?\n/)) {
    if (line.startsWith("m=")) {
      current = { m: line.split(" ").slice(0, 2).join(" ") };
      out.push(current);
    } else if (current && line.startsWith("a=mid:")) {
      current.mid = line.slice(6);
    } else if (current && /^a=(sendrecv|sendonly|recvonly|inactive)$/.test(line)) {
      current.dir = line.slice(2);
    } else if (current && line.startsWith("a=msid:")) {
      current.msid = line.slice(7);
    }
  }
  return out;
}

export function logMessage(log, direction, msg) {
  const entry = { t: Math.round(performance.now()), dir: direction, ...msg };
  if (typeof entry.sdp === "string") entry.sdp = summarizeSdp(entry.sdp);
  if (entry.type === "join") entry.token = "…";
  log.push(entry);
  if (log.length > MESSAGE_LOG_SIZE) log.splice(0, log.length - MESSAGE_LOG_SIZE);
}

// Open the signalling socket of session `s`, sending `first` (join or resume) on open.
// Messages go to s.app.handleMessage, the close to s.app.onSocketClosed, both through
// the session's queue. False if no socket could be made.
export function connectSocket(s, first) {
  let ws;
  try {
    ws = new WebSocket(socketUrl(s.server, "/ws", location));
  } catch (e) {
    console.warn("cannot open a WebSocket", e);
    return false;
  }
  s.ws = ws;
  s.lastHeard = performance.now();
  ws.addEventListener("open", () => {
    if (s.ws === ws) send(s, first);
  });
  ws.addEventListener("message", (event) => {
    if (s.ws !== ws || typeof event.data !== "string") return;
    s.lastHeard = performance.now();
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      console.warn("non-JSON frame from server", event.data);
      return;
    }
    logMessage(s.app.hook.messages, "in", msg);
    enqueue(s, () => s.app.handleMessage(s, msg));
  });
  ws.addEventListener("close", (event) => {
    // Run after any queued messages (the server sends `left`/`error` before closing).
    if (s.ws === ws) enqueue(s, () => s.app.onSocketClosed(s, event));
  });
  if (!s.heartbeat) s.heartbeat = setInterval(() => heartbeat(s), HEARTBEAT_MS);
  return true;
}

function heartbeat(s) {
  if (s.closed || !s.ws || s.reconnector.reconnecting) return;
  if (s.ws.readyState !== WebSocket.OPEN) return;
  if (socketSilent(performance.now(), s.lastHeard)) {
    // The browser may take minutes to notice a dead TCP connection: we do not wait.
    console.warn("signalling socket silent: reconnecting");
    const dead = s.ws;
    s.ws = null;
    try {
      dead.close(4000, "silent");
    } catch {
      /* ignore */
    }
    enqueue(s, () => s.app.onSocketClosed(s, { code: 4000, reason: "silent" }));
    return;
  }
  send(s, { type: "ping", id: "hb" });
}

// Run `fn` after everything queued before it (errors are shown, the queue goes on).
export function enqueue(s, fn) {
  s.queue = s.queue.then(fn).catch((e) => {
    console.error("error handling server message", e);
    if (s.app.current(s) && !s.closed) {
      s.app.showError({ code: "client_error", message: String(e && e.message ? e.message : e) });
    }
  });
}

// Send `msg` if the socket is open; false if it is not.
export function send(s, msg) {
  if (s.ws && s.ws.readyState === WebSocket.OPEN) {
    s.ws.send(JSON.stringify(msg));
    logMessage(s.app.hook.messages, "out", msg);
    return true;
  }
  return false;
}
