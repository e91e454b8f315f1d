// What the operations page shows, as pure functions of the API's answers (no DOM: unit
// tested under Node, test/ops_view.test.mjs).

// A lesson's live status as the operator reads it: upcoming (its room not made yet),
// open (the room is ready, nobody in it), live with the number in the room and whether it
// records, ended, no-show, cancelled.
export function liveStatus(lesson) {
  if (lesson.status === "cancelled") return { key: "cancelled", label: "Cancelled" };
  if (lesson.status === "no_show") return { key: "no_show", label: "No-show" };
  if (lesson.status === "ended") return { key: "ended", label: "Ended" };
  if (lesson.live && lesson.live.participants > 0) {
    const rec = lesson.live.recording ? " · ● rec" : "";
    return { key: "live", label: `Live · ${lesson.live.participants} in room${rec}` };
  }
  if (lesson.status === "live") return { key: "live", label: "Live · room empty" };
  if (lesson.roomOpen) return { key: "open", label: "Room open" };
  return { key: "upcoming", label: "Upcoming" };
}

export function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`;
}

// "51–100 of 500" and whether there is a page before and after.
export function pageInfo(offset, limit, total) {
  if (total === 0) return { label: "no lessons", prev: false, next: false };
  const last = Math.min(offset + limit, total);
  return { label: `${offset + 1}–${last} of ${total}`, prev: offset > 0, next: last < total };
}

// Local clock time of a UTC ISO time in an IANA zone ("15:00").
export function clock(iso, timeZone) {
  return new Date(iso).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", timeZone });
}

// The evidence of an exception in one line.
export function evidenceLine(ex) {
  const e = ex.evidence || {};
  switch (ex.kind) {
    case "instructor_no_show": return `not in the room ${Math.round(e.graceS || 0)} s after the start`;
    case "late_join": return `joined ${e.lateByS} s late`;
    case "student_no_show": return "never joined";
    case "early_end": return `ended ${e.earlyByS} s early`;
    case "lesson_never_started": return "nobody booked joined";
    case "recording_alarm": return `${e.reason}: ${e.detail || ""}`.trim();
    case "recording_failed": return (e.problems || []).join("; ") || e.reason || "failed";
    case "recording_not_running": return "policy always, no recording";
    case "student_flagged": return `${e.flag}: ${e.detail || ""}`.trim();
    default: return JSON.stringify(e);
  }
}

// The actions an exception in this state offers.
export function actionsFor(state) {
  if (state === "open") return ["acknowledge", "resolve"];
  if (state === "acknowledged") return ["resolve"];
  return [];
}

// The day (YYYY-MM-DD) of a Date in an IANA zone.
export function dayIn(date, timeZone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}
