// Which server a session's sockets go to (docs/cluster.md, "Joins"), sans-IO: the page's own
// server until a node of a cluster redirects the session to the room's node
// (webui/test/servers.test.mjs).

// Redirects followed in a row before the page gives up (placements moving back and forth).
export const MAX_REDIRECTS = 3;

// The WebSocket URL of `path` on `server` ("" for the page's own, else an http(s) URL).
export function socketUrl(server, path, loc) {
  const base = new URL(server || loc.href);
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${base.host}${path}`;
}

// Where a `redirect` message sends the session: the origin of its URL, or null when the URL
// is not an http(s) URL or the session has been redirected too often already.
export function redirectTarget(url, redirectsSoFar) {
  if (redirectsSoFar >= MAX_REDIRECTS || typeof url !== "string") return null;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
  return parsed.origin;
}

// Where reconnection attempt `attempt` (1 for the first) goes: `current` (the session's
// server when the connection was lost) first, then each other node of the cluster in turn.
// A node that failed takes its rooms down with it; another node takes the room over and
// answers the resume (or redirects to the node that did).
export function reconnectTarget(current, servers, attempt) {
  const all = [current];
  for (const url of servers || []) {
    const origin = redirectTarget(url, 0);
    if (origin && !all.includes(origin)) all.push(origin);
  }
  return all[Math.max(0, attempt - 1) % all.length];
}
