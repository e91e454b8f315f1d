// One join's state (a new Session on every join): the socket, both peer connections and
// their negotiations, the remote participants' tiles, the reconnection state. Every module
// takes the session it works for; `app` is what the page gives them (main.js): its UI
// elements, the window.sfu hook, and the few page-level reactions (showError, the message
// handler, the socket-closed handler, networkBack, watchConnection, current).

import { PublisherNegotiation, SubscriberNegotiation } from "./negotiation.js";
import { Reconnector, RestartPacer } from "./reconnect.js";

export class Session {
  constructor(token, app) {
    this.token = token;
    this.app = app;
    this.ui = app.ui;
    this.ws = null;
    // the server its sockets go to: "" (the page's) until a cluster node redirects it
    this.server = "";
    this.redirects = 0; // redirects followed since the last join or resume
    this.servers = []; // the cluster's nodes (from joined/resumed): where to reconnect
    this.outageServer = ""; // the session's server when the connection was lost
    this.queue = Promise.resolve();
    this.closed = false; // torn down: ignore anything that still arrives
    this.leaving = false;
    this.participant = null; // self, from `joined`
    this.room = null;
    this.remotes = new Map(); // participantId -> {info, tile, video, stream, ...}
    // publisher side
    this.publisherPc = null;
    this.localStream = null;
    this.localTile = null;
    this.published = []; // [{transceiver, source, kind, track, sentMuted}]
    this.pubTracks = new Map(); // mid -> {trackId, kind, source}  (from the publisher answer)
    this.pubNegotiation = new PublisherNegotiation();
    this.pendingPubCandidates = []; // candidates gathered before the offer went out
    this.pubOfferSent = false;
    this.pubOffered = []; // entries of `published` declared in the outstanding offer
    this.screenBusy = false; // a screen share is being started or stopped
    this.pubCandidateUfrag = null; // ICE generation of the last trickled publisher candidate
    this.pubRestart = new RestartPacer();
    // subscriber side
    this.subscriberPc = null;
    this.subNegotiation = new SubscriberNegotiation();
    this.subTracks = new Map(); // mid -> {trackId, participantId, kind, source} (server offers)
    this.subFallback = new Map(); // mid -> {trackId, participantId, kind} (track events)
    this.pausedTracks = new Set(); // trackIds the server paused for lack of downlink bandwidth
    this.speakers = []; // [{participantId, level}] loudest first
    this.subRestart = new RestartPacer();
    // reconnection: {room, participantId, token, windowMs} from joined/resumed
    this.resume = null;
    this.reconnector = new Reconnector({ windowMs: 0 });
    this.reconnectTimer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.reconnectingRemotes = new Set(); // participantIds the server says are reconnecting
  }

  // The session went on on another node (docs/cluster.md): the media connections to the old
  // one are dropped and their negotiation state forgotten; the local tracks stay.
  dropMediaConnections() {
    for (const pc of [this.publisherPc, this.subscriberPc]) {
      if (!pc) continue;
      pc.onicecandidate = null;
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
    this.publisherPc = null;
    this.subscriberPc = null;
    this.pubTracks.clear();
    this.pubNegotiation = new PublisherNegotiation();
    this.pendingPubCandidates = [];
    this.pubOfferSent = false;
    this.pubOffered = [];
    this.pubCandidateUfrag = null;
    this.subNegotiation = new SubscriberNegotiation();
    this.subTracks.clear();
    this.subFallback.clear();
    this.pausedTracks.clear();
  }

  selfId() {
    return this.participant ? this.participant.id : null;
  }
}
