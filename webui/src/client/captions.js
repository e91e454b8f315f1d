// Live captions (docs/transcription.md): the server's `caption` messages, shown under the
// speaker's tile, and the toggle that hides them (remembered on this browser).
//
// CaptionBoard is the pure part (one caption per speaker: the partial text of the
// utterance in progress, then its final text, cleared FINAL_SHOWN_MS after it; the last
// finals kept as history). CaptionView puts it on the tiles. Owned by main.js:
// `handle(msg)` for every server message (true for `caption`), `clear()` on leaving.

export const FINAL_SHOWN_MS = 6000;
export const HISTORY = 50;

export class CaptionBoard {
  constructor() {
    this.shown = new Map(); // participantId -> {text, final, utterance, name, atMs}
    this.history = []; // the last finals: {participantId, name, text, startMs}
  }

  // A caption message; returns the participant whose caption changed, or null.
  apply(msg, nowMs) {
    if (!msg || typeof msg.text !== "string" || !msg.participantId) return null;
    const current = this.shown.get(msg.participantId);
    // a late partial of an utterance already final is stale
    if (current && current.utterance === msg.utterance && current.final && !msg.final) {
      return null;
    }
    this.shown.set(msg.participantId, { text: msg.text, final: Boolean(msg.final),
      utterance: msg.utterance, name: msg.name || "", atMs: nowMs });
    if (msg.final) {
      this.history.push({ participantId: msg.participantId, name: msg.name || "",
        text: msg.text, startMs: msg.startMs });
      if (this.history.length > HISTORY) this.history.shift();
    }
    return msg.participantId;
  }

  // Finals shown long enough are cleared; the participants whose caption went.
  expire(nowMs) {
    const gone = [];
    for (const [id, c] of this.shown) {
      if (c.final && nowMs - c.atMs >= FINAL_SHOWN_MS) {
        this.shown.delete(id);
        gone.push(id);
      }
    }
    return gone;
  }

  clear() {
    this.shown.clear();
  }
}

export class CaptionView {
  constructor(toggle, { tileOf, storage }) {
    this.board = new CaptionBoard();
    this.toggle = toggle;
    this.tileOf = tileOf;
    this.storage = storage;
    this.enabled = storage ? storage.getItem("captions") !== "off" : true;
    this.timer = null;
    toggle.addEventListener("click", () => this.setEnabled(!this.enabled));
    this.renderToggle();
  }

  setEnabled(on) {
    this.enabled = on;
    if (this.storage) this.storage.setItem("captions", on ? "on" : "off");
    this.renderToggle();
    for (const id of this.board.shown.keys()) this.render(id);
  }

  renderToggle() {
    this.toggle.textContent = this.enabled ? "Captions on" : "Captions off";
    this.toggle.setAttribute("aria-pressed", String(this.enabled));
  }

  handle(msg) {
    if (msg.type !== "caption") return false;
    const id = this.board.apply(msg, Date.now());
    if (id) {
      this.toggle.hidden = false; // the room is transcribed: the toggle is worth showing
      this.render(id);
      this.arm();
    }
    return true;
  }

  arm() {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const id of this.board.expire(Date.now())) this.render(id);
      if (!this.board.shown.size) {
        clearInterval(this.timer);
        this.timer = null;
      }
    }, 500);
  }

  render(participantId) {
    const tile = this.tileOf(participantId);
    if (!tile) return;
    let el = tile.querySelector(".live-caption");
    const c = this.board.shown.get(participantId);
    if (!c || !this.enabled) {
      if (el) el.remove();
      return;
    }
    if (!el) {
      el = document.createElement("p");
      el.className = "live-caption";
      el.setAttribute("aria-live", "polite");
      tile.append(el);
    }
    el.textContent = c.text;
    el.dataset.final = String(c.final);
  }

  clear() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const id of [...this.board.shown.keys()]) {
      this.board.shown.delete(id);
      this.render(id);
    }
    this.toggle.hidden = true;
  }
}
