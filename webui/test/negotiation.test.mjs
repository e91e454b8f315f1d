// The client's negotiation state machines (src/client/negotiation.js): every transition of
// their tables, the invalid ones refused, and the publisher's queued renegotiation.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  NegotiationError,
  PUBLISHER_TRANSITIONS,
  PublisherNegotiation,
  SUBSCRIBER_TRANSITIONS,
  SubscriberNegotiation,
} from "../src/client/negotiation.js";

const PUBLISHER_EVENTS = ["change", "created", "failed", "answered", "answer_failed", "refused"];
const SUBSCRIBER_EVENTS = ["offer", "answered", "failed"];

test("every pair of the tables moves as listed; every other pair throws and changes nothing", () => {
  for (const [Machine, table, events] of [
    [PublisherNegotiation, PUBLISHER_TRANSITIONS, PUBLISHER_EVENTS],
    [SubscriberNegotiation, SUBSCRIBER_TRANSITIONS, SUBSCRIBER_EVENTS],
  ]) {
    for (const state of Object.keys(table)) {
      for (const event of events) {
        const m = new Machine();
        m.state = state;
        const next = table[state][event];
        if (next === undefined) {
          assert.throws(() => m.move(event), NegotiationError, `${state} + ${event}`);
          assert.equal(m.state, state);
        } else {
          assert.equal(m.move(event), next);
          assert.equal(m.state, next);
        }
      }
    }
  }
});

test("a publisher offer: made, sent, answered", () => {
  const m = new PublisherNegotiation();
  assert.equal(m.change(), "offer");
  assert.equal(m.state, "offering");
  assert.equal(m.outstanding, false);
  m.created();
  assert.equal(m.outstanding, true);
  assert.equal(m.answered(), "none");
  assert.equal(m.state, "stable");
});

test("changes while an offer is made or outstanding are offered once, after the answer", () => {
  const m = new PublisherNegotiation();
  m.change();
  assert.equal(m.change(), "none"); // while the offer is being made
  m.created();
  assert.equal(m.change(), "none"); // while it is outstanding
  assert.equal(m.change(), "none");
  assert.equal(m.answered(), "offer"); // one more offer covers them all
  assert.equal(m.state, "offering");
  m.created();
  assert.equal(m.answered(), "none");
});

test("a refused offer: back to stable, and a change that waited is offered then", () => {
  const m = new PublisherNegotiation();
  m.change();
  m.created();
  assert.equal(m.refused(), "none");
  assert.equal(m.state, "stable");
  m.change();
  m.created();
  m.change(); // e.g. a screen share started while the server looked at the offer
  assert.equal(m.refused(), "offer");
  assert.equal(m.state, "offering");
});

test("a failed offer or an unusable answer never leaves the page waiting for an answer", () => {
  const m = new PublisherNegotiation();
  m.change();
  m.failed(); // createOffer/setLocalDescription threw
  assert.equal(m.state, "stable");
  assert.equal(m.change(), "offer"); // the next change offers again
  m.created();
  m.answerFailed();
  assert.equal(m.state, "stable");
  assert.equal(m.change(), "offer");
});

test("an answer or a refusal without an outstanding offer is refused", () => {
  const m = new PublisherNegotiation();
  assert.throws(() => m.answered(), NegotiationError);
  m.change();
  assert.throws(() => m.answered(), /answered while offering/);
  assert.throws(() => m.refused(), NegotiationError);
  assert.equal(m.state, "offering");
});

test("the subscriber side answers one server offer at a time", () => {
  const m = new SubscriberNegotiation();
  m.offer();
  assert.throws(() => m.offer(), NegotiationError);
  m.answered();
  m.offer();
  m.failed();
  assert.equal(m.state, "stable");
  assert.throws(() => m.answered(), NegotiationError);
});
