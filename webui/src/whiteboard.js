// The browser whiteboard: pen, line, rectangle, ellipse, text and eraser on a canvas,
// drawn from the room's shared Y.Doc (docs/whiteboard.md); the instructor clears and locks.
//
// mountWhiteboard(root, {url, role, name}) builds the toolbar and canvas inside `root`
// and returns the board ({doc(), items(), destroy()}). The model is the server's: the
// root `items` Y.Array holds one Y.Map per item, {kind, by, color, width, points, text,
// size}: `points` is a flat [x0, y0, x1, y1, ...] in board units (BOARD_W x BOARD_H),
// a Y.Array while a pen stroke grows (each move sends only the new points) or a plain
// array (shapes, and what other clients write). Everything typed is drawn with
// fillText, never parsed as markup.

import * as Y from "yjs";
import { BoardClient } from "./board_client.js";
import { el } from "./dom.js";

export const BOARD_W = 1600;
export const BOARD_H = 900;
const COLORS = ["#1d1d1f", "#d62828", "#1f6feb", "#2a9d3f", "#f4a100", "#ffffff"];
const TOOLS = [
  ["pen", "✏️", "Pen"], ["line", "╱", "Line"], ["rect", "▭", "Rectangle"],
  ["ellipse", "◯", "Ellipse"], ["text", "T", "Text"], ["eraser", "⌫", "Eraser"],
];
const CURSOR_EVERY_MS = 50;
const HIT_SLOP = 8;

const pointsOf = (item) => {
  const p = item.get("points");
  if (p instanceof Y.Array) return p.toArray();
  return Array.isArray(p) ? p.filter((v) => typeof v === "number") : [];
};

function drawItem(ctx, item) {
  const kind = item.get("kind");
  const pts = pointsOf(item);
  ctx.strokeStyle = ctx.fillStyle = String(item.get("color") || COLORS[0]);
  ctx.lineWidth = Number(item.get("width")) || 3;
  ctx.lineCap = ctx.lineJoin = "round";
  if (kind === "text") {
    if (pts.length < 2) return;
    ctx.font = `${Number(item.get("size")) || 32}px sans-serif`;
    ctx.textBaseline = "top";
    ctx.fillText(String(item.get("text") || ""), pts[0], pts[1]);
    return;
  }
  if (pts.length < 2) return;
  ctx.beginPath();
  if (kind === "rect" && pts.length >= 4) {
    ctx.rect(Math.min(pts[0], pts[2]), Math.min(pts[1], pts[3]),
      Math.abs(pts[2] - pts[0]), Math.abs(pts[3] - pts[1]));
  } else if (kind === "ellipse" && pts.length >= 4) {
    ctx.ellipse((pts[0] + pts[2]) / 2, (pts[1] + pts[3]) / 2,
      Math.abs(pts[2] - pts[0]) / 2, Math.abs(pts[3] - pts[1]) / 2, 0, 0, 2 * Math.PI);
  } else {
    ctx.moveTo(pts[0], pts[1]);
    if (pts.length === 2) ctx.lineTo(pts[0] + 0.1, pts[1]); // a dot
    for (let i = 2; i + 1 < pts.length; i += 2) ctx.lineTo(pts[i], pts[i + 1]);
  }
  ctx.stroke();
}

// Does board point (x, y) touch the item? (the eraser)
function hits(ctx, item, x, y) {
  const pts = pointsOf(item);
  if (pts.length < 2) return false;
  const slop = HIT_SLOP + (Number(item.get("width")) || 3) / 2;
  const kind = item.get("kind");
  if (kind === "text") {
    ctx.font = `${Number(item.get("size")) || 32}px sans-serif`;
    const w = ctx.measureText(String(item.get("text") || "")).width;
    const h = Number(item.get("size")) || 32;
    return x >= pts[0] - slop && x <= pts[0] + w + slop && y >= pts[1] - slop &&
      y <= pts[1] + h + slop;
  }
  if ((kind === "rect" || kind === "ellipse") && pts.length >= 4) {
    return x >= Math.min(pts[0], pts[2]) - slop && x <= Math.max(pts[0], pts[2]) + slop &&
      y >= Math.min(pts[1], pts[3]) - slop && y <= Math.max(pts[1], pts[3]) + slop;
  }
  for (let i = 0; i + 1 < pts.length; i += 2) {
    const j = Math.min(i + 2, pts.length - 2);
    if (segmentDistance(x, y, pts[i], pts[i + 1], pts[j], pts[j + 1]) <= slop) return true;
  }
  return false;
}

function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

export function mountWhiteboard(root, { url, role, name, WebSocketImpl }) {
  const moderator = role === "instructor";
  const readOnlyRole = role === "observer";
  const state = { tool: "pen", color: COLORS[0], width: 4, locked: false, drag: null };
  root.replaceChildren();
  root.hidden = false;
  root.dataset.synced = "0";

  const tools = el("div", { className: "wb-tools", role: "toolbar",
    ariaLabel: "Whiteboard tools" });
  for (const [tool, icon, label] of TOOLS) {
    const b = el("button", { type: "button", textContent: icon, title: label,
      ariaLabel: label, dataset: { tool } });
    b.addEventListener("click", () => { state.tool = tool; refreshTools(); });
    tools.append(b);
  }
  for (const color of COLORS) {
    const b = el("button", { type: "button", className: "wb-color", title: color,
      ariaLabel: `Colour ${color}`, dataset: { color } });
    b.style.background = color;
    b.addEventListener("click", () => { state.color = color; refreshTools(); });
    tools.append(b);
  }
  const width = el("select", { id: "wb-width", ariaLabel: "Line width" },
    ...[2, 4, 8, 16].map((w) => el("option", { value: String(w), textContent: `${w}px`,
      selected: w === state.width })));
  width.addEventListener("change", () => { state.width = Number(width.value); });
  const text = el("input", { id: "wb-text", maxLength: 200, placeholder: "Text to place",
    ariaLabel: "Text to place" });
  tools.append(width, text);
  const clear = el("button", { type: "button", id: "wb-clear", textContent: "Clear",
    className: "danger small", hidden: !moderator });
  const lockBox = el("input", { type: "checkbox", id: "wb-lock" });
  const lock = el("label", { hidden: !moderator }, lockBox, " Lock");
  tools.append(clear, lock);
  const status = el("p", { id: "wb-status", className: "hint", role: "status" });
  const canvas = el("canvas", { id: "wb-canvas", width: BOARD_W, height: BOARD_H,
    ariaLabel: "Whiteboard" });
  root.append(tools, canvas, status);
  const ctx = canvas.getContext("2d");

  let doc = null, awareness = null, items = null, drawPending = false;
  let lastCursor = 0;
  let lastStatus = "connecting";
  let client = null; // made last: it calls onDoc and onStatus at once
  const schedule = () => {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(render);
  };

  const canDraw = () => !readOnlyRole && (!state.locked || moderator);
  function refreshTools() {
    for (const b of tools.querySelectorAll("button[data-tool]")) {
      b.setAttribute("aria-pressed", String(b.dataset.tool === state.tool));
      b.disabled = !canDraw();
    }
    for (const b of tools.querySelectorAll("button[data-color]")) {
      b.setAttribute("aria-pressed", String(b.dataset.color === state.color));
      b.disabled = !canDraw();
    }
    width.disabled = text.disabled = !canDraw();
    canvas.classList.toggle("read-only", !canDraw());
    refreshStatus();
  }
  function refreshStatus(s = lastStatus) {
    lastStatus = s;
    const parts = [{ connecting: "Connecting…", synced: "", offline: "Reconnecting…",
      closed: "Disconnected" }[s] ?? ""];
    if (readOnlyRole) parts.push("View only");
    else if (state.locked) parts.push(moderator ? "Locked for students" : "Locked by the instructor");
    status.textContent = parts.filter(Boolean).join(" · ");
    delete status.dataset.error;
  }

  function render() {
    drawPending = false;
    ctx.clearRect(0, 0, BOARD_W, BOARD_H);
    if (!items) return;
    for (const item of items) if (item instanceof Y.Map) drawItem(ctx, item);
    const d = state.drag;
    if (d && d.preview) drawItem(ctx, d.preview);
    ctx.font = "20px sans-serif";
    ctx.textBaseline = "bottom";
    for (const [id, st] of awareness.getStates()) {
      if (id === doc.clientID || !st || !st.cursor) continue;
      const { x, y } = st.cursor;
      if (typeof x !== "number" || typeof y !== "number") continue;
      ctx.fillStyle = typeof st.color === "string" ? st.color : COLORS[0];
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, 2 * Math.PI);
      ctx.fill();
      ctx.fillText(String(st.name || "").slice(0, 40), x + 10, y - 4);
    }
  }

  const toBoard = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [Math.round((ev.clientX - r.left) * BOARD_W / r.width),
      Math.round((ev.clientY - r.top) * BOARD_H / r.height)];
  };

  function newItem(kind, points, extra = {}) {
    const m = new Y.Map();
    const fields = { kind, by: name, color: state.color, width: state.width, ...extra };
    for (const [k, v] of Object.entries(fields)) m.set(k, v);
    m.set("points", points);
    return m;
  }

  function erase(x, y) {
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items.get(i);
      if (item instanceof Y.Map && hits(ctx, item, x, y)) {
        items.delete(i, 1);
        return;
      }
    }
  }

  canvas.addEventListener("pointerdown", (ev) => {
    if (!canDraw() || !items || ev.button !== 0) return;
    canvas.setPointerCapture(ev.pointerId);
    const [x, y] = toBoard(ev);
    const tool = state.tool;
    if (tool === "text") {
      const value = text.value.trim();
      if (value) items.push([newItem("text", [x, y], { text: value, size: 16 + 4 * state.width })]);
      return;
    }
    if (tool === "eraser") {
      state.drag = { tool };
      erase(x, y);
      return;
    }
    if (tool === "pen") {
      const pts = new Y.Array();
      pts.push([x, y]);
      const item = newItem("pen", pts);
      items.push([item]);
      state.drag = { tool, pts: item.get("points") };
      return;
    }
    // the shape follows the pointer on this page only, and goes to the board when let go
    const preview = new Map(Object.entries({ kind: tool, color: state.color,
      width: state.width, points: [x, y, x, y] }));
    state.drag = { tool, x, y, preview };
  });
  canvas.addEventListener("pointermove", (ev) => {
    const [x, y] = toBoard(ev);
    const now = performance.now();
    if (now - lastCursor >= CURSOR_EVERY_MS) {
      lastCursor = now;
      client.setLocalState({ name, color: state.color, cursor: { x, y } });
    }
    const d = state.drag;
    if (!d || !items) return;
    if (d.tool === "eraser") erase(x, y);
    else if (d.tool === "pen") d.pts.push([x, y]);
    else {
      d.preview.set("points", [d.x, d.y, x, y]);
      schedule();
    }
  });
  const finish = (ev) => {
    const d = state.drag;
    state.drag = null;
    if (!d || !items || !d.preview) return;
    const [x, y] = toBoard(ev);
    if (x !== d.x || y !== d.y) items.push([newItem(d.tool, [d.x, d.y, x, y])]);
    schedule();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", () => { state.drag = null; schedule(); });
  canvas.addEventListener("pointerleave", () => {
    client.setLocalState({ name, color: state.color });
  });
  clear.addEventListener("click", () => client.control({ type: "clear" }));
  lockBox.addEventListener("change", () => {
    client.control({ type: "lock", locked: lockBox.checked });
  });
  refreshTools();
  client = new BoardClient(url, {
    onDoc(d, a) {
      doc = d;
      awareness = a;
      items = d.getArray("items");
      items.observeDeep(() => { root.dataset.items = String(items.length); schedule(); });
      awareness.on("change", schedule);
      root.dataset.items = "0";
      root.dataset.resyncs = String(client ? client.resyncs : 0); // client: null at first
      state.drag = null;
      schedule();
    },
    onStatus(s) {
      root.dataset.synced = s === "synced" ? "1" : "0";
      refreshStatus(s);
    },
    onLocked(locked) {
      state.locked = locked;
      lockBox.checked = locked;
      root.dataset.locked = locked ? "1" : "0";
      refreshTools();
    },
    onError(err) {
      status.textContent = `Whiteboard: ${err.message || err.code}`;
      status.dataset.error = err.code || "error";
    },
  }, WebSocketImpl);
  client.setLocalState({ name, color: state.color });

  return {
    client,
    doc: () => doc,
    items: () => (items ? items.toJSON() : []),
    destroy: () => { client.destroy(); root.replaceChildren(); root.hidden = true; },
  };
}
