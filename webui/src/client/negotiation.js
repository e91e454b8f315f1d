// The page's side of the SDP negotiations as explicit state machines (sans-IO; tested by
// webui/test/negotiation.test.mjs). Each is a transition table: state -> event -> next
// state; an event a state has no entry for throws NegotiationError.
//
// Publisher connection: the page offers, the server answers. One offer at a time; a change
// (a track added, removed, an ICE restart) while one is being made or is outstanding is
// remembered and offered after the answer (or after a refusal).
//
//   stable --change--> offering --created--> offered --answered--> stable (+ offer again
//                      offering --failed--> stable       --answer_failed--> stable  if a
//                                                        --refused--> stable        change
//                                                                                   waited)
// Subscriber connection: the server offers, the page answers, one at a time.
//
//   stable --offer--> answering --answered--> stable
//                     answering --failed--> stable

export class NegotiationError extends Error {}

export const PUBLISHER_TRANSITIONS = {
  stable: { change: "offering" },
  offering: { change: "offering", created: "offered", failed: "stable" },
  offered: { change: "offered", answered: "stable", answer_failed: "stable", refused: "stable" },
};

export const SUBSCRIBER_TRANSITIONS = {
  stable: { offer: "answering" },
  answering: { answered: "stable", failed: "stable" },
};

class Machine {
  constructor(name, table, initial = "stable") {
    this.name = name;
    this.table = table;
    this.state = initial;
  }

  move(event) {
    const next = (this.table[this.state] || {})[event];
    if (next === undefined) {
      throw new NegotiationError(`${this.name} negotiation: ${event} while ${this.state}`);
    }
    this.state = next;
    return next;
  }
}

// Actions returned to the page: "offer" (make and send an offer now) or "none".
export class PublisherNegotiation extends Machine {
  constructor() {
    super("publisher", PUBLISHER_TRANSITIONS);
    this.needsOffer = false; // a change waits for the outstanding offer's outcome
  }

  // Something the connection sends changed.
  change() {
    const before = this.state;
    this.move("change");
    if (before === "stable") {
      this.needsOffer = false;
      return "offer";
    }
    this.needsOffer = true;
    return "none";
  }

  // The offer is set as the local description: it goes to the server.
  created() {
    this.move("created");
  }

  // Making the offer failed: back to stable (never stuck waiting for an answer).
  failed() {
    this.move("failed");
  }

  // An answer (or a refusal) is expected only for an outstanding offer.
  get outstanding() {
    return this.state === "offered";
  }

  answered() {
    this.move("answered");
    return this._again();
  }

  // The server's answer could not be applied (the page rolls back): no automatic re-offer.
  answerFailed() {
    this.move("answer_failed");
  }

  // The server refused the offer (an error with ref "offer"): rolled back; a change that
  // waited is offered now.
  refused() {
    this.move("refused");
    return this._again();
  }

  _again() {
    if (!this.needsOffer) return "none";
    return this.change();
  }
}

export class SubscriberNegotiation extends Machine {
  constructor() {
    super("subscriber", SUBSCRIBER_TRANSITIONS);
  }

  offer() {
    this.move("offer");
  }

  answered() {
    this.move("answered");
  }

  failed() {
    this.move("failed");
  }
}
