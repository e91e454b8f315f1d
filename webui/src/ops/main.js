// The operations page (/ops): today's lessons with their live state, the exception queue
// with acknowledge/resolve, the day's and week's rates, students at risk. It signs in with
// the API secret or an operator token (kept for this tab only) and reads /api/schedule/.

import { el } from "../dom.js";
import { actionsFor, clock, dayIn, evidenceLine, liveStatus, pageInfo, percent } from "./view.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const REFRESH_MS = 5000;
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const view = { offset: 0, who: "", timer: null };

function credentials() {
  return sessionStorage.getItem("ops-credentials") || "";
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${credentials()}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (res.status === 401) {
    signOut("Your sign-in was refused or has expired.");
    throw new Error("unauthorized");
  }
  if (!res.ok) throw new Error((data && data.error && data.error.message) || res.statusText);
  return data;
}

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

async function signIn(event) {
  event.preventDefault();
  const secret = $("login-secret").value.trim();
  const name = $("login-name").value.trim();
  sessionStorage.setItem("ops-credentials", secret);
  try {
    const me = await api("GET", "/api/schedule/whoami");
    view.who = me.operator === "api-secret" ? name || "operator" : me.operator;
    sessionStorage.setItem("ops-name", view.who);
    $("login-error").textContent = "";
    showConsole();
  } catch (err) {
    sessionStorage.removeItem("ops-credentials");
    $("login-error").textContent = "Sign-in refused: check the API secret or operator token.";
  }
}

function signOut(reason = "") {
  sessionStorage.removeItem("ops-credentials");
  clearInterval(view.timer);
  $("console").hidden = true;
  $("login-panel").hidden = false;
  $("login-error").textContent = reason;
}

function showConsole() {
  $("login-panel").hidden = true;
  $("console").hidden = false;
  $("who").textContent = `Signed in as ${view.who}`;
  if (!$("day").value) $("day").value = dayIn(new Date(), zone);
  $("zone").textContent = zone;
  refresh();
  clearInterval(view.timer);
  view.timer = setInterval(refresh, REFRESH_MS);
}

async function refresh() {
  try {
    await Promise.all([loadDay(), loadExceptions(), loadAtRisk()]);
    setStatus(`Updated ${new Date().toLocaleTimeString("en-GB")}`);
  } catch (err) {
    if (err.message !== "unauthorized") setStatus(`Could not load: ${err.message}`, "error");
  }
}

function statCard(title, rates) {
  const by = rates.byStatus || {};
  return el("div", { className: "card" },
    el("h3", { textContent: title }),
    el("p", { className: "big", textContent: String(rates.lessons) }),
    el("p", { textContent: `lessons · ${by.live || 0} live · ${by.ended || 0} ended · ${by.no_show || 0} no-show` }),
    el("p", { textContent: `attendance ${percent(rates.attendanceRate)} · no-show ${percent(rates.noShowRate)}` }),
    el("p", { textContent: `recording failures ${rates.recordingFailures}` }));
}

async function loadDay() {
  const params = new URLSearchParams({ day: $("day").value, tz: zone, limit: String(PAGE), offset: String(view.offset) });
  if ($("filter-instructor").value.trim()) params.set("instructor", $("filter-instructor").value.trim());
  if ($("filter-status").value) params.set("status", $("filter-status").value);
  const data = await api("GET", `/api/schedule/day?${params}`);
  $("stats").replaceChildren(statCard("Today", data.today), statCard("Last 7 days", data.week),
    el("div", { className: "card" }, el("h3", { textContent: "Open exceptions" }),
      el("p", { className: "big", id: "open-count", textContent: String(data.openExceptions) })));
  const rows = data.lessons.map((l) => {
    const live = liveStatus(l);
    return el("tr", { dataset: { lesson: l.lessonId, status: live.key } },
      el("td", { textContent: `${clock(l.start, zone)}–${clock(l.end, zone)}` }),
      el("td", {}, el("strong", { textContent: l.title }), el("div", { className: "hint", textContent: l.lessonId })),
      el("td", { textContent: l.instructor.name || l.instructor.id }),
      el("td", { textContent: String(l.students) }),
      el("td", {}, el("span", { className: `badge ${live.key}`, textContent: live.label })),
      el("td", {}, notesButton(l)));
  });
  $("lesson-rows").replaceChildren(...rows);
  const page = pageInfo(view.offset, PAGE, data.total);
  $("page-label").textContent = page.label;
  $("page-prev").disabled = !page.prev;
  $("page-next").disabled = !page.next;
}

function notesButton(lesson) {
  return el("button", { type: "button", className: "small", textContent: lesson.notes ? "Notes ✎" : "Add notes",
    onclick: () => openNotes(lesson) });
}

function openNotes(lesson) {
  $("notes-lesson").textContent = `${lesson.title} (${lesson.lessonId})`;
  $("notes-text").value = lesson.notes || "";
  $("notes-dialog").dataset.lesson = lesson.lessonId;
  $("notes-dialog").showModal();
}

async function saveNotes(event) {
  event.preventDefault();
  const lesson = $("notes-dialog").dataset.lesson;
  await api("PUT", `/api/schedule/lessons/${encodeURIComponent(lesson)}/notes`, { notes: $("notes-text").value });
  $("notes-dialog").close();
  refresh();
}

async function loadExceptions() {
  const params = new URLSearchParams({ state: $("filter-exception-state").value, limit: "200" });
  if ($("filter-kind").value) params.set("kind", $("filter-kind").value);
  const data = await api("GET", `/api/schedule/exceptions?${params}`);
  $("exception-count").textContent = `(${data.total})`;
  $("exception-rows").replaceChildren(...data.exceptions.map((ex) => {
    const note = el("input", { className: "note", placeholder: "note", maxLength: 2000, "aria-label": "Note" });
    const buttons = actionsFor(ex.state).map((action) => el("button", {
      type: "button", className: "small", textContent: action === "resolve" ? "Resolve" : "Acknowledge",
      onclick: () => transition(ex.id, action, note.value),
    }));
    return el("tr", { dataset: { exception: ex.id, kind: ex.kind, state: ex.state } },
      el("td", { textContent: new Date(ex.raisedAt * 1000).toLocaleTimeString("en-GB") }),
      el("td", { textContent: ex.kind.replaceAll("_", " ") }),
      el("td", { textContent: ex.lessonId || ex.room }),
      el("td", { textContent: ex.person || "–" }),
      el("td", { textContent: evidenceLine(ex) }),
      el("td", { className: "state", textContent: ex.state }),
      el("td", {}, note, ...buttons));
  }));
}

async function transition(id, action, note) {
  try {
    await api("POST", `/api/schedule/exceptions/${encodeURIComponent(id)}/${action}`, { by: view.who, note });
  } catch (err) {
    setStatus(`Could not ${action}: ${err.message}`, "error");
  }
  refresh();
}

async function loadAtRisk() {
  const data = await api("GET", "/api/schedule/at-risk?limit=50");
  $("at-risk-rows").replaceChildren(...data.students.map((s) => el("li", {
    textContent: `${s.name} (${s.identity}): ${s.missed} of last ${s.lessons} lessons missed or flagged`,
    dataset: { identity: s.identity },
  })));
  $("at-risk-empty").hidden = data.students.length > 0;
}

function init() {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("notes-form").addEventListener("submit", saveNotes);
  $("notes-cancel").addEventListener("click", () => $("notes-dialog").close());
  for (const id of ["day", "filter-instructor", "filter-status"]) {
    $(id).addEventListener("change", () => { view.offset = 0; refresh(); });
  }
  for (const id of ["filter-exception-state", "filter-kind"]) $(id).addEventListener("change", refresh);
  $("page-prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); refresh(); });
  $("page-next").addEventListener("click", () => { view.offset += PAGE; refresh(); });
  $("refresh").addEventListener("click", refresh);
  if (credentials()) {
    view.who = sessionStorage.getItem("ops-name") || "operator";
    showConsole();
  } else {
    $("login-panel").hidden = false;
  }
}

init();
