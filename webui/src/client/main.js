// Browser client for the classroom SFU (docs/protocol.md), bundled by webui/ into
// signalling/static/client.bundle.js.
//
// Two peer connections per participant:
//   publisher  – we offer, carries our own microphone/camera/screen (sendonly; publisher.js);
//   subscriber – the server offers, carries everyone else's tracks (one m-line per track;
//                subscriber.js).
// Server messages are processed strictly in arrival order through a promise queue
// (signalling.js), since most of them lead to asynchronous SDP operations. Reconnection
// decisions come from reconnect.js, negotiation states from negotiation.js (both pure and
// tested under Node); tiles.js draws the tiles. This module wires them to the page.

import { ClassroomPanel } from "./classroom.js";
import { showLesson } from "./lesson.js";
import { PathIndicator } from "./path.js";
import { RecordingControl } from "./recording.js";
import { CaptionView } from "./captions.js";
import {
  mutedByModerator,
  onPublisherAnswer,
  onPublisherLayers,
  onPublisherOfferRefused,
  republish,
  resendOutstandingOffer,
  restartPublisherIce,
  setSourceMuted,
  startPublishing,
  stopLocalMedia,
  toggleScreenShare,
} from "./publisher.js";
import {
  CONNECTION_STUCK_MS,
  NO_REJOIN,
  RECONNECT_CONNECT_TIMEOUT_MS,
  afterSocketClosed,
  connectionStuck,
} from "./reconnect.js";
import { Session } from "./session.js";
import { reconnectTarget, redirectTarget, socketUrl } from "./servers.js";
import { connectSocket, send } from "./signalling.js";
import {
  isActive,
  noteRemoteTrack,
  onRemoteTrackMuted,
  onSubscriberOffer,
  onTrackPaused,
  onTrackUnpublished,
  restartSubscriberIce,
  subscriptionInfo,
} from "./subscriber.js";
import {
  addLocalTile,
  addRemote,
  displayName,
  forgetRemoteMedia,
  removeRemote,
  setRemoteReconnecting,
  showSpeakers,
} from "./tiles.js";

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

// The current session (one per join) and the token it was made with (for "Rejoin").
let session = null;
let lastToken = null;

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
      const info = subscriptionInfo(session, t.mid);
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
  // How many of those resumes were on another node (the room moved: a drain, a failed node).
  moves: 0,
  // The server the session's sockets go to: "" for the page's own, else the origin of the
  // room's node that a cluster redirected it to.
  server: "",
  // How many times it restarted ICE on its publisher connection.
  iceRestarts: 0,
  // Ask for a received video at a size: "off" | "low" | "medium" | "high".
  setQuality(trackId, quality) {
    if (session) send(session, { type: "set_quality", trackId, quality });
  },
  // The path each peer connection uses, from getStats (path.js): {publisher, subscriber},
  // each {kind: "udp"|"tcp"|"relay", protocol, candidateType, relayProtocol, rttMs} or null.
  connectionPath() {
    return { ...pathIndicator.latest };
  },
  // Captions shown now ({participantId: {text, final, name, utterance}}) and the last
  // final ones.
  captions() {
    const shown = {};
    for (const [id, c] of captions.board.shown) {
      shown[id] = { text: c.text, final: c.final, name: c.name, utterance: c.utterance };
    }
    return { enabled: captions.enabled, shown, history: [...captions.board.history] };
  },
  join: (token) => join(token),
  leave: () => leave(),
};
window.sfu = sfu;

// The connection-quality indicator in the top bar (path.js).
const pathIndicator = new PathIndicator($("connection-path"));

// What the modules get of the page (session.js).
const app = {
  ui,
  hook: sfu,
  current: (s) => s === session,
  showError: (err) => showError(err),
  handleMessage: (s, msg) => handleMessage(s, msg),
  onSocketClosed: (s, event) => onSocketClosed(s, event),
  networkBack: (s) => networkBack(s),
  watchConnection: (s, pc, restart) => watchConnection(s, pc, restart),
};

// The recording indicator and the instructor's button (recording.js).
const recording = new RecordingControl($("rec-indicator"), $("toggle-recording"), {
  send: (msg) => Boolean(session && !session.closed && send(session, msg)),
});

// Live captions under the speakers' tiles, and their toggle (captions.js).
const captions = new CaptionView($("toggle-captions"), {
  tileOf: (id) => (session ? session.ui.tiles.querySelector(
    `.tile[data-participant-id="${CSS.escape(id)}"]`) : null),
  storage: window.localStorage,
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
  session = new Session(token, app);
  const s = session;
  sfu.lastError = null;
  sfu.participantId = null;
  sfu.server = "";
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

function onSocketClosed(s, event) {
  if (s.closed || s !== session) return;
  const next = afterSocketClosed({
    leaving: s.leaving, joined: Boolean(s.resume), failed: sfu.state === "error" });
  if (next === "left") {
    finishLeft(s, "left");
    return;
  }
  if (next === "reconnect") {
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
// Reconnection (docs/protocol.md, "Reconnection"; the policy: reconnect.js)

function startReconnecting(s, immediate = false) {
  s.ws = null;
  const step = s.reconnector.next(performance.now(), { immediate });
  if (step.began) {
    s.outageServer = s.server || location.origin;
    setState("reconnecting");
    setStatus("Connection lost. Reconnecting…", "warn");
  }
  if (step.action === "give_up") {
    fail(s, {
      code: "disconnected",
      message: "the connection was lost for longer than the reconnection window",
      fatal: true,
    });
    return;
  }
  clearTimeout(s.reconnectTimer);
  s.reconnectTimer = setTimeout(() => {
    if (s.closed || s !== session) return;
    // the session's node first, then the cluster's other nodes in turn (one of them takes
    // the room over if its node failed)
    s.server = reconnectTarget(s.outageServer, s.servers, s.reconnector.attempts);
    sfu.server = s.server;
    if (!connectSocket(s, resumeMessage(s))) {
      startReconnecting(s);
      return;
    }
    const ws = s.ws;
    // not open by then: abandoned for a fresh attempt
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
  }, step.delayMs);
}

// A media connection came back while we wait between attempts: the network is back, try now.
function networkBack(s) {
  if (s.reconnector.reconnecting && !s.ws && !s.closed && s === session) {
    startReconnecting(s, true);
  }
}

// A node of a cluster sent the session to the room's node (docs/cluster.md, "Joins"): open
// the socket there and send the same first message (the old socket's close is ignored).
function followRedirect(s, msg) {
  const target = redirectTarget(msg.url, s.redirects);
  if (!target) {
    fail(s, { code: "bad_redirect", message: `not following a redirect to ${msg.url} ` +
      `(after ${s.redirects})`, fatal: true });
    return;
  }
  s.redirects += 1;
  s.server = target;
  sfu.server = target;
  if (msg.reason === "room_moved") {
    setStatus("The lesson is moving to another server…", "warn");
  }
  const old = s.ws;
  s.ws = null;
  try {
    old.close(1000, "redirected");
  } catch {
    /* ignore */
  }
  const first = s.resume ? resumeMessage(s) : { type: "join", token: s.token };
  if (!connectSocket(s, first)) {
    fail(s, { code: "network_error", message: `cannot open a WebSocket to ${target}`, fatal: true });
  }
}

// (the join token too: on another node of a cluster, where the room moved, it admits the
// participant under its old id; the node that kept the participant ignores it)
function resumeMessage(s) {
  const r = s.resume;
  return { type: "resume", room: r.room, participantId: r.participantId, resumeToken: r.token,
    token: s.token };
}

// The cluster's nodes a reconnection may go through, from `joined` or `resumed`.
function noteServers(s, msg) {
  if (Array.isArray(msg.servers)) s.servers = msg.servers.filter((u) => typeof u === "string");
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

function onResumed(s, msg) {
  s.resume = resumeInfo(msg);
  noteServers(s, msg);
  s.redirects = 0;
  s.iceServers = msg.iceServers || s.iceServers || [];
  const away = s.reconnector.resumed(performance.now(), s.resume.windowMs);
  s.participant = msg.participant;
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
  if (msg.moved) {
    // The room went on on another node: new media connections there, a new whiteboard
    // socket, the same local tracks.
    sfu.moves += 1;
    setStatus("The lesson moved to another server.");
    s.dropMediaConnections();
    forgetRemoteMedia(s);
    stopWhiteboard();
    startClassroom(s, msg);
    republish(s).catch((e) => {
      console.error("publishing on the new node failed", e);
      if (!s.closed) showError({ code: "media_error", message: String(e.message || e) });
    });
    return;
  }
  startClassroom(s, msg);
  // Connections still down after the resume get restarted if they do not recover.
  for (const [pc, restart] of [
    [s.publisherPc, () => restartPublisherIce(s)],
    [s.subscriberPc, () => restartSubscriberIce(s)],
  ]) {
    if (pc) watchConnection(s, pc, restart);
  }
  // A publisher offer whose answer was lost: offer again.
  resendOutstandingOffer(s);
}

// A connection that stays "disconnected" (or "failed") for CONNECTION_STUCK_MS while we are
// joined is restarted: ICE alone does not always recover a path after an outage, and a
// "failed" event may never come (Chrome waits ~30 s for it).
function watchConnection(s, pc, restart) {
  if (!connectionStuck(pc.connectionState)) return;
  setTimeout(() => {
    if (s.closed || s !== session || sfu.state !== "joined") return;
    if (connectionStuck(pc.connectionState)) restart();
  }, CONNECTION_STUCK_MS);
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

function teardown() {
  const s = session;
  if (!s || s.closed) return;
  s.closed = true;
  classroom.stop();
  recording.stop();
  captions.clear();
  pathIndicator.stop();
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
  if (captions.handle(msg)) return;
  switch (msg.type) {
    case "joined":
      return onJoined(s, msg);
    case "resumed":
      return onResumed(s, msg);
    case "redirect":
      return followRedirect(s, msg);
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
      showSpeakers(s, msg.speakers || []);
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
  s.iceServers = msg.iceServers || [];
  s.room = msg.room;
  s.resume = resumeInfo(msg);
  noteServers(s, msg);
  s.redirects = 0;
  s.reconnector.windowMs = s.resume.windowMs;
  sfu.participantId = msg.participant.id;
  setState("joined");
  ui.roomName.textContent = msg.room ? `Room ${msg.room}` : "";
  showLesson(msg.lesson, document.getElementById("lesson-brief"), ui.roomName);
  const who = msg.participant.name || msg.participant.identity || msg.participant.id;
  setStatus(`Joined as ${who} (${msg.participant.role}).`);
  addLocalTile(s);
  pathIndicator.start(s);
  for (const p of msg.participants || []) {
    addRemote(s, p);
    if (p.state === "reconnecting") setRemoteReconnecting(s, p.id, true);
  }
  startClassroom(s, msg);
  if (msg.participant.role !== "observer") {
    // Not awaited: subscriber offers must not wait for the camera prompt.
    startPublishing(s).catch((e) => {
      console.error("publishing failed", e);
      if (!s.closed) showError({ code: "media_error", message: String(e.message || e) });
    });
  }
}

function startClassroom(s, msg) {
  classroom.start({ selfId: msg.participant.id, role: msg.participant.role,
    hands: msg.hands || [], chat: msg.chat || [], polls: msg.polls || [] });
  recording.start({ role: msg.participant.role, recording: msg.recording });
  startWhiteboard(s, msg.participant);
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
  whiteboard = mod.mountWhiteboard(root, {
    url: socketUrl(s.server, `/ws/whiteboard?token=${encodeURIComponent(s.token)}&control=1`, location),
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
  if (err.ref === "offer") return onPublisherOfferRefused(s);
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

function onTrackMuted(s, msg) {
  if (msg.participantId === sfu.participantId) {
    // A moderator muted one of our tracks.
    const p = mutedByModerator(s, msg.trackId, msg.muted);
    const button = !p ? null : p.source === "microphone" ? ui.mic : p.source === "camera" ? ui.camera : null;
    if (button) {
      button.setAttribute("aria-pressed", String(msg.muted));
      if (p.source === "microphone") button.textContent = msg.muted ? "Unmute mic" : "Mute mic";
      else button.textContent = msg.muted ? "Start camera" : "Stop camera";
    }
    return;
  }
  onRemoteTrackMuted(s, msg);
}

// ---------------------------------------------------------------------------
// Controls

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

ui.screen.addEventListener("click", () => toggleScreenShare(session));

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

main();
