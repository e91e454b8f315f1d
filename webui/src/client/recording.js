// The recording indicator every participant sees, and the instructor's Start/Stop button
// (docs/recording.md, docs/protocol.md).
//
// Owned by main.js: `start({role, recording})` after `joined`/`resumed` (with that
// message's `recording`: {active, policy}), `handle(msg)` for every server message (true
// for `recording`), `stop()` on leaving.

export class RecordingControl {
  constructor(indicator, button, { send }) {
    this.indicator = indicator;
    this.button = button;
    this.send = send;
    this.state = { active: false, policy: "off" };
    this.moderator = false;
    button.addEventListener("click", () => {
      this.button.disabled = true; // until the server says what happened
      this.send({ type: this.state.active ? "recording_stop" : "recording_start" });
    });
  }

  start({ role, recording }) {
    this.moderator = role === "instructor";
    this.render(recording || { active: false, policy: "off" });
  }

  handle(msg) {
    if (msg.type === "recording") {
      this.render(msg);
      return true;
    }
    if (msg.type === "error" && msg.code === "recording_refused") this.button.disabled = false;
    return false;
  }

  render({ active, policy }) {
    this.state = { active: Boolean(active), policy: policy || "off" };
    this.indicator.hidden = !this.state.active;
    const b = this.button;
    // the instructor starts and stops it, unless the policy decides: off, or always on
    b.hidden = !this.moderator || this.state.policy === "off" ||
      (this.state.policy === "always" && this.state.active);
    b.disabled = false;
    b.textContent = this.state.active ? "Stop recording" : "Start recording";
    b.setAttribute("aria-pressed", String(this.state.active));
  }

  stop() {
    this.indicator.hidden = true;
    this.button.hidden = true;
  }
}
