// The lesson a personal link joined (the scheduler bridge's `lesson` in `joined`): its title
// in the top bar and, for the instructor, the brief of the previous lesson of the series or
// of these students (date, who came, notes, open exceptions). Pure DOM building; main.js
// calls `showLesson` on `joined`.

import { el } from "../dom.js";

export function briefLines(brief) {
  if (!brief) return ["No earlier lesson of this series or these students."];
  const date = new Date(brief.start).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
  const lines = [`Last lesson: ${brief.title}, ${date} (${brief.status.replace("_", "-")})`];
  lines.push(`Came: ${brief.came.length ? brief.came.join(", ") : "nobody"}`);
  if (brief.absent.length) lines.push(`Absent: ${brief.absent.join(", ")}`);
  lines.push(`Notes: ${brief.notes || "none"}`);
  // the instructor's approved summary of it (docs/transcription.md), its key points
  const points = ((brief.summary && brief.summary.keyPoints) || []).map((p) => p.text);
  if (points.length) lines.push(`Summary: ${points.join("; ")}`);
  const open = brief.openExceptions.map((e) => `${e.kind.replaceAll("_", " ")}${e.person ? ` (${e.person})` : ""}`);
  lines.push(`Open exceptions: ${open.length ? open.join("; ") : "none"}`);
  return lines;
}

export function showLesson(lesson, panel, roomName) {
  if (!lesson) {
    panel.hidden = true;
    return;
  }
  roomName.textContent = lesson.title;
  if (!("brief" in lesson)) {
    panel.hidden = true;
    return;
  }
  panel.replaceChildren(
    el("h2", { textContent: "Before you start" }),
    el("ul", { className: "list" }, ...briefLines(lesson.brief).map((line) => el("li", { textContent: line }))));
  panel.hidden = false;
}
