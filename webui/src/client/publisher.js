// The publisher connection: the page's camera, microphone and screen, offered to the
// server (which answers). Its negotiation is a PublisherNegotiation (negotiation.js).

import { send } from "./signalling.js";
import { setLocalPreview, updateLocalIndicators } from "./tiles.js";

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

function createPublisherPc(s) {
  // iceServers: the TURN servers and credentials of `joined`/`resumed` (none: direct paths)
  const pc = new RTCPeerConnection({
    bundlePolicy: "max-bundle", rtcpMuxPolicy: "require", iceServers: s.iceServers || [],
  });
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
    if (pc.connectionState === "connected") s.app.networkBack(s);
    if (pc.connectionState === "failed" && !s.closed) {
      s.app.showError({ code: "ice_failed", message: "could not send media to the server; restarting" });
      restartPublisherIce(s);
    }
    s.app.watchConnection(s, pc, () => restartPublisherIce(s));
  };
  return pc;
}

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

export async function startPublishing(s) {
  const stream = await getLocalMedia();
  if (s.closed || s.leaving) {
    for (const t of stream.getTracks()) t.stop();
    return;
  }
  const ui = s.ui;
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

// After the session moved to another node (Session.dropMediaConnections): a new publisher
// connection offers the same camera and microphone there (a screen share ends: the user
// shares again). Muted tracks are reported muted once the answer gives their ids.
export async function republish(s) {
  const kept = s.published.filter((p) => p.source !== "screen" && p.track);
  for (const p of s.published) {
    if (p.source === "screen" && p.track) p.track.stop();
  }
  s.published = [];
  if (s.ui.screen) {
    s.ui.screen.setAttribute("aria-pressed", "false");
    s.ui.screen.textContent = "Share screen";
  }
  if (!kept.length || s.closed) return;
  s.publisherPc = createPublisherPc(s);
  for (const p of kept) {
    const init = { direction: "sendonly", streams: s.localStream ? [s.localStream] : [] };
    if (p.kind === "video" && SIMULCAST) init.sendEncodings = SIMULCAST_ENCODINGS;
    const transceiver = s.publisherPc.addTransceiver(p.track, init);
    s.published.push({ transceiver, source: p.source, kind: p.kind, track: p.track,
      sentMuted: false });
  }
  await negotiatePublisher(s);
}

// Offer what the connection sends now, or after the outstanding offer's outcome.
export async function negotiatePublisher(s) {
  const pc = s.publisherPc;
  if (!pc || s.closed) return;
  if (s.pubNegotiation.change() !== "offer") return;
  await makeOffer(s, pc);
}

async function makeOffer(s, pc) {
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
  } catch (e) {
    // Never stay "offering": every later change would wait for an answer forever.
    s.pubNegotiation.failed();
    throw e;
  }
  s.pubNegotiation.created();
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

// After a resume: an offer whose answer was lost is sent again.
export function resendOutstandingOffer(s) {
  const pc = s.publisherPc;
  if (s.pubNegotiation.outstanding && pc && pc.signalingState === "have-local-offer") {
    send(s, {
      type: "offer", target: "publisher", sdp: pc.localDescription.sdp,
      tracks: s.pubOffered.map((p) => ({ mid: p.transceiver.mid, source: p.source })),
    });
  }
}

export async function onPublisherAnswer(s, msg) {
  const pc = s.publisherPc;
  if (!pc || !s.pubNegotiation.outstanding || pc.signalingState !== "have-local-offer") {
    console.warn("unexpected publisher answer in state", pc && pc.signalingState);
    return;
  }
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  } catch (e) {
    // Unusable answer: go back to stable so that later changes can be offered.
    s.pubNegotiation.answerFailed();
    if (pc.signalingState === "have-local-offer") {
      await pc.setLocalDescription({ type: "rollback" }).catch((err) => console.warn(err));
    }
    throw e;
  }
  if (s.closed) return;
  s.pubTracks.clear();
  for (const t of msg.tracks || []) s.pubTracks.set(t.mid, t);
  const next = s.pubNegotiation.answered();
  // Tell the server about tracks the user muted before their ids were known.
  for (const p of s.published) {
    if (!p.track || p.sentMuted === !p.track.enabled) continue;
    const id = serverTrackId(s, p);
    if (id) {
      send(s, { type: "mute", trackId: id, muted: !p.track.enabled });
      p.sentMuted = !p.track.enabled;
    }
  }
  if (next === "offer") await makeOffer(s, pc);
}

// The server refused our offer (an error with ref "offer").
export async function onPublisherOfferRefused(s) {
  if (!s.pubNegotiation.outstanding) return;
  // Roll back so we can offer again later.
  const pc = s.publisherPc;
  if (pc && pc.signalingState === "have-local-offer") {
    await pc.setLocalDescription({ type: "rollback" }).catch((e) => console.warn(e));
  }
  const next = s.pubNegotiation.refused();
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
  if (next === "offer" && pc) await makeOffer(s, pc);
}

// New ICE credentials on the publisher connection (the server answers with a new transport
// and DTLS certificate): for a media path that died while signalling survived or resumed.
export async function restartPublisherIce(s) {
  const pc = s.publisherPc;
  if (!pc || s.closed) return;
  const now = performance.now();
  if (!s.pubRestart.due(now)) return;
  s.pubRestart.mark(now);
  s.app.hook.iceRestarts += 1;
  pc.restartIce();
  await negotiatePublisher(s);
}

export function serverTrackId(s, p) {
  const mid = p.transceiver.mid;
  const info = mid != null ? s.pubTracks.get(mid) : null;
  return info ? info.trackId : null;
}

export function setSourceMuted(s, source, muted) {
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

// A moderator muted one of our tracks: the returned entry ({source, ...}) or null.
export function mutedByModerator(s, trackId, muted) {
  const p = s.published.find((x) => serverTrackId(s, x) === trackId);
  if (!p || !p.track) return null;
  p.track.enabled = !muted;
  p.sentMuted = muted;
  updateLocalIndicators(s);
  return p;
}

export async function toggleScreenShare(s) {
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
}

async function startScreenShare(s) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    if (e.name !== "NotAllowedError" && e.name !== "AbortError") {
      s.app.showError({ code: "media_error", message: String(e.message || e) });
    }
    return;
  }
  if (s.closed || s.leaving || !s.app.current(s)) {
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
  s.ui.screen.setAttribute("aria-pressed", "true");
  s.ui.screen.textContent = "Stop sharing";
  await negotiatePublisher(s);
}

// Stop capturing and stop sending on the screen transceiver (no renegotiation).
async function releaseScreen(s, entry) {
  if (entry.track) entry.track.stop();
  entry.track = null;
  if (s.app.current(s)) {
    s.ui.screen.setAttribute("aria-pressed", "false");
    s.ui.screen.textContent = "Share screen";
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

// Dynacast: stop encoding simulcast layers nobody receives (and start them again).
export async function onPublisherLayers(s, msg) {
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

export function stopLocalMedia(s) {
  if (s.localStream) {
    for (const track of s.localStream.getTracks()) track.stop();
  }
  for (const p of s.published) if (p.track) p.track.stop();
}
