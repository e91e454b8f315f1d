// The summary page's pure part (src/summary/view.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { facts, toEdit, toForm } from "../src/summary/view.js";

const draft = {
  keyPoints: [{ text: "the water cycle has three parts", at: 12.5 }],
  questions: [{ who: "Ann", text: "who can tell me", source: "speech", at: 40 },
    { who: "Bo", text: "is it on friday?", source: "chat", at: null }],
  notes: "",
  polls: [{ question: "2 + 2?", kind: "single", responses: 3,
    results: [{ option: "3", count: 1 }, { option: "4", count: 2 }], correctRate: 0.67 }],
  attendance: { came: ["Ann", "Bo"], absent: ["Cy"], flagged: [{ identity: "bo",
    flag: "silent_unresponsive" }] },
};

test("the form shows one item per line, questions with who asked", () => {
  assert.deepEqual(toForm(draft), {
    keyPoints: "the water cycle has three parts",
    questions: "Ann: who can tell me\nBo: is it on friday?",
    notes: "",
  });
});

test("unchanged items keep their times and sources; new lines are plain; blanks dropped",
  () => {
    const edit = toEdit(draft, {
      keyPoints: "the water cycle has three parts\n\n  rain comes down  ",
      questions: "Bo: is it on friday?",
      notes: "Well done.",
    });
    assert.deepEqual(edit.keyPoints, [{ text: "the water cycle has three parts", at: 12.5 },
      { text: "rain comes down" }]);
    assert.deepEqual(edit.questions, [{ who: "Bo", text: "is it on friday?", source: "chat",
      at: null }]);
    assert.equal(edit.notes, "Well done.");
  });

test("polls and attendance are listed as facts", () => {
  assert.deepEqual(facts(draft), [
    "Poll: 2 + 2? (3 answers: 3: 1, 4: 2, 67 % correct)",
    "Came: Ann, Bo", "Absent: Cy", "Flagged: bo (silent_unresponsive)"]);
});
