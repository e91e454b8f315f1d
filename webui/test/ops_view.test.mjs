// The operations page's view logic (src/ops/view.js): live status, rates, paging, the
// actions each exception state offers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { actionsFor, clock, dayIn, evidenceLine, liveStatus, pageInfo, percent } from "../src/ops/view.js";

test("a lesson's live status", () => {
  assert.equal(liveStatus({ status: "scheduled", roomOpen: false }).key, "upcoming");
  assert.equal(liveStatus({ status: "scheduled", roomOpen: true, live: { participants: 0 } }).key, "open");
  assert.deepEqual(liveStatus({ status: "live", roomOpen: true, live: { participants: 3, recording: true } }),
    { key: "live", label: "Live · 3 in room · ● rec" });
  assert.equal(liveStatus({ status: "live", roomOpen: true, live: { participants: 0 } }).label, "Live · room empty");
  assert.equal(liveStatus({ status: "no_show", live: { participants: 2 } }).key, "no_show");
  assert.equal(liveStatus({ status: "ended" }).label, "Ended");
  assert.equal(liveStatus({ status: "cancelled" }).label, "Cancelled");
});

test("rates and pages", () => {
  assert.equal(percent(0.875), "87.5 %");
  assert.equal(percent(null), "–");
  assert.deepEqual(pageInfo(0, 50, 500), { label: "1–50 of 500", prev: false, next: true });
  assert.deepEqual(pageInfo(450, 50, 500), { label: "451–500 of 500", prev: true, next: false });
  assert.deepEqual(pageInfo(0, 50, 0), { label: "no lessons", prev: false, next: false });
});

test("exception actions follow the state table", () => {
  assert.deepEqual(actionsFor("open"), ["acknowledge", "resolve"]);
  assert.deepEqual(actionsFor("acknowledged"), ["resolve"]);
  assert.deepEqual(actionsFor("resolved"), []);
});

test("evidence lines and times", () => {
  assert.equal(evidenceLine({ kind: "late_join", evidence: { lateByS: 301 } }), "joined 301 s late");
  assert.equal(evidenceLine({ kind: "recording_alarm", evidence: { reason: "sink_error", detail: "disk" } }), "sink_error: disk");
  assert.equal(evidenceLine({ kind: "student_flagged", evidence: { flag: "low_attendance", detail: "20 %" } }), "low_attendance: 20 %");
  assert.equal(clock("2026-12-07T14:00:00Z", "Europe/Berlin"), "15:00");
  assert.equal(dayIn(new Date("2026-12-07T23:30:00Z"), "Europe/Berlin"), "2026-12-08");
});

import { briefLines } from "../src/client/lesson.js";

test("the instructor's brief of the previous lesson", () => {
  assert.deepEqual(briefLines(null), ["No earlier lesson of this series or these students."]);
  const lines = briefLines({ title: "Maths 1", start: "2026-12-01T14:00:00Z", status: "ended",
    came: ["Ann"], absent: ["Ben"], notes: "fractions next", openExceptions: [{ kind: "student_no_show", person: "ben" }] });
  assert.equal(lines.length, 5);
  assert.match(lines[0], /^Last lesson: Maths 1, .* \(ended\)$/);
  assert.deepEqual(lines.slice(1), ["Came: Ann", "Absent: Ben", "Notes: fractions next",
    "Open exceptions: student no show (ben)"]);
  // with an approved summary, its key points
  const withSummary = briefLines({ title: "Maths 1", start: "2026-12-01T14:00:00Z",
    status: "ended", came: [], absent: [], notes: "", openExceptions: [],
    summary: { keyPoints: [{ text: "halves" }, { text: "quarters" }] } });
  assert.ok(withSummary.includes("Summary: halves; quarters"));
});
