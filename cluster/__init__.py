"""Several nodes: the registry of nodes and the placement of rooms on them (docs/cluster.md)."""
