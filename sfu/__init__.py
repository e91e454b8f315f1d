"""The media path: rooms, participants, tracks, RTP forwarding over aiortc's ICE/DTLS/SRTP."""
