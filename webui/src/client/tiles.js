// The video tiles: one per participant (the local one first), one more per shared screen,
// with their names, role badges and indicators (mic off, camera off, paused for bandwidth,
// reconnecting, speaking). `s` is the session; `s.ui.tiles` the container.

export function makeTile({ id, name, role, local }) {
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

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).slice(0, 2);
  return parts.map((p) => p[0] || "").join("").toUpperCase() || "?";
}

export function displayName(p) {
  return p.name || p.identity || p.id;
}

export function addLocalTile(s) {
  if (s.localTile || s.closed) return;
  const p = s.participant;
  const parts = makeTile({ id: p.id, name: displayName(p), role: p.role, local: true });
  s.localTile = parts;
  s.ui.tiles.prepend(parts.tile);
  updateLocalIndicators(s);
}

export function setLocalPreview(s, stream) {
  if (!s.localTile || s.closed) return;
  const video = s.localTile.video;
  if (stream.getVideoTracks().length) {
    video.srcObject = new MediaStream(stream.getVideoTracks());
    video.play().catch(() => {});
  }
  updateLocalIndicators(s);
}

export function updateLocalIndicators(s) {
  if (!s.localTile) return;
  const labels = [];
  const mic = s.published.find((p) => p.source === "microphone" && p.track);
  const cam = s.published.find((p) => p.source === "camera" && p.track);
  if (mic && !mic.track.enabled) labels.push("mic off");
  if (cam && !cam.track.enabled) labels.push("camera off");
  s.localTile.indicators.textContent = labels.join(" · ");
  s.localTile.tile.classList.toggle("has-video", Boolean(cam && cam.track.enabled));
}

export function addRemote(s, p) {
  if (!p || !p.id || p.id === s.selfId() || s.closed) return null;
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
  s.ui.tiles.append(r.tile);
  updateRemoteIndicators(r);
  return r;
}

export function removeRemote(s, participantId) {
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

// The media connections were dropped (the session moved to another node): their tracks
// leave every tile; the new connection's tracks come in as they arrive. (A track there may
// carry the id of one here: a browser's MediaStream would not take it while this is in.)
export function forgetRemoteMedia(s) {
  for (const r of s.remotes.values()) {
    for (const holder of [r, r.screen]) {
      if (!holder) continue;
      for (const track of holder.stream.getTracks()) holder.stream.removeTrack(track);
    }
    refreshRemoteTile(s, r);
    if (r.screen) refreshScreenTile(r);
  }
}

// A <video> shows one video track: a participant's screen share gets a tile of its own.
export function screenOf(s, r) {
  if (!r.screen) {
    const name = displayName(r.info);
    const parts = makeTile({ id: null, name: `${name} (screen)`, role: null, local: false });
    parts.tile.className = "tile screen";
    parts.tile.dataset.ownerId = r.info.id;
    delete parts.tile.dataset.participantId;
    parts.video.setAttribute("aria-label", `Screen shared by ${name}`);
    parts.video.muted = true; // any audio plays from the participant's own tile
    r.screen = { ...parts, stream: new MediaStream(), dirty: false };
    s.ui.tiles.prepend(parts.tile);
  }
  return r.screen;
}

export function refreshScreenTile(r) {
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

export function refreshRemoteTile(s, r) {
  r.dirty = false;
  const hasVideo = r.stream.getVideoTracks().length > 0;
  r.tile.classList.toggle("has-video", hasVideo);
  // Re-attach so the element picks up added/removed tracks.
  r.video.srcObject = r.stream.getTracks().length ? r.stream : null;
  if (r.video.srcObject) playRemote(s, r);
  updateRemoteIndicators(r);
}

function playRemote(s, r) {
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
        const blocked = !s.closed ? [...s.remotes.values()].filter((x) => x.audioBlocked) : [r];
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

export function updateRemoteIndicators(r) {
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

export function setRemoteReconnecting(s, participantId, reconnecting) {
  if (reconnecting) s.reconnectingRemotes.add(participantId);
  else s.reconnectingRemotes.delete(participantId);
  const r = s.remotes.get(participantId);
  if (r) r.tile.classList.toggle("reconnecting", reconnecting);
}

export function showSpeakers(s, speakers) {
  s.speakers = speakers;
  const loudest = speakers.length ? speakers[0].participantId : null;
  for (const [id, r] of s.remotes) r.tile.classList.toggle("speaking", id === loudest);
  if (s.localTile) s.localTile.tile.classList.toggle("speaking", loudest === s.selfId());
}
