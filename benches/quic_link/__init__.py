"""The QUIC link between nodes that issue #23 proposed and measurement turned down
(benches/README.md, "The relay link"): a sans-IO wire format (``wire``) and its aioquic
adapter (``adapter``). Kept for ``benches.relay_link_bench``, which measures it against
plain UDP; the cluster's nodes relay media over DTLS-SRTP and speak the signalling
protocol to each other (docs/cluster.md, "Edge relays")."""
