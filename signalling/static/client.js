// Browser client for the classroom SFU.  See docs/protocol.md.
//
// Two peer connections per participant:
//   publisher  – we offer, carries our own microphone/camera/screen (sendonly);
//   subscriber – the server offers, carries everyone else's tracks (one m-line per track).
//
// Server messages are processed strictly in arrival order through a promise queue,
// since most of them lead to asynchronous SDP operations.

import { ClassroomPanel } from "./classroom.js";
import { RecordingControl } from "./recording.js";

const $ = (id) => document.getElementById(id);

const ui = {
  status: $("status"),
  roomName: $("room-name"),
  joinPanel: $("join-panel"),
  joinForm: $("join-form"),
  joinRoom: $("join-room"),
  joinName: $("join-name"),
  joinIdentity: $("join-identity"),
  joinRole: $("join-role"),
  joinSubmit: $("join-submit"),
  needLinkPanel: $("need-link-panel"),
  leftPanel: $("left-panel"),
  leftTitle: $("left-title"),
  leftReason: $("left-reason"),
  rejoin: $("rejoin"),
  roomPanel: $("room-panel"),
  tiles: $("tiles"),
  controls: $("controls"),
  mic: $("toggle-mic"),
  camera: $("toggle-camera"),
  screen: $("toggle-screen"),
  leave: $("leave"),
};

const LEAVE_TIMEOUT_MS = 2000;
const MESSAGE_LOG_SIZE = 200;
// Liveness of the signalling socket: a ping every HEARTBEAT_MS; nothing heard for
// SOCKET_DEAD_MS means the socket is dead even if the browser has not noticed yet.
const HEARTBEAT_MS = 2000;
const SOCKET_DEAD_MS = 6000;
// Reconnection attempts after a lost socket (like LiveKit's 0/3/5/7 s), then every 7 s
// while the server's reconnection window lasts; each with up to 500 ms of jitter.
const RECONNECT_DELAYS_MS = [0, 3000, 5000, 7000];
const RECONNECT_JITTER_MS = 500;
// A reconnection socket not open by then is abandoned for a fresh attempt (a connect into
// a dead network hangs for minutes, and its retries back off exponentially).
const RECONNECT_CONNECT_TIMEOUT_MS = 4000;
const ICE_RESTART_MIN_INTERVAL_MS = 5000;
const CONNECTION_STUCK_MS = 3000;

const REASONS = {
  left: "You left the room.",
  removed: "You were removed from the room.",
  replaced: "You joined from another tab or device.",
  room_closed: "The room was closed.",
  disconnected: "The connection to the server was lost.",
  timeout: "The connection was lost for too long.",
  resumed_elsewhere: "This session continued in another connection.",
  server_shutdown: "The server is shutting down.",
};

// ---------------------------------------------------------------------------
// Session state (one per join; reset on every join)

let session = null;
let lastToken = null;

function newSession(token) {
  return {
    token,
    ws: null,
    queue: Promise.resolve(),
    closed: false, // torn down: ignore anything that still arrives
    leaving: false,
    participant: null, // self, from `joined`
    room: null,
    remotes: new Map(), // participantId -> {info, tile, video, stream, caption, ...}
    // publisher side
    publisherPc: null,
    localStream: null,
    localTile: null,
    published: [], // [{transceiver, source, kind, track}]
    pubTracks: new Map(), // mid -> {trackId, kind, source}  (from the publisher answer)
    pubOfferPending: false,
    pubNeedsOffer: false,
    pendingPubCandidates: [], // candidates gathered before the offer went out
    pubOfferSent: false,
    pubOffered: [], // entries of `published` declared in the outstanding offer
    screenBusy: false, // a screen share is being started or stopped
    muted: { microphone: false, camera: false },
    // subscriber side
    subscriberPc: null,
    subTracks: new Map(), // mid -> {trackId, participantId, kind, source}  (from server offers)
    subFallback: new Map(), // mid -> {trackId, participantId, kind} (from track events)
    pausedTracks: new Set(), // trackIds the server paused for lack of downlink bandwidth
    speakers: [], // [{participantId, level}] loudest first
    // reconnection: {room, participantId, token, windowMs} from joined/resumed
    resume: null,
    lostAt: 0, // performance.now() when the socket was lost (0 = connected)
    attempts: 0,
    reconnectTimer: null,
    heartbeat: null,
    lastHeard: 0,
    reconnectingRemotes: new Set(), // participantIds the server says are reconnecting
    pubRestartAt: -Infinity, // performance.now() of the last publisher ICE restart
    subRestartAt: -Infinity, // performance.now() of the last subscriber restart request
    pubCandidateUfrag: null, // ICE generation of the last trickled publisher candidate
  };
}

// ---------------------------------------------------------------------------
// Test/debug hook

const sfu = {
  state: "idle",
  participantId: null,
  lastError: null,
  get publisherPc() {
    return session ? session.publisherPc : null;
  },
  get subscriberPc() {
    return session ? session.subscriberPc : null;
  },
  get room() {
    return session ? session.room : null;
  },
  remoteParticipants() {
    return session && !session.closed ? [...session.remotes.keys()] : [];
  },
  // Current subscriber m-lines: [{mid, trackId, participantId, kind, source, direction, active}].
  subscriptions() {
    if (!session || !session.subscriberPc) return [];
    const out = [];
    for (const t of session.subscriberPc.getTransceivers()) {
      if (t.mid == null) continue;
      const info = subscriptionInfo(t.mid);
      out.push({
        mid: t.mid,
        trackId: info ? info.trackId : null,
        participantId: info ? info.participantId : null,
        kind: t.receiver.track.kind,
        source: info ? info.source || null : null,
        direction: t.currentDirection,
        active: isActive(t) && Boolean(info),
      });
    }
    return out;
  },
  // Our published tracks: [{mid, trackId, kind, source, enabled}].
  publications() {
    if (!session) return [];
    return session.published
      .filter((p) => p.track)
      .map((p) => {
        const mid = p.transceiver.mid;
        const server = mid != null ? session.pubTracks.get(mid) : null;
        return {
          mid,
          trackId: server ? server.trackId : null,
          kind: p.kind,
          source: p.source,
          enabled: p.track.enabled,
        };
      });
  },
  // Recent signalling frames, summarised (SDP bodies reduced to their m-lines), for debugging.
  messages: [],
  // Video tracks the server paused for lack of downlink bandwidth.
  pausedTracks() {
    return session ? [...session.pausedTracks] : [];
  },
  speakers() {
    return session ? session.speakers : [];
  },
  // Remote participants the server reports as reconnecting.
  reconnectingParticipants() {
    return session ? [...session.reconnectingRemotes] : [];
  },
  // How many times this page resumed its session after losing the connection.
  resumes: 0,
  // How many times it restarted ICE on its publisher connection.
  iceRestarts: 0,
  // Ask for a received video at a size: "off" | "low" | "medium" | "high".
  setQuality(trackId, quality) {
    if (session) send(session, { type: "set_quality", trackId, quality });
  },
  join: (token) => join(token),
  leave: () => leave(),
};
window.sfu = sfu;

// The recording indicator and the instructor's button (recording.js).
const recording = new RecordingControl($("rec-indicator"), $("toggle-recording"), {
  send: (msg) => Boolean(session && !session.closed && send(session, msg)),
});

// Hands, reactions, chat and polls: the side panel (classroom.js).
const classroom = new ClassroomPanel($("classroom-panel"), {
  send: (msg) => Boolean(session && !session.closed && send(session, msg)),
  nameOf: (id, fallback) => {
    if (session && session.participant && id === session.participant.id) return "You";
    const r = session && session.remotes.get(id);
    return r ? displayName(r.info) : fallback || id;
  },
});

function summarizeSdp(sdp) {
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

function logMessage(direction, msg) {
  const entry = { t: Math.round(performance.now()), dir: direction, ...msg };
  if (typeof entry.sdp === "string") entry.sdp = summarizeSdp(entry.sdp);
  if (entry.type === "join") entry.token = "…";
  sfu.messages.push(entry);
  if (sfu.messages.length > MESSAGE_LOG_SIZE) sfu.messages.splice(0, sfu.messages.length - MESSAGE_LOG_SIZE);
}

function setState(state) {
  sfu.state = state;
  document.body.dataset.state = state;
}

function setStatus(text, kind = "info") {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

function showError(err) {
  sfu.lastError = err;
  const text = err.message ? `${err.code}: ${err.message}` : err.code;
  setStatus(`Error ${text}`, "error");
}

function showPanel(name) {
  ui.joinPanel.hidden = name !== "join";
  ui.needLinkPanel.hidden = name !== "need-link";
  ui.leftPanel.hidden = name !== "left";
  ui.roomPanel.hidden = name !== "room";
  ui.controls.hidden = name !== "room";
}

// ---------------------------------------------------------------------------
// Start-up

async function main() {
  setState("idle");
  const params = new URLSearchParams(location.search);
  const token = params.get("token");

  let config = { devMode: false };
  try {
    const res = await fetch("/api/config", { headers: { Accept: "application/json" } });
    if (res.ok) config = await res.json();
  } catch (e) {
    console.warn("could not load /api/config", e);
  }

  if (token) {
    join(token);
    return;
  }
  if (config.devMode) {
    ui.joinRoom.value = params.get("room") || ui.joinRoom.value;
    ui.joinName.value = params.get("name") || "";
    ui.joinIdentity.value = "user-" + randomId(6);
    if (params.get("role")) ui.joinRole.value = params.get("role");
    showPanel("join");
    setStatus("Choose a room and a name to join.");
    ui.joinName.focus();
  } else {
    showPanel("need-link");
    setStatus("You need a join link to enter a classroom.");
  }
}

function randomId(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return [...bytes].map((b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
}

ui.joinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    room: ui.joinRoom.value.trim(),
    name: ui.joinName.value.trim(),
    identity: ui.joinIdentity.value.trim() || "user-" + randomId(6),
    role: ui.joinRole.value,
  };
  if (!body.room || !body.name) {
    setStatus("Room and display name are required.", "error");
    return;
  }
  ui.joinSubmit.disabled = true;
  setStatus("Getting a join token…");
  try {
    const res = await fetch("/api/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok || !data || typeof data.token !== "string") {
      const code = (data && (data.code || data.error)) || `http_${res.status}`;
      const message = (data && data.message) || res.statusText || "could not get a token";
      showError({ code, message, fatal: false });
      return;
    }
    join(data.token);
  } catch (e) {
    showError({ code: "network_error", message: String(e), fatal: false });
  } finally {
    ui.joinSubmit.disabled = false;
  }
});

// ---------------------------------------------------------------------------
// Join / leave

function join(token) {
  if (session && !session.closed) teardown();
  lastToken = token;
  session = newSession(token);
  const s = session;
  sfu.lastError = null;
  sfu.participantId = null;
  sfu.messages = [];
  setState("joining");
  setStatus("Joining…");
  showPanel("room");
  ui.tiles.replaceChildren();
  resetControls();

  if (!connectSocket(s, { type: "join", token })) {
    fail(s, { code: "network_error", message: "cannot open a WebSocket", fatal: true });
  }
}

// Open the signalling socket of session `s`, sending `first` (join or resume) on open.
function connectSocket(s, first) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let ws;
  try {
    ws = new WebSocket(`${scheme}://${location.host}/ws`);
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
    logMessage("in", msg);
    enqueue(s, () => handleMessage(s, msg));
  });
  ws.addEventListener("close", (event) => {
    // Run after any queued messages (the server sends `left`/`error` before closing).
    if (s.ws === ws) enqueue(s, () => onSocketClosed(s, event));
  });
  if (!s.heartbeat) s.heartbeat = setInterval(() => heartbeat(s), HEARTBEAT_MS);
  return true;
}

function heartbeat(s) {
  if (s.closed || !s.ws || s.lostAt) return;
  if (s.ws.readyState !== WebSocket.OPEN) return;
  if (performance.now() - s.lastHeard > SOCKET_DEAD_MS) {
    // The browser may take minutes to notice a dead TCP connection: we do not wait.
    console.warn("signalling socket silent for", SOCKET_DEAD_MS, "ms: reconnecting");
    const dead = s.ws;
    s.ws = null;
    try {
      dead.close(4000, "silent");
    } catch {
      /* ignore */
    }
    enqueue(s, () => onSocketClosed(s, { code: 4000, reason: "silent" }));
    return;
  }
  send(s, { type: "ping", id: "hb" });
}

function enqueue(s, fn) {
  s.queue = s.queue.then(fn).catch((e) => {
    console.error("error handling server message", e);
    if (s === session && !s.closed) {
      showError({ code: "client_error", message: String(e && e.message ? e.message : e) });
    }
  });
}

function send(s, msg) {
  if (s.ws && s.ws.readyState === WebSocket.OPEN) {
    s.ws.send(JSON.stringify(msg));
    logMessage("out", msg);
    return true;
  }
  return false;
}

function onSocketClosed(s, event) {
  if (s.closed || s !== session) return;
  if (s.leaving) {
    finishLeft(s, "left");
    return;
  }
  if (s.resume && sfu.state !== "error") {
    // Joined before: the server keeps us for its reconnection window; resume.
    startReconnecting(s);
    return;
  }
  // Closed without `left`: a fatal error (already shown) or a lost connection.
  teardown();
  if (sfu.state !== "error") {
    const err = {
      code: "disconnected",
      message: `connection closed (${event.code}${event.reason ? " " + event.reason : ""})`,
      fatal: true,
    };
    showError(err);
    setState("error");
  }
  showLeftPanel(sfu.state === "error" ? "Disconnected" : "You left", errorText(sfu.lastError));
}

// ---------------------------------------------------------------------------
// Reconnection (docs/protocol.md, "Reconnection")

function startReconnecting(s, now = false) {
  s.ws = null;
  if (!s.lostAt) {
    s.lostAt = performance.now();
    s.attempts = 0;
    setState("reconnecting");
    setStatus("Connection lost. Reconnecting…", "warn");
  }
  const delay = now
    ? 0
    : RECONNECT_DELAYS_MS[Math.min(s.attempts, RECONNECT_DELAYS_MS.length - 1)] +
      Math.random() * RECONNECT_JITTER_MS;
  // The server decides when the window is over; stop trying a little after that.
  if (performance.now() + delay - s.lostAt > s.resume.windowMs + 5000) {
    giveUp(s);
    return;
  }
  s.attempts += 1;
  clearTimeout(s.reconnectTimer);
  s.reconnectTimer = setTimeout(() => {
    if (s.closed || s !== session) return;
    const r = s.resume;
    const first = { type: "resume", room: r.room, participantId: r.participantId, resumeToken: r.token };
    if (!connectSocket(s, first)) {
      startReconnecting(s);
      return;
    }
    const ws = s.ws;
    setTimeout(() => {
      if (s.ws !== ws || s.closed || ws.readyState === WebSocket.OPEN) return;
      s.ws = null; // its events are ignored from now on
      try {
        ws.close();
      } catch {
        /* ignore */
      }
      startReconnecting(s);
    }, RECONNECT_CONNECT_TIMEOUT_MS);
  }, delay);
}

// A media connection came back while we wait between attempts: the network is back, try now.
function networkBack(s) {
  if (s.lostAt && !s.ws && !s.closed && s === session) startReconnecting(s, true);
}

// What a later `resume` needs, from `joined` or `resumed`.
function resumeInfo(msg) {
  return {
    room: msg.room,
    participantId: msg.participant.id,
    token: msg.resumeToken,
    windowMs: msg.reconnectWindowMs,
  };
}

function giveUp(s) {
  const err = {
    code: "disconnected",
    message: "the connection was lost for longer than the reconnection window",
    fatal: true,
  };
  fail(s, err);
}

function onResumed(s, msg) {
  const away = s.lostAt ? Math.round(performance.now() - s.lostAt) : 0;
  s.lostAt = 0;
  s.attempts = 0;
  s.participant = msg.participant;
  s.resume = resumeInfo(msg);
  sfu.resumes += 1;
  setState("joined");
  setStatus(`Reconnected after ${(away / 1000).toFixed(1)} s.`);
  // Messages sent while we were away are lost: take the room as the server has it now.
  const present = new Set((msg.participants || []).map((p) => p.id));
  for (const id of [...s.remotes.keys()]) if (!present.has(id)) removeRemote(s, id);
  s.reconnectingRemotes.clear();
  for (const p of msg.participants || []) {
    addRemote(s, p);
    setRemoteReconnecting(s, p.id, p.state === "reconnecting");
  }
  startClassroom(msg);
  // Connections still down after the resume get restarted if they do not recover.
  for (const [pc, restart] of [
    [s.publisherPc, () => restartPublisherIce(s)],
    [s.subscriberPc, () => restartSubscriberIce(s)],
  ]) {
    if (pc) watchConnection(s, pc, restart);
  }
  // A publisher offer whose answer was lost: offer again.
  const pc = s.publisherPc;
  if (s.pubOfferPending && pc && pc.signalingState === "have-local-offer") {
    send(s, { type: "offer", target: "publisher", sdp: pc.localDescription.sdp, tracks: s.pubOffered.map((p) => ({ mid: p.transceiver.mid, source: p.source })) });
  }
}

// New ICE credentials on the publisher connection (the server answers with a new transport
// and DTLS certificate): for a media path that died while signalling survived or resumed.
async function restartPublisherIce(s) {
  const pc = s.publisherPc;
  if (!pc || s.closed) return;
  // one restart at a time: the server's request and our own "failed" often coincide
  if (performance.now() - s.pubRestartAt < ICE_RESTART_MIN_INTERVAL_MS) return;
  s.pubRestartAt = performance.now();
  sfu.iceRestarts += 1;
  pc.restartIce();
  await negotiatePublisher(s);
}

// The server offers on the subscriber connection: it restarts it (new transport, new offer).
function restartSubscriberIce(s) {
  if (s.closed || performance.now() - s.subRestartAt < ICE_RESTART_MIN_INTERVAL_MS) return;
  if (send(s, { type: "restart_ice", target: "subscriber" })) s.subRestartAt = performance.now();
}

// A connection that stays "disconnected" (or "failed") for CONNECTION_STUCK_MS while we are
// joined is restarted: ICE alone does not always recover a path after an outage, and a
// "failed" event may never come (Chrome waits ~30 s for it).
function watchConnection(s, pc, restart) {
  if (pc.connectionState !== "disconnected" && pc.connectionState !== "failed") return;
  setTimeout(() => {
    if (s.closed || s !== session || sfu.state !== "joined") return;
    if (pc.connectionState === "disconnected" || pc.connectionState === "failed") restart();
  }, CONNECTION_STUCK_MS);
}

function setRemoteReconnecting(s, participantId, reconnecting) {
  if (reconnecting) s.reconnectingRemotes.add(participantId);
  else s.reconnectingRemotes.delete(participantId);
  const r = s.remotes.get(participantId);
  if (r) r.tile.classList.toggle("reconnecting", reconnecting);
}

function errorText(err) {
  if (!err) return "";
  return err.message ? `${err.code}: ${err.message}` : err.code;
}

function leave() {
  const s = session;
  if (!s || s.closed) return;
  s.leaving = true;
  setStatus("Leaving…");
  if (!send(s, { type: "leave" })) {
    finishLeft(s, "left");
    return;
  }
  // Stop sending media right away; wait (briefly) for the server's `left`.
  stopLocalMedia(s);
  setTimeout(() => {
    if (session === s && !s.closed) finishLeft(s, "left");
  }, LEAVE_TIMEOUT_MS);
}

function finishLeft(s, reason) {
  if (s.closed) return;
  teardown();
  setState("left");
  setStatus(REASONS[reason] || `Left the room (${reason}).`);
  showLeftPanel(reason === "left" ? "You left" : "Session ended", REASONS[reason] || reason);
}

const NO_REJOIN = new Set(["invalid_token", "token_expired", "room_not_found", "room_closed"]);

function showLeftPanel(title, reason) {
  ui.leftTitle.textContent = title;
  ui.leftReason.textContent = reason || "";
  const err = sfu.state === "error" ? sfu.lastError : null;
  ui.rejoin.hidden = !lastToken || Boolean(err && NO_REJOIN.has(err.code));
  showPanel("left");
  ui.tiles.replaceChildren();
  if (!ui.rejoin.hidden) ui.rejoin.focus();
}

function fail(s, err) {
  showError(err);
  setState("error");
  if (s) {
    const wasJoined = Boolean(s.participant);
    teardown();
    showLeftPanel(wasJoined ? "Disconnected" : "Could not join", errorText(err));
  }
}

function stopLocalMedia(s) {
  if (s.localStream) {
    for (const track of s.localStream.getTracks()) track.stop();
  }
  for (const p of s.published) if (p.track) p.track.stop();
}

function teardown() {
  const s = session;
  if (!s || s.closed) return;
  s.closed = true;
  classroom.stop();
  recording.stop();
  stopWhiteboard();
  clearInterval(s.heartbeat);
  clearTimeout(s.reconnectTimer);
  stopLocalMedia(s);
  for (const pc of [s.publisherPc, s.subscriberPc]) {
    if (pc) {
      pc.onicecandidate = null;
      pc.ontrack = null;
      pc.close();
    }
  }
  if (s.ws && s.ws.readyState <= WebSocket.OPEN) {
    try {
      s.ws.close(1000, "bye");
    } catch {
      /* ignore */
    }
  }
  for (const r of s.remotes.values()) {
    r.video.srcObject = null;
    if (r.screen) r.screen.video.srcObject = null;
  }
  s.remotes.clear();
  if (s.localTile) s.localTile.video.srcObject = null;
  resetControls();
}

ui.leave.addEventListener("click", () => leave());
ui.rejoin.addEventListener("click", () => {
  if (lastToken) join(lastToken);
});
window.addEventListener("pagehide", () => {
  if (session && !session.closed) {
    send(session, { type: "leave" });
    teardown();
  }
});

// ---------------------------------------------------------------------------
// Server messages

async function handleMessage(s, msg) {
  if (s.closed || s !== session) return;
  if (classroom.handle(msg)) return;
  if (recording.handle(msg)) return;
  switch (msg.type) {
    case "joined":
      return onJoined(s, msg);
    case "resumed":
      return onResumed(s, msg);
    case "restart_ice":
      if (msg.target === "publisher") return restartPublisherIce(s);
      return;
    case "participant_reconnecting":
    case "participant_resumed":
      setRemoteReconnecting(s, msg.participantId, msg.type === "participant_reconnecting");
      return;
    case "answer":
      if (msg.target === "publisher") return onPublisherAnswer(s, msg);
      console.warn("answer for unexpected target", msg.target);
      return;
    case "offer":
      if (msg.target === "subscriber") return onSubscriberOffer(s, msg);
      console.warn("offer for unexpected target", msg.target);
      return;
    case "candidate":
      return onRemoteCandidate(s, msg);
    case "participant_joined":
      addRemote(s, msg.participant);
      return;
    case "participant_left":
      s.reconnectingRemotes.delete(msg.participantId);
      removeRemote(s, msg.participantId);
      return;
    case "track_published":
      if (msg.track) noteRemoteTrack(s, msg.track);
      return;
    case "track_unpublished":
      onTrackUnpublished(s, msg.trackId, msg.participantId);
      return;
    case "track_muted":
      onTrackMuted(s, msg);
      return;
    case "track_paused":
    case "track_resumed":
      onTrackPaused(s, msg.trackId, msg.type === "track_paused");
      return;
    case "publisher_layers":
      return onPublisherLayers(s, msg);
    case "speakers":
      onSpeakers(s, msg.speakers || []);
      return;
    case "error":
      return onError(s, msg);
    case "left":
      finishLeft(s, msg.reason || "left");
      return;
    case "pong":
      return;
    default:
      console.debug("ignoring message", msg.type);
  }
}

function onJoined(s, msg) {
  s.participant = msg.participant;
  s.room = msg.room;
  s.resume = resumeInfo(msg);
  sfu.participantId = msg.participant.id;
  setState("joined");
  ui.roomName.textContent = msg.room ? `Room ${msg.room}` : "";
  const who = msg.participant.name || msg.participant.identity || msg.participant.id;
  setStatus(`Joined as ${who} (${msg.participant.role}).`);
  addLocalTile(s);
  for (const p of msg.participants || []) {
    addRemote(s, p);
    if (p.state === "reconnecting") setRemoteReconnecting(s, p.id, true);
  }
  startClassroom(msg);
  if (msg.participant.role !== "observer") {
    // Not awaited: subscriber offers must not wait for the camera prompt.
    startPublishing(s).catch((e) => {
      console.error("publishing failed", e);
      if (!s.closed) showError({ code: "media_error", message: String(e.message || e) });
    });
  }
}

function startClassroom(msg) {
  classroom.start({ selfId: msg.participant.id, role: msg.participant.role,
    hands: msg.hands || [], chat: msg.chat || [], polls: msg.polls || [] });
  recording.start({ role: msg.participant.role, recording: msg.recording });
  startWhiteboard(session, msg.participant);
}

// The whiteboard (webui/src/whiteboard.js, bundled by scripts/setup.sh): loaded at the
// first join, kept across resumes (its socket reconnects on its own), dropped on leaving.
let whiteboard = null;
async function startWhiteboard(s, participant) {
  if (whiteboard || !s || s.closed) return;
  const root = $("whiteboard-panel");
  let mod;
  try {
    mod = await import("./whiteboard.bundle.js");
  } catch (e) {
    console.error("whiteboard not available", e);
    root.hidden = false;
    root.textContent = "The whiteboard is not built on this server (scripts/setup.sh builds it).";
    return;
  }
  if (s !== session || s.closed || whiteboard) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  whiteboard = mod.mountWhiteboard(root, {
    url: `${scheme}://${location.host}/ws/whiteboard?token=${encodeURIComponent(s.token)}&control=1`,
    role: participant.role,
    name: participant.name || participant.identity || participant.id,
  });
  sfu.whiteboard = whiteboard;
}

function stopWhiteboard() {
  if (!whiteboard) return;
  whiteboard.destroy();
  whiteboard = null;
  sfu.whiteboard = null;
}

function onError(s, msg) {
  const err = {
    code: msg.code || "error",
    message: msg.message || "",
    fatal: Boolean(msg.fatal),
    ref: msg.ref,
  };
  if (err.fatal) {
    fail(s, err);
    return;
  }
  showError(err);
  if (err.ref === "offer" && s.pubOfferPending) return onPublisherOfferRefused(s);
}

async function onPublisherOfferRefused(s) {
  // Our publisher offer was refused: roll back so we can offer again later.
  const pc = s.publisherPc;
  if (pc && pc.signalingState === "have-local-offer") {
    await pc.setLocalDescription({ type: "rollback" }).catch((e) => console.warn(e));
  }
  s.pubOfferPending = false;
  if (s.closed) return;
  // A screen share that was in the refused offer is not published: do not keep
  // capturing the screen while the button claims it is shared.
  for (const p of s.pubOffered) {
    if (p.source === "screen" && p.track && !serverTrackId(s, p)) {
      await releaseScreen(s, p);
    }
  }
  s.pubOffered = [];
  // Changes requested while the refused offer was outstanding still need an offer.
  if (s.pubNeedsOffer) await negotiatePublisher(s);
}

async function onRemoteCandidate(s, msg) {
  const pc = msg.target === "publisher" ? s.publisherPc : s.subscriberPc;
  if (!pc || !pc.remoteDescription) return; // the SDP carries the server's candidates anyway
  try {
    await pc.addIceCandidate(msg.candidate || null);
  } catch (e) {
    console.warn("addIceCandidate failed", e);
  }
}

// ---------------------------------------------------------------------------
// Publishing

function createPublisherPc(s) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  pc.onicecandidate = (event) => {
    let c;
    if (event.candidate && event.candidate.candidate) {
      c = event.candidate.toJSON();
      s.pubCandidateUfrag = c.usernameFragment || null;
    } else {
      // end of this ICE generation's candidates, tagged with its ufrag so that the server
      // can tell a late one from before an ICE restart
      c = s.pubCandidateUfrag ? { candidate: "", usernameFragment: s.pubCandidateUfrag } : null;
    }
    if (s.pubOfferSent) send(s, { type: "candidate", target: "publisher", candidate: c });
    else s.pendingPubCandidates.push(c);
  };
  pc.onconnectionstatechange = () => {
    document.body.dataset.publisher = pc.connectionState;
    if (pc.connectionState === "connected") networkBack(s);
    if (pc.connectionState === "failed" && !s.closed) {
      showError({ code: "ice_failed", message: "could not send media to the server; restarting" });
      restartPublisherIce(s);
    }
    watchConnection(s, pc, () => restartPublisherIce(s));
  };
  return pc;
}

// Camera capture size and simulcast from the page URL: ?video=640x360&simulcast=0
const pageParams = new URLSearchParams(location.search);
const SIMULCAST = pageParams.get("simulcast") !== "0";
const VIDEO_SIZE = (pageParams.get("video") || "1280x720").split("x").map(Number);
// Three layers, lowest first (the server takes the a=simulcast order as lowest first).
const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

async function getLocalMedia() {
  const video = { width: { ideal: VIDEO_SIZE[0] }, height: { ideal: VIDEO_SIZE[1] } };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch (e) {
    console.warn("audio+video failed, trying separately", e);
  }
  const stream = new MediaStream();
  for (const kind of ["audio", "video"]) {
    try {
      const one = await navigator.mediaDevices.getUserMedia({ [kind]: true });
      for (const t of one.getTracks()) stream.addTrack(t);
    } catch (e) {
      console.warn(`no ${kind}`, e);
    }
  }
  if (stream.getTracks().length === 0) throw new Error("no camera or microphone available");
  return stream;
}

async function startPublishing(s) {
  const stream = await getLocalMedia();
  if (s.closed || s.leaving) {
    for (const t of stream.getTracks()) t.stop();
    return;
  }
  s.localStream = stream;
  s.publisherPc = createPublisherPc(s);
  for (const track of stream.getTracks()) {
    const source = track.kind === "audio" ? "microphone" : "camera";
    const init = { direction: "sendonly", streams: [stream] };
    if (track.kind === "video" && SIMULCAST) init.sendEncodings = SIMULCAST_ENCODINGS;
    const transceiver = s.publisherPc.addTransceiver(track, init);
    s.published.push({ transceiver, source, kind: track.kind, track, sentMuted: false });
  }
  setLocalPreview(s, stream);
  ui.mic.disabled = !stream.getAudioTracks().length;
  ui.camera.disabled = !stream.getVideoTracks().length;
  ui.screen.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  await negotiatePublisher(s);
}

async function negotiatePublisher(s) {
  const pc = s.publisherPc;
  if (!pc || s.closed) return;
  if (s.pubOfferPending) {
    s.pubNeedsOffer = true;
    return;
  }
  s.pubNeedsOffer = false;
  s.pubOfferPending = true;
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
  } catch (e) {
    // Never leave the flag set: every later change would wait for an answer forever.
    s.pubOfferPending = false;
    throw e;
  }
  if (s.closed) return;
  const tracks = [];
  s.pubOffered = [];
  for (const p of s.published) {
    const t = p.transceiver;
    if (t.mid == null || !p.track || t.direction !== "sendonly") continue;
    tracks.push({ mid: t.mid, source: p.source });
    s.pubOffered.push(p);
  }
  send(s, { type: "offer", target: "publisher", sdp: pc.localDescription.sdp, tracks });
  if (!s.pubOfferSent) {
    s.pubOfferSent = true;
    for (const c of s.pendingPubCandidates.splice(0)) {
      send(s, { type: "candidate", target: "publisher", candidate: c });
    }
  }
}

async function onPublisherAnswer(s, msg) {
  const pc = s.publisherPc;
  if (!pc || pc.signalingState !== "have-local-offer") {
    console.warn("unexpected publisher answer in state", pc && pc.signalingState);
    return;
  }
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  } catch (e) {
    // Unusable answer: go back to stable so that later changes can be offered.
    s.pubOfferPending = false;
    if (pc.signalingState === "have-local-offer") {
      await pc.setLocalDescription({ type: "rollback" }).catch((err) => console.warn(err));
    }
    throw e;
  }
  if (s.closed) return;
  s.pubTracks.clear();
  for (const t of msg.tracks || []) s.pubTracks.set(t.mid, t);
  s.pubOfferPending = false;
  // Tell the server about tracks the user muted before their ids were known.
  for (const p of s.published) {
    if (!p.track || p.sentMuted === !p.track.enabled) continue;
    const id = serverTrackId(s, p);
    if (id) {
      send(s, { type: "mute", trackId: id, muted: !p.track.enabled });
      p.sentMuted = !p.track.enabled;
    }
  }
  if (s.pubNeedsOffer) await negotiatePublisher(s);
}

function serverTrackId(s, p) {
  const mid = p.transceiver.mid;
  const info = mid != null ? s.pubTracks.get(mid) : null;
  return info ? info.trackId : null;
}

function setSourceMuted(s, source, muted) {
  const p = s.published.find((x) => x.source === source && x.track);
  if (!p) return;
  p.track.enabled = !muted;
  const id = serverTrackId(s, p);
  if (id) {
    send(s, { type: "mute", trackId: id, muted });
    p.sentMuted = muted;
  }
  updateLocalIndicators(s);
}

ui.mic.addEventListener("click", () => {
  const s = session;
  if (!s || s.closed) return;
  const muted = ui.mic.getAttribute("aria-pressed") !== "true";
  setSourceMuted(s, "microphone", muted);
  ui.mic.setAttribute("aria-pressed", String(muted));
  ui.mic.textContent = muted ? "Unmute mic" : "Mute mic";
});

ui.camera.addEventListener("click", () => {
  const s = session;
  if (!s || s.closed) return;
  const muted = ui.camera.getAttribute("aria-pressed") !== "true";
  setSourceMuted(s, "camera", muted);
  ui.camera.setAttribute("aria-pressed", String(muted));
  ui.camera.textContent = muted ? "Start camera" : "Stop camera";
});

ui.screen.addEventListener("click", async () => {
  const s = session;
  if (!s || s.closed || s.leaving || !s.publisherPc) return;
  // One start/stop at a time: a second click while the picker is open would
  // otherwise add a second screen transceiver (refused as too_many_tracks).
  if (s.screenBusy) return;
  s.screenBusy = true;
  try {
    const active = s.published.find((p) => p.source === "screen" && p.track);
    if (active) await stopScreenShare(s);
    else await startScreenShare(s);
  } finally {
    s.screenBusy = false;
  }
});

async function startScreenShare(s) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    if (e.name !== "NotAllowedError" && e.name !== "AbortError") {
      showError({ code: "media_error", message: String(e.message || e) });
    }
    return;
  }
  if (s.closed || s.leaving || s !== session) {
    for (const t of stream.getTracks()) t.stop();
    return;
  }
  for (const t of stream.getAudioTracks()) t.stop();
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  track.addEventListener("ended", () => {
    if (!s.closed) stopScreenShare(s).catch((e) => console.warn("stopping the share", e));
  });
  // Reuse a transceiver left over from an earlier share, otherwise add one.
  let entry = s.published.find((p) => p.source === "screen" && !p.track);
  if (entry) {
    entry.track = track;
    entry.sentMuted = false;
    await entry.transceiver.sender.replaceTrack(track);
    if (entry.track !== track) return; // ended (and released) meanwhile
    entry.transceiver.direction = "sendonly";
  } else {
    const transceiver = s.publisherPc.addTransceiver(track, { direction: "sendonly" });
    entry = { transceiver, source: "screen", kind: "video", track, sentMuted: false };
    s.published.push(entry);
  }
  if (s.closed || entry.track !== track) return; // left, or ended meanwhile
  ui.screen.setAttribute("aria-pressed", "true");
  ui.screen.textContent = "Stop sharing";
  await negotiatePublisher(s);
}

// Stop capturing and stop sending on the screen transceiver (no renegotiation).
async function releaseScreen(s, entry) {
  if (entry.track) entry.track.stop();
  entry.track = null;
  if (s === session) {
    ui.screen.setAttribute("aria-pressed", "false");
    ui.screen.textContent = "Share screen";
  }
  if (s.closed) return false;
  await entry.transceiver.sender.replaceTrack(null);
  entry.transceiver.direction = "inactive";
  return true;
}

async function stopScreenShare(s) {
  const entry = s.published.find((p) => p.source === "screen" && p.track);
  if (!entry) return;
  if (await releaseScreen(s, entry)) await negotiatePublisher(s);
}

function resetControls() {
  for (const [button, label] of [
    [ui.mic, "Mute mic"],
    [ui.camera, "Stop camera"],
    [ui.screen, "Share screen"],
  ]) {
    button.disabled = true;
    button.setAttribute("aria-pressed", "false");
    button.textContent = label;
  }
}

// ---------------------------------------------------------------------------
// Subscribing

function createSubscriberPc(s) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  pc.onicecandidate = (event) => {
    const c = event.candidate && event.candidate.candidate ? event.candidate.toJSON() : null;
    send(s, { type: "candidate", target: "subscriber", candidate: c });
  };
  pc.ontrack = (event) => {
    const mid = event.transceiver ? event.transceiver.mid : null;
    if (mid == null) return;
    const stream = event.streams && event.streams[0];
    s.subFallback.set(mid, {
      trackId: event.track.id,
      participantId: stream ? stream.id : null,
      kind: event.track.kind,
    });
  };
  pc.onconnectionstatechange = () => {
    document.body.dataset.subscriber = pc.connectionState;
    if (pc.connectionState === "connected") networkBack(s);
    if (pc.connectionState === "failed" && !s.closed) {
      showError({ code: "ice_failed", message: "could not receive media from the server; restarting" });
      restartSubscriberIce(s);
    }
    watchConnection(s, pc, () => restartSubscriberIce(s));
  };
  return pc;
}

async function onSubscriberOffer(s, msg) {
  if (!s.subscriberPc) s.subscriberPc = createSubscriberPc(s);
  const pc = s.subscriberPc;
  for (const t of msg.tracks || []) {
    if (t && t.mid != null) s.subTracks.set(String(t.mid), t);
  }
  await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  if (s.closed) return;
  send(s, { type: "answer", target: "subscriber", sdp: pc.localDescription.sdp });
  // Forget what the server no longer sends, so recycled m-lines get fresh info.
  for (const t of pc.getTransceivers()) {
    if (t.mid != null && !isActive(t)) {
      s.subTracks.delete(t.mid);
      s.subFallback.delete(t.mid);
    }
  }
  reconcileSubscriptions(s);
}

function isActive(transceiver) {
  const dir = transceiver.currentDirection;
  return !transceiver.stopped && (dir === "recvonly" || dir === "sendrecv");
}

function subscriptionInfo(mid) {
  const s = session;
  if (!s) return null;
  const info = s.subTracks.get(mid);
  if (info && info.participantId) return info;
  const fb = s.subFallback.get(mid);
  if (fb && fb.participantId) return { ...fb, ...(info || {}), participantId: fb.participantId };
  return info || null;
}

// Put each active receiver track into its participant's tile stream, and take
// inactive or unpublished ones out.  Idempotent.
function reconcileSubscriptions(s) {
  const pc = s.subscriberPc;
  if (!pc || s.closed) return;
  for (const t of pc.getTransceivers()) {
    if (t.mid == null) continue;
    const track = t.receiver.track;
    const info = subscriptionInfo(t.mid);
    const owner = isActive(t) && info && info.participantId ? info.participantId : null;
    let target = null;
    if (owner && owner !== sfu.participantId) {
      const r = s.remotes.get(owner) || addRemote(s, { id: owner });
      // A <video> shows one video track: screen shares get a tile of their own.
      target = info.source === "screen" ? screenOf(s, r) : r;
      if (!target.stream.getTracks().includes(track)) {
        target.stream.addTrack(track);
        target.dirty = true;
      }
    }
    for (const r of s.remotes.values()) {
      for (const holder of [r, r.screen]) {
        if (holder && holder !== target && holder.stream.getTracks().includes(track)) {
          holder.stream.removeTrack(track);
          holder.dirty = true;
        }
      }
    }
  }
  for (const r of s.remotes.values()) {
    if (r.dirty) refreshRemoteTile(s, r);
    if (r.screen && r.screen.dirty) refreshScreenTile(r);
  }
}

function screenOf(s, r) {
  if (!r.screen) {
    const name = displayName(r.info);
    const parts = makeTile({ id: null, name: `${name} (screen)`, role: null, local: false });
    parts.tile.className = "tile screen";
    parts.tile.dataset.ownerId = r.info.id;
    delete parts.tile.dataset.participantId;
    parts.video.setAttribute("aria-label", `Screen shared by ${name}`);
    parts.video.muted = true; // any audio plays from the participant's own tile
    r.screen = { ...parts, stream: new MediaStream(), dirty: false };
    ui.tiles.prepend(parts.tile);
  }
  return r.screen;
}

function refreshScreenTile(r) {
  const screen = r.screen;
  screen.dirty = false;
  if (screen.stream.getTracks().length === 0) {
    screen.video.srcObject = null;
    screen.tile.remove();
    r.screen = null;
    return;
  }
  screen.tile.classList.add("has-video");
  screen.video.srcObject = screen.stream;
  screen.video.play().catch(() => {});
}

function noteRemoteTrack(s, track) {
  const r = s.remotes.get(track.participantId);
  if (!r) return;
  if (s.pausedTracks.has(track.id)) track.pausedForBandwidth = true;
  r.knownTracks.set(track.id, track);
  updateRemoteIndicators(r);
}

function onTrackUnpublished(s, trackId, participantId) {
  s.pausedTracks.delete(trackId);
  const r = s.remotes.get(participantId);
  if (r) {
    r.knownTracks.delete(trackId);
    updateRemoteIndicators(r);
  }
  // Stop showing it now; its m-line goes inactive in the next offer.  The fallback
  // (from `track` events) is dropped by mid too: on a recycled m-line the receiver
  // track keeps the id of the first track the m-line carried, so it never matches.
  for (const [mid, info] of [...s.subTracks]) {
    if (info.trackId === trackId) {
      s.subTracks.delete(mid);
      s.subFallback.delete(mid);
    }
  }
  for (const [mid, info] of [...s.subFallback]) {
    if (info.trackId === trackId) s.subFallback.delete(mid);
  }
  reconcileSubscriptions(s);
}

function onTrackPaused(s, trackId, paused) {
  if (paused) s.pausedTracks.add(trackId);
  else s.pausedTracks.delete(trackId);
  for (const r of s.remotes.values()) {
    const t = r.knownTracks.get(trackId);
    if (t) {
      t.pausedForBandwidth = paused;
      updateRemoteIndicators(r);
    }
  }
}

// Dynacast: stop encoding simulcast layers nobody receives (and start them again).
async function onPublisherLayers(s, msg) {
  const entry = s.published.find((p) => p.transceiver.mid === msg.mid);
  if (!entry) return;
  const sender = entry.transceiver.sender;
  const params = sender.getParameters();
  if (!params.encodings) return;
  let changed = false;
  for (const layer of msg.layers || []) {
    const enc = params.encodings.find((e) => e.rid === layer.rid);
    if (enc && enc.active !== Boolean(layer.active)) {
      enc.active = Boolean(layer.active);
      changed = true;
    }
  }
  if (!changed) return;
  try {
    await sender.setParameters(params);
  } catch (e) {
    // an optimisation only (the server keeps forwarding what arrives): never an error banner
    console.warn("could not change simulcast encodings", e);
  }
}

function onSpeakers(s, speakers) {
  s.speakers = speakers;
  const loudest = speakers.length ? speakers[0].participantId : null;
  for (const [id, r] of s.remotes) r.tile.classList.toggle("speaking", id === loudest);
  if (s.localTile) s.localTile.tile.classList.toggle("speaking", loudest === sfu.participantId);
}

function onTrackMuted(s, msg) {
  if (msg.participantId === sfu.participantId) {
    // A moderator muted one of our tracks.
    const p = s.published.find((x) => serverTrackId(s, x) === msg.trackId);
    if (p && p.track) {
      p.track.enabled = !msg.muted;
      p.sentMuted = msg.muted;
      const button = p.source === "microphone" ? ui.mic : p.source === "camera" ? ui.camera : null;
      if (button) {
        button.setAttribute("aria-pressed", String(msg.muted));
        if (p.source === "microphone") button.textContent = msg.muted ? "Unmute mic" : "Mute mic";
        else button.textContent = msg.muted ? "Start camera" : "Stop camera";
      }
      updateLocalIndicators(s);
    }
    return;
  }
  const r = s.remotes.get(msg.participantId);
  if (!r) return;
  const t = r.knownTracks.get(msg.trackId);
  if (t) t.muted = Boolean(msg.muted);
  else r.knownTracks.set(msg.trackId, { id: msg.trackId, muted: Boolean(msg.muted) });
  updateRemoteIndicators(r);
}

// ---------------------------------------------------------------------------
// Tiles

function makeTile({ id, name, role, local }) {
  const tile = document.createElement("figure");
  tile.className = local ? "tile local" : "tile remote";
  if (id) tile.dataset.participantId = id;
  if (role) tile.dataset.role = role;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = Boolean(local);
  video.setAttribute("aria-label", local ? "Your camera" : `Video of ${name}`);
  const placeholder = document.createElement("div");
  placeholder.className = "placeholder";
  placeholder.setAttribute("aria-hidden", "true");
  placeholder.textContent = initials(name);
  const caption = document.createElement("figcaption");
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = local ? `${name} (you)` : name;
  const indicators = document.createElement("span");
  indicators.className = "indicators";
  caption.append(label);
  if (role && role !== "student") {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = role;
    caption.append(badge);
  }
  caption.append(indicators);
  tile.append(video, placeholder, caption);
  return { tile, video, placeholder, indicators, label };
}

function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).slice(0, 2);
  return parts.map((p) => p[0] || "").join("").toUpperCase() || "?";
}

function displayName(p) {
  return p.name || p.identity || p.id;
}

function addLocalTile(s) {
  if (s.localTile || s.closed) return;
  const p = s.participant;
  const parts = makeTile({ id: p.id, name: displayName(p), role: p.role, local: true });
  s.localTile = parts;
  ui.tiles.prepend(parts.tile);
  updateLocalIndicators(s);
}

function setLocalPreview(s, stream) {
  if (!s.localTile || s.closed) return;
  const video = s.localTile.video;
  if (stream.getVideoTracks().length) {
    video.srcObject = new MediaStream(stream.getVideoTracks());
    video.play().catch(() => {});
  }
  updateLocalIndicators(s);
}

function updateLocalIndicators(s) {
  if (!s.localTile) return;
  const labels = [];
  const mic = s.published.find((p) => p.source === "microphone" && p.track);
  const cam = s.published.find((p) => p.source === "camera" && p.track);
  if (mic && !mic.track.enabled) labels.push("mic off");
  if (cam && !cam.track.enabled) labels.push("camera off");
  s.localTile.indicators.textContent = labels.join(" · ");
  s.localTile.tile.classList.toggle("has-video", Boolean(cam && cam.track.enabled));
}

function addRemote(s, p) {
  if (!p || !p.id || p.id === sfu.participantId || s.closed) return null;
  const existing = s.remotes.get(p.id);
  if (existing) {
    for (const t of p.tracks || []) if (!existing.knownTracks.has(t.id)) existing.knownTracks.set(t.id, t);
    if (p.tracks && p.tracks.length) updateRemoteIndicators(existing);
    if (p.name || p.identity) {
      existing.info = { ...existing.info, ...p };
      existing.label.textContent = displayName(existing.info);
      existing.placeholder.textContent = initials(displayName(existing.info));
    }
    return existing;
  }
  const parts = makeTile({ id: p.id, name: displayName(p), role: p.role, local: false });
  const r = {
    ...parts,
    info: p,
    stream: new MediaStream(),
    screen: null, // {tile, video, stream, ...} while they share their screen
    knownTracks: new Map((p.tracks || []).map((t) => [t.id, t])),
    dirty: false,
    audioBlocked: false,
  };
  r.video.srcObject = r.stream;
  s.remotes.set(p.id, r);
  ui.tiles.append(r.tile);
  updateRemoteIndicators(r);
  return r;
}

function removeRemote(s, participantId) {
  const r = s.remotes.get(participantId);
  if (!r) return;
  s.remotes.delete(participantId);
  for (const id of r.knownTracks.keys()) s.pausedTracks.delete(id);
  for (const track of r.stream.getTracks()) r.stream.removeTrack(track);
  r.video.srcObject = null;
  r.tile.remove();
  if (r.screen) {
    r.screen.video.srcObject = null;
    r.screen.tile.remove();
    r.screen = null;
  }
  for (const [mid, info] of [...s.subTracks]) {
    if (info.participantId === participantId) s.subTracks.delete(mid);
  }
  for (const [mid, info] of [...s.subFallback]) {
    if (info.participantId === participantId) s.subFallback.delete(mid);
  }
}

function refreshRemoteTile(s, r) {
  r.dirty = false;
  const hasVideo = r.stream.getVideoTracks().length > 0;
  r.tile.classList.toggle("has-video", hasVideo);
  // Re-attach so the element picks up added/removed tracks.
  r.video.srcObject = r.stream.getTracks().length ? r.stream : null;
  if (r.video.srcObject) playRemote(r);
  updateRemoteIndicators(r);
}

function playRemote(r) {
  r.video.play().catch((e) => {
    if (e.name !== "NotAllowedError") return;
    // Autoplay with sound is blocked until the user interacts: play muted and
    // offer a button to turn the sound on.
    r.video.muted = true;
    r.video.play().catch(() => {});
    if (!r.audioBlocked) {
      r.audioBlocked = true;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "unmute-audio";
      button.textContent = "Click to hear";
      button.addEventListener("click", () => {
        // The click is a user gesture: it lifts the block for every tile at once.
        const s = session;
        const blocked = s && !s.closed ? [...s.remotes.values()].filter((x) => x.audioBlocked) : [r];
        for (const x of blocked) {
          x.video.muted = false;
          x.video.play().catch(() => {});
          x.audioBlocked = false;
          if (x.unmuteButton) x.unmuteButton.remove();
          x.unmuteButton = null;
        }
        button.remove();
      });
      r.unmuteButton = button;
      r.tile.append(button);
    }
  });
}

function updateRemoteIndicators(r) {
  const labels = [];
  for (const t of r.knownTracks.values()) {
    if (t.pausedForBandwidth && !t.muted) labels.push("video paused (bandwidth)");
    if (!t.muted) continue;
    if (t.source === "microphone" || t.kind === "audio") labels.push("mic off");
    else if (t.source === "screen") labels.push("screen paused");
    else labels.push("camera off");
  }
  r.indicators.textContent = [...new Set(labels)].join(" · ");
  const cameraMuted = [...r.knownTracks.values()].some(
    (t) => t.muted && (t.source === "camera" || (t.kind === "video" && t.source !== "screen")),
  );
  r.tile.classList.toggle("video-muted", cameraMuted);
}

// ---------------------------------------------------------------------------

main();
