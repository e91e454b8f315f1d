// The whiteboard's connection: one Y.Doc kept in sync with the room's board over
// /ws/whiteboard (docs/whiteboard.md), with y-protocols' sync and awareness messages, as
// y-websocket's provider speaks them, plus what that provider cannot do here:
//
// - the server's JSON text messages: {"type": "locked"} and {"type": "error"};
// - a refused write (permission denied): the local change is dropped by starting a fresh
//   document and syncing it from the server, so the page never shows what others don't see;
// - reconnecting with backoff, and stopping for good on 401 (the join token is no longer
//   valid: the page has to rejoin).
//
// handlers: onDoc(doc, awareness) whenever the document is (re)created, onStatus(status)
// ("connecting" | "synced" | "offline" | "closed"), onLocked(bool), onError({code, message}).

import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_AUTH = 2;
const MSG_QUERY_AWARENESS = 3;
const MAX_BACKOFF_MS = 5000;

export class BoardClient {
  constructor(url, handlers, WebSocketImpl = globalThis.WebSocket) {
    this.url = url;
    this.h = handlers;
    this.WS = WebSocketImpl;
    this.ws = null;
    this.closed = false;
    this.failures = 0;
    this.synced = false;
    this.resyncs = 0; // how many refused writes were dropped
    this.localState = null;
    this._onUpdate = (update, origin) => {
      if (origin !== this) this._send(MSG_SYNC, (e) => syncProtocol.writeUpdate(e, update));
    };
    this._onAwareness = ({ added, updated, removed }, origin) => {
      if (origin !== "local") return; // the server relays everyone else's; only send ours
      const changed = added.concat(updated, removed);
      this._send(MSG_AWARENESS, (e) => encoding.writeVarUint8Array(
        e, awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed)));
    };
    this._newDoc();
    this._connect();
  }

  // A fresh document (first start, or dropping a refused change); the UI rebinds to it.
  _newDoc() {
    if (this.doc) {
      this.doc.off("update", this._onUpdate);
      this.awareness.off("update", this._onAwareness);
      this.awareness.destroy();
      this.doc.destroy();
    }
    this.doc = new Y.Doc();
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    this.awareness.setLocalState(this.localState);
    this.doc.on("update", this._onUpdate);
    this.awareness.on("update", this._onAwareness);
    this.synced = false;
    this.h.onDoc(this.doc, this.awareness);
  }

  setLocalState(state) {
    this.localState = state;
    this.awareness.setLocalState(state);
  }

  _connect() {
    if (this.closed) return;
    this.h.onStatus("connecting");
    const ws = new this.WS(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.failures = 0;
      this._hello();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      if (typeof event.data === "string") this._onText(event.data);
      else this._onFrame(new Uint8Array(event.data));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.synced = false;
      if (this.closed) return;
      // 1008/4401: the server no longer accepts the token; a 401 before the upgrade
      // shows as 1006 with no open, counted as failures
      if (event.code === 1008 || this.failures >= 8) {
        this.closed = true;
        this.h.onStatus("closed");
        this.h.onError({ code: "whiteboard_unavailable",
          message: "the whiteboard connection was refused; rejoin the room" });
        return;
      }
      this.h.onStatus("offline");
      this.failures += 1;
      const wait = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.failures);
      this.retry = setTimeout(() => this._connect(), wait);
    };
  }

  // Our state vector (the server answers with what we lack) and our cursor.
  _hello() {
    this._send(MSG_SYNC, (e) => syncProtocol.writeSyncStep1(e, this.doc));
    if (this.awareness.getLocalState() !== null) {
      this._send(MSG_AWARENESS, (e) => encoding.writeVarUint8Array(
        e, awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID])));
    }
  }

  _send(type, write) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false; // the sync on reconnect catches up
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, type);
    write(e);
    ws.send(encoding.toUint8Array(e));
    return true;
  }

  _onFrame(buf) {
    const d = decoding.createDecoder(buf);
    const type = decoding.readVarUint(d);
    if (type === MSG_SYNC) {
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, MSG_SYNC);
      const kind = syncProtocol.readSyncMessage(d, e, this.doc, this);
      if (encoding.length(e) > 1) this.ws.send(encoding.toUint8Array(e));
      if (kind === syncProtocol.messageYjsSyncStep2 && !this.synced) {
        this.synced = true;
        this.h.onStatus("synced");
      }
    } else if (type === MSG_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness,
        decoding.readVarUint8Array(d), this);
    } else if (type === MSG_QUERY_AWARENESS) {
      this._send(MSG_AWARENESS, (e) => encoding.writeVarUint8Array(
        e, awarenessProtocol.encodeAwarenessUpdate(this.awareness,
          Array.from(this.awareness.getStates().keys()))));
    } else if (type === MSG_AUTH) {
      // Refused: the server never applied it, and our later updates would build on it.
      // Frames for the old document may still be in flight: one resync per sync round.
      if (this.synced) {
        this.resyncs += 1;
        this._newDoc();
        this._hello();
      }
    }
  }

  _onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.type === "locked") this.h.onLocked(Boolean(msg.locked));
    else if (msg.type === "error") this.h.onError({ code: msg.code, message: msg.message });
  }

  control(msg) {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  destroy() {
    this.closed = true;
    clearTimeout(this.retry);
    if (this.ws) this.ws.close();
    this.ws = null;
    this.awareness.setLocalState(null);
    this.awareness.destroy();
    this.doc.destroy();
  }
}
