// The instructor's summary page (docs/transcription.md): /summary?room=R&token=T, with the
// instructor's join token for that room. Shows the draft, saves edits, approves it.

import { facts, toEdit, toForm } from "./view.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.get("room") || "";
const token = params.get("token") || "";
let current = null;

function status(text, kind = "") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

async function call(method, path, body) {
  const res = await fetch(`/api/rooms/${encodeURIComponent(room)}/summary${path}`, {
    method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || `HTTP ${res.status}`);
  return data;
}

function show(summary) {
  current = summary;
  const form = toForm(summary);
  $("key-points").value = form.keyPoints;
  $("questions").value = form.questions;
  $("notes").value = form.notes;
  const approved = summary.state === "approved";
  for (const id of ["key-points", "questions", "notes", "save", "approve"]) {
    $(id).disabled = approved;
  }
  $("state").textContent = approved
    ? `Approved by ${summary.approvedBy} — sent on to the lesson's record`
    : `Draft (revision ${summary.revision})`;
  $("state").dataset.state = summary.state;
  const list = $("facts");
  list.replaceChildren(...facts(summary).map((line) => {
    const li = document.createElement("li");
    li.textContent = line;
    return li;
  }));
}

async function save() {
  show(await call("PUT", "", toEdit(current, {
    keyPoints: $("key-points").value, questions: $("questions").value, notes: $("notes").value,
  })));
  status("Saved.");
}

$("summary-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { await save(); } catch (err) { status(err.message, "error"); }
});
$("approve").addEventListener("click", async () => {
  try {
    await save();
    show(await call("POST", "/approve"));
    status("Approved.");
  } catch (err) {
    status(err.message, "error");
  }
});

$("room").textContent = room ? `Room ${room}` : "";
if (!room || !token) {
  status("Open this page with ?room=<room>&token=<the instructor's join token>.", "error");
} else {
  call("GET", "").then(show).catch((err) => status(err.message, "error"));
}
window.summaryPage = { current: () => current };
