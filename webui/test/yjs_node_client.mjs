// A stock Yjs client in Node for the interop test (tests/e2e/test_whiteboard_page.py):
// y-websocket's own WebsocketProvider, with the `ws` package as its WebSocket, on the
// server's /ws/whiteboard route; nothing of ours.
//
//   node webui/test/yjs_node_client.mjs ws://127.0.0.1:PORT/ws <join token>
//
// Reads JSON commands on stdin, one per line: {"op": "add", "item": {...}} pushes a Y.Map
// onto `items`; {"op": "dump"} prints the items; {"op": "exit"}. Prints JSON lines:
// {"event": "synced"}, {"event": "changed", "count": n}, {"event": "items", "items": [...]}.

import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import WebSocket from "ws";
import readline from "node:readline";

const [serverUrl, token] = process.argv.slice(2);
const doc = new Y.Doc();
const provider = new WebsocketProvider(serverUrl, "whiteboard", doc, {
  params: { token },
  WebSocketPolyfill: WebSocket,
  disableBc: true,
});
const items = doc.getArray("items");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

provider.on("sync", (synced) => { if (synced) out({ event: "synced" }); });
items.observeDeep(() => out({ event: "changed", count: items.length }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "add") {
    const m = new Y.Map();
    for (const [k, v] of Object.entries(cmd.item)) m.set(k, v);
    items.push([m]);
  } else if (cmd.op === "dump") {
    out({ event: "items", items: items.toJSON() });
  } else if (cmd.op === "exit") {
    provider.destroy();
    process.exit(0);
  }
});
