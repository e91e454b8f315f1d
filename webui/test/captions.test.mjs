// The live captions' pure part (src/client/captions.js): one caption per speaker, partial
// then final, stale partials ignored, finals cleared after a while and kept as history.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CaptionBoard, FINAL_SHOWN_MS, HISTORY } from "../src/client/captions.js";

const cap = (id, utterance, text, final = false) =>
  ({ type: "caption", participantId: id, name: id.toUpperCase(), utterance, text, final,
     startMs: 1000 });

test("partials grow into the final text, per speaker", () => {
  const b = new CaptionBoard();
  assert.equal(b.apply(cap("a", "u1", "we will"), 0), "a");
  assert.equal(b.apply(cap("b", "v1", "the water"), 10), "b");
  b.apply(cap("a", "u1", "we will have a test", true), 20);
  assert.deepEqual(b.shown.get("a"), { text: "we will have a test", final: true,
    utterance: "u1", name: "A", atMs: 20 });
  assert.equal(b.shown.get("b").final, false);
  assert.deepEqual(b.history, [{ participantId: "a", name: "A", text: "we will have a test",
    startMs: 1000 }]);
});

test("a partial arriving after its utterance's final is ignored; the next utterance shows",
  () => {
    const b = new CaptionBoard();
    b.apply(cap("a", "u1", "done", true), 0);
    assert.equal(b.apply(cap("a", "u1", "do"), 5), null);
    assert.equal(b.shown.get("a").text, "done");
    assert.equal(b.apply(cap("a", "u2", "next"), 6), "a");
    assert.equal(b.shown.get("a").final, false);
  });

test("finals are cleared after they were shown long enough, partials are not", () => {
  const b = new CaptionBoard();
  b.apply(cap("a", "u1", "said", true), 0);
  b.apply(cap("b", "v1", "saying"), 0);
  assert.deepEqual(b.expire(FINAL_SHOWN_MS - 1), []);
  assert.deepEqual(b.expire(FINAL_SHOWN_MS), ["a"]);
  assert.deepEqual([...b.shown.keys()], ["b"]);
});

test("bad messages change nothing; the history is bounded", () => {
  const b = new CaptionBoard();
  assert.equal(b.apply({ type: "caption" }, 0), null);
  assert.equal(b.apply({ type: "caption", participantId: "a", text: 5 }, 0), null);
  for (let i = 0; i < HISTORY + 5; i++) b.apply(cap("a", `u${i}`, `line ${i}`, true), i);
  assert.equal(b.history.length, HISTORY);
  assert.equal(b.history[0].text, "line 5");
});
