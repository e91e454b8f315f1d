// The summary page's pure part: what the form shows of a summary, and the edit it sends.
// (src/summary/main.js wires it to the page; test/summary_view.test.mjs.)

// A summary's editable lists as text areas: one item per line.
export function toForm(summary) {
  return {
    keyPoints: (summary.keyPoints || []).map((p) => p.text).join("\n"),
    questions: (summary.questions || [])
      .map((q) => (q.who ? `${q.who}: ${q.text}` : q.text)).join("\n"),
    notes: summary.notes || "",
  };
}

// The PUT body for the form's values: items kept where their text did not change (so their
// times and sources stay), new lines as plain items; blank lines dropped.
export function toEdit(summary, form) {
  const keep = (items, lines, label) => {
    const byText = new Map(items.map((it) => [label(it), it]));
    return lines.split("\n").map((l) => l.trim()).filter(Boolean)
      .map((line) => byText.get(line) || { text: line });
  };
  const questions = keep(summary.questions || [], form.questions,
    (q) => (q.who ? `${q.who}: ${q.text}` : q.text))
    .map((q) => (q.who !== undefined ? q : { text: q.text }));
  return {
    keyPoints: keep(summary.keyPoints || [], form.keyPoints, (p) => p.text),
    questions,
    notes: form.notes,
  };
}

// Lines describing the parts the instructor does not edit: polls and attendance.
export function facts(summary) {
  const out = [];
  for (const p of summary.polls || []) {
    const res = (p.results || []).map((r) => `${r.option}: ${r.count}`).join(", ");
    const rate = p.correctRate != null ? `, ${Math.round(p.correctRate * 100)} % correct` : "";
    out.push(`Poll: ${p.question} (${p.responses} answers${res ? `: ${res}` : ""}${rate})`);
  }
  const a = summary.attendance || {};
  if (a.came) out.push(`Came: ${a.came.join(", ") || "nobody"}`);
  if (a.absent) out.push(`Absent: ${a.absent.join(", ") || "nobody"}`);
  for (const f of a.flagged || []) out.push(`Flagged: ${f.name || f.identity} (${f.flag})`);
  return out;
}
