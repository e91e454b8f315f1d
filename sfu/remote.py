"""Participants of a room whose media comes from another server (docs/cluster.md, "Edge
relays").

On an edge node, the participants of the room's origin are :class:`RemoteParticipant`\\ s:
the room lists them and their tracks like any participant's, and local subscribers
subscribe to those tracks as to any other. A remote participant has no client connection
and no transports of its own: its tracks arrive on one relay connection to the origin (one
per room and edge), whose packets :class:`RelayIngress` routes by SSRC, through the same
compiled ingress step a publisher's packets take. The tracks' NACKs and keyframe requests
go back on that connection, where the origin answers them; they end at each hop.

Sans-IO apart from the transport it is given: the relay client (``cluster.edge``) makes the
connection and tells these objects what the origin offers.
"""

from __future__ import annotations

import logging
from typing import Any

from .engine import IngressSource
from .negotiation import AcceptedMedia
from .participant import Grants, MediaParams, Participant, ParticipantInfo, RoomLink
from .publisher import SsrcTable, ingress_sources_of
from .rtp_header import seq_ts_ssrc
from .track import Layer, PublishedTrack
from .transport import MediaTransport

log = logging.getLogger(__name__)

__all__ = ["RelayIngress", "RemoteParticipant"]


def _discard(message: dict[str, Any]) -> None:
    """A remote participant's messages are its own server's business."""


class RelayIngress:
    """The packets of one relay connection, routed to the remote tracks they belong to
    (the connection's ``ingress``: the compiled step takes what it can, the rest comes
    through :meth:`on_rtp`)."""

    def __init__(self) -> None:
        self.transport: MediaTransport | None = None
        self.routes = SsrcTable(self._routes_changed)
        self.unknown_ssrc_packets = 0
        self.invalid_rtp_packets = 0

    def _routes_changed(self) -> None:
        if self.transport is not None:
            self.transport.invalidate_ingress()

    def ingress_sources(self) -> list[IngressSource]:
        return ingress_sources_of(self.routes)

    def on_ingress(self, flags: int, rx: Any, data: bytes, handle: Any) -> None:
        track, layer = handle
        track.after_ingress(flags, rx, data, layer)

    def on_rtp(self, data: bytes, arrival_ms: float) -> None:
        fields = seq_ts_ssrc(data)
        if fields is None:
            self.invalid_rtp_packets += 1
            return
        seq, ts, ssrc = fields
        layer: Layer | None = self.routes.get(ssrc)
        if layer is None:
            self.unknown_ssrc_packets += 1
            return
        layer.track.on_rtp(data, ssrc, seq, ts, arrival_ms, layer)


class RemoteParticipant(Participant):
    """A participant of the room's origin, as an edge's room sees it: its description and
    its tracks, no connection (it subscribes to nothing here, and is told nothing)."""

    remote = True

    def __init__(self, description: dict[str, Any], room: RoomLink, params: MediaParams
                 ) -> None:
        info = ParticipantInfo(
            id=str(description["id"]), identity=str(description.get("identity", "")),
            name=str(description.get("name", "")), role=str(description.get("role", "student")),
            grants=Grants(publish=True, subscribe=False))
        super().__init__(info, room, params, _discard)

    def attach_track(self, media: AcceptedMedia, track_id: str, source: str,
                     upstream: MediaTransport, ingress: RelayIngress, receiver_ssrc: int
                     ) -> PublishedTrack:
        """A track of this participant now arrives on the relay connection (``media``: the
        origin's m-line for it, as answered): published in the room."""
        track = PublishedTrack(
            track_id=track_id, participant_id=self.id, kind=media.kind, source=source,
            mid=media.mid, codec=media.codec, publisher_pt=media.pt, ext_map=media.ext_map,
            ssrc=media.ssrc, rtx_ssrc=None, upstream=upstream, receiver_ssrc=receiver_ssrc,
            keyframe_interval_ms=self.params.keyframe_interval_ms,
            publisher_role=self.info.role)
        self.publishing.tracks[media.mid] = track
        if media.ssrc is not None:
            ingress.routes[media.ssrc] = track.layers[0]
        self.room.track_published(self, track)
        return track

    def detach_track(self, mid: str, ingress: RelayIngress) -> None:
        track = self.publishing.tracks.get(mid)
        if track is not None:
            ingress.routes.forget(track)
            self.publishing.unpublish(mid)

    def set_remote_muted(self, track_id: str, muted: bool) -> None:
        track = self.track_by_id(track_id)
        if track is not None and track.muted != muted:
            track.set_muted(muted, self.clock())
            self.room.track_muted(self, track)
