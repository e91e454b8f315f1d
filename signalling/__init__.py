"""HTTP + WebSocket API: signalling protocol, room service API, tokens, browser client."""
