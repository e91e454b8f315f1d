// The subscriber connection: the server offers everyone else's tracks (one m-line each,
// recycled after removal), the page answers (a SubscriberNegotiation, negotiation.js) and
// puts each active receiver track into its participant's tile.

import { send } from "./signalling.js";
import {
  addRemote,
  refreshRemoteTile,
  refreshScreenTile,
  screenOf,
  updateRemoteIndicators,
} from "./tiles.js";

function createSubscriberPc(s) {
  // iceServers: the TURN servers and credentials of `joined`/`resumed` (none: direct paths)
  const pc = new RTCPeerConnection({
    bundlePolicy: "max-bundle", rtcpMuxPolicy: "require", iceServers: s.iceServers || [],
  });
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
    if (pc.connectionState === "connected") s.app.networkBack(s);
    if (pc.connectionState === "failed" && !s.closed) {
      s.app.showError({ code: "ice_failed", message: "could not receive media from the server; restarting" });
      restartSubscriberIce(s);
    }
    s.app.watchConnection(s, pc, () => restartSubscriberIce(s));
  };
  return pc;
}

export async function onSubscriberOffer(s, msg) {
  if (!s.subscriberPc) s.subscriberPc = createSubscriberPc(s);
  const pc = s.subscriberPc;
  for (const t of msg.tracks || []) {
    if (t && t.mid != null) s.subTracks.set(String(t.mid), t);
  }
  s.subNegotiation.offer();
  try {
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
  } catch (e) {
    s.subNegotiation.failed();
    throw e;
  }
  s.subNegotiation.answered();
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

// The server restarts the subscriber connection (new transport, new offer) when asked.
export function restartSubscriberIce(s) {
  const now = performance.now();
  if (s.closed || !s.subRestart.due(now)) return;
  if (send(s, { type: "restart_ice", target: "subscriber" })) s.subRestart.mark(now);
}

export function isActive(transceiver) {
  const dir = transceiver.currentDirection;
  return !transceiver.stopped && (dir === "recvonly" || dir === "sendrecv");
}

// What the server said an m-line carries (or, failing that, what its track event said).
export function subscriptionInfo(s, mid) {
  const info = s.subTracks.get(mid);
  if (info && info.participantId) return info;
  const fb = s.subFallback.get(mid);
  if (fb && fb.participantId) return { ...fb, ...(info || {}), participantId: fb.participantId };
  return info || null;
}

// Put each active receiver track into its participant's tile stream, and take
// inactive or unpublished ones out.  Idempotent.
export function reconcileSubscriptions(s) {
  const pc = s.subscriberPc;
  if (!pc || s.closed) return;
  for (const t of pc.getTransceivers()) {
    if (t.mid == null) continue;
    const track = t.receiver.track;
    const info = subscriptionInfo(s, t.mid);
    const owner = isActive(t) && info && info.participantId ? info.participantId : null;
    let target = null;
    if (owner && owner !== s.selfId()) {
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

export function noteRemoteTrack(s, track) {
  const r = s.remotes.get(track.participantId);
  if (!r) return;
  if (s.pausedTracks.has(track.id)) track.pausedForBandwidth = true;
  r.knownTracks.set(track.id, track);
  updateRemoteIndicators(r);
}

export function onTrackUnpublished(s, trackId, participantId) {
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

export function onTrackPaused(s, trackId, paused) {
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

// Another participant's track was muted or unmuted.
export function onRemoteTrackMuted(s, msg) {
  const r = s.remotes.get(msg.participantId);
  if (!r) return;
  const t = r.knownTracks.get(msg.trackId);
  if (t) t.muted = Boolean(msg.muted);
  else r.knownTracks.set(msg.trackId, { id: msg.trackId, muted: Boolean(msg.muted) });
  updateRemoteIndicators(r);
}
