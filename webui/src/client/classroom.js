// The classroom side panel: raised hands, reactions, chat and polls (docs/protocol.md).
//
// Owned by main.js: `start()` after `joined`/`resumed` (with that message's `hands`,
// `chat` and `polls`), `handle(msg)` for every server message (true if it was ours),
// `stop()` on leaving. Everything a participant typed is shown with textContent only.

import { el } from "../dom.js";

export const REACTIONS = {
  thumbs_up: "👍", clap: "👏", laugh: "😂", surprised: "😮", heart: "❤️", party: "🎉",
  question: "❓", slower: "🐢", faster: "⏩",
};
const REACTION_SHOWN_MS = 4000;

export class ClassroomPanel {
  // root: the <aside>; send(msg) sends on the socket; nameOf(id, fallback) gives a display
  // name (fallback: for someone no longer in the room).
  constructor(root, { send, nameOf }) {
    this.root = root;
    this.send = send;
    this.nameOf = nameOf;
    this.$ = (sel) => root.querySelector(sel);
    this.hands = new Map(); // participantId -> raisedAtMs, in queue order
    this.polls = new Map(); // pollId -> {poll, results, answered}
    this.$("#hand-toggle").addEventListener("click", () => this.toggleHand());
    this.$("#hands-lower-all").addEventListener("click",
      () => this.send({ type: "hand_lower", participantId: "all" }));
    this.$("#chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = this.$("#chat-input");
      const text = input.value.trim();
      if (text && this.send({ type: "chat_send", text })) input.value = "";
    });
    const reactions = this.$("#reaction-buttons");
    for (const [name, emoji] of Object.entries(REACTIONS)) {
      const b = el("button", { type: "button", textContent: emoji, title: name,
        dataset: { reaction: name } });
      b.addEventListener("click", () => this.send({ type: "react", reaction: name }));
      reactions.append(b);
    }
    this.$("#poll-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.createPoll();
    });
  }

  start({ selfId, role, hands = [], chat = [], polls = [] }) {
    this.selfId = selfId;
    this.role = role;
    this.moderator = role === "instructor";
    this.root.hidden = false;
    this.root.classList.toggle("moderator", this.moderator);
    this.$("#poll-create").hidden = !this.moderator;
    this.$("#hands-lower-all").hidden = !this.moderator;
    this.hands = new Map(hands.map((h) => [h.participantId, h.raisedAtMs]));
    this.renderHands();
    this.$("#chat-log").replaceChildren();
    for (const m of chat) this.addChat(m);
    this.polls = new Map();
    this.$("#poll-list").replaceChildren();
    for (const p of polls) this.addPoll(p);
  }

  stop() {
    this.root.hidden = true;
  }

  handle(msg) {
    switch (msg.type) {
      case "hand_raised":
        this.hands.set(msg.participantId, msg.raisedAtMs);
        this.renderHands();
        return true;
      case "hand_lowered":
        this.hands.delete(msg.participantId);
        this.renderHands();
        return true;
      case "chat":
        this.addChat(msg);
        return true;
      case "chat_deleted": {
        const item = this.$(`#chat-log [data-message-id="${CSS.escape(msg.messageId)}"]`);
        if (item) item.remove();
        return true;
      }
      case "reaction":
        this.showReaction(msg);
        return true;
      case "poll":
        this.addPoll(msg);
        return true;
      case "poll_answered":
        this.updatePoll(msg.pollId, (entry) => { entry.answered = true; });
        return true;
      case "poll_closed":
        this.updatePoll(msg.pollId, (entry) => { entry.poll.open = false; });
        return true;
      case "poll_results":
        this.updatePoll(msg.pollId, (entry) => {
          entry.results = msg;
          entry.poll.open = msg.open;
        });
        return true;
      default:
        return false;
    }
  }

  // -- hands ---------------------------------------------------------------------

  toggleHand() {
    if (this.hands.has(this.selfId)) this.send({ type: "hand_lower" });
    else this.send({ type: "hand_raise" });
  }

  renderHands() {
    const mine = this.hands.has(this.selfId);
    const toggle = this.$("#hand-toggle");
    toggle.textContent = mine ? "Lower hand" : "Raise hand ✋";
    toggle.setAttribute("aria-pressed", String(mine));
    const list = this.$("#hand-list");
    list.replaceChildren();
    for (const id of this.hands.keys()) {
      const item = el("li", { dataset: { participantId: id } },
        el("span", { className: "who", textContent: this.nameOf(id) }));
      if (this.moderator && id !== this.selfId) {
        const lower = el("button", { type: "button", textContent: "Lower",
          className: "small" });
        lower.addEventListener("click",
          () => this.send({ type: "hand_lower", participantId: id }));
        item.append(lower);
      }
      list.append(item);
    }
    this.$("#hands-count").textContent = this.hands.size ? `(${this.hands.size})` : "";
  }

  // -- chat and reactions ----------------------------------------------------------

  addChat(m) {
    const item = el("li", { dataset: { messageId: m.messageId } },
      el("span", { className: "who", textContent: this.nameOf(m.from, m.name) }),
      el("span", { className: "text", textContent: m.text }));
    if (this.moderator || m.from === this.selfId) {
      const del = el("button", { type: "button", textContent: "Delete", className: "small" });
      del.addEventListener("click",
        () => this.send({ type: "chat_delete", messageId: m.messageId }));
      item.append(del);
    }
    const log = this.$("#chat-log");
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  showReaction(msg) {
    const shown = el("li", { textContent:
      `${REACTIONS[msg.reaction] || "?"} ${this.nameOf(msg.participantId)}`,
      dataset: { reaction: msg.reaction, participantId: msg.participantId } });
    this.$("#reaction-feed").append(shown);
    setTimeout(() => shown.remove(), REACTION_SHOWN_MS);
  }

  // -- polls -----------------------------------------------------------------------

  createPoll() {
    const form = this.$("#poll-form");
    const kind = form.elements["poll-kind"].value;
    const poll = { kind, question: form.elements["poll-question"].value.trim() };
    if (kind !== "text") {
      poll.options = form.elements["poll-options"].value.split("\n")
        .map((o) => o.trim()).filter(Boolean);
    }
    const correct = form.elements["poll-correct"].value.trim();
    if (correct && kind !== "text") poll.correct = correct.split(/[ ,]+/).map((n) => Number(n) - 1);
    const seconds = Number(form.elements["poll-seconds"].value);
    if (seconds > 0) poll.durationMs = Math.round(seconds * 1000);
    poll.anonymous = form.elements["poll-anonymous"].checked;
    if (this.send({ type: "poll_create", poll })) form.reset();
  }

  addPoll(p) {
    const entry = { poll: p, results: null, answered: false,
      node: el("li", { className: "poll", dataset: { pollId: p.pollId } }) };
    this.polls.set(p.pollId, entry);
    this.$("#poll-list").prepend(entry.node);
    this.renderPoll(entry);
  }

  updatePoll(pollId, change) {
    const entry = this.polls.get(pollId);
    if (!entry) return;
    change(entry);
    this.renderPoll(entry);
  }

  renderPoll(entry) {
    const { poll, results, node } = entry;
    const children = [el("p", { className: "question", textContent: poll.question }),
      el("p", { className: "hint", textContent: [poll.open ? "open" : "closed",
        poll.anonymous ? "anonymous" : "", poll.comprehension ? "quiz" : ""]
        .filter(Boolean).join(" · ") })];
    if (poll.open && !this.moderator && (!entry.answered || poll.allowChange)) {
      children.push(this.answerForm(poll));
    } else if (entry.answered && !this.moderator) {
      children.push(el("p", { className: "answered", textContent: "Answer sent." }));
    }
    if (results) children.push(this.resultsView(poll, results));
    if (this.moderator) {
      const actions = el("div", { className: "actions" });
      if (poll.open) {
        const close = el("button", { type: "button", textContent: "Close", className: "small" });
        close.addEventListener("click", () => this.send({ type: "poll_close", pollId: poll.pollId }));
        actions.append(close);
      }
      const publish = el("button", { type: "button", textContent: "Share results",
        className: "small" });
      publish.addEventListener("click", () => this.send({ type: "poll_publish", pollId: poll.pollId }));
      actions.append(publish);
      children.push(actions);
    }
    node.replaceChildren(...children);
  }

  answerForm(poll) {
    const form = el("form", { className: "answer" });
    if (poll.kind === "text") {
      form.append(el("input", { name: "text", maxLength: 1000, required: true,
        "aria-label": "Your answer" }));
    } else {
      const type = poll.kind === "single" ? "radio" : "checkbox";
      poll.options.forEach((option, i) => {
        form.append(el("label", {}, el("input", { type, name: "choice", value: String(i) }),
          ` ${option}`));
      });
    }
    form.append(el("button", { type: "submit", textContent: "Answer", className: "small" }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      let answer;
      if (poll.kind === "text") answer = form.elements.text.value;
      else {
        answer = [...form.querySelectorAll("input[name=choice]:checked")]
          .map((i) => Number(i.value));
      }
      this.send({ type: "poll_answer", pollId: poll.pollId, answer });
    });
    return form;
  }

  resultsView(poll, r) {
    const view = el("div", { className: "results" },
      el("p", { textContent: `${r.responses} response${r.responses === 1 ? "" : "s"}` +
        (r.correctRate != null ? `, ${Math.round(r.correctRate * 100)} % right` : "") }));
    if (r.counts) {
      const correct = new Set(r.correct || []);
      const list = el("ol");
      r.counts.forEach((n, i) => list.append(el("li", {
        textContent: `${poll.options[i]}: ${n}${correct.has(i) ? " ✔" : ""}`,
        dataset: { option: String(i), count: String(n) } })));
      view.append(list);
    }
    if (r.texts) {
      const list = el("ul");
      for (const t of r.texts) list.append(el("li", { textContent: t }));
      view.append(list);
    }
    return view;
  }
}
